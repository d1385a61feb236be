//! The system layer: what each rank's `Sys` does in ASTRA-sim. It turns a
//! collective into chunked streams of per-dimension phases, runs them through
//! per-dimension queues with a limit of active chunks, and paces every packet
//! bundle with the endpoint delay and the reduction's memory cost.
//!
//! The parameters here ([`SysParams`]) are the validated, resolved form of the
//! system configuration; [`crate::config`] builds them from files.

pub mod algorithm;
pub mod topology;

pub use algorithm::CollKind;

/// How a collective is implemented on one dimension (`*-implementation` lists).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CollectiveAlgorithm {
    /// `ring`
    Ring,
    /// `oneRing`: one ring over all NPUs.
    OneRing,
    /// `direct` / `directN` (window N).
    Direct(Option<u32>),
    /// `oneDirect` / `oneDirectN`.
    OneDirect(Option<u32>),
    /// `halvingDoubling`
    HalvingDoubling,
    /// `oneHalvingDoubling`
    OneHalvingDoubling,
    /// `doubleBinaryTree` (all-reduce only).
    DoubleBinaryTree,
}

impl CollectiveAlgorithm {
    /// Whether this is a `one*` variant that flattens all dimensions into one ring.
    pub fn is_flat(self) -> bool {
        matches!(self, CollectiveAlgorithm::OneRing | CollectiveAlgorithm::OneDirect(_) | CollectiveAlgorithm::OneHalvingDoubling)
    }

    /// ASTRA-sim's name.
    pub fn name(self) -> String {
        match self {
            CollectiveAlgorithm::Ring => "ring".into(),
            CollectiveAlgorithm::OneRing => "oneRing".into(),
            CollectiveAlgorithm::Direct(None) => "direct".into(),
            CollectiveAlgorithm::Direct(Some(w)) => format!("direct{w}"),
            CollectiveAlgorithm::OneDirect(None) => "oneDirect".into(),
            CollectiveAlgorithm::OneDirect(Some(w)) => format!("oneDirect{w}"),
            CollectiveAlgorithm::HalvingDoubling => "halvingDoubling".into(),
            CollectiveAlgorithm::OneHalvingDoubling => "oneHalvingDoubling".into(),
            CollectiveAlgorithm::DoubleBinaryTree => "doubleBinaryTree".into(),
        }
    }
}

/// Order in which collectives get priority in their queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulingPolicy {
    /// Newer collectives first.
    Lifo,
    /// Older collectives first.
    Fifo,
    /// The node's `comm_priority`.
    Explicit,
}

/// The roofline compute model's two ceilings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roofline {
    /// Peak compute in FLOP/s (`peak-perf` TFLOPS × 1e12).
    pub peak_flops: f64,
    /// Memory bandwidth in bytes/s (`local-mem-bw` GB/s × 1e9, decimal).
    pub mem_bw_bytes_per_s: f64,
}

/// Resolved system-layer parameters of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct SysParams {
    /// Delay every packet bundle pays (ns), already scaled by the injection scale.
    pub endpoint_delay_ns: u64,
    /// `local-mem-bw` in GB/s (decimal), for the reduction cost; `None` if unset.
    pub local_mem_bw_gbps: Option<f64>,
    /// Chunks per collective (`preferred-dataset-splits`, at least 1).
    pub splits: u64,
    /// Streams running at once per queue before division (`active-chunks-per-dimension`).
    pub active_chunks: u32,
    /// Queues per network dimension (`--num-queues-per-dim`).
    pub queues_per_dim: Vec<u32>,
    /// Scheduling policy.
    pub policy: SchedulingPolicy,
    /// `collective-optimization: localBWAware`.
    pub local_bw_aware: bool,
    /// Per-dimension algorithms for all-reduce, reduce-scatter, all-gather, all-to-all.
    pub all_reduce: Vec<CollectiveAlgorithm>,
    /// Reduce-scatter algorithms per dimension.
    pub reduce_scatter: Vec<CollectiveAlgorithm>,
    /// All-gather algorithms per dimension.
    pub all_gather: Vec<CollectiveAlgorithm>,
    /// All-to-all algorithms per dimension.
    pub all_to_all: Vec<CollectiveAlgorithm>,
    /// Roofline model for GPU compute nodes, when enabled.
    pub roofline: Option<Roofline>,
    /// Replay every node from its recorded duration.
    pub replay_only: bool,
}

impl SysParams {
    /// The per-dimension algorithms of one collective.
    pub fn algorithms(&self, kind: CollKind) -> &[CollectiveAlgorithm] {
        match kind {
            CollKind::AllReduce => &self.all_reduce,
            CollKind::ReduceScatter => &self.reduce_scatter,
            CollKind::AllGather => &self.all_gather,
            CollKind::AllToAll => &self.all_to_all,
        }
    }

    /// The reduction cost of a processed bundle of `size` bytes: one write and
    /// two reads, each `trunc(size / bw)`.
    pub fn reduction_delay(&self, size: u64) -> u64 {
        let bw = self.local_mem_bw_gbps.unwrap_or(0.0) * 1_000_000_000.0;
        let one = size as f64 / bw * 1e9;
        3 * (one as u64)
    }
}
