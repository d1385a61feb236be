//! `strata synth eval`: how close a trained corpus model's workloads come to
//! held-out real ones.
//!
//! For every workload of a corpus split (validation by default), the model
//! generates `count` what-if workloads with that workload's own generator
//! flags (its `config.json` `flags`, hence its rank count), and three things
//! are measured:
//!
//! 1. **Validity** of every generated workload: every rank file decodes, is
//!    acyclic with no dangling or duplicate ids, has the attributes its node
//!    types need (the checks of [`simulator::chakra::validate`]), and the
//!    workload simulates to completion on the corpus reference system with
//!    its generated comm groups.
//! 2. **Structure**: the squared maximum mean discrepancy (MMD²) between the
//!    generated and the real rank graphs of four per-graph distributions:
//!    in-degree, out-degree, layer width (nodes per synchronous Kahn layer,
//!    layerdag.md §1.2) and node type (Chakra `NodeType`). One graph per
//!    pipeline stage is used on both sides: the ranks of a stage are
//!    structurally identical (corpus NOTES.md), so more would only repeat it.
//!    See [`mmd`] for the kernel.
//! 3. **Timing**: the simulated iteration time (makespan: the latest rank
//!    finish) of the real and of the generated workload on the reference
//!    system, and the relative error `|gen - real| / real`, summarized by
//!    its median and 90th percentile over workloads ([`percentile`]). Where
//!    the time went is compared too: the GPU compute time and the exposed
//!    communication time, each summed over ranks ([`SimTiming`]), with their
//!    relative errors summarized the same way and how many workloads came
//!    out longer than the real one in each.
//!
//! The reference system is the one of the corpus's `astra_sim_reference.csv`
//! (corpus NOTES.md): `reference-system/system.json` and `memory.json`, and a
//! one-dimensional Switch of R NPUs (`network.yml.template` with `[ R ]`
//! replaced). On it the simulator reproduces ASTRA-sim's times exactly.
//! Two corpus cases need care:
//! - **one-rank workloads**: a dimension needs two NPUs, so the rank's trace
//!   is run as both ranks of a 2-NPU switch. Such traces have no
//!   communication (their groups have one member; generation turns those
//!   collectives into compute), so the copy runs independently and the
//!   makespan is the rank's own finish time. ASTRA-sim's table skips them.
//! - **incomplete workloads** (`complete: false`: ranks pruned to save space)
//!   cannot be simulated as they are and have no reference time, so they have
//!   no timing figure; validity and structure are still measured.
//!
//! With `baseline`, the same four MMDs are also computed between the real
//! graphs of the evaluated workloads and those of the other split: the
//! distance between two sets of real traces, which gives the generated
//! figures a scale.
//!
//! Everything is deterministic for a seed (workload `i` is generated with
//! seed `seed + i`) on the CPU.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use simulator::chakra::validate::{validate_trace, FindingKind, Severity};
use simulator::run::{simulate, RunRequest};
use tch::Device;

use crate::dataset::corpus::{Corpus, ModelType, Split, StgFlags, Workload};
use crate::dataset::layout::{CommGroups, ParallelLayout, RankContext};
use crate::dataset::tokenize::tokenize;
use crate::dataset::vocab::EtFeature;
use crate::dataset::{Dag, DagError, DatasetError};
use crate::generate::{generate, GenerateError, GenerateSpec};

/// σ of the Gaussian total-variation kernel of [`mmd`] (GRAN's evaluation default).
pub const MMD_SIGMA: f64 = 1.0;

/// What can stop an evaluation (a bad generated workload does not: it is
/// reported in [`SampleEval::validity`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// A request that cannot be run (count 0, no workload to evaluate).
    #[error("{0}")]
    Input(String),
    /// The corpus cannot be read.
    #[error("corpus {path}: {source}")]
    Corpus {
        /// The corpus folder.
        path: PathBuf,
        /// What went wrong.
        source: DatasetError,
    },
    /// A file of the reference system is missing or unusable.
    #[error("{path}: {what}")]
    Reference {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected.
        what: String,
    },
    /// A file of the reference system does not parse or makes no sense
    /// (the simulator's error names the file and key).
    #[error("reference system: {0}")]
    ReferenceConfig(#[source] simulator::config::error::ConfigError),
    /// A real rank graph cannot be read or tokenized.
    #[error("real workload {id}: {source}")]
    Real {
        /// The workload id.
        id: String,
        /// What went wrong.
        source: DatasetError,
    },
    /// A real workload's traces or comm groups cannot be simulated (a
    /// corrupt or truncated file): the corpus is damaged.
    #[error("real workload {id}: {what}")]
    RealSimulation {
        /// The workload id.
        id: String,
        /// The simulator's error.
        what: String,
    },
    /// Generation failed (a bad checkpoint, flags the generator rejects).
    #[error("generating for {id}: {source}")]
    Generate {
        /// The workload id the generation was for.
        id: String,
        /// What went wrong.
        source: GenerateError,
    },
    /// A working file could not be written.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Result of this module.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// One evaluation request.
#[derive(Clone, Debug)]
pub struct EvalSpec {
    /// The trained model folder (`config.json` + `weights.safetensors`).
    pub model: PathBuf,
    /// The corpus folder (`SPLIT.txt`, `workloads/`, `reference-system/`).
    pub data: PathBuf,
    /// The split whose workloads are compared against.
    pub split: Split,
    /// Generated workloads per real workload (at least 1).
    pub count: usize,
    /// Seed of the sampler; workload `i` of the split uses `seed + i`.
    pub seed: u64,
    /// Evaluate only the first N workloads of the split.
    pub max_workloads: Option<usize>,
    /// Cap on nodes per generated stage graph (`None`: the model's own limits).
    pub max_nodes: Option<usize>,
    /// Sample without the checkpoint's size prior.
    pub ignore_size_prior: bool,
    /// Keep sampled magnitudes as drawn (no magnitude prior).
    pub ignore_magnitude_prior: bool,
    /// Where the model runs.
    pub device: Device,
    /// Keep the generated workloads (and networks) in this folder; `None`:
    /// a temporary folder, removed at the end.
    pub keep: Option<PathBuf>,
    /// Also compute the real-vs-real MMDs against the other split.
    pub baseline: bool,
    /// Reverse diffusion steps per layer when generating.
    pub steps: crate::sample::DenoisingSteps,
}

/// Progress of [`evaluate_with`], for a progress bar.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum EvalProgress {
    /// The corpus is open; this many workloads will be evaluated.
    Start {
        /// Workloads to evaluate.
        workloads: usize,
    },
    /// Workload `index` (0-based) is being evaluated.
    Workload {
        /// Its position.
        index: usize,
        /// Its id.
        id: String,
    },
    /// The baseline's real graphs are being read.
    Baseline,
    /// Generation warned: a checkpoint missing a prior (once per run), a
    /// workload's flags outside the training range (once per workload).
    Warning {
        /// The warning.
        message: String,
    },
}

