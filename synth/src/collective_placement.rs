//! Where a generated stage's collectives sit in its graph, by two rules
//! every corpus stage graph follows and the model's edges often break.
//!
//! **Gradient all-reduces are leaves of the backward pass.** A data- or
//! sequence-parallel all-reduce synchronizes weight gradients. In every
//! corpus trace what descends from one carries about 1 % of the stage's
//! `num_ops` at most (1.03 %; under 0.05 % in 78 of the 100 stages that
//! have them), and it
//! waits on a good part of the backward pass: its ancestors hold 5–88 % of
//! the compute (w086's stage 0: 21–32 % for the layers' gradients of each
//! of its 2 micro-batches, 65 % for the embedding's). So it runs beside the
//! rest of the backward pass. The model draws them anywhere: in w086
//! generated with seed 0 the last stage's all-reduces sat at its start with
//! 99 % of its compute waiting on them, and the stage's 3.8 ms of
//! communication overlapped 0.04 ms of compute instead of 3.4.
//! [`place_gradient_all_reduces`] makes each of them a leaf (what waited on
//! it waits on its predecessors instead, so the order among the other nodes
//! stays) and hangs it on one compute node: the i-th of n (node order) on
//! the node whose ancestors hold the share closest to `LOW + (HIGH − LOW) ·
//! (i + ½) / n` of the stage's compute. On stages that receive gradients
//! from the next pipeline stage, the pipeline construction then also makes
//! it wait on the last of them and cuts it out of the forward pass
//! ([`crate::generate`]). On the validation split (`strata synth eval`,
//! seeds 0–3, with the collective mix) the iteration-time error's p90 is
//! 27.0 / 26.5 / 27.4 / 22.7 % with the placement and 26.4 / 26.5 / 32.6 /
//! 23.2 % without it (BENCHMARKS.md).
//!
//! **Activation collectives are in line.** Every tensor-, sequence- and
//! expert-parallel all-gather, reduce-scatter and all-to-all of the corpus
//! has a successor: the computation that needs its result waits on it. The
//! model leaves many as leaves (w000 generated with seed 0, stage 0: 18 of its 40), which
//! then hold up nothing. [`inline_activation_collectives`] gives each such
//! leaf an edge to a compute successor of one of its predecessors (or to
//! the first compute node of its Kahn layer or a later one). Timing is
//! unchanged within the seeds' spread (seeds 0–3: median 9.5 against 9.9 %,
//! p90 26.0 against 25.9 %), the structure closer to the real one
//! (out-degree MMD 0.050–0.056 against 0.057–0.064, layer width
//! 0.022–0.030 against 0.025–0.034).

use simulator::chakra::{CollectiveCommType, NodeType};

use crate::dataset::collective_mix::CollectiveGroup;
use crate::dataset::vocab::{CommKind, EtFeature, NodeTypeToken, Representatives};
use crate::dataset::{Dag, DatasetError};
use crate::generate::reaches;

/// The smallest share of the stage's compute a gradient all-reduce waits on.
pub const LOW: f64 = 0.3;
/// The largest.
pub const HIGH: f64 = 0.7;

/// Whether an ET token row is a gradient all-reduce (data or sequence
/// parallel).
pub fn is_gradient_all_reduce(row: &[u32]) -> bool {
    CollectiveGroup::of_row(row).is_some_and(|g| {
        g.collective == CollectiveCommType::AllReduce && matches!(g.kind, CommKind::Data | CommKind::Sequence)
    })
}

