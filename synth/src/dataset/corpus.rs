//! The STG Chakra-ET corpus on disk: `SPLIT.txt`, and per workload
//! `config.json` (generator flags, derived facts, per-rank info),
//! `workload.json` (comm groups) and the kept `workload.<rank>.et` files.
//!
//! [`Corpus::open`] reads every workload's metadata (not its traces) and
//! checks it against itself: the flags' rank count, each kept rank's file and
//! its stage. [`Corpus::ranks`] lists the rank files of a split, optionally one
//! per distinct structure (ranks of one pipeline stage are structurally
//! identical and differ only in `pg_name`, peers and tags, which tokenize to
//! the same ids). [`CorpusRank::tokenize`] reads and tokenizes one of them.
//!
//! Quirks of the corpus this layer relies on (see the corpus `NOTES.md`):
//! `duration_micros` is never set (compute is `num_ops` + `tensor_size`),
//! `comm_size` is an element count, only `data_deps` are used, and there are no
//! pipeline-schedule edges between micro-batches.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use simulator::chakra::EtTrace;

use super::dag::Dag;
use super::error::{DatasetError, Result};
use super::layout::{CommGroups, ParallelLayout, RankContext};
use super::tokenize::tokenize;

/// A split of the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Used to fit the model and every normalization statistic.
    Train,
    /// Used for model selection.
    Validation,
}

impl Split {
    /// The name used in `SPLIT.txt`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
        }
    }
}

/// STG's `--model_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelType {
    /// GPT.
    Gpt,
    /// Llama (its own graph only with mixed precision).
    Llama,
    /// Dense (same graphs as llama).
    Dense,
    /// Mixture of experts.
    Moe,
}

impl ModelType {
    /// Every model type, in the order of the conditioning one-hot.
    pub const ALL: [ModelType; 4] = [ModelType::Gpt, ModelType::Llama, ModelType::Dense, ModelType::Moe];

    /// The flag value (`gpt`, `llama`, `dense`, `moe`).
    pub fn name(self) -> &'static str {
        match self {
            ModelType::Gpt => "gpt",
            ModelType::Llama => "llama",
            ModelType::Dense => "dense",
            ModelType::Moe => "moe",
        }
    }
}

/// The graph STG actually builds for a flag set (NOTES.md: llama / dense
/// without mixed precision build the GPT graph).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GraphFamily {
    /// `models/stage1/gpt_model`.
    Gpt,
    /// `llama_model.py` (llama or dense with `--mixed_precision`).
    Llama,
    /// The MoE model.
    Moe,
}

impl GraphFamily {
    /// Every family, in the order of the conditioning one-hot.
    pub const ALL: [GraphFamily; 3] = [GraphFamily::Gpt, GraphFamily::Llama, GraphFamily::Moe];
}

/// The 22 `main.py` flags of STG as `config.json` records them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct StgFlags {
    /// `--model_type`.
    pub model_type: ModelType,
    /// `--num_stacks`: transformer layers.
    pub num_stacks: u32,
    /// `--dmodel`.
    pub dmodel: u32,
    /// `--dff`.
    pub dff: u32,
    /// `--head`.
    pub head: u32,
    /// `--kvhead`.
    pub kvhead: u32,
    /// `--seq`.
    pub seq: u32,
    /// `--batch`.
    pub batch: u32,
    /// `--micro_batch`.
    pub micro_batch: u32,
    /// `--dvocal` (vocabulary size).
    pub dvocal: u32,
    /// `--dp`.
    pub dp: u32,
    /// `--tp`.
    pub tp: u32,
    /// `--pp`.
    pub pp: u32,
    /// `--sp`.
    pub sp: u32,
    /// `--ep`.
    pub ep: u32,
    /// `--experts` (ignored unless MoE).
    pub experts: u32,
    /// `--kexperts` (ignored unless MoE).
    pub kexperts: u32,
    /// `--weight_sharded`.
    pub weight_sharded: bool,
    /// `--activation_recompute` (a no-op in STG).
    pub activation_recompute: bool,
    /// `--tpsp`.
    pub tpsp: bool,
    /// `--mixed_precision`.
    pub mixed_precision: bool,
}

impl StgFlags {
    /// The graph family these flags build.
    pub fn graph_family(&self) -> GraphFamily {
        match self.model_type {
            ModelType::Moe => GraphFamily::Moe,
            ModelType::Llama | ModelType::Dense if self.mixed_precision => GraphFamily::Llama,
            _ => GraphFamily::Gpt,
        }
    }

    /// Micro-batches per step: batch / micro_batch.
    pub fn n_microbatches(&self) -> u32 {
        self.batch / self.micro_batch.max(1)
    }