/// The four structure MMDs (squared MMD, Gaussian TV kernel, see [`mmd`]).
/// `None` where one side has no graph.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StructureMmd {
    /// In-degree distributions.
    pub in_degree: Option<f64>,
    /// Out-degree distributions.
    pub out_degree: Option<f64>,
    /// Layer-width distributions (nodes per Kahn layer).
    pub layer_width: Option<f64>,
    /// Node-type distributions.
    pub node_type: Option<f64>,
}

/// The validity checks of one generated workload; `problems` says what failed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Validity {
    /// Every rank file decodes.
    pub decodes: bool,
    /// No cycle, dangling dependency or duplicate id in any rank file.
    pub acyclic: bool,
    /// Every node has the attributes its type needs, with usable values.
    pub attributes: bool,
    /// The workload simulates to completion on the reference system.
    pub simulates: bool,
    /// What failed, one line each (file, node, what).
    pub problems: Vec<String>,
}

impl Validity {
    /// Whether every check passed.
    pub fn valid(&self) -> bool {
        self.decodes && self.acyclic && self.attributes && self.simulates
    }
}

/// One generated workload.
#[derive(Clone, Debug, Serialize)]
pub struct SampleEval {
    /// Its prefix (`PREFIX.<rank>.et`, `PREFIX.json`); gone unless kept.
    pub prefix: PathBuf,
    /// Nodes of each stage's graph.
    pub nodes_per_stage: Vec<usize>,
    /// The validity checks.
    pub validity: Validity,
    /// Simulated makespan on the reference system, when it simulated.
    pub makespan_ns: Option<u64>,
    /// GPU compute time summed over ranks, when it simulated.
    pub compute_ns: Option<u64>,
    /// Exposed communication time summed over ranks, when it simulated.
    pub exposed_comm_ns: Option<u64>,
    /// `|makespan - real| / real`, when both are known.
    pub rel_error: Option<f64>,
}

/// One real workload and what was generated for it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkloadEval {
    /// The corpus id.
    pub id: String,
    /// Its rank count.
    pub ranks: u32,
    /// Pipeline stages.
    pub stages: u32,
    /// Nodes of each stage's real graph.
    pub real_nodes_per_stage: Vec<usize>,
    /// Simulated makespan of the real workload on the reference system.
    pub real_makespan_ns: Option<u64>,
    /// Its GPU compute time summed over ranks.
    pub real_compute_ns: Option<u64>,
    /// Its exposed communication time summed over ranks.
    pub real_exposed_comm_ns: Option<u64>,
    /// Why there is no real makespan, when there is none.
    pub real_note: Option<String>,
    /// The generated workloads.
    pub samples: Vec<SampleEval>,
    /// MMDs between this workload's generated and real stage graphs.
    pub mmd: StructureMmd,
    /// The median relative error over its samples with a figure.
    pub rel_error: Option<f64>,
}

/// What one simulation of a workload on the reference system gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SimTiming {
    /// The latest rank finish (ns).
    pub makespan_ns: u64,
    /// GPU compute time (ns), summed over ranks.
    pub compute_ns: u64,
    /// Exposed communication time (ns: finish time minus compute, ASTRA-sim's
    /// measure), summed over ranks.
    pub exposed_comm_ns: u64,
}

/// How a generated time compares with the real one over workloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct TimeComparison {
    /// `|gen - real| / real` over workloads whose real time is positive.
    pub rel_error: ErrorStats,
    /// Of those, how many came out longer than the real one.
    pub longer: usize,
}

impl TimeComparison {
    /// The comparison of `(generated, real)` pairs (each workload's first
    /// simulated sample).
    fn of(pairs: &[(u64, u64)]) -> TimeComparison {
        let counted: Vec<&(u64, u64)> = pairs.iter().filter(|(_, r)| *r > 0).collect();
        let errors: Vec<f64> = counted.iter().map(|&&(g, r)| (g as f64 - r as f64).abs() / r as f64).collect();
        TimeComparison { rel_error: ErrorStats::of(&errors), longer: counted.iter().filter(|(g, r)| g > r).count() }
    }
}

/// Median and 90th percentile of a list of relative errors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ErrorStats {
    /// How many values.
    pub n: usize,
    /// Median (`None` for an empty list).
    pub median: Option<f64>,
    /// 90th percentile, linear interpolation ([`percentile`]).
    pub p90: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl ErrorStats {
    /// The statistics of `values`.
    pub fn of(values: &[f64]) -> ErrorStats {
        let mean = (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64);
        ErrorStats {
            n: values.len(),
            median: percentile(values, 0.5),
            p90: percentile(values, 0.9),
            mean,
            max: values.iter().copied().reduce(f64::max),
        }
    }
}