/// Places the gradient all-reduces of `dag` (an ET token graph, `num_ops`
/// read as `reps`) as the module docs say. Returns the graph and how many
/// were placed; a graph without them, or without compute, is returned as
/// it is.
pub fn place_gradient_all_reduces(dag: &Dag, reps: &Representatives) -> Result<(Dag, usize), DatasetError> {
    let n = dag.num_nodes();
    let gradients: Vec<usize> = (0..n).filter(|&v| is_gradient_all_reduce(dag.features(v))).collect();
    let compute = NodeTypeToken::id(NodeType::CompNode);
    let ops: Vec<f64> = (0..n)
        .map(|v| {
            let row = dag.features(v);
            if row[EtFeature::NodeType.index()] != compute {
                return 0.0;
            }
            reps.value(EtFeature::NumOps, row[EtFeature::NumOps.index()]).unwrap_or(0) as f64
        })
        .collect();
    let total: f64 = ops.iter().sum();
    let candidates: Vec<usize> = (0..n).filter(|&v| dag.features(v)[EtFeature::NodeType.index()] == compute).collect();
    if gradients.is_empty() || candidates.is_empty() {
        return Ok((dag.clone(), 0));
    }
    let err = |source| DatasetError::Dag { origin: "gradient all-reduces".into(), source };
    let layers = dag.layering().map_err(err)?;
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (u, v) in dag.edges() {
        preds[v as usize].push(u as usize);
    }
    let is_gradient = {
        let mut g = vec![false; n];
        for &v in &gradients {
            g[v] = true;
        }
        g
    };
    // Each node's ancestors (itself included) as a bitset, in topological
    // order; the compute share of a node is its set's num_ops over the total.
    // n²/8 bytes: 1.4 MB for a 3,300-node stage (16 micro-batches), small
    // beside what sampling such a stage takes.
    let words = n.div_ceil(64);
    let mut ancestors = vec![0u64; n * words];
    for &v in &layers.order {
        let v = v as usize;
        ancestors[v * words + v / 64] |= 1 << (v % 64);
        for &u in &preds[v] {
            // u precedes v in topological order: its set is complete.
            let from = ancestors[u * words..(u + 1) * words].to_vec();
            for (t, f) in ancestors[v * words..(v + 1) * words].iter_mut().zip(from) {
                *t |= f;
            }
        }
    }
    let share = |v: usize| {
        let set = &ancestors[v * words..(v + 1) * words];
        let held: f64 = (0..n).filter(|&u| set[u / 64] >> (u % 64) & 1 == 1).map(|u| ops[u]).sum();
        if total > 0.0 {
            held / total
        } else {
            0.0
        }
    };
    let shares: Vec<(usize, f64)> = candidates.iter().map(|&v| (v, share(v))).collect();
    // Bypass: a node that waited on a gradient all-reduce waits on the
    // all-reduce's own predecessors (through chains of them) instead.
    let mut through: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &v in &layers.order {
        let v = v as usize;
        if is_gradient[v] {
            let mut up: Vec<usize> =
                preds[v].iter().flat_map(|&u| if is_gradient[u] { through[u].clone() } else { vec![u] }).collect();
            up.sort_unstable();
            up.dedup();
            through[v] = up;
        }
    }
    let mut edges: Vec<(u32, u32)> = Vec::with_capacity(dag.src().len());
    for (u, v) in dag.edges() {
        let (us, vs) = (u as usize, v as usize);
        if is_gradient[vs] {
            continue;
        }
        if is_gradient[us] {
            edges.extend(through[us].iter().map(|&p| (p as u32, v)));
        } else {
            edges.push((u, v));
        }
    }
    for (i, &g) in gradients.iter().enumerate() {
        let target = LOW + (HIGH - LOW) * (i as f64 + 0.5) / gradients.len() as f64;
        let anchor = shares
            .iter()
            .min_by(|a, b| (a.1 - target).abs().total_cmp(&(b.1 - target).abs()).then(a.0.cmp(&b.0)))
            .map(|a| a.0);
        if let Some(a) = anchor {
            edges.push((a as u32, g as u32));
        }
    }
    edges.sort_unstable_by_key(|&(s, d)| (d, s));
    edges.dedup();
    let (src, dst): (Vec<u32>, Vec<u32>) = edges.into_iter().unzip();
    let out = Dag::new(dag.cardinalities().to_vec(), dag.x().to_vec(), src, dst).map_err(err)?;
    Ok((out, gradients.len()))
}

/// Whether an ET token row is an activation collective: an all-gather,
/// reduce-scatter or all-to-all over a tensor-, sequence- or
/// expert-parallel group (what a layer's forward or backward computation
/// needs before it can go on).
pub fn is_activation_collective(row: &[u32]) -> bool {
    CollectiveGroup::of_row(row).is_some_and(|g| {
        g.collective != CollectiveCommType::AllReduce
            && matches!(g.kind, CommKind::Tensor | CommKind::Sequence | CommKind::Expert)
    })
}

