//! How much arithmetic and pipeline traffic a stage of an STG workload has,
//! from the model's shapes: analytic terms per stage ([`StageWork`]) and
//! non-negative fits of the traces' totals on them ([`WorkFit`]: `num_ops` on
//! the work terms, send `comm_size` on the message term). A Strata extension
//! of LayerDAG, used by the [magnitude prior](super::magnitude_prior).
//!
//! STG writes `num_ops` as exact functions of the shapes: per transformer
//! layer a sum of token × width products (projections, MLP, attention),
//! weight-sized terms (updates), and on the stages that hold the
//! vocabulary embedding and output head, token × width × vocabulary terms. A
//! log-linear regression on the conditioning row cannot express such sums
//! (the vocabulary term dominates small models, the MLP term large ones), so
//! it missed single stages by up to 87 % (w075, a MoE model). A
//! non-negative least-squares fit of the total on [`WORK_TERMS`], one per
//! [`GraphFamily`] and weighted to minimize the relative error, reproduces
//! every stage of the corpus to within 0.1 % (see the tests).
//!
//! **Where the output head sits.** The first stage holds the input
//! embedding. STG places the output head on the last stage, except for
//! graphs built without `--mixed_precision` from the GPT graph (gpt, and
//! llama or dense without mixed precision), where it lands on stage
//! `(num_stacks − 1) mod pp`: `w111` (13 layers, pp 2) has both vocabulary
//! terms on stage 0, which does 79 G `num_ops` against stage 1's 24 G with
//! 7 and 6 layers; `w094` (10 layers, pp 4) has the head on stage 1. With
//! `num_stacks` divisible by `pp` that is the last stage again.
//!
//! **Experts.** STG's MoE graph divides the expert MLP's work by `ep` twice
//! (tokens and experts both split over the expert-parallel ranks): w056,
//! w057 and w058 (ep 1, 2, 4, otherwise alike) do 2, 0.5 and 0.125 units of
//! it (one unit = the dense MLP's work at k = 1), hence `k / (tp · ep²)`.
//!
//! **Output sizes.** STG writes a compute node's output element count as
//! its `tensor_size`, so a stage's total is a sum of activation sizes per
//! token, weight-gradient sizes per micro-batch (each micro-batch's weight
//! gradients are separate nodes), the sharded weight and gradient per layer,
//! logits and the vocabulary blocks; those are [`BYTE_TERMS`]. The
//! vocabulary blocks follow `--tpsp` as the collectives do: w304 (tp 4,
//! `--tpsp`) writes the whole d·V embedding gradient on every rank. The
//! attention kernel is fused (its outputs are token × width), so no
//! sequence² term: with one, the 23 MoE training graphs put 54 % of a
//! d 8192 stage's bytes there (w072, 51 % too many).
//!
//! **Messages.** Each pipeline message carries one micro-batch's
//! activations; the output head's place adds a message each way between the
//! last stage and the head's stage ([`MESSAGE_TERMS`]), which is why 15
//! corpus workloads without mixed precision send twice per micro-batch.

use serde::{Deserialize, Serialize};

use super::corpus::{GraphFamily, ModelType, WorkloadConfig};
use super::error::Result;
use super::size_prior::{cholesky_solve, median};
use super::vocab::CommKind;

/// Names of the work terms, in [`StageWork::terms`] order. `L` = layers in
/// the stage, `tok` = tokens a rank processes per step (batch · seq / (dp ·
/// sp)), `d` = model width, `kv` = d · kvhead / head, `ff` = dff, `k` and `E`
/// = active and total experts (1 for dense models), `V` = vocabulary,
/// `heads` = attention heads, `nv` = vocabulary blocks on the stage (input
/// embedding on stage 0, output head as in the module doc: 0, 1 or 2);
/// `tp` and `ep` are the degrees the graph sees (non-MoE models fold `ep`
/// into `tp`).
pub const WORK_TERMS: [&str; 15] = [
    "L·tok·d²/tp",
    "L·tok·d·kv/tp",
    "L·tok·d·ff·k/(tp·ep²)",
    "L·tok·seq·d/tp",
    "nv·tok·d·V/tp",
    "L·tok·d",
    "L·tok·seq·heads/tp",
    "L·d²/tp",
    "L·d·kv/tp",
    "L·d·ff·E/(tp·ep)",
    "nv·d·V/tp",
    "nv·tok·V/tp",
    "L·tok·d·E (MoE router)",
    "L·tok",
    "L·d",
];

