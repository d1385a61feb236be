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
//!
//! Replicas. With communicator groups (data, tensor and pipeline parallelism)
//! ranks are symmetric only replica by replica: [`replicas`] looks for "cross"
//! groups (one per position, all of one size, together holding every rank once;
//! the `j`-th member of each is in replica `j`, e.g. the data-parallel groups)
//! and checks that every replica is a translate of replica 0: each rank runs
//! its replica-0 counterpart's program with peers and inner groups mapped
//! position for position and the same cross groups; collectives name a group
//! (none spans every rank) that lies inside replica 0 or is a cross group;
//! point-to-point peers lie inside the replica; every pair of replica-0 ranks
//! is as far apart (first differing dimension and hops) in every replica; and
//! every member of a cross group reaches both ring neighbours by one route;
//! and every replica's ranks, position by position, are in replica 0's rank
//! order (ranks start in rank order, so each replica orders its same-tick
//! events as replica 0 does).
//! Partial groups run the ring over the member list, which the translation
//! from replica `j` to `j + k` rotates, so the argument above holds with
//! replica 0 as the representative: it is simulated with the full machinery
//! inside it, and each message it sends on a cross group is mirrored. [`Mirror`]
//! counts a mirrored message's source as the peer's replica (whose ranks handle
//! their events in replica 0's order) and messages inside the replica as local.

use crate::chakra::{CollectiveCommType, NodeType};
use crate::config::comm_group::CommGroup;
use crate::engine::Time;
use crate::network::Unaware;
use crate::report::{RankReport, Report};
use crate::sim::{BackendKind, SimSpec};
use crate::system::{CollKind, CollectiveImpl};
use crate::workload::CommAttrs;

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

/// Data-parallel replicas: the ranks split into `d` replicas by a set of
/// "cross" communicator groups, each holding one rank of every replica (its
/// `j`-th member is in replica `j`), where every replica runs a translate of
/// replica 0's program. Replica 0 is simulated with the full machinery for
/// everything inside it; each message it sends on a cross group is delivered
/// back to it as the mirrored peer's (see the module doc).
#[derive(Clone, Debug)]
pub(crate) struct Replicas {
    /// Number of replicas.
    d: u32,
    /// Per rank: its replica.
    replica: Vec<u32>,
    /// Per rank: replica 0's rank at the same position (its representative).
    rep: Vec<u32>,
    /// Replica 0's ranks, ascending.
    pub(crate) ranks: Vec<u32>,
}

impl Replicas {
    /// Number of replicas.
    pub(crate) fn count(&self) -> u32 {
        self.d
    }

    /// The replica `rank` belongs to.
    pub(crate) fn replica(&self, rank: u32) -> u32 {
        self.replica.get(rank as usize).copied().unwrap_or(LOCAL)
    }
}

/// The replica structure of a run with communicator groups, if one can be
/// verified to be exact (see the module doc); `Err` says why not. Cross-group
/// candidates are tried from the largest group size down.
pub(crate) fn replicas(spec: &SimSpec, net: &Unaware) -> Result<Replicas, String> {
    let n = spec.workloads.len();
    if !spec.symmetry {
        return Err("turned off".into());
    }
    if spec.backend != BackendKind::CongestionUnaware {
        return Err("the congestion-aware backend shares links between ranks".into());
    }
    let Some(groups) = spec.groups.as_ref() else { return Err("no comm-group file".into()) };
    if !spec.custom.is_empty() || spec.rendezvous || spec.record_timeline {
        return Err("custom collectives, rendezvous or a timeline".into());
    }
    let mut sizes: Vec<usize> = groups.groups().iter().map(|g| g.ranks.len()).filter(|&s| s > 1 && s < n).collect();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    sizes.dedup();
    let mut why = String::from("no communicator groups partition the ranks");
    for d in sizes {
        let cross: Vec<&CommGroup> = groups.groups().iter().filter(|g| g.ranks.len() == d).collect();
        if cross.len() * d != n {
            continue;
        }
        let mut replica = vec![LOCAL; n];
        let mut rep = vec![LOCAL; n];
        let mut partition = true;
        for g in &cross {
            for (j, &r) in g.ranks.iter().enumerate() {
                match replica.get_mut(r as usize) {
                    Some(slot) if *slot == LOCAL => {
                        *slot = j as u32;
                        rep[r as usize] = g.ranks[0];
                    }
                    _ => partition = false,
                }
            }
        }
        if !partition {
            continue;
        }
        let mut ranks: Vec<u32> = cross.iter().map(|g| g.ranks[0]).collect();
        ranks.sort_unstable();
        let rp = Replicas { d: d as u32, replica, rep, ranks };
        match verify(spec, groups, &cross, &rp, net) {
            Ok(()) => return Ok(rp),
            Err(e) => why = format!("replicas of {d}: {e}"),
        }
    }
    Err(why)
}