/// Puts the activation collectives of `dag` that nothing waits on back in
/// line: in every corpus stage graph each tensor-, sequence- and
/// expert-parallel collective has a successor (the computation that needs
/// its result), while the model leaves many of them as leaves that hold up
/// nothing. Such a collective gets an edge to a compute successor of one
/// of its predecessors (it then sits between the two, as in the real
/// traces) that does not lead back to it, or else to the first compute
/// node of its Kahn layer or a later one. Returns the graph and how many
/// were put in line.
pub fn inline_activation_collectives(dag: &Dag) -> Result<(Dag, usize), DatasetError> {
    let n = dag.num_nodes();
    let compute = NodeTypeToken::id(NodeType::CompNode);
    let (mut succ, mut preds) = (vec![Vec::new(); n], vec![Vec::new(); n]);
    for (u, v) in dag.edges() {
        succ[u as usize].push(v as usize);
        preds[v as usize].push(u as usize);
    }
    let layers =
        dag.layering().map_err(|source| DatasetError::Dag { origin: "activation collectives".into(), source })?;
    let mut added = Vec::new();
    let leaves: Vec<usize> =
        (0..n).filter(|&v| succ[v].is_empty() && is_activation_collective(dag.features(v))).collect();
    for c in leaves {
        // A compute successor of one of its predecessors that does not
        // lead back to it (it may have other predecessors further on).
        let is_compute = |w: usize| dag.features(w)[EtFeature::NodeType.index()] == compute;
        let next = preds[c]
            .iter()
            .find_map(|&u| succ[u].iter().copied().find(|&w| w != c && is_compute(w) && !reaches(&succ, w, c)))
            // Otherwise the first compute node of its own Kahn layer or a
            // later one: none of those leads back to it.
            .or_else(|| {
                (0..n)
                    .filter(|&w| is_compute(w) && layers.level[w] >= layers.level[c])
                    .min_by_key(|&w| (layers.level[w], w))
            });
        if let Some(w) = next {
            succ[c].push(w);
            added.push((c as u32, w as u32));
        }
    }
    if added.is_empty() {
        return Ok((dag.clone(), 0));
    }
    let count = added.len();
    let mut edges: Vec<(u32, u32)> = dag.edges().chain(added).collect();
    edges.sort_unstable_by_key(|&(s, d)| (d, s));
    edges.dedup();
    let (src, dst): (Vec<u32>, Vec<u32>) = edges.into_iter().unzip();
    let out = Dag::new(dag.cardinalities().to_vec(), dag.x().to_vec(), src, dst)
        .map_err(|source| DatasetError::Dag { origin: "activation collectives".into(), source })?;
    Ok((out, count))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use simulator::chakra::attr;

    use super::*;
    use crate::dataset::corpus::{Corpus, Split};
    use crate::dataset::vocab::{et_cardinalities, Magnitude};

    /// `reach[v]`: whether v is reachable from `start` along `adj` (start excluded).
    fn reach(adj: &[Vec<usize>], start: usize) -> Vec<bool> {
        let mut seen = vec![false; adj.len()];
        let mut stack = vec![start];
        while let Some(v) = stack.pop() {
            for &w in &adj[v] {
                if !std::mem::replace(&mut seen[w], true) {
                    stack.push(w);
                }
            }
        }
        seen
    }

    /// In every corpus stage graph, what descends from a gradient
    /// all-reduce carries at most 1.1 % of the stage's `num_ops` (1.03 %
    /// measured), and what it
    /// waits on from 5 % to 90 %; and every activation collective has a
    /// successor: the rules the module places collectives by.
    #[test]
    fn real_collectives_sit_where_the_module_places_them() {
        let corpus = Corpus::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/corpus")).unwrap();
        let (mut stages, mut checked, mut activations) = (0, 0, 0);
        for split in [Split::Train, Split::Validation] {
            for r in corpus.ranks(split, true) {
                let trace = r.read_trace().unwrap();
                let dag = r.tokenize_trace(&trace).unwrap();
                let n = dag.num_nodes();
                let (mut succ, mut pred) = (vec![Vec::new(); n], vec![Vec::new(); n]);
                for (u, v) in dag.edges() {
                    succ[u as usize].push(v as usize);
                    pred[v as usize].push(u as usize);
                }
                let ops: Vec<f64> =
                    trace.nodes.iter().map(|x| attr::get_u64(x, "num_ops").unwrap().unwrap_or(0) as f64).collect();
                let total: f64 = ops.iter().sum();
                let share = |mark: Vec<bool>| (0..n).filter(|&u| mark[u]).map(|u| ops[u]).sum::<f64>() / total;
                let gradients: Vec<usize> = (0..n).filter(|&v| is_gradient_all_reduce(dag.features(v))).collect();
                for &g in &gradients {
                    let (after, before) = (share(reach(&succ, g)), share(reach(&pred, g)));
                    let id = format!("{} rank {} node {g}", r.workload.config.id, r.rank);
                    assert!(after <= 0.011, "{id}: {after} of the compute waits on it");
                    assert!((0.05..=0.9).contains(&before), "{id}: it waits on {before} of the compute");
                    checked += 1;
                }
                stages += usize::from(!gradients.is_empty());
                for c in (0..n).filter(|&v| is_activation_collective(dag.features(v))) {
                    let id = format!("{} rank {} node {c}", r.workload.config.id, r.rank);
                    assert!(!succ[c].is_empty(), "{id}: an activation collective nothing waits on");
                    activations += 1;
                }
            }
        }
        assert!(stages >= 90 && checked >= 300, "{stages} stages, {checked} all-reduces");
        assert!(activations >= 5000, "{activations} activation collectives");
    }

    /// A chain of ten equal compute nodes with three gradient all-reduces
    /// (one before the chain, one inside it, one after it): each becomes a
    /// leaf on the node whose ancestors hold the share nearest its target
    /// (0.367, 0.5, 0.633 of the compute: nodes 3, 4 and 5, which hold
    /// 0.4, 0.5 and 0.6), and the chain keeps its order.
    #[test]
    fn placed_all_reduces_hang_on_their_share_of_the_compute() {
        let cards = et_cardinalities();
        let f = cards.len();
        // Nodes 0..10 compute, 10..13 all-reduces.
        let mut x = vec![0u32; 13 * f];
        for v in 0..13 {
            let row = &mut x[v * f..(v + 1) * f];
            if v < 10 {
                row[EtFeature::NodeType.index()] = NodeTypeToken::id(NodeType::CompNode);
                row[EtFeature::NumOps.index()] = Magnitude::bucket(Some(1 << 20));
            } else {
                let g = CollectiveGroup { kind: CommKind::Data, collective: CollectiveCommType::AllReduce };
                row[EtFeature::NodeType.index()] = NodeTypeToken::id(NodeType::CommCollNode);
                row[EtFeature::CommKind.index()] = g.kind.id();
                row[EtFeature::Collective.index()] = crate::dataset::vocab::CollectiveToken::id(Some(g.collective));
            }
        }
        let mut edges: Vec<(u32, u32)> = (0..4).map(|v| (v, v + 1)).chain((5..9).map(|v| (v, v + 1))).collect();
        edges.extend([(10, 0), (4, 11), (11, 5), (9, 12)]);
        let (src, dst): (Vec<u32>, Vec<u32>) = edges.into_iter().unzip();
        let dag = Dag::new(cards, x, src, dst).unwrap();
        let (placed, n) = place_gradient_all_reduces(&dag, &Representatives::default()).unwrap();
        assert_eq!(n, 3);
        let mut got: Vec<(u32, u32)> = placed.edges().collect();
        got.sort_unstable();
        let mut want: Vec<(u32, u32)> = (0..9).map(|v| (v, v + 1)).collect();
        want.extend([(3, 10), (4, 11), (5, 12)]);
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(placed.layering().is_ok());
        // Without gradient all-reduces the graph is returned as it is.
        let plain = Dag::new(et_cardinalities(), vec![0u32; f], vec![], vec![]).unwrap();
        assert_eq!(place_gradient_all_reduces(&plain, &Representatives::default()).unwrap(), (plain.clone(), 0));
    }

    /// A chain 0 → 1 → 2 → 3 → 4 of compute nodes and two all-gathers that
    /// nothing waits on: node 5 after node 2 gets node 3 as its successor;
    /// node 6 after nodes 1 and 3 cannot take node 2 (which leads back to it
    /// through node 3) and takes node 4; node 9, on its own, takes the first
    /// compute node of its Kahn layer, node 0. An all-gather with a
    /// successor and a gradient all-reduce that is a leaf are left alone.
    #[test]
    fn leaf_activation_collectives_are_put_back_in_line() {
        let cards = et_cardinalities();
        let f = cards.len();
        let mut x = vec![0u32; 10 * f];
        let gather = CollectiveGroup { kind: CommKind::Tensor, collective: CollectiveCommType::AllGather };
        let reduce = CollectiveGroup { kind: CommKind::Data, collective: CollectiveCommType::AllReduce };
        for v in 0..10 {
            let row = &mut x[v * f..(v + 1) * f];
            let group = match v {
                0..5 => None,
                8 => Some(reduce),
                _ => Some(gather),
            };
            match group {
                None => row[EtFeature::NodeType.index()] = NodeTypeToken::id(NodeType::CompNode),
                Some(g) => {
                    row[EtFeature::NodeType.index()] = NodeTypeToken::id(NodeType::CommCollNode);
                    row[EtFeature::CommKind.index()] = g.kind.id();
                    row[EtFeature::Collective.index()] = crate::dataset::vocab::CollectiveToken::id(Some(g.collective));
                }
            }
        }
        let mut edges: Vec<(u32, u32)> = (0..4).map(|v| (v, v + 1)).collect();
        edges.extend([(2, 5), (1, 6), (3, 6), (0, 7), (7, 4), (4, 8)]);
        let (src, dst): (Vec<u32>, Vec<u32>) = edges.iter().copied().unzip();
        let dag = Dag::new(cards, x, src, dst).unwrap();
        let (inlined, n) = inline_activation_collectives(&dag).unwrap();
        assert_eq!(n, 3);
        let mut got: Vec<(u32, u32)> = inlined.edges().collect();
        got.sort_unstable();
        edges.extend([(5, 3), (6, 4), (9, 0)]);
        edges.sort_unstable();
        assert_eq!(got, edges);
        assert!(inlined.layering().is_ok());
        assert_eq!(inline_activation_collectives(&inlined).unwrap(), (inlined.clone(), 0));
    }
}