/// The figures over all evaluated workloads.
#[derive(Clone, Debug, Serialize)]
pub struct EvalSummary {
    /// Real workloads evaluated.
    pub workloads: usize,
    /// Generated workloads.
    pub generated: usize,
    /// Generated workloads that passed every validity check.
    pub valid: usize,
    /// `valid / generated`.
    pub validity_rate: f64,
    /// Generated rank files written.
    pub rank_files: usize,
    /// MMDs between every generated stage graph and every real one of the evaluated workloads.
    pub mmd: StructureMmd,
    /// Real stage graphs in the MMDs.
    pub real_graphs: usize,
    /// Generated stage graphs in the MMDs.
    pub generated_graphs: usize,
    /// Relative iteration-time error over workloads (each workload's median over its samples).
    pub rel_error: ErrorStats,
    /// GPU compute time (summed over ranks), generated against real.
    pub compute: TimeComparison,
    /// Exposed communication time (summed over ranks), generated against
    /// real, over the workloads whose real one is positive.
    pub exposed_comm: TimeComparison,
}

/// MMDs between two sets of real graphs.
#[derive(Clone, Debug, Serialize)]
pub struct Baseline {
    /// What was compared.
    pub description: String,
    /// Graphs of the other split.
    pub other_graphs: usize,
    /// The MMDs.
    pub mmd: StructureMmd,
}

/// The result of [`evaluate`].
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The model folder.
    pub model: PathBuf,
    /// The corpus folder.
    pub data: PathBuf,
    /// The split evaluated.
    pub split: String,
    /// Generated workloads per real workload.
    pub count: usize,
    /// The seed.
    pub seed: u64,
    /// Node-attribute denoising steps per layer (`None`: every step).
    pub node_steps: Option<usize>,
    /// Edge denoising steps per layer (`None`: every step).
    pub edge_steps: Option<usize>,
    /// The matrix-product precision generation ran with.
    pub precision: crate::device::Precision,
    /// How the MMDs are computed.
    pub mmd_kernel: String,
    /// Per workload.
    pub workloads: Vec<WorkloadEval>,
    /// Over all workloads.
    pub summary: EvalSummary,
    /// Real-vs-real MMDs, with `baseline`.
    pub baseline: Option<Baseline>,
    /// Wall time.
    pub seconds: f64,
}

impl EvalReport {
    /// Whether every generated workload passed every validity check.
    pub fn all_valid(&self) -> bool {
        self.summary.valid == self.summary.generated
    }
}

/// The four per-graph histograms the MMDs compare (raw counts).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GraphHistograms {
    /// `in_degree[d]`: nodes with d in-edges.
    pub in_degree: Vec<f64>,
    /// `out_degree[d]`: nodes with d out-edges.
    pub out_degree: Vec<f64>,
    /// `layer_width[w]`: Kahn layers of w nodes.
    pub layer_width: Vec<f64>,
    /// `node_type[t]`: nodes of Chakra node type t (vocabulary ids, see [`crate::dataset::vocab`]).
    pub node_type: Vec<f64>,
}

impl GraphHistograms {
    /// The histograms of a DAG (an error only if it has a cycle).
    pub fn of(dag: &Dag) -> Result<GraphHistograms, DagError> {
        let n = dag.num_nodes();
        let mut indeg = vec![0usize; n];
        let mut outdeg = vec![0usize; n];
        for (s, d) in dag.edges() {
            outdeg[s as usize] += 1;
            indeg[d as usize] += 1;
        }
        let counts = |values: &mut dyn Iterator<Item = usize>| {
            let mut h: Vec<f64> = Vec::new();
            for v in values {
                if h.len() <= v {
                    h.resize(v + 1, 0.0);
                }
                h[v] += 1.0;
            }
            h
        };
        let layering = dag.layering()?;
        let types = dag.cardinalities().first().copied().unwrap_or(0) as usize;
        let nt = EtFeature::NodeType.index();
        let mut node_type = vec![0.0; types];
        for v in 0..n {
            let t = dag.features(v)[nt] as usize;
            if t >= node_type.len() {
                node_type.resize(t + 1, 0.0);
            }
            node_type[t] += 1.0;
        }
        Ok(GraphHistograms {
            in_degree: counts(&mut indeg.into_iter()),
            out_degree: counts(&mut outdeg.into_iter()),
            layer_width: counts(&mut layering.sizes().into_iter()),
            node_type,
        })
    }
}

/// The four MMDs between two sets of graphs.
pub fn structure_mmd(x: &[GraphHistograms], y: &[GraphHistograms]) -> StructureMmd {
    let pick = |f: fn(&GraphHistograms) -> &Vec<f64>| {
        let a: Vec<&[f64]> = x.iter().map(|h| f(h).as_slice()).collect();
        let b: Vec<&[f64]> = y.iter().map(|h| f(h).as_slice()).collect();
        mmd(&a, &b, MMD_SIGMA)
    };
    StructureMmd {
        in_degree: pick(|h| &h.in_degree),
        out_degree: pick(|h| &h.out_degree),
        layer_width: pick(|h| &h.layer_width),
        node_type: pick(|h| &h.node_type),
    }
}

/// A histogram scaled to sum 1 (all zeros stays all zeros).
fn normalized(h: &[f64]) -> Vec<f64> {
    let sum: f64 = h.iter().sum();
    if sum > 0.0 {
        h.iter().map(|v| v / sum).collect()
    } else {
        h.to_vec()
    }
}

/// Total-variation distance `½ Σ |p_i - q_i|` of two normalized histograms,
/// the shorter one padded with zeros.
fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    let n = p.len().max(q.len());
    (0..n).map(|i| (p.get(i).unwrap_or(&0.0) - q.get(i).unwrap_or(&0.0)).abs()).sum::<f64>() / 2.0
}

