//! Chakra ET ↔ [`Dag`]: the tokenizer that turns one rank's trace into
//! categorical node rows plus edges, and the inverse that turns a (generated)
//! DAG back into a trace that passes `validate_trace` with no errors.
//!
//! # Tokenizing ([`tokenize`])
//!
//! Node `i` of the DAG is node `i` of the trace in file order; its row holds
//! the [`super::vocab`] ids of its type, collective, communicator kind (via a
//! [`RankContext`]), the log2 buckets of `comm_size`, `num_ops`, `tensor_size`
//! and `duration_micros`, `is_cpu_op`, `op_type` and, for SEND / RECV, the
//! peer's stage. Edges are the union of `data_deps` and `ctrl_deps`
//! (prerequisite → dependent), deduplicated and sorted by (dependent,
//! prerequisite); which list an edge came from is
//! not kept (the STG corpus has no `ctrl_deps`). Names, tensor shapes, tags and
//! the exact peer ranks are dropped. The trace must be a valid DAG: a duplicate
//! id, a dependency on a missing id, a self-dependency, an unreadable
//! attribute, an unknown node or collective type, or a cycle is an error naming
//! the file and the node.
//!
//! # Detokenizing ([`detokenize`])
//!
//! Node `i` gets id `i` and the name `gen<i>_<what>`; an edge `s → d` becomes
//! `s` in node d's `data_deps`. Each magnitude bucket is written as its
//! [`Representatives`] value (inside the bucket, so re-tokenizing gives the
//! bucket back). The communicator kind becomes the `pg_name` of the rank's
//! group of that kind, and the peer stage a peer rank with the rank's in-stage
//! offset, both through the [`RankContext`]. SEND / RECV tags count the rank's
//! sends (receives) to (from) each peer in node order, so the k-th send from
//! stage s pairs with the k-th receive of stage s+1 when counts agree.
//!
//! A generated row can be inconsistent (a collective type on a compute node, a
//! COMM_COLL without a collective type, a kind with no group for this rank).
//! The inverse then writes the nearest valid trace and lists each change as a
//! [`Repair`]: required attributes get defaults (ALL_REDUCE, comm size 0,
//! tensor size 0), attributes that do not belong to the node type are dropped,
//! and unresolvable kinds lose their `pg_name` (WORLD). **When no repair is
//! reported, re-tokenizing the output gives the same DAG back, row for row.**

use std::collections::{HashMap, HashSet};
use std::path::Path;

use simulator::chakra::attr::{self, AttrError};
use simulator::chakra::{AttrValue, AttributeProto, CollectiveCommType, EtTrace, GlobalMetadata, Node, NodeType};

use super::dag::Dag;
use super::error::{DatasetError, Result};
use super::layout::RankContext;
use super::vocab::{
    et_cardinalities, CollectiveToken, CommKind, CpuOpToken, EtFeature, Magnitude, NodeTypeToken, OpTypeToken,
    PeerStage, RepresentativeFitter, Representatives, NUM_ET_FEATURES,
};

fn node_err(path: &Path, node: &Node, what: impl Into<String>) -> DatasetError {
    DatasetError::Node { path: path.to_path_buf(), node_id: node.id, node_name: node.name.clone(), what: what.into() }
}

fn attr_err<'a>(path: &'a Path, node: &'a Node) -> impl Fn(AttrError) -> DatasetError + 'a {
    move |e| node_err(path, node, e.to_string())
}

/// The raw magnitude values of a node, in [`EtFeature::MAGNITUDES`] order.
/// A node's magnitude attributes in [`EtFeature::MAGNITUDES`] order.
pub(crate) fn magnitudes(node: &Node, path: &Path) -> Result<[Option<u64>; 4]> {
    let e = attr_err(path, node);
    let duration = (node.duration_micros != 0).then_some(node.duration_micros);
    Ok([
        attr::get_u64(node, "comm_size").map_err(&e)?,
        attr::get_u64(node, "num_ops").map_err(&e)?,
        attr::get_u64(node, "tensor_size").map_err(&e)?,
        duration,
    ])
}

