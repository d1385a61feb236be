//! Rank-symmetry reduction: when every rank runs the same trace (byte-identical
//! files, or traces that differ only in node ids and names, see
//! [`crate::workload::Workload::same_program`]) and every message a rank
//! receives has a delay that does not depend on the rank, all ranks evolve
//! identically, and simulating one representative rank gives every rank's
//! results.
//!
//! This module owns the decision (which runs qualify, [`ineligible`]), the
//! representative's bookkeeping of same-tick ordering ([`Mirror`]) and the
//! expansion of its report to all ranks ([`expand`]). The representative run
//! itself is [`crate::sim::Simulation`] with one rank: each message the
//! representative sends is delivered back to itself as the message of the
//! peer its paired receive names (the message that peer sends it in the same
//! step), with that real message's delay.
//!
//! Why it is exact. Ring and direct (translation on each dimension's ring) and
//! halving-doubling (the partner `rank_offset` hops away, both ways) pair every
//! send with a receive from the peer that sends to this rank in the same step,
//! with the same tag and size; under the congestion-unaware model a delay
//! depends only on the dimension and the ring distance, so every rank's
//! messages take the same time. By induction over the event loop every rank
//! then does the same things at the same ticks, provided each rank handles its
//! same-tick events in the same order. The global queue is FIFO per tick, so
//! events scheduled at different earlier ticks run in scheduling order on every
//! rank; only events scheduled at the same tick by different ranks could be
//! ordered differently from one rank to the next. [`Mirror`] watches for that
//! (a delivery sharing its scheduling tick with an event from another source)
//! and for zero-delay messages, and abandons the representative run, which then
//! falls back to the full simulation. Everything the reduction does not cover
//! (comm groups, custom collectives, point-to-point and memory nodes,
//! rendezvous, the aware backend, double binary tree, the `one*` algorithms,
//! timelines) is refused up front by [`ineligible`].

use crate::chakra::{CollectiveCommType, NodeType};
use crate::engine::Time;
use crate::report::{RankReport, Report};
use crate::sim::{BackendKind, SimSpec};
use crate::system::{CollKind, CollectiveImpl};

/// Why a run cannot be reduced to one representative rank; `None` when it can.
pub(crate) fn ineligible(spec: &SimSpec) -> Option<String> {
    let refuse = |why: &str| Some(why.to_string());
    if !spec.symmetry {
        return refuse("turned off");
    }
    if spec.workloads.len() < 2 {
        return refuse("fewer than two ranks");
    }
    if spec.backend != BackendKind::CongestionUnaware {
        return refuse("the congestion-aware backend shares links between ranks");
    }
    if spec.groups.is_some() {
        return refuse("a comm-group file is given");
    }
    if !spec.custom.is_empty() {
        return refuse("custom collective implementations are used");
    }
    if spec.rendezvous {
        return refuse("the rendezvous protocol is on");
    }
    if spec.record_timeline {
        return refuse("a timeline is recorded (--trace)");
    }
    for n in &spec.workloads[0].nodes {
        match n.kind {
            NodeType::CommSendNode | NodeType::CommRecvNode => return refuse("the trace has point-to-point nodes"),
            NodeType::MemLoadNode | NodeType::MemStoreNode => return refuse("the trace has remote memory nodes"),
            NodeType::CommCollNode => {
                if n.comm.group.as_deref().is_some_and(|g| !g.is_empty() && g != "0") {
                    return refuse("a collective names a communicator group");
                }
                let kind = match n.comm.coll {
                    Some(CollectiveCommType::AllReduce) => CollKind::AllReduce,
                    Some(CollectiveCommType::AllGather) => CollKind::AllGather,
                    Some(CollectiveCommType::ReduceScatter) => CollKind::ReduceScatter,
                    Some(CollectiveCommType::AllToAll) => CollKind::AllToAll,
                    Some(CollectiveCommType::Broadcast) => continue,
                    _ => return refuse("the trace has a collective the simulator does not model"),
                };
                if let Some(alg) = spec.params.algorithms(kind).iter().find(|a| !symmetric_algorithm(**a)) {
                    return Some(format!("{} {} is not known to be rank-symmetric", kind.name(), alg.astra_name()));
                }
            }
            _ => {}
        }
    }
    let first = &spec.workloads[0];
    if !spec.identical_ranks && !spec.workloads[1..].iter().all(|w| w.same_program(first)) {
        return refuse("the ranks run different traces");
    }
    None
}