/// Names of the compute-bytes terms, in [`StageWork::bytes`] order: the
/// output elements of a stage's compute nodes (STG writes each node's output
/// element count as its `tensor_size`; see the module docs), with the
/// symbols of [`WORK_TERMS`], `m` = micro-batches and `tpsp` = 1 with
/// `--tpsp` on (`!` = off).
pub const BYTE_TERMS: [&str; 20] = [
    "L·tok·d/tp",
    "L·tok·d",
    "L·tok·kv/tp",
    "L·tok·ff·k/(tp·ep)",
    "L·tok·ff·k/(tp·ep²)",
    "L·d²/tp",
    "L·d·kv/tp",
    "L·d·ff·E/(tp·ep)",
    "m·L·d²/tp",
    "m·L·d·kv/tp",
    "m·L·d·ff·E/(tp·ep)",
    "tpsp·nv·d·V",
    "!tpsp·nv·d·V/tp",
    "tpsp·m·nv·d·V",
    "!tpsp·m·nv·d·V/tp",
    "nv·tok·V/tp",
    "nv·tok·d",
    "L·tok·E (MoE router)",
    "L·tok·d·k/(tp·ep) (MoE dispatch)",
    "L·tok",
];

/// Names of the pipeline-message terms, in [`StageWork::messages`] order:
/// the activation bytes a stage sends per step if each message carried one
/// micro-batch's `tok · d` elements, split over `tp` when `--tpsp` is on.
/// `m` = messages per micro-batch: one to each neighbouring stage, and one
/// more on the last stage and on the output head's stage when the head is
/// not on the last stage (the last stage's output goes to the head, the
/// loss gradient comes back).
pub const MESSAGE_TERMS: [&str; 1] = ["m·tok·d/tp"];

/// How many weight products [`COLLECTIVE_TERMS`] varies (see there).
const WEIGHT_PRODUCTS: usize = 6;
/// How many activation products [`COLLECTIVE_TERMS`] has.
const ACTIVATION_PRODUCTS: usize = 12;

/// Names of the collective terms, in [`StageWork::collectives`] order.
/// `W` = one transformer layer's weights as the graph family builds them
/// (gpt: 4d² + 2d·ff; llama: 2d² + 2d·kv + 3d·ff; moe: 2d² + 2d·kv +
/// 2d·ff·E/ep), `kv'` = the key/value width the family uses (d for gpt),
/// `m` = micro-batches, `g` = the group size of the communicator kind the
/// terms are for, `ws` / `tpsp` = 1 with `--weight_sharded` / `--tpsp` on
/// (`!` = off). The weight products (gradients all-reduced or
/// reduce-scattered, sharded weights gathered; the vocabulary blocks are
/// split over `tp` only without `--tpsp`) come as `!ws`, `ws` and `ws/g`;
/// the dense activation products (tensor- and sequence-parallel traffic)
/// with `tpsp` and with `!tpsp`, and the MoE expert-traffic products once.
pub const COLLECTIVE_TERMS: [&str; 3 * WEIGHT_PRODUCTS + ACTIVATION_PRODUCTS] = [
    "!ws·L·W/tp",
    "!ws·m·L·W/tp",
    "!ws·L·d",
    "!ws·m·L·d",
    "!ws·tpsp·nv·d·V",
    "!ws·!tpsp·nv·d·V/tp",
    "ws·L·W/tp",
    "ws·m·L·W/tp",
    "ws·L·d",
    "ws·m·L·d",
    "ws·tpsp·nv·d·V",
    "ws·!tpsp·nv·d·V/tp",
    "ws·L·W/(tp·g)",
    "ws·m·L·W/(tp·g)",
    "ws·L·d/g",
    "ws·m·L·d/g",
    "ws·tpsp·nv·d·V/g",
    "ws·!tpsp·nv·d·V/(tp·g)",
    "tpsp·L·tok·d",
    "tpsp·L·tok·d/tp",
    "tpsp·L·tok·kv'",
    "tpsp·L·tok·kv'/tp",
    "!tpsp·L·tok·d",
    "!tpsp·L·tok·d/tp",
    "!tpsp·L·tok·kv'",
    "!tpsp·L·tok·kv'/tp",
    "L·tok·d/(tp·ep) (MoE)",
    "L·tok·d·k/(tp·ep) (MoE)",
    "L·tok·d·k/(tp·ep²) (MoE)",
    "L·tok·E/(tp·ep) (MoE)",
];

/// How many count products [`COLLECTIVE_COUNT_TERMS`] varies.
const COUNT_PRODUCTS: usize = 8;
/// How many of them also come with activation recomputation.
const RECOMPUTED_COUNT_PRODUCTS: usize = 6;