/// Tokenizes one node into its feature row.
fn node_row(node: &Node, path: &Path, ctx: &RankContext) -> Result<[u32; NUM_ET_FEATURES]> {
    let e = attr_err(path, node);
    let ty = node.node_type().ok_or_else(|| {
        node_err(path, node, format!("node type {} is not a Chakra NodeType (expected 0..=7)", node.r#type))
    })?;
    let mut row = [0u32; NUM_ET_FEATURES];
    row[EtFeature::NodeType.index()] = NodeTypeToken::id(ty);
    if ty == NodeType::CommCollNode {
        if let Some(v) = attr::get_i64(node, "comm_type").map_err(&e)? {
            let c = i32::try_from(v).ok().and_then(|v| CollectiveCommType::try_from(v).ok()).ok_or_else(|| {
                node_err(path, node, format!("comm_type {v} is not a CollectiveCommType (expected 0..=9)"))
            })?;
            row[EtFeature::Collective.index()] = CollectiveToken::id(Some(c));
        }
        let pg = attr::get_str(node, "pg_name").map_err(&e)?;
        row[EtFeature::CommKind.index()] = ctx.kind_of_group(pg).id();
    }
    let peer_attr = match ty {
        NodeType::CommSendNode => Some("comm_dst"),
        NodeType::CommRecvNode => Some("comm_src"),
        _ => None,
    };
    if let Some(name) = peer_attr {
        row[EtFeature::CommKind.index()] = CommKind::Pipeline.id();
        let peer = match attr::get_i32(node, name).map_err(&e)? {
            Some(p) if p < 0 => return Err(node_err(path, node, format!("{name} = {p}; expected a rank number >= 0"))),
            Some(p) => ctx.peer_stage(p as u32),
            None => PeerStage::Other,
        };
        row[EtFeature::PeerStage.index()] = peer.id();
    }
    for (f, v) in EtFeature::MAGNITUDES.iter().zip(magnitudes(node, path)?) {
        row[f.index()] = Magnitude::bucket(v);
    }
    row[EtFeature::IsCpuOp.index()] = CpuOpToken::id(attr::get_bool(node, "is_cpu_op").map_err(&e)?);
    row[EtFeature::OpType.index()] = OpTypeToken::id(attr::get_str(node, "op_type").map_err(&e)?);
    Ok(row)
}

/// Tokenizes one rank's trace into a [`Dag`] whose node `i` is the trace's
/// node `i` (file order). `path` names the trace in errors.
pub fn tokenize(trace: &EtTrace, path: &Path, ctx: &RankContext) -> Result<Dag> {
    let nodes = &trace.nodes;
    let mut index_of: HashMap<u64, u32> = HashMap::with_capacity(nodes.len());
    for (i, n) in nodes.iter().enumerate() {
        if let Some(first) = index_of.insert(n.id, i as u32) {
            let other = &nodes[first as usize];
            return Err(node_err(path, n, format!("duplicate id: node #{first} ({}) has the same id", other.name)));
        }
    }
    let mut x = Vec::with_capacity(nodes.len() * NUM_ET_FEATURES);
    let mut src = Vec::new();
    let mut dst = Vec::new();
    let mut seen: HashSet<(u32, u32)> = HashSet::new();
    for (i, n) in nodes.iter().enumerate() {
        x.extend_from_slice(&node_row(n, path, ctx)?);
        for (list, deps) in [("data_deps", &n.data_deps), ("ctrl_deps", &n.ctrl_deps)] {
            for &d in deps {
                let Some(&j) = index_of.get(&d) else {
                    return Err(node_err(path, n, format!("{list} names node {d}, which is not in this file")));
                };
                if j as usize == i {
                    return Err(node_err(path, n, format!("{list} names the node itself; a DAG has no self-loop")));
                }
                if seen.insert((j, i as u32)) {
                    src.push(j);
                    dst.push(i as u32);
                }
            }
        }
    }
    // Canonical edge order, so that equal graphs compare equal whatever order
    // their dependency lists were written in.
    let mut edges: Vec<(u32, u32)> = src.into_iter().zip(dst).collect();
    edges.sort_unstable_by_key(|&(s, d)| (d, s));
    let (src, dst): (Vec<u32>, Vec<u32>) = edges.into_iter().unzip();
    let origin = || path.display().to_string();
    let dag =
        Dag::new(et_cardinalities(), x, src, dst).map_err(|source| DatasetError::Dag { origin: origin(), source })?;
    dag.layering().map_err(|source| DatasetError::Dag { origin: origin(), source })?;
    Ok(dag)
}

/// Records a trace's magnitude values in a fitter (for fitting
/// [`Representatives`] on the training split).
pub fn observe_trace(fitter: &mut RepresentativeFitter, trace: &EtTrace, path: &Path) -> Result<()> {
    for node in &trace.nodes {
        for (f, v) in EtFeature::MAGNITUDES.iter().zip(magnitudes(node, path)?) {
            fitter.observe(*f, v);
        }
    }
    Ok(())
}

/// One change the inverse made so that a generated row becomes a valid node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repair {
    /// The node (DAG index = trace id).
    pub node: usize,
    /// The feature that could not be written as it was.
    pub feature: EtFeature,
    /// What was done instead.
    pub what: String,
}

/// A detokenized trace and the repairs it needed.
#[derive(Clone, Debug)]
pub struct Detokenized {
    /// The trace.
    pub trace: EtTrace,
    /// Every change from the DAG's rows; empty when the trace re-tokenizes to the same DAG.
    pub repairs: Vec<Repair>,
}

fn attribute(name: &str, value: AttrValue) -> AttributeProto {
    AttributeProto { name: name.to_string(), doc_string: String::new(), value: Some(value) }
}

/// A non-negative value as `int64_val` (Chakra's kind) or, above `i64::MAX`, `uint64_val`.
fn int_value(v: u64) -> AttrValue {
    i64::try_from(v).map_or(AttrValue::Uint64Val(v), AttrValue::Int64Val)
}

/// Turns a DAG of ET rows back into a trace for the rank `ctx` describes.
///
/// Errors only when the DAG is not an ET DAG (other feature columns) or has
/// a cycle; every row, however inconsistent, yields a node (see [`Repair`]).
pub fn detokenize(dag: &Dag, ctx: &RankContext, reps: &Representatives) -> Result<Detokenized> {
    if dag.cardinalities() != et_cardinalities().as_slice() {
        return Err(DatasetError::mismatch(
            "detokenize",
            format!(
                "the DAG's feature classes are {:?}, expected the ET vocabulary {:?}",
                dag.cardinalities(),
                et_cardinalities()
            ),
        ));
    }
    dag.layering().map_err(|source| DatasetError::Dag { origin: "detokenize".into(), source })?;
    let n = dag.num_nodes();
    let mut deps: Vec<Vec<u64>> = vec![Vec::new(); n];
    for (s, d) in dag.edges() {
        deps[d as usize].push(s as u64);
    }
    let mut repairs = Vec::new();
    let mut tags: HashMap<(bool, u32), i32> = HashMap::new();
    let mut nodes = Vec::with_capacity(n);
    for (i, mut data_deps) in deps.into_iter().enumerate() {
        data_deps.sort_unstable();
        let row = dag.features(i);
        let get = |f: EtFeature| row[f.index()];
        let mut fix = |feature: EtFeature, what: String| repairs.push(Repair { node: i, feature, what });
        // Ids are in range: the Dag checked them against the same vocabulary.
        let ty = NodeTypeToken::from_id(get(EtFeature::NodeType)).unwrap_or(NodeType::CompNode);
        let coll = CollectiveToken::from_id(get(EtFeature::Collective)).flatten();
        let kind = CommKind::from_id(get(EtFeature::CommKind)).unwrap_or(CommKind::Unknown);
        let peer_rel = PeerStage::from_id(get(EtFeature::PeerStage)).unwrap_or(PeerStage::Other);
        let op_type = OpTypeToken::from_id(get(EtFeature::OpType)).flatten();
        let is_cpu = CpuOpToken::from_id(get(EtFeature::IsCpuOp)).flatten();
        let magnitude = |f: EtFeature| reps.value(f, get(f));
        let mut attrs = Vec::new();
        let mut what = ty.proto_name().trim_end_matches("_NODE").to_string();
        let is_comm = matches!(ty, NodeType::CommCollNode | NodeType::CommSendNode | NodeType::CommRecvNode);

        if ty == NodeType::CommCollNode {
            let c = coll.unwrap_or_else(|| {
                fix(EtFeature::Collective, "COMM_COLL_NODE without a collective type: wrote ALL_REDUCE".into());
                CollectiveCommType::AllReduce
            });
            what = c.proto_name().to_string();
            attrs.push(attribute("comm_type", AttrValue::Int64Val(c as i64)));
            let pg = ctx.group_for(kind);
            if ctx.kind_of_group(pg) != kind {
                fix(
                    EtFeature::CommKind,
                    format!("no {} group holds rank {}: wrote no pg_name (all ranks)", kind.name(), ctx.rank()),
                );
            }
            if let Some(pg) = pg {
                attrs.push(attribute("pg_name", AttrValue::StringVal(pg.to_string())));
            }
        } else if coll.is_some() {
            fix(EtFeature::Collective, format!("a collective type on a {}: dropped", ty.proto_name()));
        }
        if let NodeType::CommSendNode | NodeType::CommRecvNode = ty {
            let send = ty == NodeType::CommSendNode;
            if kind != CommKind::Pipeline {
                fix(
                    EtFeature::CommKind,
                    format!("communicator kind {} on a point-to-point node: it is PIPELINE", kind.name()),
                );
            }
            let peer = ctx.peer_for(peer_rel);
            let got = ctx.peer_stage(peer);
            if got != peer_rel {
                fix(
                    EtFeature::PeerStage,
                    format!(
                        "peer stage {peer_rel:?} cannot be written for rank {}: wrote peer {peer} ({got:?})",
                        ctx.rank()
                    ),
                );
            }
            let tag = tags.entry((send, peer)).or_insert(0);
            let (peer_name, tag_value) = (if send { "comm_dst" } else { "comm_src" }, *tag);
            *tag += 1;
            attrs.push(attribute(peer_name, AttrValue::Int32Val(peer.min(i32::MAX as u32) as i32)));
            attrs.push(attribute("comm_tag", AttrValue::Int32Val(tag_value)));
            what = if send { "SEND".into() } else { "RECV".into() };
        } else if peer_rel != PeerStage::None {
            fix(EtFeature::PeerStage, format!("a peer stage on a {}: dropped", ty.proto_name()));
        }
        if !is_comm && kind != CommKind::None {
            fix(EtFeature::CommKind, format!("a communicator kind on a {}: dropped", ty.proto_name()));
        }
        match magnitude(EtFeature::CommSize) {
            Some(v) => attrs.push(attribute("comm_size", int_value(v))),
            None if is_comm => {
                fix(EtFeature::CommSize, format!("{} without comm_size: wrote 0", ty.proto_name()));
                attrs.push(attribute("comm_size", AttrValue::Int64Val(0)));
            }
            None => {}
        }
        if let Some(v) = magnitude(EtFeature::NumOps) {
            attrs.push(attribute("num_ops", int_value(v)));
        }
        match magnitude(EtFeature::TensorSize) {
            Some(v) => attrs.push(attribute("tensor_size", AttrValue::Uint64Val(v))),
            None if matches!(ty, NodeType::MemLoadNode | NodeType::MemStoreNode) => {
                fix(EtFeature::TensorSize, format!("{} without tensor_size: wrote 0", ty.proto_name()));
                attrs.push(attribute("tensor_size", AttrValue::Uint64Val(0)));
            }
            None => {}
        }
        let duration = magnitude(EtFeature::Duration).unwrap_or(0);
        if get(EtFeature::Duration) == Magnitude::ZERO {
            fix(EtFeature::Duration, "a duration of 0 is proto3's unset value: it reads back as ABSENT".into());
        }
        if let Some(b) = is_cpu {
            attrs.push(attribute("is_cpu_op", AttrValue::BoolVal(b)));
        }
        if let Some(op) = op_type {
            attrs.push(attribute("op_type", AttrValue::StringVal(op.to_string())));
            if ty == NodeType::CompNode {
                what = format!("{what}_{op}");
            }
        }
        nodes.push(Node {
            id: i as u64,
            name: format!("gen{i}_{what}"),
            r#type: ty as i32,
            data_deps,
            duration_micros: duration,
            attr: attrs,
            ..Default::default()
        });
    }
    let metadata = GlobalMetadata {
        version: "1.0.0".into(),
        attr: vec![attribute("schema", AttrValue::StringVal("strata-layerdag".into()))],
    };
    Ok(Detokenized { trace: EtTrace { metadata: Some(metadata), nodes }, repairs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::layout::{CommGroups, ParallelLayout};
    use simulator::chakra::validate::validate_trace;

    fn a(name: &str, v: AttrValue) -> AttributeProto {
        attribute(name, v)
    }

    fn small_trace() -> EtTrace {
        let comp = |id, deps: Vec<u64>| Node {
            id,
            name: format!("c{id}"),
            r#type: NodeType::CompNode as i32,
            data_deps: deps,
            attr: vec![
                a("num_ops", AttrValue::Int64Val(1000)),
                a("tensor_size", AttrValue::Uint64Val(64)),
                a("op_type", AttrValue::StringVal("M".into())),
            ],
            ..Default::default()
        };
        let coll = Node {
            id: 30,
            name: "ag".into(),
            r#type: NodeType::CommCollNode as i32,
            data_deps: vec![10],
            ctrl_deps: vec![10],
            attr: vec![
                a("comm_size", AttrValue::Int64Val(262_144)),
                a("comm_type", AttrValue::Int64Val(2)),
                a("pg_name", AttrValue::StringVal("5".into())),
                a("is_cpu_op", AttrValue::Int32Val(0)),
            ],
            ..Default::default()
        };
        let send = Node {
            id: 40,
            name: "send".into(),
            r#type: NodeType::CommSendNode as i32,
            data_deps: vec![30, 20],
            attr: vec![
                a("comm_size", AttrValue::Int64Val(1000)),
                a("comm_tag", AttrValue::Int32Val(77)),
                a("comm_dst", AttrValue::Int32Val(2)),
            ],
            ..Default::default()
        };
        EtTrace { metadata: None, nodes: vec![send, comp(20, vec![10]), comp(10, vec![]), coll] }
    }

    fn ctx(rank: u32) -> RankContext {
        let groups = CommGroups::parse(
            r#"{"1": [0], "2": [1], "3": [2], "4": [3], "5": [0, 1], "6": [2, 3], "7": [0], "8": [1], "9": [2], "10": [3]}"#,
            Path::new("workload.json"),
        )
        .unwrap();
        RankContext::new(rank, Some(ParallelLayout::from_degrees(1, 2, 1, 1, 2, false).unwrap()), Some(groups))
    }

    #[test]
    fn tokenizes_and_inverts_a_small_trace() {
        let t = small_trace();
        let dag = tokenize(&t, Path::new("t.et"), &ctx(0)).unwrap();
        assert_eq!(dag.num_nodes(), 4);
        // data + ctrl deps on the same node count once.
        assert_eq!(dag.num_edges(), 4);
        let send = dag.features(0);
        assert_eq!(send[EtFeature::NodeType.index()], 2);
        assert_eq!(send[EtFeature::CommKind.index()], CommKind::Pipeline.id());
        assert_eq!(send[EtFeature::PeerStage.index()], PeerStage::Next.id());
        let coll = dag.features(3);
        assert_eq!(coll[EtFeature::Collective.index()], 3);
        assert_eq!(coll[EtFeature::CommKind.index()], CommKind::Tensor.id());
        assert_eq!(coll[EtFeature::CommSize.index()], 20);
        assert_eq!(coll[EtFeature::IsCpuOp.index()], 1);
        assert_eq!(dag.features(2)[EtFeature::OpType.index()], 1);
        let out = detokenize(&dag, &ctx(0), &Representatives::default()).unwrap();
        assert!(out.repairs.is_empty(), "{:?}", out.repairs);
        let f = validate_trace(&out.trace, Path::new("gen.et"));
        assert_eq!(f.errors(), 0, "{f}");
        let again = tokenize(&out.trace, Path::new("gen.et"), &ctx(0)).unwrap();
        assert_eq!(again, dag);
    }

    #[test]
    fn bad_traces_name_file_and_node() {
        let mut t = small_trace();
        t.nodes[1].data_deps.push(99);
        let err = tokenize(&t, Path::new("r0.et"), &ctx(0)).unwrap_err().to_string();
        assert!(err.contains("r0.et: node 20 (c20): data_deps names node 99"), "{err}");
        let mut t = small_trace();
        t.nodes[2].data_deps.push(30); // 10 -> 30 -> 10
        let err = tokenize(&t, Path::new("r0.et"), &ctx(0)).unwrap_err().to_string();
        assert!(err.contains("r0.et") && err.contains("cycle"), "{err}");
        let mut t = small_trace();
        t.nodes[3].attr[1] = a("comm_type", AttrValue::Int64Val(42));
        let err = tokenize(&t, Path::new("r0.et"), &ctx(0)).unwrap_err().to_string();
        assert!(err.contains("node 30 (ag): comm_type 42"), "{err}");
        let mut t = small_trace();
        t.nodes[0].r#type = 99;
        assert!(tokenize(&t, Path::new("r0.et"), &ctx(0)).unwrap_err().to_string().contains("node 40 (send)"));
        let mut t = small_trace();
        t.nodes[3].attr[0] = a("comm_size", AttrValue::StringVal("big".into()));
        assert!(tokenize(&t, Path::new("r0.et"), &ctx(0)).unwrap_err().to_string().contains("comm_size"));
        let mut t = small_trace();
        t.nodes[1].id = 10;
        assert!(tokenize(&t, Path::new("r0.et"), &ctx(0)).unwrap_err().to_string().contains("duplicate id"));
    }

    #[test]
    fn inconsistent_rows_are_repaired_into_a_valid_trace() {
        let card = et_cardinalities();
        let mut coll = [0u32; NUM_ET_FEATURES];
        coll[EtFeature::NodeType.index()] = 1; // COMM_COLL without collective, kind or size
        coll[EtFeature::CommKind.index()] = CommKind::Expert.id();
        let mut comp = [0u32; NUM_ET_FEATURES];
        comp[EtFeature::Collective.index()] = 1; // a collective type on a compute node
        comp[EtFeature::PeerStage.index()] = PeerStage::Next.id();
        let mut recv = [0u32; NUM_ET_FEATURES];
        recv[EtFeature::NodeType.index()] = 3;
        recv[EtFeature::PeerStage.index()] = PeerStage::Next.id(); // stage 1 of 2 has no next
        let mut mem = [0u32; NUM_ET_FEATURES];
        mem[EtFeature::NodeType.index()] = 4;
        let x: Vec<u32> = [coll, comp, recv, mem].concat();
        let dag = Dag::new(card, x, vec![0, 1, 2], vec![1, 2, 3]).unwrap();
        let out = detokenize(&dag, &ctx(2), &Representatives::default()).unwrap();
        let f = validate_trace(&out.trace, Path::new("gen.et"));
        assert_eq!(f.errors(), 0, "{f}");
        let features: Vec<(usize, EtFeature)> = out.repairs.iter().map(|r| (r.node, r.feature)).collect();
        assert!(features.contains(&(0, EtFeature::Collective)));
        assert!(features.contains(&(0, EtFeature::CommKind)));
        assert!(features.contains(&(0, EtFeature::CommSize)));
        assert!(features.contains(&(1, EtFeature::Collective)));
        assert!(features.contains(&(1, EtFeature::PeerStage)));
        assert!(features.contains(&(2, EtFeature::CommKind)));
        assert!(features.contains(&(2, EtFeature::PeerStage)));
        assert!(features.contains(&(3, EtFeature::TensorSize)));
        let tpu = Dag::new(vec![47], vec![1, 2], vec![0], vec![1]).unwrap();
        assert!(matches!(detokenize(&tpu, &ctx(0), &Representatives::default()), Err(DatasetError::Mismatch { .. })));
    }
}

#[cfg(test)]
mod corpus_tests {
    use super::*;
    use crate::dataset::corpus::Split;
    use crate::dataset::test_data::corpus;
    use simulator::chakra::validate::validate_trace;

    fn check_round_trip(trace: &EtTrace, path: &Path, ctx: &RankContext, reps: &Representatives) {
        let dag = tokenize(trace, path, ctx).unwrap();
        let out = detokenize(&dag, ctx, reps).unwrap();
        assert!(out.repairs.is_empty(), "{}: {:?}", path.display(), &out.repairs[..out.repairs.len().min(3)]);
        let findings = validate_trace(&out.trace, path);
        assert_eq!(findings.errors(), 0, "{findings}");
        let again = tokenize(&out.trace, path, ctx).unwrap();
        // Node count, edges, and every feature row: node type, collective,
        // communicator kind, every magnitude bucket (comm size included), ...
        assert_eq!(again.num_nodes(), trace.nodes.len());
        assert_eq!(again.edges().collect::<Vec<_>>(), dag.edges().collect::<Vec<_>>(), "{}", path.display());
        assert_eq!(again, dag, "{}", path.display());
        // ... and the trace-level view agrees with the original.
        for (orig, new) in trace.nodes.iter().zip(&out.trace.nodes) {
            assert_eq!(orig.r#type, new.r#type);
            assert_eq!(attr::get_i64(orig, "comm_type").unwrap(), attr::get_i64(new, "comm_type").unwrap());
            let size = |n: &Node| Magnitude::bucket(attr::get_u64(n, "comm_size").unwrap());
            assert_eq!(size(orig), size(new));
            let kind = |n: &Node| ctx.kind_of_group(attr::get_str(n, "pg_name").unwrap());
            if orig.r#type == NodeType::CommCollNode as i32 {
                assert_eq!(kind(orig), kind(new), "{}: node {}", path.display(), orig.id);
            }
        }
    }

    /// tokenize → detokenize → validate is clean, and re-tokenizing gives the
    /// same DAG, on every validation-split rank file and every third train
    /// rank file, with the default and with train-fitted representatives.
    #[test]
    fn round_trip_is_exact_and_valid_on_the_corpus() {
        let c = corpus();
        let mut fitter = RepresentativeFitter::new();
        let train: Vec<_> = c.ranks(Split::Train, false).into_iter().step_by(3).collect();
        let mut traces = Vec::new();
        for r in &train {
            let t = simulator::chakra::read_trace(&r.path).unwrap();
            observe_trace(&mut fitter, &t, &r.path).unwrap();
            traces.push(t);
        }
        let fitted = fitter.finish();
        let default = Representatives::default();
        for (r, t) in train.iter().zip(&traces) {
            check_round_trip(t, &r.path, &r.workload.context(r.rank), &default);
        }
        let val = c.ranks(Split::Validation, false);
        for r in &val {
            let t = simulator::chakra::read_trace(&r.path).unwrap();
            let ctx = r.workload.context(r.rank);
            check_round_trip(&t, &r.path, &ctx, &default);
            check_round_trip(&t, &r.path, &ctx, &fitted);
        }
        eprintln!("round trip: {} validation and {} train rank files", val.len(), train.len());
    }

    /// Without any context the inverse still writes a valid trace (groups
    /// become WORLD, peers rank 0) and says so in its repairs.
    #[test]
    fn detokenizing_without_context_is_valid_and_reports_repairs() {
        let c = corpus();
        let r =
            c.ranks(Split::Validation, false).into_iter().find(|r| r.workload.config.id.starts_with("w000_")).unwrap();
        let t = simulator::chakra::read_trace(&r.path).unwrap();
        let dag = tokenize(&t, &r.path, &r.workload.context(r.rank)).unwrap();
        let out = detokenize(&dag, &RankContext::standalone(), &Representatives::default()).unwrap();
        assert_eq!(validate_trace(&out.trace, &r.path).errors(), 0);
        assert!(out.repairs.iter().any(|x| x.feature == EtFeature::CommKind));
        assert!(out.repairs.iter().any(|x| x.feature == EtFeature::PeerStage));
    }
}
