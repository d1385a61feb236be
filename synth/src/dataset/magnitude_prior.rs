//! The magnitude prior: how much compute and communication a stage graph
//! should carry for a conditioning row, fitted on the training split and
//! stored in corpus checkpoints (a Strata extension of LayerDAG, like the
//! [size prior](super::size_prior)).
//!
//! LayerDAG draws every node's magnitude buckets (`num_ops`, `tensor_size`,
//! `comm_size`) one by one. A small model gets their mix roughly right but
//! not their level: on the validation split the shipped model's stage graphs
//! carried from a fifth to 37 times the real total `num_ops`, and simulated
//! iteration time follows those totals. The totals themselves are smooth
//! functions of the workload (FLOPs and bytes scale as powers of the model
//! width, sequence length, batch and parallel degrees, which the
//! conditioning row holds as logs), so four ridge regressions of their log2
//! on the normalized row predict them well, and `num_ops`, a sum of such
//! powers, better still as a non-negative combination of the stage's
//! analytic work terms ([`super::stage_work`]; within 0.1 % for dense models
//! where the ridge regression's median error was 16 %), which the prior uses
//! for `compute_ops` wherever it has a fit for the graph family:
//!
//! | total | over |
//! |---|---|
//! | `compute_ops` | `num_ops` of compute nodes |
//! | `compute_bytes` | `tensor_size` of compute nodes (also by work terms: the stage's output sizes) |
//! | `collective_bytes` | `comm_size` of collectives |
//! | `send_bytes` | `comm_size` of sends |
//!
//! The fits are on the real traces' attribute values (what a simulator
//! sees), not on their buckets: the bucket values the detokenizer writes
//! (the training split's median per bucket) would make a d 6144 model's
//! matrix products, which sit high in their buckets, 20 % too small. A
//! generated graph's totals are read with the values that will be written.
//! Each fit uses the training graphs
//! whose total is positive: a stage without collectives says nothing about
//! how large they are. [`MagnitudePrior::rescale`] moves each total of a
//! generated graph to its prediction by shifting buckets: all of the
//! total's nodes by a common number of octaves, then single nodes by one
//! more. That keeps the model's mix of sizes and the graph a valid token
//! graph.

use std::path::Path;

use serde::{Deserialize, Serialize};
use simulator::chakra::{EtTrace, NodeType};

use super::collective_mix::{CollectiveMix, GroupTotals};
use super::size_prior::{median, LogLinearFit};
use super::stage_work::{StageWork, TermSet, WorkFit};
use super::tokenize::magnitudes;
use super::vocab::{EtFeature, Magnitude, NodeTypeToken, Representatives, MAGNITUDE_CLASSES};
use super::{Dag, DatasetError};

/// One of the per-graph totals the prior predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MagnitudeTotal {
    /// `num_ops` summed over compute nodes.
    ComputeOps,
    /// `tensor_size` summed over compute nodes.
    ComputeBytes,
    /// `comm_size` summed over collectives.
    CollectiveBytes,
    /// `comm_size` summed over sends.
    SendBytes,
}

impl MagnitudeTotal {
    /// Every total, in the order of [`MagnitudePrior`]'s fields.
    pub const ALL: [MagnitudeTotal; 4] = [
        MagnitudeTotal::ComputeOps,
        MagnitudeTotal::ComputeBytes,
        MagnitudeTotal::CollectiveBytes,
        MagnitudeTotal::SendBytes,
    ];