/// Names of the collective-count terms, in [`StageWork::collective_counts`]
/// order: how many collectives of a group a stage has, from `L` layers, `m`
/// micro-batches, `nv` vocabulary blocks and `E/ep` local experts (MoE),
/// once with `--tpsp` and unsharded weights, once with `--tpsp` and sharded
/// ones, once without `--tpsp`, and the first six again with activation
/// recomputation (`ar`), which repeats forward collectives in the backward
/// pass.
pub const COLLECTIVE_COUNT_TERMS: [&str; 3 * COUNT_PRODUCTS + RECOMPUTED_COUNT_PRODUCTS] = [
    "tpsp·!ws·1",
    "tpsp·!ws·L",
    "tpsp·!ws·m·L",
    "tpsp·!ws·nv",
    "tpsp·!ws·m",
    "tpsp·!ws·m·nv",
    "tpsp·!ws·m·L·E/ep (MoE)",
    "tpsp·!ws·L·E/ep (MoE)",
    "tpsp·ws·1",
    "tpsp·ws·L",
    "tpsp·ws·m·L",
    "tpsp·ws·nv",
    "tpsp·ws·m",
    "tpsp·ws·m·nv",
    "tpsp·ws·m·L·E/ep (MoE)",
    "tpsp·ws·L·E/ep (MoE)",
    "!tpsp·1",
    "!tpsp·L",
    "!tpsp·m·L",
    "!tpsp·nv",
    "!tpsp·m",
    "!tpsp·m·nv",
    "!tpsp·m·L·E/ep (MoE)",
    "!tpsp·L·E/ep (MoE)",
    "ar·1",
    "ar·L",
    "ar·m·L",
    "ar·nv",
    "ar·m",
    "ar·m·nv",
];

/// The communicator kinds a stage's collectives run over, in
/// [`StageWork::collectives`] order.
pub const COLLECTIVE_KINDS: [CommKind; 4] = [CommKind::Data, CommKind::Tensor, CommKind::Sequence, CommKind::Expert];

/// Which of a stage's term vectors a [`WorkFit`] combines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermSet {
    /// [`WORK_TERMS`]: the arithmetic (`num_ops`).
    #[default]
    Compute,
    /// [`MESSAGE_TERMS`]: the pipeline messages (send `comm_size`).
    Messages,
    /// [`BYTE_TERMS`]: the compute nodes' outputs (`tensor_size`).
    ComputeBytes,
    /// [`COLLECTIVE_TERMS`] for data-parallel collectives.
    DataCollectives,
    /// [`COLLECTIVE_TERMS`] for tensor-parallel collectives.
    TensorCollectives,
    /// [`COLLECTIVE_TERMS`] for sequence-parallel collectives.
    SequenceCollectives,
    /// [`COLLECTIVE_TERMS`] for expert-parallel collectives.
    ExpertCollectives,
    /// [`COLLECTIVE_COUNT_TERMS`]: how many collectives of a group.
    CollectiveCounts,
}

impl TermSet {
    /// How many terms the set has.
    pub fn term_count(self) -> usize {
        match self {
            TermSet::Compute => WORK_TERMS.len(),
            TermSet::Messages => MESSAGE_TERMS.len(),
            TermSet::ComputeBytes => BYTE_TERMS.len(),
            TermSet::CollectiveCounts => COLLECTIVE_COUNT_TERMS.len(),
            _ => COLLECTIVE_TERMS.len(),
        }
    }
}

/// The analytic work terms of one rank's pipeline stage.
#[derive(Clone, Debug, PartialEq)]
pub struct StageWork {
    /// The graph STG builds, which decides the coefficients.
    pub family: GraphFamily,
    /// One value per [`WORK_TERMS`] entry.
    pub terms: [f64; WORK_TERMS.len()],
    /// One value per [`MESSAGE_TERMS`] entry.
    pub messages: [f64; MESSAGE_TERMS.len()],
    /// One value per [`BYTE_TERMS`] entry.
    pub bytes: [f64; BYTE_TERMS.len()],
    /// Per [`COLLECTIVE_KINDS`] entry, one value per [`COLLECTIVE_TERMS`]
    /// entry (`g` is that kind's group size).
    pub collectives: [[f64; COLLECTIVE_TERMS.len()]; COLLECTIVE_KINDS.len()],
    /// One value per [`COLLECTIVE_COUNT_TERMS`] entry.
    pub collective_counts: [f64; COLLECTIVE_COUNT_TERMS.len()],
    /// Per [`COLLECTIVE_KINDS`] entry, the ranks of the stage's group of
    /// that kind (1: no such communicator).
    pub group_sizes: [u32; COLLECTIVE_KINDS.len()],
    /// Whether the weights are sharded over the data-parallel ranks
    /// (`--weight_sharded`).
    pub weight_sharded: bool,
}

