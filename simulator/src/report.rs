//! What a run produced: when every rank finished and where the time went.

use serde::Serialize;

/// Per-rank results.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RankReport {
    /// Rank number.
    pub rank: u32,
    /// When the rank finished its last node (ns); `None` if it never did.
    pub finish_ns: Option<u64>,
    /// ASTRA-sim's "exposed communication": finish time minus GPU compute time
    /// issued (so CPU time and idle waits count too).
    pub exposed_comm_ns: Option<u64>,
    /// Time with at least one GPU compute node running (union of intervals).
    pub compute_ns: u64,
    /// Time with at least one CPU compute node running.
    pub cpu_ns: u64,
    /// Time with at least one communication node (collective, send, receive) in flight.
    pub comm_ns: u64,
    /// Time GPU compute and communication overlapped.
    pub overlap_ns: u64,
    /// Nodes the rank completed.
    pub nodes_done: u64,
}

/// What kind of work a timeline span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SpanKind {
    /// GPU compute.
    GpuCompute,
    /// CPU compute.
    CpuCompute,
    /// Collective communication.
    Collective,
    /// Point-to-point send or receive.
    PointToPoint,
    /// Remote memory access.
    Memory,
}

/// One node's execution, for timelines.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    /// Rank.
    pub rank: u32,
    /// Node id.
    pub node: u64,
    /// Node name.
    pub name: String,
    /// Kind of work.
    pub kind: SpanKind,
    /// Issue time (ns).
    pub start_ns: u64,
    /// Completion time (ns).
    pub end_ns: u64,
}

/// The result of a simulation.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    /// Latest finish time over all ranks (ns).
    pub makespan_ns: u64,
    /// One entry per rank, in rank order.
    pub ranks: Vec<RankReport>,
    /// Events processed by the engine.
    pub events: u64,
    /// The network backend used.
    pub backend: String,
    /// Every node's execution span, when the run was asked to record them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<Span>>,
    /// Whether one representative rank was simulated for all ranks (see
    /// [`crate::sim::SimSpec::symmetry`]); not written to JSON reports.
    #[serde(skip)]
    pub reduced: bool,
}

/// Total length of the union of half-open intervals `[start, end)`.
pub fn union_len(intervals: &mut [(u64, u64)]) -> u64 {
    merged(intervals).iter().map(|(a, b)| b - a).sum()
}

/// The intervals merged into disjoint, sorted ones.
pub fn merged(intervals: &mut [(u64, u64)]) -> Vec<(u64, u64)> {
    intervals.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(a, b) in intervals.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// Length of the intersection of two sets of disjoint sorted intervals.
pub fn intersection_len(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo < hi {
            total += hi - lo;
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_and_overlap() {
        let mut a = vec![(5, 10), (0, 3), (2, 4)];
        assert_eq!(union_len(&mut a), 9);
        let ma = merged(&mut a);
        assert_eq!(ma, vec![(0, 4), (5, 10)]);
        assert_eq!(intersection_len(&ma, &[(3, 6), (9, 20)]), 3);
    }
}
