//! Summary statistics of one trace, for `strata et stats`: nodes by type,
//! collectives by type with their bytes, dependency counts, the number of
//! dependency layers and the critical path by recorded durations.
//!
//! Sums of durations, bytes and operation counts never wrap: a total past
//! `u64::MAX` (a corrupt or hand-edited trace) stays at `u64::MAX` and its name
//! is listed in [`TraceStats::overflowed`], so a reader can tell it from a value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::attr;
use super::codec::EtTrace;
use super::graph::DepGraph;
use super::schema::{CollectiveCommType, NodeType};

/// Count and total bytes of one kind of communication.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CommTotals {
    /// Number of nodes.
    pub count: u64,
    /// Sum of `comm_size` (bytes).
    pub bytes: u64,
}

/// Statistics of one trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TraceStats {
    /// Schema version from the GlobalMetadata (`None` for legacy files).
    pub version: Option<String>,
    /// Total nodes.
    pub nodes: u64,
    /// Nodes per type name (`COMP_NODE`, ...; unknown values as `TYPE_<n>`).
    pub nodes_by_type: BTreeMap<String, u64>,
    /// Collectives per type name (`ALL_REDUCE`, ...), with bytes.
    pub collectives: BTreeMap<String, CommTotals>,
    /// Point-to-point sends.
    pub sends: CommTotals,
    /// Point-to-point receives.
    pub recvs: CommTotals,
    /// Data-dependency edges.
    pub data_deps: u64,
    /// Control-dependency edges.
    pub ctrl_deps: u64,
    /// Nodes with no dependency at all.
    pub roots: u64,
    /// Nodes no other node depends on.
    pub leaves: u64,
    /// Dependencies on ids not in the file.
    pub missing_deps: u64,
    /// Longest dependency chain counted in nodes (Kahn layers); `None` when cyclic.
    pub layers: Option<u64>,
    /// Sum of `duration_micros` along the longest duration-weighted chain; `None` when cyclic.
    pub critical_path_micros: Option<u64>,
    /// Nodes on that chain.
    pub critical_path_nodes: Option<u64>,
    /// Sum of `duration_micros` over all nodes.
    pub duration_micros: u64,
    /// `duration_micros` per node type name.
    pub duration_micros_by_type: BTreeMap<String, u64>,
    /// Sum of `duration_micros` over compute nodes that run on the CPU (`is_cpu_op`).
    pub cpu_compute_micros: u64,
    /// Sum of `num_ops` over compute nodes.
    pub num_ops: u64,
    /// Compute nodes with neither a duration nor `num_ops` (they simulate as 1 ns).
    pub comp_without_cost: u64,
    /// The totals whose true value exceeds `u64::MAX` and which therefore hold
    /// `u64::MAX` instead, by field name (`duration_micros`,
    /// `collectives.ALL_REDUCE.bytes`, `duration_micros_by_type.COMP_NODE`, ...),
    /// sorted; empty when every total is exact.
    pub overflowed: Vec<String>,
}

impl TraceStats {
    /// Whether the total named `field` (as in [`TraceStats::overflowed`]) exceeded `u64::MAX`.
    pub fn is_overflowed(&self, field: &str) -> bool {
        self.overflowed.iter().any(|f| f == field)
    }
}

/// Adds `v` to `total`, saturating at `u64::MAX` and recording `field` when it does.
fn add(total: &mut u64, v: u64, overflowed: &mut BTreeSet<String>, field: impl FnOnce() -> String) {
    match total.checked_add(v) {
        Some(t) => *total = t,
        None => {
            *total = u64::MAX;
            overflowed.insert(field());
        }
    }
}

fn type_name(raw: i32) -> String {
    match NodeType::try_from(raw) {
        Ok(t) => t.proto_name().to_string(),
        Err(_) => format!("TYPE_{raw}"),
    }
}