/// Checks that every replica is a translate of replica 0 (programs, groups,
/// peers, message routes) and that cross groups run the ring with one route.
fn verify(
    spec: &SimSpec,
    groups: &crate::config::CommGroups,
    cross: &[&CommGroup],
    rp: &Replicas,
    net: &Unaware,
) -> Result<(), String> {
    let n = spec.workloads.len() as u32;
    let cross_keys: std::collections::HashSet<&str> = cross.iter().map(|g| g.key.as_str()).collect();
    let is_cross = |g: &CommGroup| cross_keys.contains(g.key.as_str());
    // ASTRA-sim's lookup (`CommGroups::group`) tries the exact key first.
    let mut by_key: std::collections::HashMap<&str, &CommGroup> = std::collections::HashMap::new();
    for g in groups.groups() {
        by_key.entry(g.key.as_str()).or_insert(g);
    }
    let group = |name: &str| by_key.get(name).copied().or_else(|| groups.group(name));
    // The rank at `r`'s position (r in replica 0) in replica `j`.
    let pos: std::collections::HashMap<u32, &CommGroup> = cross.iter().map(|g| (g.ranks[0], *g)).collect();
    let tau = |r: u32, j: u32| -> Option<u32> {
        if rp.replica(r) != 0 {
            return None;
        }
        pos.get(&r).map(|g| g.ranks[j as usize])
    };
    // Every replica lists its positions in replica 0's rank order: ranks start
    // in rank order, so each replica then handles same-tick events in the
    // order replica 0 does.
    for j in 1..rp.d {
        if !rp.ranks.windows(2).all(|w| tau(w[0], j) < tau(w[1], j)) {
            return Err(format!("replica {j} orders its ranks unlike replica 0"));
        }
    }
    for &r in &rp.ranks {
        for node in &spec.workloads[r as usize].nodes {
            if !node.process_groups.is_empty() {
                return Err("process groups declared in the trace".into());
            }
            match node.kind {
                NodeType::MemLoadNode | NodeType::MemStoreNode => return Err("remote memory nodes".into()),
                NodeType::CommCollNode => {
                    let g = node.comm.group.as_deref().filter(|g| !g.is_empty() && *g != "0");
                    let Some(g) = g.and_then(|g| groups.group(g)) else {
                        return Err("a collective spans every rank".into());
                    };
                    if g.ranks.len() as u32 >= n {
                        return Err("a collective spans every rank".into());
                    }
                    if !matches!(
                        node.comm.coll,
                        Some(
                            CollectiveCommType::AllReduce
                                | CollectiveCommType::AllGather
                                | CollectiveCommType::ReduceScatter
                                | CollectiveCommType::AllToAll
                        )
                    ) {
                        return Err("a collective the reduction does not cover".into());
                    }
                    if !is_cross(g) && g.ranks.iter().any(|&m| rp.replica(m) != 0) {
                        return Err(format!("group {} spans replicas but is not a cross group", g.key));
                    }
                }
                NodeType::CommSendNode | NodeType::CommRecvNode => {
                    let peer = if node.kind == NodeType::CommSendNode { node.comm.dst } else { node.comm.src };
                    if peer.is_some_and(|p| rp.replica(p) != 0) {
                        return Err("a point-to-point peer is in another replica".into());
                    }
                }
                _ => {}
            }
        }
    }
    // Every rank runs its representative's program, translated.
    for x in 0..n {
        let (j, r) = (rp.replica(x), rp.rep[x as usize]);
        if j == 0 {
            continue;
        }
        let map = |p: Option<u32>| p.map(|p| tau(p, j));
        let same_comm = |a: &CommAttrs, b: &CommAttrs| {
            let group = match (a.group.as_deref(), b.group.as_deref()) {
                (None, None) => true,
                (Some(ga), Some(gb)) => match (group(ga), group(gb)) {
                    (Some(ga), Some(gb)) if is_cross(ga) => ga.key == gb.key,
                    (Some(ga), Some(gb)) => ga.ranks.iter().map(|&m| tau(m, j)).eq(gb.ranks.iter().map(|&m| Some(m))),
                    (None, None) => ga == gb,
                    _ => false,
                },
                _ => false,
            };
            group
                && a.coll == b.coll
                && a.size == b.size
                && a.tag == b.tag
                && a.priority == b.priority
                && a.involved_dims == b.involved_dims
                && map(a.src) == b.src.map(Some)
                && map(a.dst) == b.dst.map(Some)
        };
        if !spec.workloads[x as usize].same_program_with(&spec.workloads[r as usize], |b, a| same_comm(a, b)) {
            return Err(format!("rank {x} does not run rank {r}'s program translated"));
        }
    }
    // Messages inside a replica take the route of replica 0's counterpart.
    for &a in &rp.ranks {
        for &b in &rp.ranks {
            let route = net.route(a, b);
            for j in 1..rp.d {
                if tau(a, j).zip(tau(b, j)).map(|(x, y)| net.route(x, y)) != Some(route) {
                    return Err(format!("ranks {a} and {b} are farther apart in replica {j}"));
                }
            }
        }
    }
    // Cross-group rings: every member's messages take one route.
    for g in cross {
        let d = g.ranks.len();
        let first = net.route(g.ranks[0], g.ranks[1 % d]);
        for k in 0..d {
            let (prev, next) = (g.ranks[(k + d - 1) % d], g.ranks[(k + 1) % d]);
            if net.route(g.ranks[k], next) != first || net.route(g.ranks[k], prev) != first {
                return Err(format!("group {}'s ring has more than one route", g.key));
            }
        }
    }
    Ok(())
}

