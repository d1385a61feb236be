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
/// only the distinct times. Popping takes the current bucket front to back, so
/// an event scheduled for the current time lands behind everything already
/// queued for it. Many events share a time in collective-heavy runs (every rank
/// of a symmetric collective acts at the same ticks), so this does one heap
/// operation per distinct time instead of one per event; emptied buckets are
/// recycled, so steady-state scheduling allocates nothing.
pub struct EventQueue<E> {
    times: BinaryHeap<Reverse<Time>>,
    buckets: FxHashMap<Time, VecDeque<E>>,
    current: VecDeque<E>,
    spare: Vec<VecDeque<E>>,
    now: Time,
    popped: u64,
    pending: usize,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue {
            times: BinaryHeap::new(),
            buckets: FxHashMap::default(),
            current: VecDeque::new(),
            spare: Vec::new(),
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
    pub fn now(&self) -> Time {
        self.now
    }

    /// Schedules `event` at `now + delay`.
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
        match self.buckets.get_mut(&time) {
            Some(b) => b.push_back(event),
            None => {
                let mut b = self.spare.pop().unwrap_or_default();
                b.push_back(event);
                self.buckets.insert(time, b);
                self.times.push(Reverse(time));
            }
        }
    }

    /// Removes the next event and advances the clock to its time.
    pub fn pop(&mut self) -> Option<E> {
        loop {
            if let Some(e) = self.current.pop_front() {
                self.popped += 1;
                self.pending -= 1;
                return Some(e);
            }
            let Reverse(t) = self.times.pop()?;
            let bucket = self.buckets.remove(&t).expect("every queued time has a bucket");
            let old = std::mem::replace(&mut self.current, bucket);
            self.spare.push(old);
            self.now = t;
        }
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
