//! The system layer: what each rank's `Sys` does in ASTRA-sim. It turns a
//! collective into chunked streams of per-dimension phases, runs them through
//! per-dimension queues with a limit of active chunks, and paces every packet
//! bundle with the endpoint delay and the reduction's memory cost.
//!
//! The parameters here ([`SysParams`]) are the validated, resolved form of the
//! system configuration; [`crate::config`] builds them from files.

pub mod algorithm;
pub mod topology;

pub use crate::config::{CollectiveImpl, SchedulingPolicy};
pub use algorithm::CollKind;

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
    pub all_reduce: Vec<CollectiveImpl>,
    /// Reduce-scatter algorithms per dimension.
    pub reduce_scatter: Vec<CollectiveImpl>,
    /// All-gather algorithms per dimension.
    pub all_gather: Vec<CollectiveImpl>,
    /// All-to-all algorithms per dimension.
    pub all_to_all: Vec<CollectiveImpl>,
    /// Roofline model for GPU compute nodes, when enabled.
    pub roofline: Option<Roofline>,
    /// Replay every node from its recorded duration.
    pub replay_only: bool,
    /// The system config file these came from, for error messages.
    pub source: Option<std::path::PathBuf>,
}

impl SysParams {
    /// The per-dimension algorithms of one collective.
    pub fn algorithms(&self, kind: CollKind) -> &[CollectiveImpl] {
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

impl SysParams {
    /// Resolves a system configuration for a network with `dims` dimensions.
    /// `injection_scale` multiplies the endpoint delay (when the key is present),
    /// `queues_per_dim` is `--num-queues-per-dim`.
    pub fn from_config(
        cfg: &crate::config::SystemConfig,
        dims: usize,
        injection_scale: f64,
        queues_per_dim: u32,
    ) -> Result<SysParams, crate::config::ConfigError> {
        use crate::config::{Collective, CollectiveOptimization};
        let roofline = if cfg.roofline_enabled && !cfg.replay_only {
            Some(Roofline { peak_flops: cfg.peak_perf_flops()?, mem_bw_bytes_per_s: cfg.local_mem_bw_bytes_per_s()? })
        } else {
            None
        };
        Ok(SysParams {
            endpoint_delay_ns: cfg.communication_delay_ns(injection_scale),
            local_mem_bw_gbps: cfg.local_mem_bw_gbps,
            splits: cfg.preferred_dataset_splits.max(1) as u64,
            active_chunks: cfg.active_chunks_per_dimension.max(1),
            queues_per_dim: vec![queues_per_dim.max(1); dims.max(1)],
            policy: cfg.scheduling_policy,
            local_bw_aware: cfg.collective_optimization == CollectiveOptimization::LocalBwAware,
            all_reduce: cfg.implementations.get(Collective::AllReduce).clone(),
            reduce_scatter: cfg.implementations.get(Collective::ReduceScatter).clone(),
            all_gather: cfg.implementations.get(Collective::AllGather).clone(),
            all_to_all: cfg.implementations.get(Collective::AllToAll).clone(),
            roofline,
            replay_only: cfg.replay_only,
            source: Some(cfg.origin().path.clone()),
        })
    }
}