    /// The rank layout the flags imply.
    pub fn layout(&self) -> Result<ParallelLayout> {
        ParallelLayout::from_degrees(self.dp, self.tp, self.sp, self.ep, self.pp, self.model_type == ModelType::Moe)
    }
}

/// The derived facts of `config.json` this layer uses.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Derived {
    /// Ranks of the workload.
    pub ranks: u32,
    /// Ranks per pipeline stage.
    pub ranks_per_stage: u32,
    /// Micro-batches per step.
    pub n_microbatches: u32,
    /// Transformer layers held by each stage.
    pub layers_per_stage: Vec<u32>,
}

/// One entry of `config.json`'s `per_rank`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct RankInfo {
    /// The rank.
    pub rank: u32,
    /// Its pipeline stage.
    pub stage: u32,
    /// Whether its file was kept.
    pub kept: bool,
    /// Hash of the trace's structure (equal for ranks that tokenize alike).
    pub struct_sha1: String,
    /// Node count.
    pub nodes: u64,
    /// Longest dependency chain in nodes (= the number of Kahn layers).
    pub dag_depth: u64,
}

/// A workload's `config.json` (the parts this layer uses; other keys are ignored).
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct WorkloadConfig {
    /// Workload id.
    pub id: String,
    /// Generator flags.
    pub flags: StgFlags,
    /// Derived facts.
    pub derived: Derived,
    /// Every rank, kept or not.
    pub per_rank: Vec<RankInfo>,
    /// Ranks whose files are in the folder.
    pub kept_ranks: Vec<u32>,
    /// Whether every rank was kept.
    pub complete: bool,
}

impl WorkloadConfig {
    /// The transformer layers pipeline stage `stage` holds; `what` names the
    /// caller in the error for a stage past `layers_per_stage`.
    pub fn layers_in_stage(&self, stage: u32, what: &str) -> Result<u32> {
        self.derived.layers_per_stage.get(stage as usize).copied().ok_or_else(|| {
            DatasetError::mismatch(
                format!("{what} of {}", self.id),
                format!("no layers_per_stage entry for stage {stage}"),
            )
        })
    }

    /// Reads and checks a `config.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, "cannot read", e))?;
        let cfg: WorkloadConfig = serde_json::from_str(&text).map_err(|e| {
            DatasetError::format(path, format!("line {} column {}", e.line(), e.column()), e.to_string())
        })?;
        let f = &cfg.flags;
        let sizes = [
            ("num_stacks", f.num_stacks),
            ("dmodel", f.dmodel),
            ("dff", f.dff),
            ("head", f.head),
            ("kvhead", f.kvhead),
            ("seq", f.seq),
            ("batch", f.batch),
            ("micro_batch", f.micro_batch),
            ("dvocal", f.dvocal),
            ("experts", f.experts),
            ("kexperts", f.kexperts),
        ];
        if let Some((key, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return Err(DatasetError::format(path, format!("flags.{key}"), "0, expected a size of at least 1"));
        }
        let layout = cfg.flags.layout().map_err(|e| DatasetError::format(path, "flags", e.to_string()))?;
        if layout.ranks() != cfg.derived.ranks || layout.ranks_per_stage() != cfg.derived.ranks_per_stage {
            return Err(DatasetError::format(
                path,
                "derived.ranks",
                format!(
                    "flags imply {} ranks ({} per stage), config says {} ({} per stage)",
                    layout.ranks(),
                    layout.ranks_per_stage(),
                    cfg.derived.ranks,
                    cfg.derived.ranks_per_stage
                ),
            ));
        }
        if cfg.derived.layers_per_stage.len() != cfg.flags.pp as usize {
            return Err(DatasetError::format(
                path,
                "derived.layers_per_stage",
                format!(
                    "{} entries, expected one per stage (pp = {})",
                    cfg.derived.layers_per_stage.len(),
                    cfg.flags.pp
                ),
            ));
        }
        for &r in &cfg.kept_ranks {
            let info = cfg
                .rank_info(r)
                .ok_or_else(|| DatasetError::format(path, "kept_ranks", format!("rank {r} has no per_rank entry")))?;
            if info.stage != layout.stage(r) {
                return Err(DatasetError::format(
                    path,
                    format!("per_rank[{r}].stage"),
                    format!("{}, but the layout puts rank {r} in stage {}", info.stage, layout.stage(r)),
                ));
            }
        }
        Ok(cfg)
    }

    /// The per-rank entry of a rank.
    pub fn rank_info(&self, rank: u32) -> Option<&RankInfo> {
        self.per_rank.iter().find(|p| p.rank == rank)
    }
}

