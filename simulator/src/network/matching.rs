//! Send/receive matching, as ASTRA-sim's common network API does it.
//!
//! A message is identified by `(tag, src, dst, size)` plus a sequence number
//! counted separately for sends and receives of that key, so the n-th send
//! matches the n-th receive of the same size. A size mismatch never matches.

use std::collections::HashMap;

/// The identity of a message stream between two ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MsgKey {
    /// Tag (collective stream tag or point-to-point tag).
    pub tag: u64,
    /// Sending rank.
    pub src: u32,
    /// Receiving rank.
    pub dst: u32,
    /// Bytes.
    pub size: u64,
}

enum Slot<H> {
    /// The message arrived before anyone asked for it.
    Arrived,
    /// A receive is waiting for the message.
    Waiting(H),
}

/// Matching state of all ranks.
pub struct Matcher<H> {
    seqs: HashMap<MsgKey, (u64, u64)>,
    slots: HashMap<(MsgKey, u64), Slot<H>>,
}

impl<H> Default for Matcher<H> {
    fn default() -> Self {
        Matcher { seqs: HashMap::new(), slots: HashMap::new() }
    }
}

impl<H> Matcher<H> {
    /// Registers a send; returns its sequence number within the key.
    pub fn send(&mut self, key: MsgKey) -> u64 {
        let s = self.seqs.entry(key).or_default();
        s.0 += 1;
        s.0 - 1
    }

    /// A sent message arrived: returns the waiting receive's handler, or
    /// remembers the arrival for a later receive.
    pub fn arrive(&mut self, key: MsgKey, seq: u64) -> Option<H> {
        match self.slots.remove(&(key, seq)) {
            Some(Slot::Waiting(h)) => Some(h),
            Some(Slot::Arrived) | None => {
                self.slots.insert((key, seq), Slot::Arrived);
                None
            }
        }
    }

    /// Posts a receive: returns the handler back when the message already
    /// arrived (the caller runs it as a new event at the current time).
    pub fn recv(&mut self, key: MsgKey, handler: H) -> Option<H> {
        let s = self.seqs.entry(key).or_default();
        let seq = s.1;
        s.1 += 1;
        match self.slots.remove(&(key, seq)) {
            Some(Slot::Arrived) => Some(handler),
            Some(Slot::Waiting(old)) => {
                // Cannot happen: one receive per sequence number.
                self.slots.insert((key, seq), Slot::Waiting(old));
                Some(handler)
            }
            None => {
                self.slots.insert((key, seq), Slot::Waiting(handler));
                None
            }
        }
    }

    /// Receives still waiting, with their keys (for hang diagnosis).
    pub fn waiting(&self) -> impl Iterator<Item = (&MsgKey, &H)> {
        self.slots.iter().filter_map(|((k, _), s)| match s {
            Slot::Waiting(h) => Some((k, h)),
            Slot::Arrived => None,
        })
    }

    /// Messages that arrived and were never received.
    pub fn unclaimed(&self) -> impl Iterator<Item = &MsgKey> {
        self.slots.iter().filter_map(|((k, _), s)| matches!(s, Slot::Arrived).then_some(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_send_matches_nth_receive_of_the_same_key() {
        let mut m = Matcher::default();
        let k = MsgKey { tag: 1, src: 0, dst: 1, size: 8 };
        let s0 = m.send(k);
        let s1 = m.send(k);
        assert_eq!(m.recv(k, "r0"), None);
        assert_eq!(m.arrive(k, s1), None, "second message arrives first: kept");
        assert_eq!(m.arrive(k, s0), Some("r0"));
        assert_eq!(m.recv(k, "r1"), Some("r1"), "already arrived");
        let other = MsgKey { size: 9, ..k };
        assert_eq!(m.recv(other, "never"), None);
        assert_eq!(m.waiting().count(), 1);
    }
}