    /// The checkpoint key.
    pub fn name(self) -> &'static str {
        match self {
            MagnitudeTotal::ComputeOps => "compute_ops",
            MagnitudeTotal::ComputeBytes => "compute_bytes",
            MagnitudeTotal::CollectiveBytes => "collective_bytes",
            MagnitudeTotal::SendBytes => "send_bytes",
        }
    }

    /// The node type and magnitude feature summed.
    fn source(self) -> (NodeType, EtFeature) {
        match self {
            MagnitudeTotal::ComputeOps => (NodeType::CompNode, EtFeature::NumOps),
            MagnitudeTotal::ComputeBytes => (NodeType::CompNode, EtFeature::TensorSize),
            MagnitudeTotal::CollectiveBytes => (NodeType::CommCollNode, EtFeature::CommSize),
            MagnitudeTotal::SendBytes => (NodeType::CommSendNode, EtFeature::CommSize),
        }
    }

    /// The nodes of `dag` this total sums over (an ET token graph).
    fn nodes(self, dag: &Dag) -> impl Iterator<Item = usize> + '_ {
        let ty = NodeTypeToken::id(self.source().0);
        (0..dag.num_nodes()).filter(move |&v| dag.features(v)[EtFeature::NodeType.index()] == ty)
    }

    /// The total in `dag`, with the values `reps` gives its buckets.
    pub fn of(self, dag: &Dag, reps: &Representatives) -> f64 {
        let col = self.source().1;
        self.nodes(dag).filter_map(|v| reps.value(col, dag.features(v)[col.index()])).map(|x| x as f64).sum()
    }

    /// Every total of a real trace (read from `path`), from its attribute
    /// values, in [`MagnitudeTotal::ALL`] order.
    pub fn all_of_trace(trace: &EtTrace, path: &Path) -> Result<Totals, DatasetError> {
        let mut totals = [0.0; 4];
        for node in &trace.nodes {
            let values = magnitudes(node, path)?;
            for (t, total) in MagnitudeTotal::ALL.into_iter().zip(&mut totals) {
                let (ty, feature) = t.source();
                if let (true, Some(slot)) = (node.node_type() == Some(ty), feature.magnitude_slot()) {
                    *total += values[slot].unwrap_or(0) as f64;
                }
            }
        }
        Ok(totals)
    }
}

/// One graph's totals, in [`MagnitudeTotal::ALL`] order.
pub type Totals = [f64; 4];

/// Predicted totals of a stage graph for a conditioning row; a total the
/// training split never had (e.g. no sends without pipeline stages) has no fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagnitudePrior {
    /// `num_ops` over compute nodes.
    pub compute_ops: Option<LogLinearFit>,
    /// `tensor_size` over compute nodes.
    pub compute_bytes: Option<LogLinearFit>,
    /// `comm_size` over collectives.
    pub collective_bytes: Option<LogLinearFit>,
    /// `comm_size` over sends.
    pub send_bytes: Option<LogLinearFit>,
    /// `num_ops` over compute nodes from the stage's work terms; preferred
    /// to `compute_ops` for the families it has (absent in checkpoints made
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_ops_by_work: Option<WorkFit>,
    /// `comm_size` over sends from the stage's pipeline-message terms;
    /// preferred to `send_bytes` likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_bytes_by_work: Option<WorkFit>,
    /// `tensor_size` over compute nodes from the stage's output-size terms
    /// ([`super::stage_work::BYTE_TERMS`]); preferred to `compute_bytes`
    /// likewise (absent in checkpoints made before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compute_bytes_by_work: Option<WorkFit>,
    /// Collective `comm_size` per communicator kind and collective type;
    /// preferred to `collective_bytes` likewise, and the bytes each group
    /// of a generated stage's collectives gets (absent in checkpoints made
    /// before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collective_mix: Option<CollectiveMix>,
}

/// How [`MagnitudePrior::rescale`] moved one graph's totals: per total in
/// [`MagnitudeTotal::ALL`] order, the octaves its buckets were shifted by.
pub type Shifts = [i32; 4];