/// The stage that holds the output head (see the module doc).
pub fn output_head_stage(cfg: &WorkloadConfig) -> u32 {
    let f = &cfg.flags;
    let pp = f.pp.max(1);
    if f.graph_family() == GraphFamily::Gpt && !f.mixed_precision {
        (f.num_stacks.max(1) - 1) % pp
    } else {
        pp - 1
    }
}

impl StageWork {
    /// The terms of `rank`'s stage in workload `cfg`.
    pub fn of(cfg: &WorkloadConfig, rank: u32) -> Result<StageWork> {
        let f = &cfg.flags;
        let layout = f.layout()?;
        let stage = layout.stage(rank);
        let layers = cfg.layers_in_stage(stage, "work terms")?;
        let moe = f.model_type == ModelType::Moe;
        let x = |v: u32| v.max(1) as f64;
        let (l, d, ff, seq, v, heads) = (x(layers), x(f.dmodel), x(f.dff), x(f.seq), x(f.dvocal), x(f.head));
        let (tp, ep) = (x(layout.tp), x(layout.ep));
        let tok = x(f.batch) * seq / (x(layout.dp) * x(layout.sp));
        let kv = d * x(f.kvhead) / heads;
        let (k, e) = if moe { (x(f.kexperts), x(f.experts)) } else { (1.0, 1.0) };
        let head = output_head_stage(cfg);
        let last = layout.pp.max(1) - 1;
        let nv = f64::from(u8::from(stage == 0) + u8::from(stage == head));
        let neighbours = u8::from(stage > 0) + u8::from(stage < last);
        let to_head = if head == last { 0 } else { u8::from(stage == last) + u8::from(stage == head) };
        let message_tp = if f.tpsp { tp } else { 1.0 };
        let terms = [
            l * tok * d * d / tp,
            l * tok * d * kv / tp,
            l * tok * d * ff * k / (tp * ep * ep),
            l * tok * seq * d / tp,
            nv * tok * d * v / tp,
            l * tok * d,
            l * tok * seq * heads / tp,
            l * d * d / tp,
            l * d * kv / tp,
            l * d * ff * e / (tp * ep),
            nv * d * v / tp,
            nv * tok * v / tp,
            if moe { l * tok * d * e } else { 0.0 },
            l * tok,
            l * d,
        ];
        let messages = [f64::from(neighbours + to_head) * tok * d / message_tp];
        let m = x(f.n_microbatches());
        let (ws, tpsp) = (f64::from(u8::from(f.weight_sharded)), f64::from(u8::from(f.tpsp)));
        let bytes = [
            l * tok * d / tp,
            l * tok * d,
            l * tok * kv / tp,
            l * tok * ff * k / (tp * ep),
            l * tok * ff * k / (tp * ep * ep),
            l * d * d / tp,
            l * d * kv / tp,
            l * d * ff * e / (tp * ep),
            m * l * d * d / tp,
            m * l * d * kv / tp,
            m * l * d * ff * e / (tp * ep),
            tpsp * nv * d * v,
            (1.0 - tpsp) * nv * d * v / tp,
            tpsp * m * nv * d * v,
            (1.0 - tpsp) * m * nv * d * v / tp,
            nv * tok * v / tp,
            nv * tok * d,
            if moe { l * tok * e } else { 0.0 },
            if moe { l * tok * d * k / (tp * ep) } else { 0.0 },
            l * tok,
        ];
        let kv_used = if f.graph_family() == GraphFamily::Gpt { d } else { kv };
        let layer_weights = match f.graph_family() {
            GraphFamily::Gpt => 4.0 * d * d + 2.0 * d * ff,
            GraphFamily::Llama => 2.0 * d * d + 2.0 * d * kv + 3.0 * d * ff,
            GraphFamily::Moe => 2.0 * d * d + 2.0 * d * kv + 2.0 * d * ff * e / ep,
        };
        let vocab = if f.tpsp { nv * d * v } else { 0.0 };
        let vocab_split = if f.tpsp { 0.0 } else { nv * d * v / tp };
        let weights = [l * layer_weights / tp, m * l * layer_weights / tp, l * d, m * l * d, vocab, vocab_split];
        let group_sizes = COLLECTIVE_KINDS.map(|kind| match kind {
            CommKind::Data => layout.dp,
            CommKind::Tensor => layout.tp,
            CommKind::Sequence => layout.sp,
            _ => layout.ep,
        });
        let collectives = group_sizes.map(|g| {
            let g = x(g);
            let mut c = [0.0; COLLECTIVE_TERMS.len()];
            let (w, a) = c.split_at_mut(3 * WEIGHT_PRODUCTS);
            for (i, &t) in weights.iter().enumerate() {
                w[i] = (1.0 - ws) * t;
                w[WEIGHT_PRODUCTS + i] = ws * t;
                w[2 * WEIGHT_PRODUCTS + i] = ws * t / g;
            }
            let moe = if moe { 1.0 } else { 0.0 };
            let dense = [l * tok * d, l * tok * d / tp, l * tok * kv_used, l * tok * kv_used / tp];
            let (with, without) = a.split_at_mut(dense.len());
            for (i, &t) in dense.iter().enumerate() {
                with[i] = tpsp * t;
                without[i] = (1.0 - tpsp) * t;
            }
            without[dense.len()..].copy_from_slice(&[
                moe * l * tok * d / (tp * ep),
                moe * l * tok * d * k / (tp * ep),
                moe * l * tok * d * k / (tp * ep * ep),
                moe * l * tok * e / (tp * ep),
            ]);
            c
        });
        let local_experts = if moe { e / ep } else { 0.0 };
        let counts = [1.0, l, m * l, nv, m, m * nv, m * l * local_experts, l * local_experts];
        let recompute = f64::from(u8::from(f.activation_recompute));
        let mut collective_counts = [0.0; COLLECTIVE_COUNT_TERMS.len()];
        for (i, &c) in counts.iter().enumerate() {
            collective_counts[i] = tpsp * (1.0 - ws) * c;
            collective_counts[COUNT_PRODUCTS + i] = tpsp * ws * c;
            collective_counts[2 * COUNT_PRODUCTS + i] = (1.0 - tpsp) * c;
            if i < RECOMPUTED_COUNT_PRODUCTS {
                collective_counts[3 * COUNT_PRODUCTS + i] = recompute * c;
            }
        }
        Ok(StageWork {
            family: f.graph_family(),
            collective_counts,
            terms,
            messages,
            bytes,
            collectives,
            group_sizes,
            weight_sharded: f.weight_sharded,
        })
    }