/// Squared maximum mean discrepancy between two sets of histograms, as the
/// GraphRNN / GRAN graph-generation evaluations compute it (and call "MMD"):
/// each histogram is normalized to a distribution, the kernel is the
/// Gaussian total-variation kernel `k(p, q) = exp(-TV(p, q)² / (2σ²))`, and
/// the estimate is the biased (V-statistic) one,
/// `mean k(x, x') + mean k(y, y') - 2 mean k(x, y)` over all pairs,
/// self-pairs included. With σ = 1 the kernel lies in `[e^-½, 1]`, so the
/// value lies in `[0, 2 - 2e^-½ ≈ 0.787]`: 0 for identical sets.
/// `None` if a set is empty. O(|x|·|y|·bins).
pub fn mmd(x: &[&[f64]], y: &[&[f64]], sigma: f64) -> Option<f64> {
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let x: Vec<Vec<f64>> = x.iter().map(|h| normalized(h)).collect();
    let y: Vec<Vec<f64>> = y.iter().map(|h| normalized(h)).collect();
    let k = |p: &[f64], q: &[f64]| {
        let tv = total_variation(p, q);
        (-tv * tv / (2.0 * sigma * sigma)).exp()
    };
    let mean = |a: &[Vec<f64>], b: &[Vec<f64>]| {
        let mut s = 0.0;
        for p in a {
            for q in b {
                s += k(p, q);
            }
        }
        s / (a.len() * b.len()) as f64
    };
    Some(mean(&x, &x) + mean(&y, &y) - 2.0 * mean(&x, &y))
}

/// The `p`-quantile (0 ≤ p ≤ 1) of `values` with linear interpolation
/// between order statistics (numpy's default): position `p·(n-1)` in the
/// sorted list. `None` for an empty list.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = p.clamp(0.0, 1.0) * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// The `--set` pairs that make [`generate`] use exactly these flags.
pub(crate) fn flag_sets(f: &StgFlags) -> Vec<String> {
    let model_type = match f.model_type {
        ModelType::Gpt => "gpt",
        ModelType::Llama => "llama",
        ModelType::Dense => "dense",
        ModelType::Moe => "moe",
    };
    let pairs: [(&str, String); 21] = [
        ("model_type", model_type.into()),
        ("num_stacks", f.num_stacks.to_string()),
        ("dmodel", f.dmodel.to_string()),
        ("dff", f.dff.to_string()),
        ("head", f.head.to_string()),
        ("kvhead", f.kvhead.to_string()),
        ("seq", f.seq.to_string()),
        ("batch", f.batch.to_string()),
        ("micro_batch", f.micro_batch.to_string()),
        ("dvocal", f.dvocal.to_string()),
        ("dp", f.dp.to_string()),
        ("tp", f.tp.to_string()),
        ("pp", f.pp.to_string()),
        ("sp", f.sp.to_string()),
        ("ep", f.ep.to_string()),
        ("experts", f.experts.to_string()),
        ("kexperts", f.kexperts.to_string()),
        ("weight_sharded", f.weight_sharded.to_string()),
        ("activation_recompute", f.activation_recompute.to_string()),
        ("tpsp", f.tpsp.to_string()),
        ("mixed_precision", f.mixed_precision.to_string()),
    ];
    pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The corpus reference system, with one network file per rank count.
struct Reference {
    system: PathBuf,
    memory: PathBuf,
    template: String,
    dir: PathBuf,
}

impl Reference {
    fn open(data: &Path, dir: &Path) -> Result<Reference> {
        let rs = data.join("reference-system");
        let system = rs.join("system.json");
        let memory = rs.join("memory.json");
        for f in [&system, &memory] {
            if !f.is_file() {
                return Err(EvalError::Reference {
                    path: f.clone(),
                    what: "missing; the corpus reference system (corpus NOTES.md) is needed to simulate".into(),
                });
            }
        }
        // Read up front, so that a broken reference system is not blamed on
        // the first workload that fails to simulate on it.
        simulator::config::system::SystemConfig::load(&system).map_err(EvalError::ReferenceConfig)?;
        simulator::config::memory::MemoryConfig::load(&memory).map_err(EvalError::ReferenceConfig)?;
        let tpl = rs.join("network.yml.template");
        let template = std::fs::read_to_string(&tpl)
            .map_err(|e| EvalError::Reference { path: tpl.clone(), what: format!("cannot read: {e}") })?;
        if !template.contains("[ R ]") {
            return Err(EvalError::Reference {
                path: tpl,
                what: "expected a `[ R ]` placeholder for the NPU count".into(),
            });
        }
        let reference = Reference { system, memory, template, dir: dir.to_path_buf() };
        let network = reference.network(2)?;
        simulator::config::network::NetworkConfig::load(&network).map_err(|e| EvalError::Reference {
            path: tpl.clone(),
            what: format!("the network it gives for 2 NPUs does not load: {e}"),
        })?;
        Ok(reference)
    }

    /// The network file for `npus` NPUs (written once).
    fn network(&self, npus: u32) -> Result<PathBuf> {
        let path = self.dir.join(format!("network.{npus}.yml"));
        if !path.is_file() {
            let text = self.template.replace("[ R ]", &format!("[ {npus} ]"));
            std::fs::write(&path, text).map_err(|source| EvalError::Io {
                path: path.clone(),
                action: "cannot write",
                source,
            })?;
        }
        Ok(path)
    }

    /// Simulates `PREFIX.<rank>.et` (`ranks` files) with its comm groups;
    /// its timing, or what went wrong. One-rank workloads run as both
    /// ranks of a 2-NPU switch (module docs) from copies in `scratch`; their
    /// compute and exposed communication count the first copy only.
    fn timing(
        &self,
        prefix: &Path,
        ranks: u32,
        groups: &Path,
        scratch: &Path,
    ) -> Result<Result<SimTiming, SimFailure>> {
        let mut req = if ranks == 1 {
            mkdir(scratch)?;
            let single = with_suffix(prefix, ".0.et");
            for r in 0..2 {
                let to = scratch.join(format!("one.{r}.et"));
                std::fs::copy(&single, &to).map_err(|source| EvalError::Io {
                    path: to.clone(),
                    action: "cannot copy the one-rank trace",
                    source,
                })?;
            }
            RunRequest::new(scratch.join("one"), self.network(2)?, &self.system)
        } else {
            let mut req = RunRequest::new(prefix, self.network(ranks)?, &self.system);
            req.comm_group = Some(groups.to_path_buf());
            req
        };
        req.memory = Some(self.memory.clone());
        Ok(match simulate(&req) {
            Ok(rep) if rep.ranks.iter().all(|r| r.finish_ns.is_some()) => {
                let counted = || rep.ranks.iter().take(ranks as usize);
                Ok(SimTiming {
                    makespan_ns: rep.makespan_ns,
                    compute_ns: counted().map(|r| r.compute_ns).sum(),
                    exposed_comm_ns: counted().filter_map(|r| r.exposed_comm_ns).sum(),
                })
            }
            Ok(rep) => {
                let open: Vec<usize> = (0..rep.ranks.len()).filter(|&r| rep.ranks[r].finish_ns.is_none()).collect();
                Err(SimFailure::Stalled(format!("ranks {open:?} did not finish")))
            }
            Err(e) => Err(SimFailure::Error(first_lines(&e.to_string(), 4))),
        })
    }
}

/// Why a workload gave no timing.
#[derive(Debug)]
enum SimFailure {
    /// It ran but some ranks never finished (a hang).
    Stalled(String),
    /// It could not be simulated at all (unreadable traces or comm groups).
    Error(String),
}

impl std::fmt::Display for SimFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimFailure::Stalled(what) | SimFailure::Error(what) => f.write_str(what),
        }
    }
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join(" / ")
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
        path: dir.to_path_buf(),
        action: "cannot create the folder",
        source,
    })
}

