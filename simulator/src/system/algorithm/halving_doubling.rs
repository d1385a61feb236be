//! Halving-doubling (recursive halving and doubling) collectives.
//!
//! All-reduce takes 2·log2 N steps with messages D/2, D/4, ... then back up;
//! reduce-scatter and all-gather log2 N steps. The peer is `rank_offset` hops
//! away, clockwise or anticlockwise depending on the rank's index, which gives
//! XOR partners for powers of two. All-to-all is not supported (as in ASTRA-sim).

use super::super::topology::{Direction, Ring};
use super::{Action, AlgoEvent, CollKind};

/// State of one halving-doubling phase on one rank.
pub(crate) struct HalvingDoubling {
    kind: CollKind,
    id: u32,
    ring: Ring,
    nodes: u32,
    stream_count: u64,
    remained_per_message: u32,
    remained_per_max_count: u32,
    msg_size: u64,
    pub(crate) final_size: u64,
    rank_offset: u32,
    offset_multiplier: f64,
    free_packets: u32,
    credits: super::PacketCredits,
    curr_receiver: u32,
    /// Packets waiting to be sent: (destination, source, size).
    packets: std::collections::VecDeque<(u32, u32, u64)>,
    processed: bool,
}

fn log2(n: u32) -> u32 {
    31 - n.leading_zeros()
}

impl HalvingDoubling {
    /// A phase over `ring` for `data_size` bytes; `kind` must not be all-to-all.
    pub(crate) fn new(kind: CollKind, id: u32, ring: Ring, data_size: u64) -> HalvingDoubling {
        let n = ring.size;
        let stream_count = match kind {
            CollKind::AllReduce => 2 * log2(n) as u64,
            _ => log2(n) as u64,
        };
        let (final_size, msg_size, rank_offset, offset_multiplier) = match kind {
            CollKind::AllReduce => (data_size, data_size / 2, 1, 2.0),
            CollKind::AllGather => (data_size.saturating_mul(n as u64), data_size, n / 2, 0.5),
            CollKind::ReduceScatter => (data_size / n as u64, data_size / 2, 1, 2.0),
            CollKind::AllToAll => unreachable!("rejected when the collective is planned"),
        };
        let mut hd = HalvingDoubling {
            kind,
            id,
            ring: ring.clone(),
            nodes: n,
            stream_count,
            remained_per_message: 1,
            remained_per_max_count: 1,
            msg_size,
            final_size,
            rank_offset,
            offset_multiplier,
            free_packets: 0,
            credits: Default::default(),
            curr_receiver: id,
            packets: Default::default(),
            processed: false,
        };
        hd.curr_receiver = hd.peer();
        hd
    }

    fn direction(&self) -> Direction {
        if self.rank_offset == 0 || (self.ring.index / self.rank_offset) % 2 == 0 {
            Direction::Clockwise
        } else {
            Direction::Anticlockwise
        }
    }

    fn peer(&self) -> u32 {
        let dir = self.direction();
        let mut r = self.id;
        for _ in 0..self.rank_offset {
            r = self.ring.receiver(r, dir);
        }
        r
    }

    pub(crate) fn run(&mut self, ev: AlgoEvent, out: &mut Vec<Action>) {
        match ev {
            AlgoEvent::General => {
                self.free_packets += 1;
                self.ready(out);
                if self.stream_count == 0 && self.free_packets == 1 {
                    out.push(Action::Exit);
                }
            }
            AlgoEvent::PacketReceived => self.insert_packet(out),
            AlgoEvent::StreamInit => self.insert_packet(out),
        }
    }

    fn insert_packet(&mut self, out: &mut Vec<Action>) {
        if let Some(processed) = self.credits.take(self.kind, 1, log2(self.nodes) - 1) {
            // Sender and receiver are the same peer in halving-doubling.
            self.packets.push_back((self.curr_receiver, self.curr_receiver, self.msg_size));
            self.processed = processed;
            self.process_max_count(out);
        }
    }

    fn process_max_count(&mut self, out: &mut Vec<Action>) {
        if self.remained_per_max_count > 0 {
            self.remained_per_max_count -= 1;
        }
        if self.remained_per_max_count == 0 {
            out.push(Action::Bundle { processed: self.processed, size: self.msg_size });
            self.remained_per_max_count = 1;
            self.rank_offset = (self.rank_offset as f64 * self.offset_multiplier) as u32;
            self.msg_size = (self.msg_size as f64 / self.offset_multiplier) as u64;
            if self.rank_offset == self.nodes && self.kind == CollKind::AllReduce {
                self.offset_multiplier = 0.5;
                self.rank_offset = (self.rank_offset as f64 * self.offset_multiplier) as u32;
                self.msg_size = (self.msg_size as f64 / self.offset_multiplier) as u64;
            }
            self.curr_receiver = self.peer();
        }
    }

    fn ready(&mut self, out: &mut Vec<Action>) {
        if self.stream_count == 0 || self.free_packets == 0 {
            return;
        }
        let Some(&(dst, src, size)) = self.packets.front() else { return };
        out.push(Action::Send { dst, size });
        out.push(Action::Recv { src, size });
        super::count_message(&mut self.remained_per_message, &mut self.stream_count);
        self.packets.pop_front();
        self.free_packets -= 1;
    }
}
