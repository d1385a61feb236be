//! Explains a stalled run: for every rank that did not finish, which nodes are
//! stuck and on what (a collective waiting for peers, an unmatched send or
//! receive with its key, a dependency on an unfinished node). Dependencies
//! on missing nodes and cycles never get here: loading refuses them.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::chakra::NodeType;
use crate::network::matching::MsgKey;
use crate::workload::{NodeState, Workload};

/// Collectives the stuck ranks are running that they do not agree on (type
/// or bytes): ranks pair the collectives of a communicator in issue order, so
/// the n-th collective each rank issued over a group must be the same one,
/// or they wait on each other forever. One line per disagreement, at most
/// [`MAX_PER_RANK`].
fn mismatched_collectives(workloads: &[Workload], stuck: &[usize]) -> Vec<String> {
    // (group, issue ordinal) -> (type, bytes) -> ranks running it
    type Slot = (String, usize);
    let mut slots: BTreeMap<Slot, BTreeMap<(String, u64), Vec<usize>>> = BTreeMap::new();
    // Enough ranks to show a disagreement, few enough to stay quick at scale.
    for &r in stuck.iter().take(4096) {
        let w = &workloads[r];
        let mut issued: Vec<usize> = (0..w.nodes.len())
            .filter(|&i| {
                w.nodes[i].kind == NodeType::CommCollNode && matches!(w.state[i], NodeState::Running | NodeState::Done)
            })
            .collect();
        issued.sort_by_key(|&i| (w.issued_at[i], w.nodes[i].id));
        let mut ordinal: BTreeMap<String, usize> = BTreeMap::new();
        for i in issued {
            let n = &w.nodes[i];
            let group = n.comm.group.clone().unwrap_or_else(|| "all ranks".into());
            let k = ordinal.entry(group.clone()).or_default();
            *k += 1;
            if w.state[i] == NodeState::Running {
                let kind = n.comm.coll.map_or("?".to_string(), |c| c.proto_name().to_string());
                slots.entry((group, *k)).or_default().entry((kind, n.comm.size)).or_default().push(r);
            }
        }
    }
    slots
        .into_iter()
        .filter(|(_, sigs)| sigs.len() > 1)
        .take(MAX_PER_RANK)
        .map(|((group, k), sigs)| {
            let parts: Vec<String> = sigs
                .iter()
                .map(|((kind, size), ranks)| format!("{kind} of {size} bytes on ranks {}", summarize_ranks(ranks)))
                .collect();
            format!(
                "the ranks disagree on their collective #{k} over {group} (ranks pair collectives in issue order): {}",
                parts.join("; ")
            )
        })
        .collect()
}

/// At most this many stuck nodes are described per rank.
const MAX_PER_RANK: usize = 8;

/// What a never-matched receive was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WaitKind {
    /// Data of a native collective algorithm.
    CollectiveData,
    /// A rendezvous go-ahead the sender needs before it may send.
    RendezvousGoAhead,
    /// A receive of a custom (ET-defined) collective.
    CustomRecv,
    /// A workload receive node.
    NodeRecv,
}

