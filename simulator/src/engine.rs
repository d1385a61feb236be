//! The event queue and simulated time.
//!
//! Time is integer nanoseconds ([`Time`]); ASTRA-sim's "cycles" are the same
//! unit. Determinism contract: events pop in ascending time, and events with the
//! same time pop in the order they were scheduled (a monotonically increasing
//! sequence number breaks ties). An event scheduled for the current time while
//! that time is being processed therefore runs after everything already queued
//! for it, which is exactly how ASTRA-sim's analytical event list behaves.
//!
//! The queue is a plain binary heap of small `Copy` events keyed by
//! `(time, seq)`: no boxing and no allocation per event once the heap has grown.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Simulated time in nanoseconds.
pub type Time = u64;

struct Entry<E> {
    time: Time,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse to pop the earliest (time, seq).
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// A deterministic min-queue of events over simulated time.
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: Time,
    popped: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue { heap: BinaryHeap::new(), seq: 0, now: 0, popped: 0 }
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
        self.heap.push(Entry { time, seq: self.seq, event });
        self.seq += 1;
    }

    /// Removes the next event and advances the clock to its time.
    pub fn pop(&mut self) -> Option<E> {
        let e = self.heap.pop()?;
        self.now = e.time;
        self.popped += 1;
        Some(e.event)
    }

    /// Number of events waiting.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
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