impl MagnitudePrior {
    /// Fits every total on the totals of real graphs ([`MagnitudeTotal::all_of_trace`])
    /// and their conditioning rows, and `num_ops`, send and collective
    /// bytes also on their work terms (when `works` has one per graph; the
    /// collectives per group, when `groups` has one per graph too); `None`
    /// without graphs or conditioning.
    pub fn fit(totals: &[Totals], rows: &[Vec<f32>], works: &[StageWork], groups: &[GroupTotals]) -> Option<Self> {
        if totals.is_empty() || rows.first().is_none_or(|r| r.is_empty()) {
            return None;
        }
        let fit = |i: usize| {
            let (rows, targets): (Vec<&[f32]>, Vec<f64>) =
                totals.iter().zip(rows).map(|(t, r)| (r.as_slice(), t[i])).filter(|&(_, t)| t > 0.0).unzip();
            (!rows.is_empty()).then(|| LogLinearFit::fit(&rows, &targets))
        };
        let by_work = |set: TermSet, i: usize| {
            let column: Vec<f64> = totals.iter().map(|t| t[i]).collect();
            (works.len() == totals.len()).then(|| WorkFit::fit(set, works, &column)).flatten()
        };
        Some(MagnitudePrior {
            compute_ops: fit(0),
            compute_bytes: fit(1),
            collective_bytes: fit(2),
            send_bytes: fit(3),
            compute_ops_by_work: by_work(TermSet::Compute, 0),
            send_bytes_by_work: by_work(TermSet::Messages, 3),
            compute_bytes_by_work: by_work(TermSet::ComputeBytes, 1),
            collective_mix: (works.len() == totals.len()).then(|| CollectiveMix::fit(works, groups)).flatten(),
        })
    }

    /// The predicted total for conditioning row `y` (and the stage's work
    /// terms, which `compute_ops`, `collective_bytes` and `send_bytes`
    /// prefer); `None` without a fit.
    pub fn predict(&self, total: MagnitudeTotal, y: &[f32], work: Option<&StageWork>) -> Option<f64> {
        let fit = match total {
            MagnitudeTotal::ComputeOps => self.compute_ops_by_work.as_ref(),
            MagnitudeTotal::ComputeBytes => self.compute_bytes_by_work.as_ref(),
            MagnitudeTotal::SendBytes => self.send_bytes_by_work.as_ref(),
            MagnitudeTotal::CollectiveBytes => None,
        };
        let mix = self.collective_mix.as_ref().filter(|_| total == MagnitudeTotal::CollectiveBytes);
        let by_work = match mix {
            Some(mix) => work.and_then(|w| mix.total(w)),
            None => fit.zip(work).and_then(|(fit, w)| fit.predict(w)),
        };
        by_work.or_else(|| self.get(total).map(|f| f.predict_f64(y)))
    }

    /// The fit of one total.
    pub fn get(&self, total: MagnitudeTotal) -> Option<&LogLinearFit> {
        match total {
            MagnitudeTotal::ComputeOps => self.compute_ops.as_ref(),
            MagnitudeTotal::ComputeBytes => self.compute_bytes.as_ref(),
            MagnitudeTotal::CollectiveBytes => self.collective_bytes.as_ref(),
            MagnitudeTotal::SendBytes => self.send_bytes.as_ref(),
        }
    }

    /// Every fit with its name (for checks and reports).
    pub fn fits(&self) -> impl Iterator<Item = (&'static str, &LogLinearFit)> {
        MagnitudeTotal::ALL.into_iter().filter_map(|t| self.get(t).map(|f| (t.name(), f)))
    }

    /// Moves each total of `dag` (an ET token graph generated for
    /// conditioning row `y` and a stage with work terms `work`, buckets read
    /// as `reps`) to its prediction ([`Self::predict`]; the collectives
    /// group by group where the checkpoint has their [mix](CollectiveMix)
    /// and the stage has predicted groups): every node of the total goes up
    /// (or down) by the same whole number of octaves, the most that keeps
    /// the total at or below the prediction, then single nodes, largest
    /// first, one octave more while that still fits. Buckets stay sizes
    /// (never ABSENT or ZERO) and inside the vocabulary; a total of 0 or
    /// without a fit is left alone. Returns the graph and the common shift
    /// of each total (of the largest group for the collectives). Last, each
    /// compute node's `tensor_size` is capped at its `num_ops` (see
    /// `bytes_within_ops`), so `compute_bytes` can end below its
    /// prediction. With the
    /// mix, collectives outside the stage's predicted groups keep their
    /// buckets: run [`CollectiveMix::shape`] first, which leaves none.
    pub fn rescale(
        &self,
        dag: &Dag,
        y: &[f32],
        work: Option<&StageWork>,
        reps: &Representatives,
    ) -> Result<(Dag, Shifts), DatasetError> {
        let mut x = dag.x().to_vec();
        let mut shifts = [0; 4];
        for (i, total) in MagnitudeTotal::ALL.into_iter().enumerate() {
            let feature = total.source().1;
            // Collectives by group where the checkpoint has the mix: each
            // group's nodes to the group's bytes (the largest group's shift
            // is the one reported).
            let groups = match (total, &self.collective_mix, work) {
                (MagnitudeTotal::CollectiveBytes, Some(mix), Some(work)) => mix.targets(dag, work),
                _ => Vec::new(),
            };
            if !groups.is_empty() {
                let mut largest = 0.0;
                for (nodes, want) in groups {
                    let k = fit_nodes(&mut x, dag.num_features(), &nodes, feature, want, reps);
                    if want > largest {
                        (largest, shifts[i]) = (want, k);
                    }
                }
                continue;
            }
            let Some(want) = self.predict(total, y, work) else { continue };
            let nodes: Vec<usize> = total.nodes(dag).collect();
            shifts[i] = fit_nodes(&mut x, dag.num_features(), &nodes, feature, want, reps);
            if total == MagnitudeTotal::ComputeBytes {
                bytes_within_ops(&mut x, dag.num_features(), &nodes, reps);
            }
        }
        let out = Dag::new(dag.cardinalities().to_vec(), x, dag.src().to_vec(), dag.dst().to_vec())
            .map_err(|source| DatasetError::Dag { origin: "magnitude prior".into(), source })?;
        Ok((out, shifts))
    }

