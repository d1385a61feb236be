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
    src: u32,
    size: u64,
    sends: u64,
    recvs: u64,
    slots: Slots<H>,
}

/// Matching state of all ranks.
///
/// Kept per destination rank as a short list scanned linearly: a rank has few
/// message streams outstanding at once, and a key whose sends and receives
/// have all met is dropped (both counters would restart together, which
/// preserves n-th-send-to-n-th-receive matching), so lists stay short.
pub struct Matcher<H> {
    per_dst: Vec<Vec<Entry<H>>>,
    /// Emptied slot lists kept for reuse (no allocation per message).
    spare: Vec<Slots<H>>,
}

impl<H> Default for Matcher<H> {
    fn default() -> Self {
        Matcher { per_dst: Vec::new(), spare: Vec::new() }
    }
}

impl<H> Matcher<H> {
    fn entry(&mut self, key: MsgKey) -> (&mut Vec<Entry<H>>, usize, &mut Vec<Slots<H>>) {
        let d = key.dst as usize;
        if self.per_dst.len() <= d {
            self.per_dst.resize_with(d + 1, Vec::new);
        }
        let list = &mut self.per_dst[d];
        let pos = match list.iter().position(|e| e.tag == key.tag && e.src == key.src && e.size == key.size) {
            Some(p) => p,
            None => {
                let slots = self.spare.pop().unwrap_or_default();
                list.push(Entry { tag: key.tag, src: key.src, size: key.size, sends: 0, recvs: 0, slots });
                list.len() - 1
            }
        };
        (list, pos, &mut self.spare)
    }

    fn gc(list: &mut Vec<Entry<H>>, pos: usize, spare: &mut Vec<Slots<H>>) {
        let e = &list[pos];
        if e.sends == e.recvs && e.slots.is_empty() {
            let e = list.swap_remove(pos);
            spare.push(e.slots);
        }
    }

    /// Registers a send; returns its sequence number within the key.
    pub fn send(&mut self, key: MsgKey) -> u64 {
        let (list, pos, _) = self.entry(key);
        list[pos].sends += 1;
        list[pos].sends - 1
    }

    /// A sent message arrived: returns the waiting receive's handler, or
    /// remembers the arrival for a later receive.
    pub fn arrive(&mut self, key: MsgKey, seq: u64) -> Option<H> {
        let (list, pos, spare) = self.entry(key);
        let e = &mut list[pos];
        let found = e.slots.iter().position(|(s, _)| *s == seq);
        let out = match found {
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
        };
        Self::gc(list, pos, spare);
        out
    }

    /// Posts a receive: returns the handler back when the message already
    /// arrived (the caller runs it as a new event at the current time).
    pub fn recv(&mut self, key: MsgKey, handler: H) -> Option<H> {
        let (list, pos, spare) = self.entry(key);
        let e = &mut list[pos];
        let seq = e.recvs;
        e.recvs += 1;
        let out = match e.slots.iter().position(|(s, _)| *s == seq) {
            Some(i) => {
                e.slots.swap_remove(i);
                Some(handler)
            }
            None => {
                e.slots.push((seq, Slot::Waiting(handler)));
                None
            }
        };
        Self::gc(list, pos, spare);
        out
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
        assert_eq!(m.arrive(k, s1), None, "second message arrives first: kept");
        assert_eq!(m.arrive(k, s0), Some("r0"));
        assert_eq!(m.recv(k, "r1"), Some("r1"), "already arrived");
        let other = MsgKey { size: 9, ..k };
        assert_eq!(m.recv(other, "never"), None);
        assert_eq!(m.waiting().count(), 1);
    }
}