    /// The term vector of `set`.
    pub fn terms_of(&self, set: TermSet) -> &[f64] {
        match set {
            TermSet::Compute => &self.terms,
            TermSet::Messages => &self.messages,
            TermSet::ComputeBytes => &self.bytes,
            TermSet::DataCollectives => &self.collectives[0],
            TermSet::TensorCollectives => &self.collectives[1],
            TermSet::SequenceCollectives => &self.collectives[2],
            TermSet::ExpertCollectives => &self.collectives[3],
            TermSet::CollectiveCounts => &self.collective_counts,
        }
    }
}

/// Non-negative coefficients of one term set for one graph family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyFit {
    /// The family (`gpt`, `llama` or `moe`).
    pub family: String,
    /// One coefficient per term of the set, all ≥ 0.
    pub coefficients: Vec<f64>,
    /// Median of `|predicted / actual − 1|` over the training graphs.
    pub train_median_rel_error: f64,
    /// Per term, whether some training graph of the family had it non-zero
    /// (absent in checkpoints made before it existed: all seen). A stage
    /// with a term the family never saw (a MoE model with sharded weights
    /// where the training split has none) takes the pooled fit instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen_terms: Vec<bool>,
}

impl FamilyFit {
    /// Whether the fit saw every term `terms` has non-zero.
    fn covers(&self, terms: &[f64]) -> bool {
        self.seen_terms.is_empty() || terms.iter().zip(&self.seen_terms).all(|(&t, &seen)| seen || t == 0.0)
    }
}

/// A total (e.g. `num_ops`) as a non-negative combination of one set of a
/// stage's terms, per graph family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkFit {
    /// The terms combined.
    #[serde(default)]
    pub terms: TermSet,
    /// One fit per family the training split has enough graphs of
    /// ([`MIN_FAMILY_GRAPHS`]).
    pub families: Vec<FamilyFit>,
    /// One fit over every family's graphs (family `all`), for the families
    /// without their own (absent in checkpoints made before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pooled: Option<FamilyFit>,
}

/// The fewest graphs with a positive total a family needs for a collective
/// fit of its own: with fewer (two MoE workloads with a data-parallel
/// group, for instance) the non-negative fit picks whichever terms those
/// graphs happen to share, and the pooled fit generalizes better. (The
/// `num_ops` and message fits, whose terms each family has, need one.)
pub const MIN_FAMILY_GRAPHS: usize = 8;

/// The family name of [`WorkFit::pooled`].
pub const POOLED: &str = "all";

fn family_name(family: GraphFamily) -> &'static str {
    match family {
        GraphFamily::Gpt => "gpt",
        GraphFamily::Llama => "llama",
        GraphFamily::Moe => "moe",
    }
}

