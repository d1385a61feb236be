//! The event queue and simulated time.
//!
//! Time is integer nanoseconds ([`Time`]); ASTRA-sim's "cycles" are the same
//! unit. Determinism contract: events pop in ascending time, and events with the
//! same time pop in the order they were scheduled (a monotonically increasing
//! sequence number breaks ties). An event scheduled for the current time while
//! that time is being processed therefore runs after everything already queued
//! for it, which is exactly how ASTRA-sim's analytical event list behaves.
//!
//! Events are small `Copy` enums stored by value: no boxing, and no allocation
//! per event once the buckets have grown (see [`EventQueue`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use rustc_hash::FxHashMap;

/// Simulated time in nanoseconds.
pub type Time = u64;

/// A deterministic queue of events over simulated time.
///
/// Events are kept in one FIFO bucket per distinct time, and a min-heap holds
/// only the distinct times (with the slot of their bucket). Popping takes the
/// current bucket front to back, so an event scheduled for the current time
/// lands behind everything already queued for it. Many events share a time in
/// collective-heavy runs (every rank of a symmetric collective acts at the same
/// ticks), so this does one heap operation per distinct time instead of one per
/// event. Scheduling finds a time's bucket through a two-entry cache of the
/// last times used before the hash map (consecutive events mostly go to the same
/// few times); emptied buckets are recycled, so steady-state scheduling
/// allocates nothing.
pub struct EventQueue<E> {
    times: BinaryHeap<Reverse<(Time, u32)>>,
    /// Future time -> its bucket's slot in `buckets`.
    slot_of: FxHashMap<Time, u32>,
    buckets: Vec<VecDeque<E>>,
    free_slots: Vec<u32>,
    /// Recently used (time, slot) pairs; time 0 marks an empty entry (a future
    /// bucket's time is always above `now`, hence above 0).
    recent: [(Time, u32); 2],
    current: VecDeque<E>,
    now: Time,
    popped: u64,
    pending: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            times: BinaryHeap::new(),
            slot_of: FxHashMap::default(),
            buckets: Vec::new(),
            free_slots: Vec::new(),
            recent: [(0, 0); 2],
            current: VecDeque::new(),
            now: 0,
            popped: 0,
            pending: 0,
        }
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The time of the event being processed (0 before the first pop).
    #[inline]
    pub fn now(&self) -> Time {
        self.now
    }

    /// Schedules `event` at `now + delay`.
    #[inline]
    pub fn schedule(&mut self, delay: Time, event: E) {
        let time = self.now.saturating_add(delay);
        self.schedule_at(time, event);
    }

    /// Schedules `event` at an absolute time, which must not be in the past.
    pub fn schedule_at(&mut self, time: Time, event: E) {
        debug_assert!(time >= self.now, "event scheduled in the past");
        self.pending += 1;
        if time <= self.now {
            self.current.push_back(event);
            return;
        }
        let slot = if self.recent[0].0 == time {
            self.recent[0].1
        } else if self.recent[1].0 == time {
            self.recent.swap(0, 1);
            self.recent[0].1
        } else {
            let slot = match self.slot_of.get(&time) {
                Some(&s) => s,
                None => self.new_bucket(time),
            };
            self.recent[1] = self.recent[0];
            self.recent[0] = (time, slot);
            slot
        };
        self.buckets[slot as usize].push_back(event);
    }

    fn new_bucket(&mut self, time: Time) -> u32 {
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.buckets.push(VecDeque::new());
                (self.buckets.len() - 1) as u32
            }
        };
        self.slot_of.insert(time, slot);
        self.times.push(Reverse((time, slot)));
        slot
    }

    /// Removes the next event and advances the clock to its time.
    #[inline]
    pub fn pop(&mut self) -> Option<E> {
        loop {
            if let Some(e) = self.current.pop_front() {
                self.popped += 1;
                self.pending -= 1;
                return Some(e);
            }
            self.advance()?;
        }
    }

    /// Makes the earliest future bucket the current one.
    fn advance(&mut self) -> Option<()> {
        let Reverse((t, slot)) = self.times.pop()?;
        self.slot_of.remove(&t);
        for r in &mut self.recent {
            if r.0 == t {
                *r = (0, 0);
            }
        }
        // The drained current bucket becomes the slot's spare storage.
        std::mem::swap(&mut self.current, &mut self.buckets[slot as usize]);
        self.free_slots.push(slot);
        self.now = t;
        Some(())
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.pending
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Events processed so far.
    pub fn processed(&self) -> u64 {
        self.popped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_time_events_pop_in_scheduling_order() {
        let mut q = EventQueue::new();
        q.schedule(5, 'a');
        q.schedule(3, 'b');
        q.schedule(5, 'c');
        assert_eq!(q.pop(), Some('b'));
        assert_eq!(q.now(), 3);
        // Scheduled "now" while at t=3 but after a t=5 event exists: t=3 first.
        q.schedule(0, 'd');
        q.schedule(2, 'e'); // t=5, after a and c
        assert_eq!([q.pop(), q.pop(), q.pop(), q.pop()], [Some('d'), Some('a'), Some('c'), Some('e')]);
        assert_eq!(q.pop(), None);
        assert_eq!(q.processed(), 5);
    }
}