/// Builds the per-rank diagnosis from the workloads and the posted receives
/// that never matched.
pub(crate) fn diagnose(
    workloads: &[Workload],
    waiting: impl Iterator<Item = (MsgKey, WaitKind)>,
    unclaimed: impl Iterator<Item = MsgKey>,
) -> String {
    let unclaimed: Vec<MsgKey> = unclaimed.collect();
    // Receives each rank is still waiting for, by receiving rank.
    let mut recv_waits: BTreeMap<u32, Vec<(MsgKey, WaitKind)>> = BTreeMap::new();
    for (k, kind) in waiting {
        recv_waits.entry(k.dst).or_default().push((k, kind));
    }
    let mut out = String::new();
    let stuck_ranks: Vec<usize> = (0..workloads.len()).filter(|&r| workloads[r].finished_at.is_none()).collect();
    let _ = writeln!(
        out,
        "{} of {} ranks did not finish: {}",
        stuck_ranks.len(),
        workloads.len(),
        summarize_ranks(&stuck_ranks)
    );
    for line in mismatched_collectives(workloads, &stuck_ranks) {
        let _ = writeln!(out, "{line}");
    }
    for &r in stuck_ranks.iter().take(16) {
        let w = &workloads[r];
        let unfinished = w.unfinished();
        let _ = writeln!(out, "rank {r} ({}): {} nodes unfinished", w.path.display(), unfinished.len());
        let mut shown = 0;
        // Running nodes first: they are what everything else waits on.
        let mut order: Vec<&(u32, Vec<u32>)> = unfinished.iter().collect();
        order.sort_by_key(|(i, _)| match w.state[*i as usize] {
            NodeState::Running => 0,
            NodeState::Free => 1,
            _ => 2,
        });
        for (i, parents) in order {
            if shown == MAX_PER_RANK {
                let _ = writeln!(out, "  ...");
                break;
            }
            let n = &w.nodes[*i as usize];
            let what = match w.state[*i as usize] {
                NodeState::Running => match n.kind {
                    NodeType::CommCollNode => {
                        let waits = recv_waits.get(&(r as u32)).map(Vec::as_slice).unwrap_or_default();
                        let peers_of = |kind: WaitKind| {
                            let mut p: Vec<usize> = waits.iter().filter(|(_, k)| *k == kind).map(|(m, _)| m.src as usize).collect();
                            p.sort_unstable();
                            p.dedup();
                            p
                        };
                        let data = peers_of(WaitKind::CollectiveData);
                        let custom = peers_of(WaitKind::CustomRecv);
                        let go = peers_of(WaitKind::RendezvousGoAhead);
                        let mut parts = Vec::new();
                        if !data.is_empty() {
                            parts.push(format!("data from ranks {}", summarize_ranks(&data)));
                        }
                        if !custom.is_empty() {
                            parts.push(format!("custom-collective messages from ranks {}", summarize_ranks(&custom)));
                        }
                        if !go.is_empty() {
                            parts.push(format!(
                                "the rendezvous go-ahead from ranks {} before it may send (they have not posted the matching receive: a send-first schedule deadlocks under --rendezvous-protocol)",
                                summarize_ranks(&go)
                            ));
                        }
                        if parts.is_empty() {
                            "collective issued but not complete (it spans no active dimension, or its peers never issued theirs)".to_string()
                        } else {
                            format!("collective waiting for {}", parts.join("; and for "))
                        }
                    }
                    NodeType::CommRecvNode => {
                        let mut text = format!(
                            "receive waiting for a message from rank {} (tag {}, {} bytes) that no send matches",
                            n.comm.src.map_or("?".into(), |s| s.to_string()),
                            n.comm.tag,
                            n.comm.size
                        );
                        // The usual cause: the same message arrived with another size.
                        let near: Vec<&MsgKey> = unclaimed
                            .iter()
                            .filter(|k| k.dst == r as u32 && Some(k.src) == n.comm.src && k.tag == n.comm.tag as u64)
                            .collect();
                        for k in near {
                            let _ = write!(text, "; a message from rank {} with tag {} arrived unclaimed with {} bytes (sizes must match)", k.src, k.tag, k.size);
                        }
                        text
                    }
                    NodeType::CommSendNode => format!(
                        "send to rank {} (tag {}, {} bytes) never received: no matching receive (same tag and size) was posted",
                        n.comm.dst.map_or("?".into(), |s| s.to_string()),
                        n.comm.tag,
                        n.comm.size
                    ),
                    _ => "running".to_string(),
                },
                NodeState::Free => match w.skipped.iter().find(|&&s| w.is_child(s, *i)) {
                    Some(&s) => {
                        let p = &w.nodes[s as usize];
                        let why = match p.kind {
                            NodeType::CompNode => "a roofline compute node with tensor_size 0",
                            NodeType::MetadataNode => "a metadata node",
                            _ => "an invalid node",
                        };
                        format!(
                            "ready but never issued: node {} ({}) freed it when it was skipped as {why}, and, as in \
                             ASTRA-sim, skipping does not re-run the issue loop and no later completion on this rank \
                             did (--reissue-after-skip issues such nodes)",
                            p.id,
                            crate::chakra::schema::short_name(&p.name)
                        )
                    }
                    None => "ready but never issued: its hardware slot never freed".to_string(),
                },
                NodeState::Pending => {
                    let ids: Vec<u64> = parents.iter().map(|&p| w.nodes[p as usize].id).collect();
                    format!("waiting on unfinished node(s) {}", join(&ids))
                }
                NodeState::Done => continue,
            };
            let _ = writeln!(
                out,
                "  node {} ({}, {}): {what}",
                n.id,
                crate::chakra::schema::short_name(&n.name),
                n.kind.proto_name()
            );
            shown += 1;
        }
    }
    if stuck_ranks.len() > 16 {
        let _ = writeln!(out, "... and {} more ranks", stuck_ranks.len() - 16);
    }
    out
}

fn join(ids: &[u64]) -> String {
    let mut s: Vec<String> = ids.iter().take(10).map(u64::to_string).collect();
    if ids.len() > 10 {
        s.push(format!("... ({} in all)", ids.len()));
    }
    s.join(", ")
}

/// `0-3, 5, 7-9` style list.
fn summarize_ranks(ranks: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < ranks.len() {
        let start = ranks[i];
        let mut end = start;
        while i + 1 < ranks.len() && ranks[i + 1] == end + 1 {
            i += 1;
            end = ranks[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(", ")
}