/// One workload folder.
#[derive(Clone, Debug)]
pub struct Workload {
    /// The folder.
    pub dir: PathBuf,
    /// Its split.
    pub split: Split,
    /// `config.json`.
    pub config: WorkloadConfig,
    /// `workload.json`.
    pub groups: CommGroups,
    /// The layout implied by the flags.
    pub layout: ParallelLayout,
}

impl Workload {
    /// Reads a workload folder's metadata.
    pub fn open(dir: &Path, split: Split) -> Result<Self> {
        let config = WorkloadConfig::read(&dir.join("config.json"))?;
        let groups = CommGroups::read(&dir.join("workload.json"))?;
        let layout = config.flags.layout()?;
        Ok(Workload { dir: dir.to_path_buf(), split, config, groups, layout })
    }

    /// The tokenizing context of one of its ranks.
    pub fn context(&self, rank: u32) -> RankContext {
        RankContext::new(rank, Some(self.layout), Some(self.groups.clone()))
    }

    /// The trace file of a rank.
    pub fn rank_path(&self, rank: u32) -> PathBuf {
        self.dir.join(format!("workload.{rank}.et"))
    }
}

/// One kept rank file of the corpus.
#[derive(Clone, Debug)]
pub struct CorpusRank<'a> {
    /// Its workload.
    pub workload: &'a Workload,
    /// The rank.
    pub rank: u32,
    /// Its pipeline stage.
    pub stage: u32,
    /// The trace file.
    pub path: PathBuf,
}

impl CorpusRank<'_> {
    /// Reads and tokenizes the trace.
    pub fn tokenize(&self) -> Result<Dag> {
        let trace = simulator::chakra::read_trace(&self.path)?;
        tokenize(&trace, &self.path, &self.workload.context(self.rank))
    }

    /// Reads the trace.
    pub fn read_trace(&self) -> Result<EtTrace> {
        Ok(simulator::chakra::read_trace(&self.path)?)
    }

    /// Tokenizes the trace read by [`CorpusRank::read_trace`].
    pub fn tokenize_trace(&self, trace: &EtTrace) -> Result<Dag> {
        tokenize(trace, &self.path, &self.workload.context(self.rank))
    }

    /// The per-rank facts in `config.json`.
    pub fn info(&self) -> Option<&RankInfo> {
        self.workload.config.rank_info(self.rank)
    }
}

/// The whole corpus: every workload named in `SPLIT.txt`.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The corpus folder (holding `SPLIT.txt` and `workloads/`).
    pub root: PathBuf,
    /// Workloads in `SPLIT.txt` order.
    pub workloads: Vec<Workload>,
}