/// The working folder: kept, or a temporary one removed on drop.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(keep: Option<&Path>) -> Result<WorkDir> {
        let (path, remove) = match keep {
            Some(p) => (p.to_path_buf(), false),
            None => {
                remove_abandoned_work_dirs(&std::env::temp_dir());
                let nanos =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
                (std::env::temp_dir().join(format!("{WORK_DIR_PREFIX}{}-{nanos}", std::process::id())), true)
            }
        };
        mkdir(&path)?;
        Ok(WorkDir { path, remove })
    }
}

/// Temporary working folders are `strata-eval-<pid>-<nanos>`.
const WORK_DIR_PREFIX: &str = "strata-eval-";

/// Removes the temporary working folders in `tmp` of evaluations whose
/// process no longer runs (one interrupted with Ctrl-C or killed never
/// reached its cleanup). Linux only (it asks `/proc` whether the process
/// lives); elsewhere nothing is removed.
fn remove_abandoned_work_dirs(tmp: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(tmp) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(WORK_DIR_PREFIX)).and_then(|r| r.split('-').next())
        else {
            continue;
        };
        let alive = pid.parse::<u32>().map_or(true, |p| Path::new("/proc").join(p.to_string()).exists());
        if !alive && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// One graph per pipeline stage of a real workload (its first kept rank of
/// each stage), tokenized.
fn real_stage_graphs(w: &Workload) -> Result<Vec<Dag>> {
    let id = &w.config.id;
    let rps = w.layout.ranks_per_stage();
    (0..w.layout.pp)
        .map(|s| {
            let r = w.config.kept_ranks.iter().copied().filter(|&r| w.layout.stage(r) == s).min().unwrap_or(s * rps);
            let path = w.rank_path(r);
            let trace = simulator::chakra::read_trace(&path)
                .map_err(|e| EvalError::Real { id: id.clone(), source: e.into() })?;
            tokenize(&trace, &path, &w.context(r)).map_err(|source| EvalError::Real { id: id.clone(), source })
        })
        .collect()
}

fn histograms_of(dags: &[Dag], origin: &str) -> Result<Vec<GraphHistograms>> {
    dags.iter()
        .map(|d| {
            GraphHistograms::of(d).map_err(|source| EvalError::Real {
                id: origin.to_string(),
                source: DatasetError::Dag { origin: origin.to_string(), source },
            })
        })
        .collect()
}

/// Checks one generated workload (module docs, 1) and returns its validity
/// and the histograms of its stage graphs (for those that decoded).
fn check_generated(
    rank_files: &[PathBuf],
    layout: &ParallelLayout,
    groups_path: &Path,
) -> (Validity, Vec<GraphHistograms>) {
    let mut v = Validity { decodes: true, acyclic: true, attributes: true, simulates: false, problems: Vec::new() };
    let groups = CommGroups::read(groups_path);
    if let Err(e) = &groups {
        v.problems.push(e.to_string());
    }
    let rps = layout.ranks_per_stage();
    let mut hists = Vec::new();
    for (r, path) in rank_files.iter().enumerate() {
        let trace = match simulator::chakra::read_trace(path) {
            Ok(t) => t,
            Err(e) => {
                v.decodes = false;
                v.problems.push(e.to_string());
                continue;
            }
        };
        let findings = validate_trace(&trace, path);
        for f in findings.findings.iter().filter(|f| f.severity == Severity::Error) {
            match f.kind {
                FindingKind::Cycle | FindingKind::MissingDependency | FindingKind::DuplicateId => v.acyclic = false,
                _ => v.attributes = false,
            }
            if v.problems.len() < 20 {
                v.problems.push(format!("{}: {f}", path.display()));
            }
        }
        // One graph per stage: the stage's first rank.
        if r as u32 % rps == 0 {
            if let Ok(groups) = &groups {
                let ctx = RankContext::new(r as u32, Some(*layout), Some(groups.clone()));
                match tokenize(&trace, path, &ctx)
                    .map_err(|e| e.to_string())
                    .and_then(|d| GraphHistograms::of(&d).map_err(|e| format!("{}: {e}", path.display())))
                {
                    Ok(h) => hists.push(h),
                    Err(e) => v.problems.push(e),
                }
            }
        }
    }
    (v, hists)
}