    /// Median relative error of each fitted total's prediction
    /// ([`Self::predict`]) on graphs with a positive total (e.g. the
    /// validation split), by name; `works` holds each graph's work terms, or
    /// is empty.
    pub fn median_rel_errors(
        &self,
        totals: &[Totals],
        rows: &[Vec<f32>],
        works: &[StageWork],
    ) -> Vec<(&'static str, f64)> {
        MagnitudeTotal::ALL
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| {
                let errors: Vec<f64> = totals
                    .iter()
                    .zip(rows)
                    .enumerate()
                    .filter(|(_, (a, _))| a[i] > 0.0)
                    .filter_map(|(g, (a, r))| Some((self.predict(t, r, works.get(g))? / a[i] - 1.0).abs()))
                    .collect();
                (!errors.is_empty()).then(|| (t.name(), median(errors)))
            })
            .collect()
    }
}

/// Moves the summed `feature` values of `nodes` (rows of a token matrix
/// `x` with `f` features, read as `reps`) to `want`: every sized node by
/// the same whole number of octaves, the most that keeps the total at or
/// below `want`, then single nodes, largest first (ties by id), one octave
/// more while that still fits. Buckets stay sizes (never ABSENT or ZERO)
/// and inside the vocabulary; nodes whose total is 0, or a `want` that is
/// not a positive number, are left alone. Returns the common shift.
fn fit_nodes(x: &mut [u32], f: usize, nodes: &[usize], feature: EtFeature, want: f64, reps: &Representatives) -> i32 {
    let col = feature.index();
    let value = |b: u32| reps.value(feature, b).unwrap_or(0) as f64;
    let have: f64 = nodes.iter().map(|&v| value(x[v * f + col])).sum();
    if have <= 0.0 || !want.is_finite() || want <= 0.0 {
        return 0;
    }
    // Buckets go no higher than the last whose value Chakra's int64 holds.
    let smallest = Magnitude::ZERO + 1;
    let largest = (smallest..MAGNITUDE_CLASSES)
        .take_while(|&b| reps.value(feature, b).is_some_and(|v| v <= i64::MAX as u64))
        .last()
        .unwrap_or(smallest);
    let sized: Vec<usize> = nodes.iter().copied().filter(|&v| x[v * f + col] >= smallest).collect();
    let k = (want / have).log2().floor().clamp(-(largest as f64), largest as f64) as i32;
    for &v in &sized {
        let b = &mut x[v * f + col];
        *b = (*b as i32 + k).clamp(smallest as i32, largest as i32) as u32;
    }
    // Fill the rest of the way node by node, largest first (ties by id).
    let mut deficit = want - sized.iter().map(|&v| value(x[v * f + col])).sum::<f64>();
    let mut by_size = sized;
    by_size.sort_by_key(|&v| (std::cmp::Reverse(x[v * f + col]), v));
    for v in by_size {
        let b = x[v * f + col];
        let gain = value((b + 1).min(largest)) - value(b);
        if gain > 0.0 && gain <= deficit {
            x[v * f + col] = b + 1;
            deficit -= gain;
        }
    }
    k
}