impl WorkFit {
    /// Fits every family on its graphs with a positive total (minimizing the
    /// squared relative error); `None` when no family has one.
    pub fn fit(set: TermSet, works: &[StageWork], totals: &[f64]) -> Option<WorkFit> {
        let fit_on = |family: Option<GraphFamily>, min: usize| {
            let (rows, targets): (Vec<&[f64]>, Vec<f64>) = works
                .iter()
                .zip(totals)
                .filter(|(w, &t)| family.is_none_or(|f| w.family == f) && t > 0.0)
                .map(|(w, &t)| (w.terms_of(set), t))
                .unzip();
            if rows.len() < min.max(1) {
                return None;
            }
            // Rows divided by their target: a fit to 1 everywhere is a
            // fit of the relative error.
            let scaled: Vec<Vec<f64>> =
                rows.iter().zip(&targets).map(|(r, &t)| r.iter().map(|v| v / t).collect()).collect();
            let coefficients = nnls(&scaled, &vec![1.0; scaled.len()]);
            let rel = |r: &[f64], t: f64| (dot(&coefficients, r) / t - 1.0).abs();
            let train_median_rel_error = median(rows.iter().zip(&targets).map(|(r, &t)| rel(r, t)).collect());
            let family = family.map_or(POOLED, family_name).to_string();
            let seen_terms = (0..set.term_count()).map(|j| rows.iter().any(|r| r[j] != 0.0)).collect();
            Some(FamilyFit { family, coefficients, train_median_rel_error, seen_terms })
        };
        // The compute and message fits keep a family's own fit from one
        // graph on, as before the pooled fit existed.
        let min = match set {
            TermSet::Compute | TermSet::Messages => 1,
            _ => MIN_FAMILY_GRAPHS,
        };
        let families: Vec<FamilyFit> =
            GraphFamily::ALL.into_iter().filter_map(|family| fit_on(Some(family), min)).collect();
        let pooled = fit_on(None, 1);
        pooled.is_some().then_some(WorkFit { terms: set, families, pooled })
    }

    /// What is wrong with a fit read from a checkpoint (unknown or repeated
    /// family, wrong number of coefficients, negative or non-finite ones),
    /// if anything.
    pub fn problem(&self) -> Option<String> {
        for (i, f) in self.families.iter().chain(&self.pooled).enumerate() {
            if i == self.families.len() {
                if f.family != POOLED {
                    return Some(format!("the pooled fit is named {:?}, expected {POOLED:?}", f.family));
                }
            } else if !GraphFamily::ALL.iter().any(|&g| family_name(g) == f.family) {
                return Some(format!("unknown graph family {:?} (expected gpt, llama or moe)", f.family));
            }
            if self.families[..i].iter().any(|g| g.family == f.family) {
                return Some(format!("graph family {:?} fitted twice", f.family));
            }
            if f.coefficients.len() != self.terms.term_count() {
                let n = f.coefficients.len();
                return Some(format!("{}: {n} coefficients, expected {}", f.family, self.terms.term_count()));
            }
            if !f.seen_terms.is_empty() && f.seen_terms.len() != self.terms.term_count() {
                let n = f.seen_terms.len();
                return Some(format!("{}: {n} seen_terms, expected {}", f.family, self.terms.term_count()));
            }
            if f.coefficients.iter().any(|c| !(c.is_finite() && *c >= 0.0)) {
                return Some(format!("{}: coefficients must be finite and non-negative", f.family));
            }
        }
        None
    }

