//! Collective algorithms as state machines.
//!
//! Each algorithm reacts to the three events ASTRA-sim gives it (stream start,
//! a "general" wake-up when a packet bundle has paid its endpoint and reduction
//! delays, and a received packet) by appending `Action`s: network sends and
//! receives, packet bundles to register, and the phase's exit. The system layer
//! performs the actions in order after the call, which is equivalent to
//! ASTRA-sim's direct calls because none of them feeds back into the same
//! algorithm synchronously.

mod double_binary_tree;
mod halving_doubling;
mod ring;

pub(crate) use double_binary_tree::DoubleBinaryTree;
pub(crate) use halving_doubling::HalvingDoubling;
pub(crate) use ring::RingAlgo;

/// ASTRA-sim's per-message accounting (`process_stream_count`), shared by the
/// ring-family and halving-doubling algorithms: one message has been sent.
pub(crate) fn count_message(remained_per_message: &mut u32, stream_count: &mut u64) {
    if *remained_per_message > 0 {
        *remained_per_message -= 1;
    }
    if *remained_per_message == 0 && *stream_count > 0 {
        *stream_count -= 1;
        if *stream_count > 0 {
            *remained_per_message = 1;
        }
    }
}

/// ASTRA-sim's zero-/non-zero-latency packet credits, shared by the ring,
/// direct and halving-doubling algorithms: each inserted packet takes a credit;
/// when both kinds are spent they are refilled and `toggle` flips. Zero-latency
/// packets are never reductions; non-zero ones are for reduce-scatter, and for
/// all-reduce while `toggle` is set (its first half).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PacketCredits {
    zero: u32,
    non_zero: u32,
    toggle: bool,
}

impl PacketCredits {
    /// Takes one packet's credit, refilling with (`zero`, `non_zero`) first when
    /// both are spent. Returns whether the packet's bundle is a reduction, or
    /// `None` when no credit is left (ASTRA-sim: "should not inject nothing").
    pub(crate) fn take(&mut self, kind: CollKind, zero: u32, non_zero: u32) -> Option<bool> {
        if self.zero == 0 && self.non_zero == 0 {
            self.zero = zero;
            self.non_zero = non_zero;
            self.toggle = !self.toggle;
        }
        if self.zero > 0 {
            self.zero -= 1;
            Some(false)
        } else if self.non_zero > 0 {
            self.non_zero -= 1;
            Some(kind == CollKind::ReduceScatter || (kind == CollKind::AllReduce && self.toggle))
        } else {
            None
        }
    }
}

/// The collective a phase performs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollKind {
    /// All-reduce.
    AllReduce,
    /// Reduce-scatter.
    ReduceScatter,
    /// All-gather.
    AllGather,
    /// All-to-all.
    AllToAll,
}

impl CollKind {
    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            CollKind::AllReduce => "all-reduce",
            CollKind::ReduceScatter => "reduce-scatter",
            CollKind::AllGather => "all-gather",
            CollKind::AllToAll => "all-to-all",
        }
    }
}

/// What woke the algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AlgoEvent {
    /// The stream got a running slot.
    StreamInit,
    /// A packet bundle finished its delays.
    General,
    /// A packet arrived.
    PacketReceived,
}

/// A side effect requested by an algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Send `size` bytes to `dst` with the stream's tag.
    Send { dst: u32, size: u64 },
    /// Post a receive of `size` bytes from `src` with the stream's tag.
    Recv { src: u32, size: u64 },
    /// Register a packet bundle: it wakes the algorithm after the endpoint
    /// delay, plus the reduction delay first when `processed`.
    Bundle { processed: bool, size: u64 },
    /// The phase is done; the stream moves on.
    Exit,
}

/// One phase's algorithm instance.
pub(crate) enum Algorithm {
    /// Ring, and Direct (ring with rotating peers and a window).
    Ring(RingAlgo),
    /// Halving-doubling.
    HalvingDoubling(HalvingDoubling),
    /// Double binary tree (all-reduce only).
    DoubleBinaryTree(DoubleBinaryTree),
    /// A custom collective given as per-rank Chakra ETs; the simulator runs
    /// it (index into its table of custom runs).
    Custom(u32),
}

impl Algorithm {
    /// Feeds one event; actions are appended to `out`.
    pub(crate) fn run(&mut self, ev: AlgoEvent, out: &mut Vec<Action>) {
        match self {
            Algorithm::Ring(a) => a.run(ev, out),
            Algorithm::HalvingDoubling(a) => a.run(ev, out),
            Algorithm::DoubleBinaryTree(a) => a.run(ev, out),
            Algorithm::Custom(_) => {}
        }
    }

    /// Bytes per rank after the phase (the next phase's input).
    pub(crate) fn final_size(&self) -> u64 {
        match self {
            Algorithm::Ring(a) => a.final_size,
            Algorithm::HalvingDoubling(a) => a.final_size,
            Algorithm::DoubleBinaryTree(a) => a.final_size,
            Algorithm::Custom(_) => 0,
        }
    }
}