impl Corpus {
    /// Reads `SPLIT.txt` and every listed workload's metadata.
    pub fn open(root: &Path) -> Result<Self> {
        let split_path = root.join("SPLIT.txt");
        let text = std::fs::read_to_string(&split_path).map_err(|e| DatasetError::io(&split_path, "cannot read", e))?;
        let mut workloads = Vec::new();
        let mut listed: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(split), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(DatasetError::format(&split_path, format!("line {}", i + 1), "expected \"<split> <id>\""));
            };
            let split = match split {
                "train" => Split::Train,
                "validation" => Split::Validation,
                other => {
                    return Err(DatasetError::format(
                        &split_path,
                        format!("line {}", i + 1),
                        format!("split {other:?}, expected train or validation"),
                    ))
                }
            };
            if let Some(first) = listed.insert(id.to_string(), i + 1) {
                return Err(DatasetError::format(
                    &split_path,
                    format!("line {}", i + 1),
                    format!("{id} is already listed on line {first}: a workload belongs to one split, once"),
                ));
            }
            workloads.push(Workload::open(&root.join("workloads").join(id), split)?);
        }
        Ok(Corpus { root: root.to_path_buf(), workloads })
    }

    /// The workloads of a split.
    pub fn workloads(&self, split: Split) -> impl Iterator<Item = &Workload> {
        self.workloads.iter().filter(move |w| w.split == split)
    }

    /// The kept rank files of a split, in workload then rank order. With
    /// `distinct_structures`, only the first kept rank of each distinct
    /// `struct_sha1` within a workload.
    pub fn ranks(&self, split: Split, distinct_structures: bool) -> Vec<CorpusRank<'_>> {
        let mut out = Vec::new();
        for w in self.workloads(split) {
            let mut seen: Vec<&str> = Vec::new();
            let mut kept = w.config.kept_ranks.clone();
            kept.sort_unstable();
            for r in kept {
                let info = w.config.rank_info(r);
                if distinct_structures {
                    if let Some(info) = info {
                        if seen.contains(&info.struct_sha1.as_str()) {
                            continue;
                        }
                        seen.push(&info.struct_sha1);
                    }
                }
                out.push(CorpusRank { workload: w, rank: r, stage: w.layout.stage(r), path: w.rank_path(r) });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use simulator::chakra::stats::trace_stats;

    use super::*;
    use crate::dataset::conditioning::{workload_features, Normalizer, WORKLOAD_FEATURES};
    use crate::dataset::streams::LayerDagData;
    use crate::dataset::test_data::corpus;
    use crate::dataset::vocab::{CommKind, EtFeature, NodeTypeToken};

    #[test]
    fn corpus_metadata_matches_its_notes() {
        let c = corpus();
        assert_eq!(c.workloads.len(), 171);
        assert_eq!(c.workloads(Split::Train).count(), 148);
        assert_eq!(c.workloads(Split::Validation).count(), 23);
        // NOTES.md's 1,103 kept files count the 56 held-back workloads too;
        // the 171 here keep 753 (640 train, 113 validation), as `ls` shows.
        assert_eq!(c.ranks(Split::Train, false).len(), 640);
        assert_eq!(c.ranks(Split::Validation, false).len(), 113);
        for r in c.ranks(Split::Train, false).into_iter().chain(c.ranks(Split::Validation, false)) {
            assert!(r.path.is_file(), "{} is missing", r.path.display());
            assert_eq!(r.info().map(|i| i.stage), Some(r.stage));
        }
        eprintln!(
            "corpus: {} workloads, rank files train {} / validation {}, distinct structures train {} / validation {}",
            c.workloads.len(),
            c.ranks(Split::Train, false).len(),
            c.ranks(Split::Validation, false).len(),
            c.ranks(Split::Train, true).len(),
            c.ranks(Split::Validation, true).len()
        );
        // Ranks of one stage share a structure, so distinct structures = stages present.
        let w = c.workloads.iter().find(|w| w.config.id.starts_with("w000_")).unwrap();
        assert_eq!(c.ranks(w.split, true).iter().filter(|r| std::ptr::eq(r.workload, w)).count(), 2);
    }

    /// Ranks with the same `struct_sha1` tokenize to the same DAG, which is
    /// what makes `ranks(split, true)` lose nothing.
    #[test]
    fn same_structure_ranks_tokenize_alike() {
        let c = corpus();
        let mut compared = 0;
        for w in c.workloads(Split::Validation) {
            let mut first: BTreeMap<&str, Dag> = BTreeMap::new();
            for &r in &w.config.kept_ranks {
                let info = w.config.rank_info(r).unwrap();
                let rank = CorpusRank { workload: w, rank: r, stage: w.layout.stage(r), path: w.rank_path(r) };
                let dag = rank.tokenize().unwrap();
                match first.get(info.struct_sha1.as_str()) {
                    Some(d) => {
                        assert_eq!(d, &dag, "{} rank {r}", w.config.id);
                        compared += 1;
                    }
                    None => {
                        first.insert(&info.struct_sha1, dag);
                    }
                }
            }
        }
        assert!(compared > 50, "only {compared} ranks compared");
    }

    #[test]
    fn bad_metadata_is_a_typed_error() {
        let root = tempfile::Builder::new().prefix("strata-dataset-corpus-").tempdir().unwrap();
        let dir = root.path();
        let cfg = dir.join("config.json");
        std::fs::write(&cfg, r#"{"id": "x", "flags": {"model_type": "rnn"}}"#).unwrap();
        let err = WorkloadConfig::read(&cfg).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("rnn"), "{err}");
        let real =
            std::fs::read_to_string(corpus().root.join("workloads/w000_llama_mp_L4_d1024_dp1tp2pp2sp1/config.json"));
        std::fs::write(&cfg, real.unwrap().replace("\"dmodel\":1024", "\"dmodel\":0")).unwrap();
        let err = WorkloadConfig::read(&cfg).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("flags.dmodel"), "{err}");
        std::fs::write(dir.join("SPLIT.txt"), "train\n").unwrap();
        let err = Corpus::open(dir).unwrap_err().to_string();
        assert!(err.contains("SPLIT.txt: line 1"), "{err}");
        // A workload in both splits (or twice in one) would leak into validation.
        let w = "w002_llama_mp_L2_d1024_dp1tp2pp2sp1";
        let real = corpus().root.join("workloads").join(w);
        let copy = dir.join("workloads").join(w);
        std::fs::create_dir_all(&copy).unwrap();
        for f in ["config.json", "workload.json"] {
            std::fs::copy(real.join(f), copy.join(f)).unwrap();
        }
        std::fs::write(dir.join("SPLIT.txt"), format!("train {w}\n\nvalidation {w}\n")).unwrap();
        let err = Corpus::open(dir).unwrap_err().to_string();
        assert!(err.contains("SPLIT.txt: line 3") && err.contains("line 1"), "{err}");
    }

    /// On every kept rank file of the corpus: the Kahn layer count equals the
    /// longest-path depth that `trace_stats` computes separately (and
    /// config.json's `dag_depth`), every edge goes to a strictly later layer,
    /// and the streams have L+1, L and L-1 examples per graph.
    #[test]
    fn kahn_layers_equal_the_longest_path_and_streams_count_l_plus_1_l_l_minus_1() {
        let c = corpus();
        for split in [Split::Train, Split::Validation] {
            let ranks = c.ranks(split, false);
            let mut dags = Vec::with_capacity(ranks.len());
            let mut ys = Vec::with_capacity(ranks.len());
            let mut layers = Vec::with_capacity(ranks.len());
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            let mut types: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &ranks {
                let trace = simulator::chakra::read_trace(&r.path).unwrap();
                let dag = tokenize(&trace, &r.path, &r.workload.context(r.rank)).unwrap();
                let layering = dag.layering().unwrap();
                let depth = trace_stats(&trace).layers.expect("acyclic");
                assert_eq!(layering.num_layers() as u64, depth, "{}", r.path.display());
                assert_eq!(Some(depth), r.info().map(|i| i.dag_depth), "{}", r.path.display());
                for (s, d) in dag.edges() {
                    assert!(layering.level[s as usize] < layering.level[d as usize], "{}", r.path.display());
                }
                for n in 0..dag.num_nodes() {
                    let row = dag.features(n);
                    let ty = NodeTypeToken::from_id(row[EtFeature::NodeType.index()]).unwrap();
                    *types.entry(ty.proto_name()).or_default() += 1;
                    let kind = CommKind::from_id(row[EtFeature::CommKind.index()]).unwrap();
                    *kinds.entry(kind.name()).or_default() += 1;
                }
                layers.push(layering.num_layers());
                ys.push(workload_features(&r.workload.config, r.rank).unwrap());
                dags.push(dag);
            }
            // No collective was left UNKNOWN, MIXED or WORLD.
            assert!(
                !kinds.contains_key("UNKNOWN") && !kinds.contains_key("MIXED") && !kinds.contains_key("WORLD"),
                "{kinds:?}"
            );
            let norm = Normalizer::fit(&WORKLOAD_FEATURES, &ys).unwrap();
            let ys: Vec<Vec<f32>> = ys.iter().map(|y| norm.apply(y).unwrap()).collect();
            let data = LayerDagData::new(&dags, &ys).unwrap();
            let total: usize = layers.iter().sum();
            let g = layers.len();
            assert_eq!(data.node_count.len(), total + g);
            assert_eq!(data.node_attr.len(), total);
            assert_eq!(data.edge.len(), total - g);
            let per_graph = |graph: &[u32]| {
                let mut n = vec![0usize; g];
                graph.iter().for_each(|&x| n[x as usize] += 1);
                n
            };
            let (nc, na, ne) =
                (per_graph(&data.node_count.graph), per_graph(&data.node_attr.graph), per_graph(&data.edge.graph));
            for (i, &l) in layers.iter().enumerate() {
                assert_eq!(data.graphs.num_layers(i), l);
                assert_eq!((nc[i], na[i], ne[i]), (l + 1, l, l - 1), "{}", ranks[i].path.display());
            }
            let s = data.graphs.stats();
            let candidates: usize = (0..data.edge.len()).map(|i| data.edge.num_candidates(&data.graphs, i)).sum();
            eprintln!(
                "{}: {} rank files, {} nodes, {} edges, layers mean {:.1} max {}, widest layer {}, \
                 examples {}/{}/{}, edge candidates {}, avg in-degree {:.4}\n  node types {types:?}\n  comm kinds {kinds:?}",
                split.name(),
                g,
                s.num_nodes,
                s.num_edges,
                total as f64 / g as f64,
                s.max_level,
                s.max_layer_size,
                data.node_count.len(),
                data.node_attr.len(),
                data.edge.len(),
                candidates,
                s.avg_in_deg
            );
            for f in EtFeature::ALL {
                let used: Vec<usize> =
                    (0..s.marginals[f.index()].len()).filter(|&k| s.marginals[f.index()][k] > 0.0).collect();
                eprintln!("  {}: ids used {:?}", f.name(), used);
            }
        }
    }
}