/// Computes the statistics; unreadable attributes count as absent (validation reports them).
pub fn trace_stats(trace: &EtTrace) -> TraceStats {
    let mut s = TraceStats {
        version: trace.metadata.as_ref().map(|m| m.version.clone()),
        nodes: trace.nodes.len() as u64,
        ..Default::default()
    };
    let mut over = BTreeSet::new();
    for node in &trace.nodes {
        let ty = type_name(node.r#type);
        *s.nodes_by_type.entry(ty.clone()).or_default() += 1;
        let by_type = s.duration_micros_by_type.entry(ty.clone()).or_default();
        add(by_type, node.duration_micros, &mut over, || format!("duration_micros_by_type.{ty}"));
        add(&mut s.duration_micros, node.duration_micros, &mut over, || "duration_micros".into());
        s.data_deps += node.data_deps.len() as u64;
        s.ctrl_deps += node.ctrl_deps.len() as u64;
        if node.data_deps.is_empty() && node.ctrl_deps.is_empty() {
            s.roots += 1;
        }
        let bytes = attr::get_u64(node, "comm_size").ok().flatten().unwrap_or(0);
        match node.node_type() {
            Some(NodeType::CommCollNode) => {
                let name = match attr::get_i64(node, "comm_type").ok().flatten() {
                    Some(v) => i32::try_from(v)
                        .ok()
                        .and_then(|v| CollectiveCommType::try_from(v).ok())
                        .map(|c| c.proto_name().to_string())
                        .unwrap_or_else(|| format!("COMM_TYPE_{v}")),
                    None => "UNSPECIFIED".to_string(),
                };
                let t = s.collectives.entry(name.clone()).or_default();
                t.count += 1;
                add(&mut t.bytes, bytes, &mut over, || format!("collectives.{name}.bytes"));
            }
            Some(NodeType::CommSendNode) => {
                s.sends.count += 1;
                add(&mut s.sends.bytes, bytes, &mut over, || "sends.bytes".into());
            }
            Some(NodeType::CommRecvNode) => {
                s.recvs.count += 1;
                add(&mut s.recvs.bytes, bytes, &mut over, || "recvs.bytes".into());
            }
            Some(NodeType::CompNode) => {
                let ops = attr::get_u64(node, "num_ops").ok().flatten();
                add(&mut s.num_ops, ops.unwrap_or(0), &mut over, || "num_ops".into());
                if attr::get_bool(node, "is_cpu_op").ok().flatten() == Some(true) {
                    add(&mut s.cpu_compute_micros, node.duration_micros, &mut over, || "cpu_compute_micros".into());
                }
                if node.duration_micros == 0 && ops.unwrap_or(0) == 0 {
                    s.comp_without_cost += 1;
                }
            }
            _ => {}
        }
    }
    let graph = DepGraph::build(&trace.nodes);
    s.missing_deps = graph.missing.len() as u64;
    s.leaves = (0..graph.len()).filter(|&i| graph.dependents(i).next().is_none()).count() as u64;
    if let Ok(order) = graph.topo_order() {
        let n = graph.len();
        // depth[i]: nodes on the longest chain ending at i; cost[i]: its duration sum.
        let mut depth = vec![0u64; n];
        let mut cost = vec![0u64; n];
        let mut len = vec![0u64; n];
        for &i in &order {
            let (mut d, mut c, mut l) = (0, 0, 0);
            for p in graph.prerequisites(i) {
                d = d.max(depth[p]);
                if cost[p] > c || (cost[p] == c && len[p] > l) {
                    c = cost[p];
                    l = len[p];
                }
            }
            depth[i] = d + 1;
            cost[i] = c;
            add(&mut cost[i], trace.nodes[i].duration_micros, &mut over, || "critical_path_micros".into());
            len[i] = l + 1;
        }
        s.layers = Some(depth.iter().copied().max().unwrap_or(0));
        let best = (0..n).max_by_key(|&i| (cost[i], len[i]));
        s.critical_path_micros = Some(best.map_or(0, |i| cost[i]));
        s.critical_path_nodes = Some(best.map_or(0, |i| len[i]));
    }
    s.overflowed = over.into_iter().collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chakra::schema::{AttrValue, AttributeProto, Node};

    fn comp(id: u64, dur: u64, deps: &[u64]) -> Node {
        Node {
            id,
            r#type: NodeType::CompNode as i32,
            duration_micros: dur,
            data_deps: deps.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn diamond_layers_and_critical_path() {
        // 1 -> {2 (10us), 3 (30us)} -> 4
        let mut coll = Node { id: 4, r#type: 7, ctrl_deps: vec![2, 3], ..Default::default() };
        coll.attr = vec![
            AttributeProto { name: "comm_type".into(), doc_string: String::new(), value: Some(AttrValue::Int64Val(0)) },
            AttributeProto {
                name: "comm_size".into(),
                doc_string: String::new(),
                value: Some(AttrValue::Uint64Val(64)),
            },
        ];
        let t = EtTrace { metadata: None, nodes: vec![comp(1, 5, &[]), comp(2, 10, &[1]), comp(3, 30, &[1]), coll] };
        let s = trace_stats(&t);
        assert_eq!(s.layers, Some(3));
        assert_eq!(s.critical_path_micros, Some(35));
        assert_eq!(s.critical_path_nodes, Some(3));
        assert_eq!(s.collectives["ALL_REDUCE"], CommTotals { count: 1, bytes: 64 });
        assert_eq!((s.roots, s.leaves, s.data_deps, s.ctrl_deps), (1, 1, 2, 2));
        assert_eq!(s.duration_micros, 45);
        assert_eq!(s.nodes_by_type["COMP_NODE"], 3);
    }

    #[test]
    fn totals_past_u64_saturate_and_are_named() {
        // A chain of four 2^62 µs nodes: the sum is 2^64 and wrapped to 0 (then
        // the other nodes' durations) before; two collectives of u64::MAX bytes.
        let size = |v: u64| AttributeProto {
            name: "comm_size".into(),
            doc_string: String::new(),
            value: Some(AttrValue::Uint64Val(v)),
        };
        let coll = |id: u64, bytes: u64| Node {
            id,
            r#type: NodeType::CommCollNode as i32,
            attr: vec![size(bytes)],
            ..Default::default()
        };
        let big = 1u64 << 62;
        let t = EtTrace {
            metadata: None,
            nodes: vec![
                comp(1, big, &[]),
                comp(2, big, &[1]),
                comp(3, big, &[2]),
                comp(4, big, &[3]),
                comp(5, 7, &[4]),
                coll(6, u64::MAX),
                coll(7, 1 << 22),
            ],
        };
        let s = trace_stats(&t);
        assert_eq!(s.duration_micros, u64::MAX);
        assert_eq!(s.critical_path_micros, Some(u64::MAX));
        assert_eq!(s.duration_micros_by_type["COMP_NODE"], u64::MAX);
        assert_eq!(s.collectives["UNSPECIFIED"], CommTotals { count: 2, bytes: u64::MAX });
        assert_eq!(
            s.overflowed,
            [
                "collectives.UNSPECIFIED.bytes",
                "critical_path_micros",
                "duration_micros",
                "duration_micros_by_type.COMP_NODE"
            ]
        );
        assert!(s.is_overflowed("duration_micros") && !s.is_overflowed("num_ops"));
        // Exact totals stay exact and unflagged.
        let fine = trace_stats(&EtTrace { metadata: None, nodes: vec![comp(1, big, &[]), comp(2, big, &[1])] });
        assert_eq!((fine.duration_micros, fine.critical_path_micros), (2 * big, Some(2 * big)));
        assert!(fine.overflowed.is_empty());
    }
}