/// Runs an evaluation (module docs).
pub fn evaluate(spec: &EvalSpec) -> Result<EvalReport> {
    evaluate_with(spec, &mut |_| {})
}

/// [`evaluate`], telling `progress` where it is.
pub fn evaluate_with(spec: &EvalSpec, progress: &mut dyn FnMut(EvalProgress)) -> Result<EvalReport> {
    let start = Instant::now();
    if spec.count == 0 {
        return Err(EvalError::Input("count 0: nothing to generate".into()));
    }
    if spec.max_workloads == Some(0) {
        return Err(EvalError::Input("max workloads 0: nothing to evaluate".into()));
    }
    if !spec.model.is_dir() {
        return Err(EvalError::Input(format!(
            "model {}: not a folder; expected a trained model folder (config.json + weights.safetensors from \
             `strata synth train`)",
            spec.model.display()
        )));
    }
    let corpus = Corpus::open(&spec.data).map_err(|source| EvalError::Corpus { path: spec.data.clone(), source })?;
    let mut workloads: Vec<&Workload> = corpus.workloads(spec.split).collect();
    if let Some(n) = spec.max_workloads {
        workloads.truncate(n);
    }
    if workloads.is_empty() {
        return Err(EvalError::Input(format!(
            "corpus {}: the {} split has no workload (SPLIT.txt)",
            spec.data.display(),
            spec.split.name()
        )));
    }
    let work = WorkDir::new(spec.keep.as_deref())?;
    let reference = Reference::open(&spec.data, &work.path)?;
    progress(EvalProgress::Start { workloads: workloads.len() });

    let mut out = Vec::with_capacity(workloads.len());
    let mut warned = std::collections::BTreeSet::new();
    let mut all_real = Vec::new();
    let mut all_gen = Vec::new();
    for (i, w) in workloads.iter().enumerate() {
        let id = w.config.id.clone();
        progress(EvalProgress::Workload { index: i, id: id.clone() });
        let dir = work.path.join(&id);
        mkdir(&dir)?;
        let real_dags = real_stage_graphs(w)?;
        let real_hists = histograms_of(&real_dags, &id)?;
        let ranks = w.layout.ranks();
        let (real, real_note) = if !w.config.complete {
            (None, Some("incomplete in the corpus (ranks pruned): not simulated".to_string()))
        } else {
            match reference.timing(&w.dir.join("workload"), ranks, &w.dir.join("workload.json"), &dir.join("real1"))? {
                Ok(t) => (Some(t), None),
                Err(SimFailure::Stalled(e)) => (None, Some(format!("the real workload did not simulate: {e}"))),
                Err(SimFailure::Error(what)) => return Err(EvalError::RealSimulation { id, what }),
            }
        };
        let real_makespan_ns = real.map(|t| t.makespan_ns);
        let gen_spec = GenerateSpec {
            model: spec.model.clone(),
            sets: flag_sets(&w.config.flags),
            ranks,
            out: dir.join("gen"),
            count: spec.count,
            seed: spec.seed.wrapping_add(i as u64),
            device: spec.device,
            max_nodes: spec.max_nodes,
            ignore_size_prior: spec.ignore_size_prior,
            ignore_magnitude_prior: spec.ignore_magnitude_prior,
            progress: None,
            steps: spec.steps,
        };
        let generated = generate(&gen_spec).map_err(|source| EvalError::Generate { id: id.clone(), source })?;
        for w in &generated.warnings {
            // What-if warnings are about this workload's flags; the others
            // are about the checkpoint, the same for every workload.
            let message = if w.starts_with("what-if:") { format!("{id}: {w}") } else { w.clone() };
            if warned.insert(message.clone()) {
                progress(EvalProgress::Warning { message });
            }
        }
        let mut samples = Vec::with_capacity(generated.workloads.len());
        let mut gen_hists = Vec::new();
        for (k, g) in generated.workloads.iter().enumerate() {
            let (mut validity, hists) = check_generated(&g.rank_files, &generated.layout, &g.comm_groups);
            gen_hists.extend(hists);
            let mut timing = None;
            if validity.decodes {
                match reference.timing(&g.prefix, ranks, &g.comm_groups, &dir.join(format!("gen1_{k}")))? {
                    Ok(t) => {
                        validity.simulates = true;
                        timing = Some(t);
                    }
                    Err(e) => validity.problems.push(format!("simulation: {e}")),
                }
            }
            let makespan_ns = timing.map(|t| t.makespan_ns);
            let rel_error = match (makespan_ns, real_makespan_ns) {
                (Some(g), Some(r)) if r > 0 => Some((g as f64 - r as f64).abs() / r as f64),
                _ => None,
            };
            samples.push(SampleEval {
                prefix: g.prefix.clone(),
                nodes_per_stage: g.nodes_per_stage.clone(),
                validity,
                makespan_ns,
                compute_ns: timing.map(|t| t.compute_ns),
                exposed_comm_ns: timing.map(|t| t.exposed_comm_ns),
                rel_error,
            });
        }
        let errors: Vec<f64> = samples.iter().filter_map(|s| s.rel_error).collect();
        out.push(WorkloadEval {
            id,
            ranks,
            stages: w.layout.pp,
            real_nodes_per_stage: real_dags.iter().map(|d| d.num_nodes()).collect(),
            real_makespan_ns,
            real_compute_ns: real.map(|t| t.compute_ns),
            real_exposed_comm_ns: real.map(|t| t.exposed_comm_ns),
            real_note,
            mmd: structure_mmd(&gen_hists, &real_hists),
            rel_error: percentile(&errors, 0.5),
            samples,
        });
        all_real.extend(real_hists);
        all_gen.extend(gen_hists);
    }

    let baseline = if spec.baseline {
        progress(EvalProgress::Baseline);
        let other = match spec.split {
            Split::Train => Split::Validation,
            Split::Validation => Split::Train,
        };
        let mut hists = Vec::new();
        for w in corpus.workloads(other) {
            hists.extend(histograms_of(&real_stage_graphs(w)?, &w.config.id)?);
        }
        Some(Baseline {
            description: format!(
                "real {} graphs (one per pipeline stage of each workload) vs the real graphs of the evaluated {} \
                 workloads",
                other.name(),
                spec.split.name()
            ),
            other_graphs: hists.len(),
            mmd: structure_mmd(&hists, &all_real),
        })
    } else {
        None
    };

    let generated: usize = out.iter().map(|w| w.samples.len()).sum();
    let valid = out.iter().flat_map(|w| &w.samples).filter(|s| s.validity.valid()).count();
    let errors: Vec<f64> = out.iter().filter_map(|w| w.rel_error).collect();
    // Each workload's first simulated sample against its real run.
    let pairs = |generated: fn(&SampleEval) -> Option<u64>, real: fn(&WorkloadEval) -> Option<u64>| {
        out.iter().filter_map(|w| Some((w.samples.iter().find_map(generated)?, real(w)?))).collect::<Vec<_>>()
    };
    let compute = TimeComparison::of(&pairs(|s| s.compute_ns, |w| w.real_compute_ns));
    let exposed_comm = TimeComparison::of(&pairs(|s| s.exposed_comm_ns, |w| w.real_exposed_comm_ns));
    let summary = EvalSummary {
        workloads: out.len(),
        generated,
        valid,
        validity_rate: valid as f64 / generated.max(1) as f64,
        rank_files: out.iter().map(|w| w.ranks as usize * w.samples.len()).sum(),
        mmd: structure_mmd(&all_gen, &all_real),
        real_graphs: all_real.len(),
        generated_graphs: all_gen.len(),
        rel_error: ErrorStats::of(&errors),
        compute,
        exposed_comm,
    };
    Ok(EvalReport {
        model: spec.model.clone(),
        data: spec.data.clone(),
        split: spec.split.name().to_string(),
        count: spec.count,
        seed: spec.seed,
        node_steps: spec.steps.node,
        edge_steps: spec.steps.edge,
        precision: crate::device::precision(),
        mmd_kernel: format!(
            "squared MMD (biased), Gaussian total-variation kernel exp(-TV^2 / (2 sigma^2)), sigma = {MMD_SIGMA}, \
             on per-graph histograms normalized to sum 1"
        ),
        workloads: out,
        summary,
        baseline,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use simulator::chakra::NodeType;

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn mmd_of_identical_sets_is_zero() {
        let a = [1.0, 4.0, 2.0];
        let b = [0.0, 3.0];
        let x: Vec<&[f64]> = vec![&a, &b];
        assert!(close(mmd(&x, &x, 1.0).unwrap(), 0.0));
        // Scaling a histogram does not change its distribution.
        let a2 = [2.0, 8.0, 4.0];
        assert!(close(mmd(&[&a], &[&a2], 1.0).unwrap(), 0.0));
        assert_eq!(mmd(&[], &x, 1.0), None);
    }

    /// Hand computation, σ = 1, k = exp(-TV²/2):
    /// - {[1,0]} vs {[0,1]}: TV = 1, k = e^-½ = 0.6065307, MMD² = 1 + 1 - 2·0.6065307 = 0.7869387;
    /// - {[1,1]} vs {[1,0]}: p = [½,½], TV = ½, k = e^-⅛ = 0.8824969, MMD² = 2 - 2·0.8824969 = 0.2350061;
    /// - {[1,0],[0,1]} vs {[1,0]}: mean Kxx = (2 + 2·0.6065307)/4 = 0.8032653, Kyy = 1,
    ///   mean Kxy = (1 + 0.6065307)/2 = 0.8032653, MMD² = 0.8032653 + 1 - 1.6065307 = 0.1967347.
    #[test]
    fn mmd_of_different_histograms_matches_a_hand_computation() {
        let (a, b, c) = ([1.0, 0.0], [0.0, 1.0], [1.0, 1.0]);
        let e = (-0.5f64).exp();
        let ab = mmd(&[&a], &[&b], 1.0).unwrap();
        assert!(close(ab, 2.0 - 2.0 * e), "{ab}");
        assert!(close(ab, 0.786_938_680_574_733), "{ab}");
        assert!(close(mmd(&[&b], &[&a], 1.0).unwrap(), ab), "symmetric");
        let ca = mmd(&[&c], &[&a], 1.0).unwrap();
        assert!(close(ca, 2.0 - 2.0 * (-0.125f64).exp()), "{ca}");
        assert!(close(mmd(&[&a], &[&c], 1.0).unwrap(), ca), "symmetric");
        let set = mmd(&[&a, &b], &[&a], 1.0).unwrap();
        assert!(close(set, (2.0 + 2.0 * e) / 4.0 + 1.0 - (1.0 + e)), "{set}");
        assert!(close(mmd(&[&a], &[&a, &b], 1.0).unwrap(), set), "symmetric");
        // Padding: [1] and [1, 0] are the same distribution.
        assert!(close(mmd(&[&[1.0]], &[&a], 1.0).unwrap(), 0.0));
        // Bounded by 2 - 2e^-½.
        assert!(ab > ca && ca > set && set > 0.0);
    }

    #[test]
    fn error_statistics_of_a_known_list() {
        let v = [0.1, 0.5, 0.2, 0.4, 0.3];
        let s = ErrorStats::of(&v);
        assert_eq!(s.n, 5);
        assert!(close(s.median.unwrap(), 0.3));
        // Sorted [.1 .2 .3 .4 .5]: position 0.9·4 = 3.6, so .4 + .6·(.5 - .4) = .46.
        assert!(close(s.p90.unwrap(), 0.46));
        assert!(close(s.mean.unwrap(), 0.3));
        assert!(close(s.max.unwrap(), 0.5));
        assert!(close(percentile(&[1.0, 2.0, 3.0, 4.0], 0.5).unwrap(), 2.5));
        assert!(close(percentile(&[7.0], 0.9).unwrap(), 7.0));
        assert_eq!(ErrorStats::of(&[]), ErrorStats::default());
    }

    #[test]
    fn histograms_of_a_small_dag() {
        use crate::dataset::vocab::{et_cardinalities, NodeTypeToken};
        // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3: layers {0}, {1, 2}, {3}.
        let f = et_cardinalities().len();
        let mut x = vec![0u32; 4 * f];
        x[3 * f] = NodeTypeToken::id(NodeType::CommCollNode);
        let d = Dag::new(et_cardinalities(), x, vec![0, 0, 1, 2], vec![1, 2, 3, 3]).unwrap();
        let h = GraphHistograms::of(&d).unwrap();
        assert_eq!(h.in_degree, vec![1.0, 2.0, 1.0]);
        assert_eq!(h.out_degree, vec![1.0, 2.0, 1.0]);
        assert_eq!(h.layer_width, vec![0.0, 2.0, 1.0]);
        assert_eq!(h.node_type[0], 3.0);
        assert_eq!(h.node_type[NodeTypeToken::id(NodeType::CommCollNode) as usize], 1.0);
    }

    /// A corpus of the real w002 (train) and w000 (validation) in a fresh
    /// folder, for damaging.
    fn small_corpus() -> tempfile::TempDir {
        let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/corpus");
        let root = tempfile::Builder::new().prefix("strata-eval-corpus-").tempdir().unwrap();
        let copy_dir = |rel: &str| {
            std::fs::create_dir_all(root.path().join(rel)).unwrap();
            for f in std::fs::read_dir(from.join(rel)).unwrap() {
                let f = f.unwrap();
                std::fs::copy(f.path(), root.path().join(rel).join(f.file_name())).unwrap();
            }
        };
        copy_dir("reference-system");
        copy_dir("workloads/w000_llama_mp_L4_d1024_dp1tp2pp2sp1");
        copy_dir("workloads/w002_llama_mp_L2_d1024_dp1tp2pp2sp1");
        std::fs::write(
            root.path().join("SPLIT.txt"),
            "validation w000_llama_mp_L4_d1024_dp1tp2pp2sp1\ntrain w002_llama_mp_L2_d1024_dp1tp2pp2sp1\n",
        )
        .unwrap();
        root
    }

    /// The working folders of evaluations whose process is gone are removed;
    /// those of running ones, and other folders, are left alone.
    #[test]
    fn abandoned_work_dirs_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        // No process has a pid above the kernel's maximum (2^22).
        let dead = tmp.path().join(format!("{WORK_DIR_PREFIX}4999999-12"));
        let live = tmp.path().join(format!("{WORK_DIR_PREFIX}{}-34", std::process::id()));
        let other = tmp.path().join("strata-evaluation-notes");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("w000")).unwrap();
        }
        remove_abandoned_work_dirs(tmp.path());
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    /// A damaged corpus is an error naming the file, before any model is
    /// blamed: a truncated real rank file, an unreadable reference system.
    #[test]
    fn a_damaged_corpus_is_an_error_naming_the_file() {
        let corpus = small_corpus();
        let spec = EvalSpec {
            model: Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/default"),
            data: corpus.path().to_path_buf(),
            split: Split::Validation,
            count: 1,
            seed: 0,
            max_workloads: Some(1),
            max_nodes: Some(20),
            ignore_size_prior: false,
            ignore_magnitude_prior: false,
            device: Device::Cpu,
            keep: None,
            baseline: false,
            steps: Default::default(),
        };
        let rank = corpus.path().join("workloads/w000_llama_mp_L4_d1024_dp1tp2pp2sp1/workload.3.et");
        let whole = std::fs::read(&rank).unwrap();
        std::fs::write(&rank, &whole[..500]).unwrap();
        let e = evaluate(&spec).unwrap_err();
        assert!(matches!(e, EvalError::RealSimulation { .. }), "{e}");
        let e = e.to_string();
        assert!(e.contains("w000_llama") && e.contains("workload.3.et") && e.contains("truncated"), "{e}");
        std::fs::write(&rank, &whole).unwrap();
        let system = corpus.path().join("reference-system/system.json");
        std::fs::write(&system, "{").unwrap();
        let e = evaluate(&spec).unwrap_err().to_string();
        assert!(e.starts_with("reference system: ") && e.contains("system.json"), "{e}");
    }

    #[test]
    fn flags_round_trip_through_the_generator_parser() {
        let corpus = crate::dataset::test_data::corpus();
        for w in &corpus.workloads {
            let parsed = crate::generate::parse_flags(&flag_sets(&w.config.flags)).unwrap();
            assert_eq!(parsed, w.config.flags, "{}", w.config.id);
        }
    }
}