/// Lowers every compute node's `tensor_size` bucket until its value is at
/// or below the node's `num_ops`, as in every compute node of the corpus
/// (STG writes a node's output element count as its `tensor_size`, and each
/// output element takes at least one operation); a node without operations
/// keeps the smallest size. The model draws the two buckets of a node
/// separately enough to pair a handful of operations with tens of millions
/// of elements: on w111's second stage four such nodes held half the
/// stage's memory time. What the cap takes off is not put back elsewhere,
/// so the total can end below its prediction: the only nodes with room
/// below their `num_ops` are mostly matrix products, and filling them up to
/// the total made iteration times worse (BENCHMARKS.md).
fn bytes_within_ops(x: &mut [u32], f: usize, nodes: &[usize], reps: &Representatives) {
    let (ops_col, bytes_col) = (EtFeature::NumOps.index(), EtFeature::TensorSize.index());
    let smallest = Magnitude::ZERO + 1;
    for &v in nodes {
        let limit = reps.value(EtFeature::NumOps, x[v * f + ops_col]).unwrap_or(0);
        let b = &mut x[v * f + bytes_col];
        while *b > smallest && reps.value(EtFeature::TensorSize, *b).is_some_and(|size| size > limit) {
            *b -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::dataset::vocab::{et_cardinalities, RepresentativeFitter};

    /// An edgeless ET token graph: `(node type, feature, bucket)` per node.
    fn graph(nodes: &[(NodeType, EtFeature, u32)]) -> Dag {
        let cards = et_cardinalities();
        let f = cards.len();
        let mut x = vec![0u32; nodes.len() * f];
        for (v, &(ty, feature, bucket)) in nodes.iter().enumerate() {
            x[v * f + EtFeature::NodeType.index()] = NodeTypeToken::id(ty);
            x[v * f + feature.index()] = bucket;
        }
        Dag::new(cards, x, vec![], vec![]).unwrap()
    }

    fn ops(b: u32) -> (NodeType, EtFeature, u32) {
        (NodeType::CompNode, EtFeature::NumOps, b)
    }

    #[test]
    fn totals_are_read_as_the_detokenizer_writes_them() {
        let send = (NodeType::CommSendNode, EtFeature::CommSize, Magnitude::bucket(Some(4096)));
        let coll = (NodeType::CommCollNode, EtFeature::CommSize, Magnitude::bucket(Some(1000)));
        let g = graph(&[ops(Magnitude::bucket(Some(100))), ops(Magnitude::ABSENT), ops(Magnitude::ZERO), send, coll]);
        let lb = Representatives::default();
        assert_eq!(MagnitudeTotal::ComputeOps.of(&g, &lb), 64.0);
        assert_eq!(MagnitudeTotal::SendBytes.of(&g, &lb), 4096.0);
        assert_eq!(MagnitudeTotal::CollectiveBytes.of(&g, &lb), 512.0);
        assert_eq!(MagnitudeTotal::ComputeBytes.of(&g, &lb), 0.0);
        // With fitted values: 100 for the bucket of 64..127.
        let mut fitted = RepresentativeFitter::new();
        fitted.observe(EtFeature::NumOps, Some(100));
        assert_eq!(MagnitudeTotal::ComputeOps.of(&g, &fitted.finish()), 100.0);
    }

    /// Compute totals of 2^(10 + y) are recovered, a graph is shifted to
    /// its row's prediction, and totals the data never had get no fit.
    #[test]
    fn a_log_linear_law_is_recovered_and_applied() {
        let totals: Vec<Totals> = (0..4).map(|y| [(1u64 << (10 + y)) as f64, 0.0, 0.0, 0.0]).collect();
        let rows: Vec<Vec<f32>> = (0..4).map(|y| vec![y as f32]).collect();
        let p = MagnitudePrior::fit(&totals, &rows, &[], &[]).unwrap();
        let fit = p.compute_ops.as_ref().unwrap();
        assert!((fit.intercept - 10.0).abs() < 0.01 && (fit.weights[0] - 1.0).abs() < 0.01, "{fit:?}");
        assert!(p.compute_bytes.is_none() && p.collective_bytes.is_none() && p.send_bytes.is_none());
        let errors = p.median_rel_errors(&totals, &rows, &[]);
        assert!(errors.len() == 1 && errors[0].1 < 0.01, "{errors:?}");
        let lb = Representatives::default();
        // A graph drawn with 2^9 and 2^11 (total 2560) for y = 3 (2^13 = 8192):
        // both up by floor(log2 3.2) = 1 octave (5120); one more octave for the
        // larger would overshoot (+4096), for the smaller it fits (+1024: 6144).
        // ABSENT and ZERO stay.
        let drawn = graph(&[ops(11), ops(13), ops(Magnitude::ABSENT), ops(Magnitude::ZERO)]);
        let (out, shifts) = p.rescale(&drawn, &[3.0], None, &lb).unwrap();
        assert_eq!(shifts, [1, 0, 0, 0]);
        let col = |d: &Dag| (0..4).map(|v| d.features(v)[EtFeature::NumOps.index()]).collect::<Vec<_>>();
        assert_eq!(col(&out), vec![13, 14, Magnitude::ABSENT, Magnitude::ZERO]);
        assert_eq!(MagnitudeTotal::ComputeOps.of(&out, &lb), 6144.0);
        // Down: y = -1 wants 2^9 = 512 from 2560: floor(log2 0.2) = -3 → 64 + 256 = 320;
        // the larger one octave up would overshoot (+256), the smaller fits (+64 → 384).
        let (down, shifts) = p.rescale(&drawn, &[-1.0], None, &lb).unwrap();
        assert_eq!(shifts, [-3, 0, 0, 0]);
        assert_eq!(MagnitudeTotal::ComputeOps.of(&down, &lb), 384.0);
        // Extrapolating far up stops at the largest bucket whose value
        // Chakra's int64 fields hold (the last bucket starts at 2^63).
        let (far, _) = p.rescale(&drawn, &[200.0], None, &lb).unwrap();
        assert_eq!(col(&far)[1], MAGNITUDE_CLASSES - 2);
        assert!(lb.value(EtFeature::NumOps, col(&far)[1]).is_some_and(|v| v <= i64::MAX as u64));
        assert!(lb.value(EtFeature::NumOps, MAGNITUDE_CLASSES - 1).is_some_and(|v| v > i64::MAX as u64));
        assert!(MagnitudePrior::fit(&[], &[], &[], &[]).is_none());
        assert!(MagnitudePrior::fit(&totals, &vec![vec![]; 4], &[], &[]).is_none());
    }

    /// A real trace's totals equal the sums the corpus generator recorded
    /// in its config.json (`per_rank`: comp_num_ops_sum, comp_tensor_size_sum,
    /// comm_size_coll, comm_size_send), for every rank of three workloads.
    #[test]
    fn trace_totals_match_the_corpus_records() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/corpus/workloads");
        for id in [
            "w000_llama_mp_L4_d1024_dp1tp2pp2sp1",
            "w076_gpt_L3_d8192_dp2tp1pp2sp1",
            "w075_moe_mp_L3_d4096_dp1tp2pp1sp1ep2",
        ] {
            let dir = root.join(id);
            let config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
            for rank in config["per_rank"].as_array().unwrap().iter().filter(|r| r["kept"] == true) {
                let path = dir.join(rank["file"].as_str().unwrap());
                let trace = simulator::chakra::read_trace(&path).unwrap();
                let got = MagnitudeTotal::all_of_trace(&trace, &path).unwrap();
                let want = ["comp_num_ops_sum", "comp_tensor_size_sum", "comm_size_coll", "comm_size_send"]
                    .map(|k| rank[k].as_f64().unwrap());
                assert_eq!(got, want, "{id} {}", path.display());
            }
        }
    }

    /// Fitted on the corpus's train split, the prior predicts the
    /// validation split's stage totals: `num_ops` (from the work terms)
    /// and collective bytes (from the collective mix) within 1 %, compute
    /// bytes (from the output-size terms) within 3 %, send bytes within
    /// 40 % (median relative error; BENCHMARKS.md has the figures).
    #[test]
    fn the_corpus_prior_predicts_held_out_totals() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/corpus");
        let data = crate::train::load_data(&crate::train::DataSource::Corpus(corpus), None).unwrap();
        let prior = data.spec.magnitude_prior.as_ref().unwrap();
        let errors = &data.magnitude_validation;
        assert_eq!(errors.len(), 4, "{errors:?}");
        for &(name, e) in errors {
            let bound = match name {
                "compute_ops" | "collective_bytes" => 0.01,
                "compute_bytes" => 0.03,
                _ => 0.4,
            };
            assert!(e < bound, "{name}: {e}");
        }
        assert_eq!(prior.fits().count(), 4);
        assert_eq!(prior.compute_ops_by_work.as_ref().map(|w| w.families.len()), Some(3));
        assert_eq!(prior.send_bytes_by_work.as_ref().map(|w| w.terms), Some(TermSet::Messages));
        assert_eq!(prior.compute_bytes_by_work.as_ref().map(|w| w.terms), Some(TermSet::ComputeBytes));
        assert_eq!(prior.collective_mix.as_ref().map(|m| m.groups.len()), Some(11));
    }

    /// Every compute node of the corpus has at most as many output elements
    /// (`tensor_size`) as operations (`num_ops`): the rule
    /// `bytes_within_ops` keeps generated nodes to.
    #[test]
    fn corpus_compute_nodes_have_no_more_elements_than_operations() {
        use crate::dataset::corpus::{Corpus, Split};
        let corpus = Corpus::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/corpus")).unwrap();
        let slot = |f: EtFeature| f.magnitude_slot().unwrap();
        let (ops_slot, bytes_slot) = (slot(EtFeature::NumOps), slot(EtFeature::TensorSize));
        let mut checked = 0;
        for split in [Split::Train, Split::Validation] {
            for r in corpus.ranks(split, true) {
                let trace = r.read_trace().unwrap();
                for node in trace.nodes.iter().filter(|n| n.node_type() == Some(NodeType::CompNode)) {
                    let values = magnitudes(node, &r.path).unwrap();
                    if let (Some(ops), Some(bytes)) = (values[ops_slot], values[bytes_slot]) {
                        assert!(
                            bytes <= ops,
                            "{}: node {}: {bytes} elements, {ops} operations",
                            r.path.display(),
                            node.id
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 50_000, "{checked} compute nodes");
    }

    /// A node's `tensor_size` bucket comes down to its `num_ops` (a node
    /// without operations to the smallest size); nodes within their
    /// operations, and absent sizes, stay.
    #[test]
    fn tensor_sizes_are_capped_at_the_nodes_operations() {
        let cards = et_cardinalities();
        let f = cards.len();
        let b = |v: u64| Magnitude::bucket(Some(v));
        // (num_ops bucket, tensor_size bucket) per compute node.
        let nodes = [
            (b(1 << 10), b(1 << 20)),
            (Magnitude::ZERO, b(1 << 12)),
            (b(1 << 30), b(1 << 8)),
            (b(64), Magnitude::ABSENT),
        ];
        let mut x = vec![0u32; nodes.len() * f];
        for (v, &(ops, bytes)) in nodes.iter().enumerate() {
            x[v * f + EtFeature::NodeType.index()] = NodeTypeToken::id(NodeType::CompNode);
            x[v * f + EtFeature::NumOps.index()] = ops;
            x[v * f + EtFeature::TensorSize.index()] = bytes;
        }
        let all: Vec<usize> = (0..nodes.len()).collect();
        bytes_within_ops(&mut x, f, &all, &Representatives::default());
        let size = |v: usize| x[v * f + EtFeature::TensorSize.index()];
        assert_eq!(size(0), b(1 << 10));
        assert_eq!(size(1), Magnitude::ZERO + 1);
        assert_eq!(size(2), b(1 << 8));
        assert_eq!(size(3), Magnitude::ABSENT);
    }
}