/// Algorithms checked to be rank-symmetric on Ring, Switch and FullyConnected
/// dimensions under the congestion-unaware model (see the module doc).
fn symmetric_algorithm(alg: CollectiveImpl) -> bool {
    matches!(alg, CollectiveImpl::Ring | CollectiveImpl::Direct { .. } | CollectiveImpl::HalvingDoubling)
}

/// Source of an event of the representative: its own processing, or the
/// mirrored message of a peer.
pub(crate) const LOCAL: u32 = u32::MAX;

/// Same-tick ordering bookkeeping of a representative run.
#[derive(Default)]
pub(crate) struct Mirror {
    /// Pending system ticks: (tick, when it was scheduled).
    ticks: Vec<(Time, Time)>,
    /// Per in-flight message id: (when it was sent, the peer it stands for).
    msgs: Vec<(Time, u32)>,
    /// The last event seen: (tick, when it was scheduled, source).
    last: Option<(Time, Time, u32)>,
}

impl Mirror {
    /// A system tick at `t` was scheduled at `now`.
    pub(crate) fn tick_scheduled(&mut self, t: Time, now: Time) {
        self.ticks.push((t, now));
    }

    /// A mirrored message standing for `peer`'s was sent at `now` as `msg`.
    pub(crate) fn msg_sent(&mut self, msg: u32, now: Time, peer: u32) {
        let i = msg as usize;
        if self.msgs.len() <= i {
            self.msgs.resize(i + 1, (0, LOCAL));
        }
        self.msgs[i] = (now, peer);
    }

    /// When the system tick firing at `now` was scheduled.
    pub(crate) fn tick_fired(&mut self, now: Time) -> Time {
        match self.ticks.iter().position(|&(t, _)| t == now) {
            Some(i) => self.ticks.swap_remove(i).1,
            None => now,
        }
    }

    /// When message `msg` was sent and which peer it stands for.
    pub(crate) fn msg(&self, msg: u32) -> (Time, u32) {
        self.msgs.get(msg as usize).copied().unwrap_or((0, LOCAL))
    }

    /// Records the next event (popped at `now`, scheduled at `born`, from
    /// `source`); false when its order relative to the previous event could
    /// differ between ranks in the full simulation. Events of one tick pop in
    /// scheduling order, so events scheduled at the same tick are adjacent; a
    /// run of them is safe when all come from one source (the representative's
    /// own processing, or one peer, whose processing order mirrors the
    /// representative's).
    pub(crate) fn observe(&mut self, now: Time, born: Time, source: u32) -> bool {
        let safe = match self.last {
            Some((t, b, s)) if t == now && b == born => s == source,
            _ => true,
        };
        self.last = Some((now, born, source));
        safe
    }
}

/// The representative's report as every rank's: each of the `ranks` ranks gets
/// the representative's results under its own number. `events` stays the
/// number of events actually processed.
pub(crate) fn expand(report: Report, ranks: usize) -> Report {
    let one: RankReport = report.ranks.into_iter().next().unwrap_or_default();
    Report {
        ranks: (0..ranks as u32).map(|rank| RankReport { rank, ..one.clone() }).collect(),
        reduced: true,
        ..report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events scheduled at the same tick are safe in a run from one source;
    /// a delivery joining the representative's own events (or another peer's)
    /// is not.
    #[test]
    fn same_tick_events_from_two_sources_are_unsafe() {
        let mut m = Mirror::default();
        assert!(m.observe(100, 50, LOCAL));
        assert!(m.observe(100, 50, LOCAL));
        assert!(m.observe(100, 60, 7), "scheduled at another tick: ordered by scheduling time");
        assert!(m.observe(100, 60, 7), "one peer's messages keep that peer's order");
        assert!(!m.observe(100, 60, 3), "two peers' messages scheduled at the same tick");
        assert!(m.observe(200, 60, LOCAL), "another tick starts afresh");
        assert!(!m.observe(200, 60, 3));
    }

    #[test]
    fn expanded_report_repeats_the_representative() {
        let one = RankReport { rank: 0, finish_ns: Some(42), nodes_done: 3, ..Default::default() };
        let r = expand(Report { makespan_ns: 42, ranks: vec![one.clone()], events: 9, ..Default::default() }, 3);
        assert!(r.reduced);
        assert_eq!(r.events, 9);
        assert_eq!(r.ranks.iter().map(|x| x.rank).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(r.ranks.iter().all(|x| RankReport { rank: 0, ..x.clone() } == one));
    }
}
