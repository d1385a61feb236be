//! Send/receive matching, as ASTRA-sim's common network API does it.
//!
//! A message is identified by `(tag, src, dst, size)` plus a sequence number
//! counted separately for sends and receives of that key, so the n-th send
//! matches the n-th receive of the same size. A size mismatch never matches.

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

/// Outstanding (sequence number, slot) pairs of one key.
type Slots<H> = Vec<(u64, Slot<H>)>;

/// Counters and outstanding slots of one key.
struct Entry<H> {
    tag: u64,
    size: u64,
    src: u32,
    sends: u64,
    recvs: u64,
    slots: Slots<H>,
}

impl<H> Entry<H> {
    /// Every send of the key has met its receive: the entry may be recycled
    /// for another key (both counters restarting together preserves
    /// n-th-send-to-n-th-receive matching).
    #[inline]
    fn settled(&self) -> bool {
        self.sends == self.recvs && self.slots.is_empty()
    }
}

/// A sent message's place in the [`Matcher`]: its key's entry and its
/// sequence number, so that its arrival needs no search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    dst: u32,
    entry: u32,
    /// Sequence number of the send within its key.
    pub seq: u64,
}

/// Matching state of all ranks.
///
/// Kept per destination rank as a short list scanned linearly: a rank has few
/// message streams outstanding at once. A settled entry stays in place (the
/// same key usually comes back: a ring step sends the same size to the same
/// peer with the same tag) and is recycled for a new key, so lists stay as
/// short as the most keys a rank ever had outstanding, and steady-state
/// matching allocates nothing. Entries never move within their list, and an
/// entry with a send that has not arrived is not settled, so a [`Ticket`]
/// stays valid until its message arrives.
pub struct Matcher<H> {
    per_dst: Vec<Vec<Entry<H>>>,
}

impl<H> Default for Matcher<H> {
    fn default() -> Self {
        Matcher { per_dst: Vec::new() }
    }
}

impl<H> Matcher<H> {
    /// The entry of `key`, created (or a settled one recycled) if needed.
    #[inline]
    fn entry(&mut self, key: MsgKey) -> &mut Entry<H> {
        let i = self.entry_index(key);
        &mut self.per_dst[key.dst as usize][i]
    }

    /// The position of `key`'s entry in its destination's list (see [`Matcher::entry`]).
    #[inline]
    fn entry_index(&mut self, key: MsgKey) -> usize {
        let d = key.dst as usize;
        if self.per_dst.len() <= d {
            self.per_dst.resize_with(d + 1, Vec::new);
        }
        let list = &mut self.per_dst[d];
        let mut settled = None;
        for (i, e) in list.iter().enumerate() {
            if e.tag == key.tag && e.src == key.src && e.size == key.size {
                return i;
            }
            if settled.is_none() && e.settled() {
                settled = Some(i);
            }
        }
        let fresh = |slots| Entry { tag: key.tag, src: key.src, size: key.size, sends: 0, recvs: 0, slots };
        match settled {
            Some(i) => {
                let e = &mut list[i];
                let slots = std::mem::take(&mut e.slots);
                *e = fresh(slots);
                i
            }
            None => {
                list.push(fresh(Vec::new()));
                list.len() - 1
            }
        }
    }

    /// Registers a send; returns its ticket for [`Matcher::arrive`].
    pub fn send(&mut self, key: MsgKey) -> Ticket {
        let i = self.entry_index(key);
        let e = &mut self.per_dst[key.dst as usize][i];
        e.sends += 1;
        Ticket { dst: key.dst, entry: i as u32, seq: e.sends - 1 }
    }

    /// A sent message arrived: returns the waiting receive's handler, or
    /// remembers the arrival for a later receive.
    pub fn arrive(&mut self, ticket: Ticket) -> Option<H> {
        let seq = ticket.seq;
        let e = &mut self.per_dst[ticket.dst as usize][ticket.entry as usize];
        match e.slots.iter().position(|(s, _)| *s == seq) {
            Some(i) => match e.slots.swap_remove(i).1 {
                Slot::Waiting(h) => Some(h),
                Slot::Arrived => {
                    e.slots.push((seq, Slot::Arrived));
                    None
                }
            },
            None => {
                e.slots.push((seq, Slot::Arrived));
                None
            }
        }
    }

    /// Posts a receive: returns the handler back when the message already
    /// arrived (the caller runs it as a new event at the current time).
    pub fn recv(&mut self, key: MsgKey, handler: H) -> Option<H> {
        let e = self.entry(key);
        let seq = e.recvs;
        e.recvs += 1;
        match e.slots.iter().position(|(s, _)| *s == seq) {
            Some(i) => {
                e.slots.swap_remove(i);
                Some(handler)
            }
            None => {
                e.slots.push((seq, Slot::Waiting(handler)));
                None
            }
        }
    }

    /// Receives still waiting, with their keys (for hang diagnosis).
    pub fn waiting(&self) -> impl Iterator<Item = (MsgKey, &H)> {
        self.per_dst.iter().enumerate().flat_map(|(dst, list)| {
            list.iter().flat_map(move |e| {
                e.slots.iter().filter_map(move |(_, s)| match s {
                    Slot::Waiting(h) => Some((MsgKey { tag: e.tag, src: e.src, dst: dst as u32, size: e.size }, h)),
                    Slot::Arrived => None,
                })
            })
        })
    }

    /// Messages that arrived and were never received.
    pub fn unclaimed(&self) -> impl Iterator<Item = MsgKey> + '_ {
        self.per_dst.iter().enumerate().flat_map(|(dst, list)| {
            list.iter().flat_map(move |e| {
                e.slots.iter().filter(|(_, s)| matches!(s, Slot::Arrived)).map(move |_| MsgKey {
                    tag: e.tag,
                    src: e.src,
                    dst: dst as u32,
                    size: e.size,
                })
            })
        })
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
        assert_eq!((s0.seq, s1.seq), (0, 1));
        assert_eq!(m.arrive(s1), None, "second message arrives first: kept");
        assert_eq!(m.arrive(s0), Some("r0"));
        assert_eq!(m.recv(k, "r1"), Some("r1"), "already arrived");
        let other = MsgKey { size: 9, ..k };
        assert_eq!(m.recv(other, "never"), None);
        assert_eq!(m.waiting().count(), 1);
    }
}
