//! Ring and Direct collectives (ASTRA-sim's `Ring` and its subclass `AllToAll`,
//! which the system config calls `direct`).
//!
//! Ring: one packet in flight to a fixed neighbour; all-reduce takes 2(N-1)
//! steps of size/N, reduce-scatter N-1 of size/N, all-gather N-1 of the whole
//! input, all-to-all N(N-1)/2 of size/N. Direct: a window of up to N-1 packets,
//! the peer rotating one step after each packet, and an all-reduce whose second
//! half waits for every first-half packet.

use super::super::topology::{Direction, Ring};
use super::{Action, AlgoEvent, CollKind};

/// State of one ring or direct phase on one rank.
pub(crate) struct RingAlgo {
    kind: CollKind,
    id: u32,
    ring: Ring,
    dir: Direction,
    direct: bool,
    nodes: u32,
    parallel_reduce: u32,
    middle_point: u32,
    stream_count: u64,
    remained_per_message: u32,
    remained_per_max_count: u32,
    msg_size: u64,
    pub(crate) final_size: u64,
    free_packets: u32,
    credits: super::PacketCredits,
    total_received: u32,
    curr_receiver: u32,
    curr_sender: u32,
    /// Packets waiting to be sent: (destination, source).
    packets: std::collections::VecDeque<(u32, u32)>,
    processed: bool,
}

impl RingAlgo {
    /// A ring (`window == None` and `direct == false`) or direct phase over `ring`
    /// for `data_size` bytes; `window` limits direct's packets in flight.
    pub(crate) fn new(
        kind: CollKind,
        id: u32,
        ring: Ring,
        data_size: u64,
        dir: Direction,
        direct: bool,
        window: Option<u32>,
    ) -> RingAlgo {
        let n = ring.size;
        let mut stream_count = match kind {
            CollKind::AllReduce => 2 * (n as u64 - 1),
            CollKind::AllToAll => (n as u64 - 1) * n as u64 / 2,
            _ => n as u64 - 1,
        };
        let (msg_size, final_size) = match kind {
            CollKind::AllReduce => (data_size / n as u64, data_size),
            CollKind::AllGather => (data_size, data_size.saturating_mul(n as u64)),
            CollKind::ReduceScatter => (data_size / n as u64, data_size / n as u64),
            CollKind::AllToAll => (data_size / n as u64, data_size),
        };
        let mut parallel_reduce = 1;
        if direct {
            parallel_reduce = match window {
                None => n - 1,
                Some(w) => w.min(n - 1),
            };
            if kind == CollKind::AllToAll {
                stream_count = n as u64 - 1;
            }
        }
        RingAlgo {
            kind,
            id,
            dir,
            direct,
            nodes: n,
            parallel_reduce,
            middle_point: n - 1,
            stream_count,
            remained_per_message: 1,
            remained_per_max_count: 1,
            msg_size,
            final_size,
            free_packets: 0,
            credits: Default::default(),
            total_received: 0,
            curr_receiver: ring.receiver(id, dir),
            curr_sender: ring.sender(id, dir),
            packets: Default::default(),
            processed: false,
            ring,
        }
    }

    fn non_zero_latency_packets(&self) -> u32 {
        if self.direct {
            self.parallel_reduce
        } else {
            (self.nodes - 1) * self.parallel_reduce
        }
    }

    pub(crate) fn run(&mut self, ev: AlgoEvent, out: &mut Vec<Action>) {
        match ev {
            AlgoEvent::General => {
                self.free_packets += 1;
                if self.direct && self.kind == CollKind::AllReduce && self.stream_count <= self.middle_point as u64 {
                    if self.total_received < self.middle_point {
                        return;
                    }
                    for _ in 0..self.parallel_reduce {
                        self.ready(out);
                    }
                } else {
                    self.ready(out);
                }
                self.iteratable(out);
            }
            AlgoEvent::PacketReceived => {
                self.total_received += 1;
                self.insert_packet(out);
            }
            AlgoEvent::StreamInit => {
                for _ in 0..self.parallel_reduce {
                    self.insert_packet(out);
                }
            }
        }
    }

    fn insert_packet(&mut self, out: &mut Vec<Action>) {
        if let Some(processed) = self.credits.take(self.kind, self.parallel_reduce, self.non_zero_latency_packets()) {
            self.packets.push_back((self.curr_receiver, self.curr_sender));
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
            if self.direct {
                self.curr_receiver = self.ring.receiver(self.curr_receiver, self.dir);
                if self.curr_receiver == self.id {
                    self.curr_receiver = self.ring.receiver(self.curr_receiver, self.dir);
                }
                self.curr_sender = self.ring.sender(self.curr_sender, self.dir);
                if self.curr_sender == self.id {
                    self.curr_sender = self.ring.sender(self.curr_sender, self.dir);
                }
            }
        }
    }

    fn ready(&mut self, out: &mut Vec<Action>) {
        if self.stream_count == 0 || self.free_packets == 0 {
            return;
        }
        let Some(&(dst, src)) = self.packets.front() else { return };
        out.push(Action::Send { dst, size: self.msg_size });
        out.push(Action::Recv { src, size: self.msg_size });
        // reduce(): one message accounted, the packet consumed.
        super::count_message(&mut self.remained_per_message, &mut self.stream_count);
        self.packets.pop_front();
        self.free_packets -= 1;
    }

    fn iteratable(&mut self, out: &mut Vec<Action>) {
        if self.stream_count == 0 && self.free_packets == self.parallel_reduce {
            out.push(Action::Exit);
        }
    }
}