/// The reduced run's report (replica 0's ranks) as every rank's: each rank
/// gets its representative's results under its own number.
pub(crate) fn expand_replicas(report: Report, rp: &Replicas) -> Report {
    let by_rank: std::collections::HashMap<u32, &RankReport> = report.ranks.iter().map(|r| (r.rank, r)).collect();
    let ranks = (0..rp.rep.len() as u32)
        .map(|rank| {
            let one = by_rank.get(&rp.rep[rank as usize]).map(|r| (*r).clone()).unwrap_or_default();
            RankReport { rank, ..one }
        })
        .collect();
    Report { ranks, reduced: true, ..report }
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
    /// Pending system ticks: (rank, tick, when it was scheduled).
    ticks: Vec<(u32, Time, Time)>,
    /// Per in-flight message id: (when it was sent, the peer it stands for).
    msgs: Vec<(Time, u32)>,
    /// The last event seen: (tick, when it was scheduled, source).
    last: Option<(Time, Time, u32)>,
    /// Replica runs: each rank's replica (empty when one rank stands for all).
    replica: Vec<u32>,
}

impl Mirror {
    /// The bookkeeping of a replica run.
    pub(crate) fn for_replicas(rp: &Replicas) -> Mirror {
        Mirror { replica: rp.replica.clone(), ..Default::default() }
    }

    /// Whether a message to `dst` leaves the simulated rank or replica (and
    /// is therefore mirrored).
    pub(crate) fn crosses(&self, dst: u32) -> bool {
        self.replica.is_empty() || self.replica.get(dst as usize) != Some(&0)
    }

    /// The source a mirrored message from `peer` counts as: the peer itself,
    /// or in a replica run its replica (whose ranks' order mirrors replica 0's).
    pub(crate) fn source(&self, peer: u32) -> u32 {
        if self.replica.is_empty() {
            peer
        } else {
            self.replica.get(peer as usize).copied().unwrap_or(peer)
        }
    }

    /// A system tick of `rank` at `t` was scheduled at `now`.
    pub(crate) fn tick_scheduled(&mut self, rank: u32, t: Time, now: Time) {
        self.ticks.push((rank, t, now));
    }

    /// A mirrored message standing for `peer`'s was sent at `now` as `msg`.
    pub(crate) fn msg_sent(&mut self, msg: u32, now: Time, peer: u32) {
        let i = msg as usize;
        if self.msgs.len() <= i {
            self.msgs.resize(i + 1, (0, LOCAL));
        }
        self.msgs[i] = (now, peer);
    }

    /// When `rank`'s system tick firing at `now` was scheduled (a rank has at
    /// most one pending tick per time).
    pub(crate) fn tick_fired(&mut self, rank: u32, now: Time) -> Time {
        match self.ticks.iter().position(|&(r, t, _)| r == rank && t == now) {
            Some(i) => self.ticks.swap_remove(i).2,
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

    /// In a replica run only messages leaving replica 0 are mirrored, and a
    /// mirrored message counts as coming from its sender's replica.
    #[test]
    fn replica_mirror_counts_sources_by_replica() {
        let rp = Replicas { d: 2, replica: vec![0, 1, 0, 1], rep: vec![0, 0, 2, 2], ranks: vec![0, 2] };
        let m = Mirror::for_replicas(&rp);
        assert!(!m.crosses(2) && m.crosses(1) && m.crosses(3));
        assert_eq!((m.source(1), m.source(3)), (1, 1));
        let one = Mirror::default();
        assert!(one.crosses(0) && one.source(3) == 3, "one representative rank: every peer is its own source");
        let r = expand_replicas(
            Report {
                ranks: vec![
                    RankReport { rank: 0, finish_ns: Some(5), ..Default::default() },
                    RankReport { rank: 2, finish_ns: Some(9), ..Default::default() },
                ],
                ..Default::default()
            },
            &rp,
        );
        assert!(r.reduced);
        assert_eq!(
            r.ranks.iter().map(|x| (x.rank, x.finish_ns)).collect::<Vec<_>>(),
            [(0, Some(5)), (1, Some(5)), (2, Some(9)), (3, Some(9))]
        );
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