    /// The predicted total of a stage: from its family's fit where that saw
    /// every term the stage has, otherwise from the pooled one; `None` with
    /// neither.
    pub fn predict(&self, work: &StageWork) -> Option<f64> {
        let name = family_name(work.family);
        let terms = work.terms_of(self.terms);
        let own = self.families.iter().find(|f| f.family == name && (f.covers(terms) || self.pooled.is_none()));
        let fit = own.or(self.pooled.as_ref())?;
        Some(dot(&fit.coefficients, work.terms_of(self.terms)))
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Non-negative least squares, `min ‖A x − b‖` over `x ≥ 0` (Lawson and
/// Hanson's active-set method). Columns are scaled to unit norm first, so
/// terms of very different magnitudes are treated alike; all-zero columns
/// get 0.
fn nnls(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = a.first().map_or(0, Vec::len);
    let norms: Vec<f64> = (0..n).map(|j| a.iter().map(|r| r[j] * r[j]).sum::<f64>().sqrt()).collect();
    let scaled: Vec<Vec<f64>> =
        a.iter().map(|r| r.iter().zip(&norms).map(|(v, &s)| if s > 0.0 { v / s } else { 0.0 }).collect()).collect();
    let mut x = vec![0.0; n];
    let mut passive = vec![false; n];
    // Gradient of −½‖Ax − b‖²: Aᵀ(b − Ax).
    let gradient = |x: &[f64]| -> Vec<f64> {
        let mut g = vec![0.0; n];
        for (row, &bi) in scaled.iter().zip(b) {
            let residual = bi - dot(row, x);
            for (gj, v) in g.iter_mut().zip(row) {
                *gj += v * residual;
            }
        }
        g
    };
    // Least squares on the passive columns (normal equations, tiny ridge).
    let solve = |passive: &[bool]| -> Vec<f64> {
        let idx: Vec<usize> = (0..n).filter(|&j| passive[j]).collect();
        let k = idx.len();
        let mut ata = vec![0.0; k * k];
        let mut atb = vec![0.0; k];
        for (row, &bi) in scaled.iter().zip(b) {
            for (p, &jp) in idx.iter().enumerate() {
                atb[p] += row[jp] * bi;
                for (q, &jq) in idx.iter().enumerate() {
                    ata[p * k + q] += row[jp] * row[jq];
                }
            }
        }
        for p in 0..k {
            ata[p * k + p] += 1e-12;
        }
        let z = cholesky_solve(&mut ata, &mut atb, k);
        let mut s = vec![0.0; n];
        for (&j, zj) in idx.iter().zip(z) {
            s[j] = zj;
        }
        s
    };
    for _ in 0..3 * n.max(1) {
        let w = gradient(&x);
        let Some(j) =
            (0..n).filter(|&j| !passive[j] && norms[j] > 0.0 && w[j] > 1e-12).max_by(|&p, &q| w[p].total_cmp(&w[q]))
        else {
            break;
        };
        passive[j] = true;
        loop {
            let s = solve(&passive);
            if (0..n).filter(|&j| passive[j]).all(|j| s[j] > 0.0) {
                x = s;
                break;
            }
            // Step towards s until the first passive coefficient hits 0; that
            // one leaves the passive set exactly (not by a rounding-prone
            // comparison), so this loop ends within n rounds.
            let Some((first, alpha)) = (0..n)
                .filter(|&j| passive[j] && s[j] <= 0.0)
                .map(|j| (j, x[j] / (x[j] - s[j])))
                .min_by(|a, b| a.1.total_cmp(&b.1))
            else {
                break;
            };
            for j in 0..n {
                x[j] += alpha * (s[j] - x[j]);
                if passive[j] && (j == first || x[j] <= 0.0) {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
    }
    x.iter().zip(&norms).map(|(v, &s)| if s > 0.0 { v / s } else { 0.0 }).collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::dataset::corpus::{Corpus, Split};

    /// NNLS recovers non-negative coefficients exactly and clips a negative
    /// one to 0.
    #[test]
    fn nnls_recovers_non_negative_laws() {
        let a: Vec<Vec<f64>> = (1..=6).map(|i| vec![i as f64, (i * i) as f64, 1.0]).collect();
        let b: Vec<f64> = a.iter().map(|r| 2.0 * r[0] + 0.5 * r[1]).collect();
        let x = nnls(&a, &b);
        assert!((x[0] - 2.0).abs() < 1e-6 && (x[1] - 0.5).abs() < 1e-6 && x[2].abs() < 1e-6, "{x:?}");
        // b = r0 − r2 wants a negative weight on the constant column.
        let b: Vec<f64> = a.iter().map(|r| r[0] - 3.0).collect();
        let x = nnls(&a, &b);
        assert!(x.iter().all(|&v| v >= 0.0), "{x:?}");
        assert!(nnls(&[], &[]).is_empty());
    }

    /// A family's own fit serves the stages whose terms it saw; a stage
    /// with a term it never saw, or of a family with fewer than
    /// [`MIN_FAMILY_GRAPHS`] graphs, takes the pooled fit.
    #[test]
    fn a_family_takes_the_pooled_fit_for_what_it_never_saw() {
        let base = StageWork::of(&config("w000_llama_mp_L4_d1024_dp1tp2pp2sp1"), 0).unwrap();
        let work = |family, t0: f64, t1: f64| {
            let mut w = StageWork { family, ..base.clone() };
            w.collective_counts = [0.0; COLLECTIVE_COUNT_TERMS.len()];
            w.collective_counts[..2].copy_from_slice(&[t0, t1]);
            w
        };
        // Llama graphs: 2·t0 (t1 always 0); gpt graphs: 2·t0 + 5·t1; three MoE graphs.
        let mut works = Vec::new();
        let mut totals = Vec::new();
        for k in 1..=10 {
            let k = f64::from(k);
            works.extend([work(GraphFamily::Llama, k, 0.0), work(GraphFamily::Gpt, k, k + 1.0)]);
            totals.extend([2.0 * k, 2.0 * k + 5.0 * (k + 1.0)]);
        }
        for k in 1..=3 {
            works.push(work(GraphFamily::Moe, f64::from(k), 0.0));
            totals.push(2.0 * f64::from(k));
        }
        let fit = WorkFit::fit(TermSet::CollectiveCounts, &works, &totals).unwrap();
        assert_eq!(fit.families.iter().map(|f| f.family.as_str()).collect::<Vec<_>>(), ["gpt", "llama"]);
        assert!(fit.problem().is_none());
        let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-6);
        assert!(near(fit.predict(&work(GraphFamily::Llama, 1.0, 0.0)), 2.0));
        // Llama never had t1: the pooled fit (all graphs) knows it.
        let pooled = fit.pooled.as_ref().unwrap();
        let with_t1 = work(GraphFamily::Llama, 1.0, 1.0);
        let want = dot(&pooled.coefficients, with_t1.terms_of(TermSet::CollectiveCounts));
        assert!(near(fit.predict(&with_t1), want) && want > 2.0, "{want}");
        assert!(near(fit.predict(&work(GraphFamily::Moe, 1.0, 1.0)), want));
        // Fits from before the seen terms and the pooled fit: the family's own.
        let old = WorkFit {
            pooled: None,
            families: fit.families.iter().cloned().map(|f| FamilyFit { seen_terms: Vec::new(), ..f }).collect(),
            ..fit
        };
        assert!(near(old.predict(&with_t1), 2.0));
        assert!(old.predict(&work(GraphFamily::Moe, 1.0, 0.0)).is_none());
    }

    fn config(id: &str) -> WorkloadConfig {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/corpus/workloads").join(id);
        WorkloadConfig::read(&dir.join("config.json")).unwrap()
    }

    /// The output head's stage, read off the real per-stage `num_ops`
    /// totals STG recorded: the stage with the head does more than its
    /// layer count explains.
    #[test]
    fn the_output_head_sits_where_the_real_traces_put_it() {
        for (id, head) in [
            ("w111_dense_L13_d512_dp1tp1pp2sp1", 0),
            ("w094_llama_L10_d1024_dp1tp1pp4sp1", 1),
            ("w107_llama_L11_d6144_dp1tp2pp4sp1", 2),
            ("w000_llama_mp_L4_d1024_dp1tp2pp2sp1", 1),
            ("w197_gpt_mp_L15_d768_dp1tp1pp2sp1", 1),
            ("w189_llama_L14_d2048_dp1tp1pp2sp1", 1),
        ] {
            assert_eq!(output_head_stage(&config(id)), head, "{id}");
        }
    }

    /// Fitted on the corpus's train split, the work terms predict every
    /// validation stage's `num_ops` within 1 % (the magnitude prior's ridge
    /// regression missed w075 by 87 %), the message terms every pipelined
    /// stage's send bytes within 5 % (the ridge regression: 22 % median
    /// error), and the output-size terms every stage's compute
    /// `tensor_size` within 15 % and within 3 % at the median (the ridge
    /// regression: 12.7 % median error).
    #[test]
    fn work_terms_predict_held_out_num_ops_and_sends() {
        use crate::dataset::magnitude_prior::{MagnitudeTotal, Totals};
        let corpus = Corpus::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/corpus")).unwrap();
        let read = |split| {
            let mut works = Vec::new();
            let mut totals: Vec<Totals> = Vec::new();
            for r in corpus.ranks(split, true) {
                let trace = r.read_trace().unwrap();
                works.push(StageWork::of(&r.workload.config, r.rank).unwrap());
                totals.push(MagnitudeTotal::all_of_trace(&trace, &r.path).unwrap());
            }
            (works, totals)
        };
        let (tw, tt) = read(Split::Train);
        let (vw, vt) = read(Split::Validation);
        for (set, column, bound, median_bound) in [
            (TermSet::Compute, 0, 0.01, 0.01),
            (TermSet::Messages, 3, 0.05, 0.05),
            (TermSet::ComputeBytes, 1, 0.15, 0.03),
        ] {
            let fit = WorkFit::fit(set, &tw, &tt.iter().map(|t| t[column]).collect::<Vec<_>>()).unwrap();
            assert_eq!(fit.families.len(), 3);
            let mut errors = Vec::new();
            for (w, t) in vw.iter().zip(&vt).filter(|(_, t)| t[column] > 0.0) {
                let predicted = fit.predict(w).unwrap();
                let error = (predicted / t[column] - 1.0).abs();
                assert!(error < bound, "{set:?} {:?}: {predicted} for {t:?}", w.family);
                errors.push(error);
            }
            assert!(errors.len() > 30, "{set:?}: {} stages", errors.len());
            assert!(median(errors.clone()) < median_bound, "{set:?}: median error {}", median(errors));
        }
    }
}
