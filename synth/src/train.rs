//! Training the three LayerDAG sub-models (layerdag.md §3): the layer-size
//! classifier, then the node-attribute denoiser, then the edge denoiser, each
//! with its own Adam optimizer ([`crate::optim::Adam`], the config's `lr`
//! and `amsgrad`), epochs over
//! shuffled batches, a validation loss after each epoch, early stopping with
//! the config's `patience`, and the best weights kept and restored.
//!
//! [`train`] takes a [`TrainSpec`] (what the CLI's flags become; this module
//! never sees clap) and reports through a `progress` callback: one
//! [`Progress::Batch`] per step, one [`Progress::Epoch`] per epoch.
//!
//! # Data ([`DataSource`])
//!
//! | folder holds | kind | train split | validation split | condition |
//! |---|---|---|---|---|
//! | `SPLIT.txt` | STG corpus | `train` workloads, one rank per distinct structure | `validation` workloads, likewise | the 33 workload features, normalized on the train split (recorded in the checkpoint's data spec) |
//! | `tpu_tile_val.jsonl` + `tpu_tile_test.jsonl` | TPU Tile | `val` | `test` | the raw scalar `y`, as the reference |
//!
//! The data spec comes from the train split, with `max_level` raised to the
//! validation split's deepest graph, as in the reference.
//!
//! # Differences from the reference
//!
//! - Every sub-model selects on validation NLL (the reference selects the
//!   layer-size model on the accuracy of a sampled prediction).
//! - The untrained model's validation loss is measured first and counts as
//!   "epoch 0": early stopping can keep the initial weights, so training
//!   never makes the kept validation loss worse.
//! - A trailing batch of one example is merged into the previous batch
//!   (BatchNorm cannot train on one graph) instead of `drop_last`.
//! - Validation draws the same diffusion steps and noise at every epoch
//!   (libtorch is reseeded before each pass), so epochs are compared on equal
//!   terms; the reference draws fresh noise each time.
//!
//! # Determinism
//!
//! The model is initialized after `tch::manual_seed(seed)`. Each epoch
//! reseeds libtorch and shuffles with its own generator, both derived from
//! `(seed, sub-model, epoch)`, so a run on the CPU is reproducible bit for bit
//! and a resumed run replays the same shuffles and noise.
//!
//! # Output folder
//!
//! | file | holds | written |
//! |---|---|---|
//! | `config.json`, `weights.safetensors` | [`LayerDag::save`]: the best weights so far of each sub-model | after every improving epoch and at the end |
//! | `last.safetensors` | the last weights of all three sub-models (a finished one's from its last epoch, not its best): what `--resume` continues from | after every epoch and at the end |
//! | `optimizer.safetensors` | each sub-model's Adam state ([`crate::optim`]): per trained variable `step.VAR`, `exp_avg.VAR`, `exp_avg_sq.VAR`, `max_exp_avg_sq.VAR` (amsgrad), and `epochs.SUB_MODEL`, the epoch it is from | after every epoch and at the end |
//! | `train_state.json` | [`TrainState`]: seed, epochs done, best losses, patience counters | after every epoch |
//!
//! The two `.safetensors` files of the last state are written to a
//! `.partial` file renamed into place. A failed save during training is
//! reported ([`Progress::CheckpointFailed`]) and training goes on; the final
//! save is an error.
//!
//! # Resuming
//!
//! `--resume` restores the weights, the counters and Adam's state (step
//! counts and moment estimates), so a resumed run goes on exactly as an
//! uninterrupted one and writes the same bytes (on the same CPU and thread
//! count). A sub-model that had stopped early stays stopped, at its best
//! weights; one that had reached the old epoch cap continues from its last
//! weights and moments. Optimizer state from another epoch than
//! `train_state.json`'s, or that does not fit the model, is an error naming
//! the file and the variable; delete the file to resume anyway. A folder
//! without `optimizer.safetensors` (an older strata's) resumes with fresh
//! moments and a [`Progress::Warning`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use simulator::chakra::NodeType;
use tch::{nn, Device, Tensor};

use crate::dataset::collective_mix::group_totals;
use crate::dataset::conditioning::{scalar_condition, workload_features, Normalizer, WORKLOAD_FEATURES};
use crate::dataset::corpus::{Corpus, Split};
use crate::dataset::magnitude_prior::{MagnitudePrior, MagnitudeTotal};
use crate::dataset::size_prior::SizePrior;
use crate::dataset::stage_work::StageWork;
use crate::dataset::streams::LayerDagData;
use crate::dataset::tokenize::observe_trace;
use crate::dataset::tpu_tile::read_tpu_tile;
use crate::dataset::vocab::{PeerStage, RepresentativeFitter};
use crate::dataset::{Dag, DatasetError};
use crate::device::{precision, Precision};
use crate::model::compress::Compression;
use crate::model::diffusion::{edge_loss, node_loss};
use crate::model::layer_dag::{write_safetensors_atomic, write_text_atomic};
use crate::model::node_pred::steps_per_node;
use crate::model::{DataSpec, LayerDag, ModelConfig, ModelError};
use crate::optim::{Adam, AdamConfig};

/// The training state file of an output folder.
pub const STATE_FILE: &str = "train_state.json";
/// The current (not best) weights of an output folder, for resuming.
pub const LAST_WEIGHTS_FILE: &str = "last.safetensors";
/// Adam's state of the three sub-models of an output folder, for resuming.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The `format` value of `train_state.json`.
pub const STATE_FORMAT: &str = "strata-layerdag-train";
/// The TPU Tile file used for training.
pub const TPU_TRAIN_FILE: &str = "tpu_tile_val.jsonl";
/// The TPU Tile file used for validation.
pub const TPU_VALIDATION_FILE: &str = "tpu_tile_test.jsonl";

/// What can go wrong while training.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// Reading or converting the data.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The config, the model, a checkpoint.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A file or folder that cannot be read or written.
    #[error("{path}: {action}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was attempted.
        action: &'static str,
        /// The cause (in the message, so not also a `source()`).
        error: std::io::Error,
    },
    /// Data that cannot be trained on (no graphs, no examples, unknown folder).
    #[error("{path}: {what}")]
    Data {
        /// The data folder or file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A device that is not there.
    #[error("{0}")]
    Device(String),
    /// An output folder that cannot be started or resumed.
    #[error("{path}: {what}")]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// Which device to train on, as a user names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The first CUDA GPU when libtorch sees one, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA GPU.
    Cuda,
}

impl DeviceChoice {
    /// The libtorch device; CUDA without a CUDA device is an error.
    pub fn resolve(self) -> Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(crate::device::default_device()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(TrainError::Device(format!(
                "CUDA requested, but libtorch sees no CUDA device ({})",
                crate::device::runtime_summary()
            ))),
        }
    }
}

/// Result of this module.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Where the training graphs come from (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSource {
    /// An STG corpus folder (holding `SPLIT.txt` and `workloads/`).
    Corpus(PathBuf),
    /// A TPU Tile folder (holding `tpu_tile_val.jsonl` and `tpu_tile_test.jsonl`).
    TpuTile(PathBuf),
}

impl DataSource {
    /// Tells a corpus folder from a TPU Tile folder by the files in it.
    pub fn detect(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|error| TrainError::Io {
            path: path.into(),
            action: "cannot read",
            error,
        })?;
        if !meta.is_dir() {
            return Err(TrainError::Data { path: path.into(), what: "not a folder".into() });
        }
        if path.join("SPLIT.txt").is_file() {
            Ok(DataSource::Corpus(path.into()))
        } else if path.join(TPU_TRAIN_FILE).is_file() && path.join(TPU_VALIDATION_FILE).is_file() {
            Ok(DataSource::TpuTile(path.into()))
        } else {
            Err(TrainError::Data {
                path: path.into(),
                what: format!(
                    "neither a corpus folder (no SPLIT.txt) nor a TPU Tile folder (no {TPU_TRAIN_FILE} and {TPU_VALIDATION_FILE})"
                ),
            })
        }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        match self {
            DataSource::Corpus(p) | DataSource::TpuTile(p) => p,
        }
    }
}

/// One training run, as the CLI's flags describe it.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    /// The model config (TOML).
    pub config: PathBuf,
    /// The training data.
    pub data: DataSource,
    /// The output folder (checkpoint and training state).
    pub out: PathBuf,
    /// Seeds initialization, shuffles and noise (a resumed run keeps the seed it started with).
    pub seed: u64,
    /// Where tensors live.
    pub device: Device,
    /// Caps every sub-model's total epochs (instead of the config's `num_epochs`).
    pub max_epochs: Option<usize>,
    /// Continue the run recorded in `out/train_state.json`.
    pub resume: bool,
    /// Use only the first N graphs of each split (smoke runs, tests).
    pub max_graphs: Option<usize>,
}

/// The three sub-models, in training order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubModelKind {
    /// The layer-size classifier.
    NodeCount,
    /// The node-attribute denoiser.
    NodePred,
    /// The edge denoiser.
    EdgePred,
}

impl SubModelKind {
    /// Training order.
    pub const ALL: [SubModelKind; 3] = [SubModelKind::NodeCount, SubModelKind::NodePred, SubModelKind::EdgePred];

    /// The config table's name.
    pub fn name(self) -> &'static str {
        match self {
            SubModelKind::NodeCount => "node_count",
            SubModelKind::NodePred => "node_pred",
            SubModelKind::EdgePred => "edge_pred",
        }
    }

    /// The prefix of its variable names.
    pub fn var_prefix(self) -> &'static str {
        match self {
            SubModelKind::NodeCount => "node_count_model.",
            SubModelKind::NodePred => "node_pred_model.",
            SubModelKind::EdgePred => "edge_pred_model.",
        }
    }

    fn index(self) -> u64 {
        self as u64
    }

    fn store(self, m: &LayerDag) -> &nn::VarStore {
        match self {
            SubModelKind::NodeCount => &m.node_count.vs,
            SubModelKind::NodePred => &m.node_pred.vs,
            SubModelKind::EdgePred => &m.edge_pred.vs,
        }
    }

    /// The graph of each example of its stream.
    fn example_graphs(self, d: &LayerDagData) -> &[u32] {
        match self {
            SubModelKind::NodeCount => &d.node_count.graph,
            SubModelKind::NodePred => &d.node_attr.graph,
            SubModelKind::EdgePred => &d.edge.graph,
        }
    }

    fn stream_len(self, d: &LayerDagData) -> usize {
        self.example_graphs(d).len()
    }

    fn loader(self, c: &ModelConfig) -> &crate::model::config::LoaderConfig {
        match self {
            SubModelKind::NodeCount => &c.node_count.loader,
            SubModelKind::NodePred => &c.node_pred.loader,
            SubModelKind::EdgePred => &c.edge_pred.loader,
        }
    }

    fn batch_size(self, c: &ModelConfig) -> usize {
        self.loader(c).batch_size
    }

    fn num_epochs(self, c: &ModelConfig) -> usize {
        match self {
            SubModelKind::NodeCount => c.node_count.num_epochs,
            SubModelKind::NodePred => c.node_pred.num_epochs,
            SubModelKind::EdgePred => c.edge_pred.num_epochs,
        }
    }

    fn optimizer(self, c: &ModelConfig) -> (f64, bool) {
        let o = match self {
            SubModelKind::NodeCount => &c.node_count.optimizer,
            SubModelKind::NodePred => &c.node_pred.optimizer,
            SubModelKind::EdgePred => &c.edge_pred.optimizer,
        };
        (o.lr, o.amsgrad)
    }
}

impl std::fmt::Display for SubModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Both splits, ready to batch, and the data spec the model is built from.
#[derive(Clone, Debug)]
pub struct TrainData {
    /// The train split.
    pub train: LayerDagData,
    /// The validation split.
    pub validation: LayerDagData,
    /// Facts of the train split (`max_level` over both splits, the normalizer if any).
    pub spec: DataSpec,
    /// Where the data came from (for messages).
    pub origin: PathBuf,
    /// Median relative error of each magnitude-prior total on the train
    /// split, by name (empty without a magnitude prior).
    pub magnitude_train: Vec<(&'static str, f64)>,
    /// The same on the validation split.
    pub magnitude_validation: Vec<(&'static str, f64)>,
}

/// Reads both splits of `source`, at most `max_graphs` graphs each.
pub fn load_data(source: &DataSource, max_graphs: Option<usize>) -> Result<TrainData> {
    let cap = max_graphs.unwrap_or(usize::MAX);
    let empty = |path: &Path, split: &str| TrainError::Data {
        path: path.into(),
        what: format!("the {split} split has no graphs: nothing to train on"),
    };
    let (mut representatives, mut totals) = (None, None);
    let (train, validation, normalizer) = match source {
        DataSource::TpuTile(dir) => {
            let read = |file: &str| -> Result<(Vec<Dag>, Vec<Vec<f32>>)> {
                let path = dir.join(file);
                let graphs = read_tpu_tile(&path)?;
                if graphs.is_empty() {
                    return Err(empty(&path, if file == TPU_TRAIN_FILE { "train" } else { "validation" }));
                }
                Ok(graphs.into_iter().take(cap).map(|g| (g.dag, scalar_condition(g.y))).unzip())
            };
            (read(TPU_TRAIN_FILE)?, read(TPU_VALIDATION_FILE)?, None)
        }
        DataSource::Corpus(dir) => {
            let corpus = Corpus::open(dir)?;
            // Per split: token graphs, raw conditioning rows, magnitude
            // totals and stage work terms.
            let read = |split: Split, mut fitter: Option<&mut RepresentativeFitter>| {
                let ranks = corpus.ranks(split, true);
                if ranks.is_empty() {
                    return Err(empty(&dir.join("SPLIT.txt"), split.name()));
                }
                let (mut dags, mut rows, mut totals, mut works, mut groups) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for r in ranks.iter().take(cap) {
                    let trace = r.read_trace()?;
                    if let Some(f) = fitter.as_deref_mut() {
                        observe_trace(f, &trace, &r.path)?;
                    }
                    let dag = r.tokenize_trace(&trace)?;
                    groups.push(group_totals(&trace, &dag, &r.path)?);
                    dags.push(dag);
                    rows.push(workload_features(&r.workload.config, r.rank)?);
                    totals.push(MagnitudeTotal::all_of_trace(&trace, &r.path)?);
                    works.push(StageWork::of(&r.workload.config, r.rank)?);
                }
                Ok::<_, TrainError>((dags, rows, (totals, works, groups)))
            };
            let mut fitter = RepresentativeFitter::new();
            let (train_dags, train_raw, train_totals) = read(Split::Train, Some(&mut fitter))?;
            let (val_dags, val_raw, val_totals) = read(Split::Validation, None)?;
            representatives = Some(fitter.finish());
            totals = Some((train_totals, val_totals));
            let norm = Normalizer::fit(&WORKLOAD_FEATURES, &train_raw)?;
            let apply = |rows: &[Vec<f32>]| rows.iter().map(|r| norm.apply(r)).collect::<Result<Vec<_>, _>>();
            let (ty, vy) = (apply(&train_raw)?, apply(&val_raw)?);
            ((train_dags, ty), (val_dags, vy), Some(norm))
        }
    };
    let ((train_dags, train_y), (validation_dags, validation_y)) = (train, validation);
    let train = LayerDagData::new(&train_dags, &train_y)?;
    let validation_data = LayerDagData::new(&validation_dags, &validation_y)?;
    let mut spec = DataSpec::from_graphs(&train.graphs);
    spec.max_level = spec.max_level.max(validation_data.graphs.stats().max_level);
    // Only the corpus's feature vectors predict sizes and totals; the
    // reference's scalar TPU Tile label keeps the reference's sampler.
    let (mut magnitude_train, mut magnitude_validation) = (Vec::new(), Vec::new());
    if normalizer.is_some() {
        spec.size_prior = SizePrior::fit(&train.graphs).map(|mut p| {
            p.fit_forward_send(&train.graphs, is_forward_send);
            p
        });
        if let Some(((train_totals, train_works, train_groups), (val_totals, val_works, _))) = &totals {
            spec.magnitude_prior = MagnitudePrior::fit(train_totals, &train_y, train_works, train_groups);
            if let Some(p) = &spec.magnitude_prior {
                magnitude_train = p.median_rel_errors(train_totals, &train_y, train_works);
                magnitude_validation = p.median_rel_errors(val_totals, &validation_y, val_works);
            }
        }
        spec.representatives = representatives;
    }
    spec.y_normalizer = normalizer;
    Ok(TrainData {
        train,
        validation: validation_data,
        spec,
        origin: source.path().to_path_buf(),
        magnitude_train,
        magnitude_validation,
    })
}

/// Whether an ET node row is a send to the next pipeline stage.
fn is_forward_send(row: &[i64]) -> bool {
    PeerStage::Next.is_p2p(row, NodeType::CommSendNode)
}

/// Per sub-model progress, saved in `train_state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubModelState {
    /// Which sub-model.
    pub sub_model: SubModelKind,
    /// Epochs trained so far (over all runs).
    pub epochs_done: usize,
    /// The untrained model's validation loss.
    pub initial_val_loss: Option<f64>,
    /// The lowest validation loss so far (the initial one included).
    pub best_val_loss: Option<f64>,
    /// The epoch that reached it (0: the untrained weights).
    pub best_epoch: usize,
    /// Epochs since the last improvement.
    pub epochs_since_best: usize,
    /// Whether early stopping ended it (it is not continued then).
    pub stopped_early: bool,
}

impl SubModelState {
    fn new(sub_model: SubModelKind) -> Self {
        SubModelState {
            sub_model,
            epochs_done: 0,
            initial_val_loss: None,
            best_val_loss: None,
            best_epoch: 0,
            epochs_since_best: 0,
            stopped_early: false,
        }
    }
}

/// The contents of `train_state.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// [`STATE_FORMAT`].
    pub format: String,
    /// 1.
    pub version: u32,
    /// The seed the run started with.
    pub seed: u64,
    /// The matrix-product precision of the latest run on the folder (fp32
    /// in folders of strata versions without the choice).
    #[serde(default)]
    pub precision: Precision,
    /// One entry per sub-model, in training order.
    pub sub_models: Vec<SubModelState>,
}

impl TrainState {
    fn new(seed: u64, precision: Precision) -> Self {
        TrainState {
            format: STATE_FORMAT.into(),
            version: 1,
            seed,
            precision,
            sub_models: SubModelKind::ALL.iter().map(|&k| SubModelState::new(k)).collect(),
        }
    }

    /// Reads and checks a state file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|error| TrainError::Io {
            path: path.into(),
            action: "cannot read",
            error,
        })?;
        let s: TrainState =
            serde_json::from_str(&text).map_err(|e| TrainError::State { path: path.into(), what: e.to_string() })?;
        let kinds: Vec<SubModelKind> = s.sub_models.iter().map(|m| m.sub_model).collect();
        if s.format != STATE_FORMAT || s.version != 1 || kinds != SubModelKind::ALL {
            return Err(TrainError::State {
                path: path.into(),
                what: format!("not a version 1 {STATE_FORMAT:?} file with the three sub-models in order"),
            });
        }
        for m in &s.sub_models {
            let bad = |what: String| TrainError::State { path: path.into(), what: format!("{}: {what}", m.sub_model) };
            if m.best_epoch > m.epochs_done || m.epochs_since_best > m.epochs_done {
                return Err(bad(format!(
                    "best_epoch {} and epochs_since_best {} must not exceed epochs_done {}",
                    m.best_epoch, m.epochs_since_best, m.epochs_done
                )));
            }
            // Validation losses are cross-entropies: finite and not negative.
            for (key, v) in [("initial_val_loss", m.initial_val_loss), ("best_val_loss", m.best_val_loss)] {
                if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                    return Err(bad(format!("{key} {v:e}, expected a finite loss of at least 0")));
                }
            }
        }
        Ok(s)
    }

    fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("the train state serializes") + "\n";
        Ok(write_text_atomic(path, &json)?)
    }

    fn get(&self, k: SubModelKind) -> &SubModelState {
        &self.sub_models[k as usize]
    }

    fn get_mut(&mut self, k: SubModelKind) -> &mut SubModelState {
        &mut self.sub_models[k as usize]
    }
}

/// The sub-models a checkpoint folder's `train_state.json` records as never
/// trained (0 epochs: a run that failed or was stopped in its first epoch
/// leaves their initial weights). Empty when the folder has no readable
/// state file (a shipped model has none).
pub fn untrained_sub_models(model_dir: &Path) -> Vec<SubModelKind> {
    TrainState::read(&model_dir.join(STATE_FILE))
        .map(|s| s.sub_models.iter().filter(|m| m.epochs_done == 0).map(|m| m.sub_model).collect())
        .unwrap_or_default()
}

/// One epoch of one sub-model.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// Which sub-model.
    pub sub_model: SubModelKind,
    /// The epoch, 1-based over all runs.
    pub epoch: usize,
    /// The epoch cap.
    pub max_epochs: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation loss after the epoch.
    pub val_loss: f64,
    /// The best validation loss so far.
    pub best_val_loss: f64,
    /// Whether this epoch set it.
    pub improved: bool,
    /// Wall time of training plus validation.
    pub seconds: f64,
    /// Wall time of the training pass alone.
    pub train_seconds: f64,
    /// Wall time of the validation pass alone.
    pub val_seconds: f64,
    /// The layer-size model only: the validation accuracy of a layer size
    /// sampled from the predicted distribution (the reference's metric).
    pub accuracy: Option<f64>,
}

/// What [`train`] reports while it runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Progress {
    /// Both splits are loaded.
    Loaded {
        /// Graphs of the train split.
        train_graphs: usize,
        /// Graphs of the validation split.
        validation_graphs: usize,
        /// Trainable parameters of the three sub-models.
        parameters: [i64; 3],
    },
    /// A sub-model starts (or continues) training.
    Start {
        /// Which sub-model.
        sub_model: SubModelKind,
        /// Epochs already done.
        epochs_done: usize,
        /// The epoch cap.
        max_epochs: usize,
        /// Batches per epoch.
        batches: usize,
        /// Validation loss of the weights it starts from.
        val_loss: f64,
    },
    /// One optimizer step.
    Batch {
        /// Which sub-model.
        sub_model: SubModelKind,
        /// The epoch, 1-based.
        epoch: usize,
        /// The batch, 1-based.
        batch: usize,
        /// Batches per epoch.
        batches: usize,
        /// The batch's loss.
        loss: f64,
    },
    /// An epoch ended.
    Epoch(EpochReport),
    /// A sub-model has nothing left to do (finished earlier, or stopped early).
    Skip {
        /// Which sub-model.
        sub_model: SubModelKind,
        /// Why.
        reason: String,
    },
    /// Something the user should know, on one line (resuming an output
    /// folder without optimizer state).
    Warning {
        /// The message, naming the file.
        message: String,
    },
    /// A checkpoint could not be written; training goes on.
    CheckpointFailed {
        /// The error, naming the file.
        error: String,
    },
}

/// The outcome of one sub-model's training.
#[derive(Clone, Debug, PartialEq)]
pub struct SubModelReport {
    /// Which sub-model.
    pub sub_model: SubModelKind,
    /// Epochs trained in total (over all runs).
    pub epochs: usize,
    /// Epochs trained by this run.
    pub epochs_run: usize,
    /// The untrained model's validation loss.
    pub initial_val_loss: f64,
    /// The kept (lowest) validation loss.
    pub best_val_loss: f64,
    /// The epoch of the kept weights (0: untrained).
    pub best_epoch: usize,
    /// Whether early stopping ended it.
    pub stopped_early: bool,
    /// Per epoch of this run: mean training loss.
    pub train_losses: Vec<f64>,
    /// Per epoch of this run: validation loss.
    pub val_losses: Vec<f64>,
    /// Per epoch of this run: wall seconds.
    pub epoch_seconds: Vec<f64>,
    /// Per epoch of this run, the layer-size model only: validation accuracy
    /// of a sampled layer size.
    pub val_accuracies: Vec<f64>,
}

/// The outcome of [`train`].
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// The seed (the recorded one when resumed).
    pub seed: u64,
    /// One report per sub-model, in training order.
    pub sub_models: Vec<SubModelReport>,
    /// How well the checkpoint's size prior predicts depth and node count,
    /// when it has one.
    pub size_prior: Option<SizePriorReport>,
    /// How well the checkpoint's magnitude prior predicts each total: `(name,
    /// train, validation)` median relative errors, when it has one.
    pub magnitude_prior: Vec<(&'static str, f64, f64)>,
    /// Wall seconds of the whole call (loading included).
    pub seconds: f64,
}

/// Median relative errors of the size prior ([`SizePrior`]) on both splits.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizePriorReport {
    /// `(layers, nodes)` on the train split the prior was fitted on.
    pub train: (f64, f64),
    /// `(layers, nodes)` on the validation split.
    pub validation: (f64, f64),
    /// The layer of the sends to the next stage, `(train, validation)`,
    /// when the prior places them.
    pub forward_send: Option<(f64, f64)>,
}

/// Loads the data and trains (see the module docs).
pub fn train(spec: &TrainSpec, progress: &mut dyn FnMut(Progress)) -> Result<TrainReport> {
    let start = Instant::now();
    let config = ModelConfig::load(&spec.config)?;
    let data = load_data(&spec.data, spec.max_graphs)?;
    let mut report = train_on(spec, config, &data, progress)?;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Trains on data already loaded; `spec.config` and `spec.data` only name things in messages.
pub fn train_on(
    spec: &TrainSpec,
    config: ModelConfig,
    data: &TrainData,
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainReport> {
    train_on_kinds(spec, config, data, &SubModelKind::ALL, progress)
}

/// [`train_on`] for some of the sub-models only (in training order; the
/// others stay untrained, as the state file records). For benchmarks.
pub fn train_on_kinds(
    spec: &TrainSpec,
    config: ModelConfig,
    data: &TrainData,
    kinds: &[SubModelKind],
    progress: &mut dyn FnMut(Progress),
) -> Result<TrainReport> {
    let start = Instant::now();
    let out = &spec.out;
    for kind in SubModelKind::ALL {
        for (split, d) in [("train", &data.train), ("validation", &data.validation)] {
            if kind.stream_len(d) == 0 {
                return Err(TrainError::Data {
                    path: data.origin.clone(),
                    what: format!("the {split} split has no {kind} examples"),
                });
            }
        }
    }
    let state_path = out.join(STATE_FILE);
    let (mut model, mut state) = if spec.resume {
        let state = TrainState::read(&state_path)?;
        let mut model = LayerDag::load(out, spec.device)?;
        if model.config != config {
            return Err(TrainError::State {
                path: out.join(crate::model::layer_dag::CONFIG_FILE),
                what: format!("the checkpoint was trained with another model config than {}", spec.config.display()),
            });
        }
        if model.data != data.spec {
            return Err(TrainError::State {
                path: out.join(crate::model::layer_dag::CONFIG_FILE),
                what: format!("the checkpoint was trained on other data than {}", data.origin.display()),
            });
        }
        model.load_weights(&out.join(LAST_WEIGHTS_FILE))?;
        if state.precision != precision() {
            progress(Progress::Warning {
                message: format!(
                    "{}: trained so far with {} matrix products, continuing with {}; the weights will differ \
                     from a run that kept one precision",
                    state_path.display(),
                    state.precision,
                    precision()
                ),
            });
        }
        let mut state = state;
        state.precision = precision();
        (model, state)
    } else {
        if state_path.exists() {
            return Err(TrainError::State {
                path: state_path,
                what: "the output folder already holds a training run: resume it or choose another folder".into(),
            });
        }
        tch::manual_seed(spec.seed as i64);
        let model = LayerDag::new(config, data.spec.clone(), spec.device)?;
        (model, TrainState::new(spec.seed, precision()))
    };
    std::fs::create_dir_all(out).map_err(|error| TrainError::Io {
        path: out.clone(),
        action: "cannot create",
        error,
    })?;
    let mut run = Run::new(&model, spec, &state, progress)?;
    progress(Progress::Loaded {
        train_graphs: data.train.graphs.num_graphs(),
        validation_graphs: data.validation.graphs.num_graphs(),
        parameters: model.parameter_counts(),
    });

    // Every sub-model waits at its best weights (what the in-epoch saves of
    // weights.safetensors write) until its turn to train.
    for kind in SubModelKind::ALL {
        run.settle(&model, kind, &state)?;
    }
    let mut reports = Vec::new();
    for kind in SubModelKind::ALL.into_iter().filter(|k| kinds.contains(k)) {
        reports.push(train_sub_model(&mut model, kind, data, spec, &mut state, &mut run, progress)?);
    }
    model.save(out)?;
    run.save_last(&model)?;
    run.save_moments()?;
    state.write(&state_path)?;
    let (size_prior, magnitude_prior) = prior_reports(data);
    Ok(TrainReport {
        seed: state.seed,
        sub_models: reports,
        size_prior,
        magnitude_prior,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// How well the priors of `data` predict both splits.
fn prior_reports(data: &TrainData) -> (Option<SizePriorReport>, Vec<(&'static str, f64, f64)>) {
    let size_prior = data.spec.size_prior.as_ref().map(|p| SizePriorReport {
        train: (p.layers.train_median_rel_error, p.nodes.train_median_rel_error),
        validation: p.median_rel_errors(&data.validation.graphs).unwrap_or((f64::NAN, f64::NAN)),
        forward_send: p.forward_send_layer.as_ref().map(|fit| {
            let val = p.forward_send_rel_error(&data.validation.graphs, is_forward_send).unwrap_or(f64::NAN);
            (fit.train_median_rel_error, val)
        }),
    });
    let magnitude_prior = data
        .magnitude_train
        .iter()
        .map(|&(name, train)| {
            let validation = data.magnitude_validation.iter().find(|(n, _)| *n == name).map_or(f64::NAN, |v| v.1);
            (name, train, validation)
        })
        .collect();
    (size_prior, magnitude_prior)
}

/// What [`refit_priors`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct PriorsReport {
    /// The refitted size prior's errors, when the data gives one.
    pub size_prior: Option<SizePriorReport>,
    /// The refitted magnitude prior's `(name, train, validation)` errors.
    pub magnitude_prior: Vec<(&'static str, f64, f64)>,
}

/// Refits the data-derived priors of the checkpoint in `model_dir` (the
/// size and magnitude priors, which only steer sampling, and the
/// conditioning features' training ranges, which only steer warnings) on `source` and
/// rewrites its `config.json`; the weights are left alone. `source` must be
/// the data the checkpoint was trained on: everything else the data decides
/// (vocabularies, marginals, normalization, bucket values) must come out the
/// same, or nothing is written. This is how a checkpoint picks up a better
/// prior without retraining (which reproduces the weights bit for bit only
/// on the same kind of CPU).
pub fn refit_priors(model_dir: &Path, source: &DataSource) -> Result<PriorsReport> {
    if let DataSource::TpuTile(dir) = source {
        return Err(TrainError::Data {
            path: dir.clone(),
            what: "a TPU Tile folder: the priors are fitted on a corpus (SPLIT.txt, workloads/) only".into(),
        });
    }
    let mut model = LayerDag::load(model_dir, Device::Cpu)?;
    let data = load_data(source, None)?;
    let without_priors = |spec: &DataSpec| DataSpec {
        size_prior: None,
        magnitude_prior: None,
        y_normalizer: spec.y_normalizer.as_ref().map(Normalizer::without_ranges),
        ..spec.clone()
    };
    if without_priors(&model.data) != without_priors(&data.spec) {
        return Err(TrainError::State {
            path: model_dir.join(crate::model::layer_dag::CONFIG_FILE),
            what: format!("the checkpoint was trained on other data than {}", data.origin.display()),
        });
    }
    model.data.size_prior = data.spec.size_prior.clone();
    model.data.magnitude_prior = data.spec.magnitude_prior.clone();
    model.data.y_normalizer = data.spec.y_normalizer.clone();
    model.save_config(model_dir)?;
    let (size_prior, magnitude_prior) = prior_reports(&data);
    Ok(PriorsReport { size_prior, magnitude_prior })
}

/// What an output folder holds besides the model and the state file: each
/// sub-model's optimizer (`optimizer.safetensors`) and last weights
/// (`last.safetensors`), so that a resumed run goes on as an uninterrupted
/// one would.
struct Run {
    out: PathBuf,
    /// One optimizer per sub-model, in training order.
    opts: Vec<Adam>,
    /// Per sub-model: the epoch its optimizer's state is from (`None`: not
    /// known, an older output folder had none).
    moments_epoch: [Option<usize>; 3],
    /// The last (not best) weights of the sub-models that were put back at
    /// their best weights ([`Run::settle`], the end of training).
    last: BTreeMap<String, Tensor>,
}

impl Run {
    /// Fresh optimizers, or when resuming those of `optimizer.safetensors`;
    /// a folder without that file resumes with fresh moments and a warning.
    fn new(model: &LayerDag, spec: &TrainSpec, state: &TrainState, progress: &mut dyn FnMut(Progress)) -> Result<Self> {
        let opts = SubModelKind::ALL
            .iter()
            .map(|&k| {
                let (lr, amsgrad) = k.optimizer(&model.config);
                Adam::new(k.store(model), AdamConfig::new(lr, amsgrad))
            })
            .collect();
        let mut run = Run { out: spec.out.clone(), opts, moments_epoch: [Some(0); 3], last: BTreeMap::new() };
        if !spec.resume {
            return Ok(run);
        }
        let path = spec.out.join(OPTIMIZER_FILE);
        let mut saved = read_moments(&path, state)?;
        let mut fresh = Vec::new();
        for kind in SubModelKind::ALL {
            let s = state.get(kind);
            match saved.as_mut().and_then(|m| m.remove(&kind)) {
                Some((epoch, tensors)) => {
                    run.opts[kind as usize]
                        .import(&tensors)
                        .map_err(|what| TrainError::State { path: path.clone(), what: format!("{kind}: {what}") })?;
                    run.moments_epoch[kind as usize] = Some(epoch);
                }
                None if s.epochs_done == 0 => {}
                None => {
                    run.moments_epoch[kind as usize] = None;
                    let max_epochs = spec.max_epochs.unwrap_or_else(|| kind.num_epochs(&model.config));
                    if !s.stopped_early && s.epochs_done < max_epochs {
                        fresh.push(kind.name());
                    }
                }
            }
        }
        if !fresh.is_empty() {
            let why = if saved.is_some() {
                "holds no Adam state of"
            } else {
                "is missing (an older strata's folder): no Adam state of"
            };
            progress(Progress::Warning {
                message: format!("{}: {why} {}; their moments start afresh", path.display(), fresh.join(", ")),
            });
        }
        Ok(run)
    }

    /// A sub-model that is not training: its current weights are kept as its
    /// last, and it goes back to its best (`weights.safetensors`) when it
    /// has trained.
    fn settle(&mut self, model: &LayerDag, kind: SubModelKind, state: &TrainState) -> Result<()> {
        self.last.extend(snapshot(kind.store(model)));
        if state.get(kind).epochs_done > 0 {
            restore(kind.store(model), &read_best(&self.out, kind)?);
        }
        Ok(())
    }

    /// A sub-model about to train: back to its last weights.
    fn unsettle(&mut self, model: &LayerDag, kind: SubModelKind) {
        let (mine, others): (BTreeMap<String, Tensor>, BTreeMap<String, Tensor>) =
            std::mem::take(&mut self.last).into_iter().partition(|(n, _)| n.starts_with(kind.var_prefix()));
        self.last = others;
        restore(kind.store(model), &mine);
    }

    /// Writes the last weights of all three sub-models to `last.safetensors`:
    /// [`Run::last`] where it has them, else the current weights.
    fn save_last(&self, model: &LayerDag) -> Result<()> {
        let mut vars = model.variables();
        vars.extend(self.last.iter().map(|(n, t)| (n.clone(), t.shallow_clone())));
        let named: Vec<(String, Tensor)> =
            vars.into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu).contiguous())).collect();
        Ok(write_safetensors_atomic(&named, &self.out.join(LAST_WEIGHTS_FILE))?)
    }

    /// Writes the optimizers' states (of the sub-models whose state is
    /// known) to `optimizer.safetensors`: `FIELD.VARIABLE` tensors
    /// ([`crate::optim::STATE_FIELDS`]) and an int64 `epochs.SUB_MODEL`, the
    /// epoch the state is from.
    fn save_moments(&self) -> Result<()> {
        let path = self.out.join(OPTIMIZER_FILE);
        let mut named = Vec::new();
        for kind in SubModelKind::ALL {
            if let Some(epoch) = self.moments_epoch[kind as usize] {
                named.push((format!("epochs.{}", kind.name()), Tensor::from(epoch as i64)));
                named.extend(self.opts[kind as usize].export().map_err(|e| TrainError::State {
                    path: path.clone(),
                    what: format!("{kind}: cannot copy the optimizer state: {e}"),
                })?);
            }
        }
        Ok(write_safetensors_atomic(&named, &path)?)
    }
}

/// Optimizer states by sub-model: the epoch each is from and its
/// `FIELD.VARIABLE` tensors.
type SavedMoments = BTreeMap<SubModelKind, (usize, BTreeMap<String, Tensor>)>;

/// Reads `optimizer.safetensors` (`None` when there is none), grouped by
/// sub-model: the epoch of its state and its `FIELD.VARIABLE` tensors. Every
/// sub-model with state must be at the epoch `state` records.
fn read_moments(path: &Path, state: &TrainState) -> Result<Option<SavedMoments>> {
    match std::fs::metadata(path) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(TrainError::Io { path: path.into(), action: "cannot read", error }),
    }
    let bad = |what: String| TrainError::State { path: path.into(), what };
    let file = crate::model::layer_dag::read_safetensors(path).map_err(|what| bad(format!("cannot read: {what}")))?;
    let mut epochs = BTreeMap::new();
    let mut tensors: BTreeMap<SubModelKind, BTreeMap<String, Tensor>> = BTreeMap::new();
    for (name, t) in file {
        if let Some(k) = name.strip_prefix("epochs.") {
            let kind = SubModelKind::ALL
                .into_iter()
                .find(|s| s.name() == k)
                .ok_or_else(|| bad(format!("{name}: not a sub-model")))?;
            let epoch = (t.kind() == tch::Kind::Int64 && t.numel() == 1)
                .then(|| t.reshape([1]).int64_value(&[0]))
                .and_then(|e| usize::try_from(e).ok())
                .ok_or_else(|| bad(format!("{name}: not a non-negative int64 scalar")))?;
            epochs.insert(kind, epoch);
        } else {
            let kind = name
                .split_once('.')
                .and_then(|(_, var)| SubModelKind::ALL.into_iter().find(|k| var.starts_with(k.var_prefix())))
                .ok_or_else(|| bad(format!("{name}: not the optimizer state of a sub-model's variable")))?;
            tensors.entry(kind).or_default().insert(name, t);
        }
    }
    if let Some(kind) = tensors.keys().find(|k| !epochs.contains_key(k)) {
        return Err(bad(format!("{kind}: optimizer state without its epochs.{}", kind.name())));
    }
    let mut out = BTreeMap::new();
    for (kind, epoch) in epochs {
        let done = state.get(kind).epochs_done;
        if epoch != done {
            return Err(bad(format!(
                "{kind}: the optimizer state is from epoch {epoch}, {STATE_FILE} records {done} epochs \
                 (delete {OPTIMIZER_FILE} to resume with fresh moments)"
            )));
        }
        out.insert(kind, (epoch, tensors.remove(&kind).unwrap_or_default()));
    }
    Ok(Some(out))
}

/// A sub-model's best weights, from `weights.safetensors`.
fn read_best(out: &Path, kind: SubModelKind) -> Result<BTreeMap<String, Tensor>> {
    let path = out.join(crate::model::layer_dag::WEIGHTS_FILE);
    let file = crate::model::layer_dag::read_safetensors(&path)
        .map_err(|what| TrainError::State { path: path.clone(), what: format!("cannot read: {what}") })?;
    Ok(file.into_iter().filter(|(n, _)| n.starts_with(kind.var_prefix())).collect())
}

/// Deep copies of a store's variables.
fn snapshot(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    let _guard = tch::no_grad_guard();
    vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect()
}

/// Copies a snapshot back into a store.
fn restore(vs: &nn::VarStore, snap: &BTreeMap<String, Tensor>) {
    let _guard = tch::no_grad_guard();
    for (name, mut var) in vs.variables() {
        if let Some(src) = snap.get(&name) {
            var.copy_(src);
        }
    }
}

/// splitmix64: the seeds of every epoch and our shuffles.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher–Yates.
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// A seed for `(run seed, sub-model, epoch, purpose)`; purpose 0 trains, 1 validates.
pub(crate) fn derive_seed(seed: u64, kind: SubModelKind, epoch: usize, purpose: u64) -> u64 {
    let mut r = SplitMix(seed);
    let a = r.next() ^ kind.index().wrapping_mul(0xA24B_AED4_963E_E407);
    let mut r =
        SplitMix(a ^ (epoch as u64).wrapping_mul(0x9FB2_1C65_1E98_DF25) ^ purpose.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    r.next() >> 1 // non-negative as i64
}

/// One epoch's example order: the stream cut into windows of up to `window`
/// consecutive examples of one graph (`graph[i]` is example i's graph; a
/// graph's examples are contiguous, layer by layer), the windows shuffled.
/// With `window` 1 this is a plain shuffle of the examples, draw for draw.
fn epoch_order(graph: &[u32], window: usize, seed: u64) -> Vec<usize> {
    let mut windows: Vec<std::ops::Range<usize>> = Vec::new();
    let mut start = 0;
    while start < graph.len() {
        let mut end = start + 1;
        while end < graph.len() && graph[end] == graph[start] && end - start < window {
            end += 1;
        }
        windows.push(start..end);
        start = end;
    }
    SplitMix(seed).shuffle(&mut windows);
    windows.into_iter().flatten().collect()
}

/// Chunks of `batch_size`, a trailing chunk of one merged into the one before.
fn chunks(order: &[usize], batch_size: usize) -> Vec<&[usize]> {
    let mut out: Vec<&[usize]> = order.chunks(batch_size.max(1)).collect();
    if out.len() >= 2 && out.last().is_some_and(|c| c.len() == 1) {
        out.pop();
        let n = out.len();
        let start = (n - 1) * batch_size;
        out[n - 1] = &order[start..];
    }
    out
}

/// One batch's mean loss and the number of terms it averages (layer sizes,
/// new nodes, or edge candidates), so batch means combine into the split's mean.
fn batch_loss(m: &LayerDag, kind: SubModelKind, d: &LayerDagData, idx: &[usize], train: bool) -> Result<(Tensor, f64)> {
    let (loss, w, _) = batch_loss_full(m, kind, d, idx, train)?;
    Ok((loss, w))
}

static PER_NODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether training and validation run the encoders once per node instead of
/// once per colour of the batch's colour graph ([`crate::model::compress`]).
/// The two compute the same function; per node is only there to measure the
/// difference (the TPU Tile benchmark's `STRATA_TPU_PER_NODE=1`).
pub fn set_per_node_encoders(per_node: bool) {
    PER_NODE.store(per_node, std::sync::atomic::Ordering::Relaxed);
}

fn compressing() -> bool {
    !PER_NODE.load(std::sync::atomic::Ordering::Relaxed)
}

/// The layer-size logits and labels of a batch, for its accuracy.
type Predictions = Option<(Tensor, Tensor)>;

/// [`batch_loss`], also returning the layer-size model's logits and labels.
fn batch_loss_full(
    m: &LayerDag,
    kind: SubModelKind,
    d: &LayerDagData,
    idx: &[usize],
    train: bool,
) -> Result<(Tensor, f64, Predictions)> {
    let dev = m.device();
    let c = &m.config;
    // Each example's conditioning group: its dataset graph.
    let groups = |graph: &[u32]| -> Vec<i64> { idx.iter().map(|&i| graph[i] as i64).collect() };
    Ok(match kind {
        SubModelKind::NodeCount => {
            let batch = d.node_count.batch(&d.graphs, idx)?;
            let mut b = batch.to_tensors(dev);
            if compressing() {
                b.graphs.compress(&batch.graphs, &groups(&d.node_count.graph), c.node_count.model.num_mpnn_layers);
            }
            let logits = m.node_count.model.forward_batch(&b, train)?;
            let loss = m.node_count.model.loss(&logits, &b.label)?;
            (loss, idx.len() as f64, Some((logits, b.label)))
        }
        SubModelKind::NodePred => {
            let batch = d.node_attr.batch(&d.graphs, idx)?;
            let mut b = batch.to_tensors(dev);
            if compressing() {
                let depth = c.node_pred.graph_encoder.num_mpnn_layers;
                b.graphs.compress(&batch.graphs, &groups(&d.node_attr.graph), depth);
            }
            let t = m.node_diffusion.sample_t(b.graphs.num_graphs);
            let x_t = m.node_diffusion.q_sample(&b.target, &steps_per_node(&t, &b.query_offsets)?)?;
            let logits = m.node_pred.model.forward_batch(&b, &x_t, &t, train)?;
            (node_loss(&logits, &b.target)?, b.target.size()[0] as f64, None)
        }
        SubModelKind::EdgePred => {
            let batch = d.edge.batch(&d.graphs, idx)?;
            let mut b = batch.to_tensors(dev);
            let layout = m.edge_diffusion.layout(&b.num_prev, &b.num_new, &b.cand_offsets)?;
            let t = m.edge_diffusion.sample_t(b.num_prev.size()[0]);
            let noisy = m.edge_diffusion.q_sample(&b.label, &t, &layout)?;
            // The colour graph over the true and the noisy edges, in the
            // order the model concatenates them.
            if compressing() {
                let on = Vec::<bool>::try_from(noisy.to_kind(tch::Kind::Bool).to_device(Device::Cpu))
                    .map_err(|e| ModelError::Torch { context: "reading the noisy edges".into(), source: e })?;
                let (mut src, mut dst) = (batch.graphs.src.clone(), batch.graphs.dst.clone());
                for ((&keep, &u), &v) in on.iter().zip(&batch.cand_src).zip(&batch.cand_dst) {
                    if keep {
                        src.push(u);
                        dst.push(v);
                    }
                }
                let group = groups(&d.edge.graph);
                let node_group: Vec<i64> = batch.graphs.node_graph.iter().map(|&i| group[i as usize]).collect();
                let depth = c.edge_pred.graph_encoder.num_mpnn_layers;
                let comp = Compression::new(&batch.graphs.x, batch.graphs.num_features, &node_group, &src, &dst, depth);
                b.graphs.compressed = Some(comp.to_tensors(dev));
            }
            let logits = m.edge_pred.model.forward_batch(&b, &noisy, &t, train)?;
            (edge_loss(&logits, &b.label)?, b.label.size()[0] as f64, None)
        }
    })
}

/// The mean loss of a sub-model over every example of `d`, in eval mode, in
/// stream order, with libtorch reseeded to `seed` first (the diffusion's steps
/// and noise are then the same at every call).
pub fn validation_loss(m: &LayerDag, kind: SubModelKind, d: &LayerDagData, seed: u64) -> Result<f64> {
    Ok(validation_metrics(m, kind, d, seed)?.0)
}

/// [`validation_loss`] and, for the layer-size model, the accuracy of a layer
/// size drawn from each predicted distribution (the reference's selection
/// metric; the draws come after the losses, from the same reseeded
/// generator). Stream order keeps a graph's examples together, so batches
/// share most of their colour graphs.
pub fn validation_metrics(m: &LayerDag, kind: SubModelKind, d: &LayerDagData, seed: u64) -> Result<(f64, Option<f64>)> {
    let _guard = tch::no_grad_guard();
    tch::manual_seed(seed as i64);
    let order: Vec<usize> = (0..kind.stream_len(d)).collect();
    let (mut sum, mut n) = (0.0, 0.0);
    let (mut hits, mut total) = (0i64, 0i64);
    for idx in chunks(&order, kind.batch_size(&m.config)) {
        let (loss, w, extra) = batch_loss_full(m, kind, d, idx, false)?;
        sum += loss.double_value(&[]) * w;
        n += w;
        if let Some((logits, label)) = extra {
            let probs = logits.softmax(1, tch::Kind::Float);
            let drawn = probs.multinomial(1, true).squeeze_dim(1);
            let label = label.clamp_max(m.node_count.model.num_classes() - 1);
            hits += drawn.eq_tensor(&label).sum(tch::Kind::Int64).int64_value(&[]);
            total += label.size()[0];
        }
    }
    let loss = if n > 0.0 { sum / n } else { f64::NAN };
    let acc = (kind == SubModelKind::NodeCount && total > 0).then(|| hits as f64 / total as f64);
    Ok((loss, acc))
}

fn train_sub_model(
    model: &mut LayerDag,
    kind: SubModelKind,
    data: &TrainData,
    spec: &TrainSpec,
    state: &mut TrainState,
    run: &mut Run,
    progress: &mut dyn FnMut(Progress),
) -> Result<SubModelReport> {
    let seed = state.seed;
    let max_epochs = spec.max_epochs.unwrap_or_else(|| kind.num_epochs(&model.config));
    let patience = model.config.general.patience;
    let val_seed = derive_seed(seed, kind, 0, 1);
    let s0 = state.get(kind).clone();
    let mut report = SubModelReport {
        sub_model: kind,
        epochs: s0.epochs_done,
        epochs_run: 0,
        initial_val_loss: s0.initial_val_loss.unwrap_or(f64::NAN),
        best_val_loss: s0.best_val_loss.unwrap_or(f64::NAN),
        best_epoch: s0.best_epoch,
        stopped_early: s0.stopped_early,
        train_losses: Vec::new(),
        val_losses: Vec::new(),
        epoch_seconds: Vec::new(),
        val_accuracies: Vec::new(),
    };
    if s0.stopped_early || s0.epochs_done >= max_epochs {
        let reason = if s0.stopped_early {
            format!("stopped early at epoch {}", s0.epochs_done)
        } else {
            format!("{} of {max_epochs} epochs done", s0.epochs_done)
        };
        progress(Progress::Skip { sub_model: kind, reason });
        return Ok(report);
    }

    // The weights it starts from (its last) and their validation loss; the
    // best so far is that loss when untrained, else the best recorded (its
    // weights are in weights.safetensors).
    run.unsettle(model, kind);
    let start_loss = validation_loss(model, kind, &data.validation, val_seed)?;
    let mut best = match s0.best_val_loss {
        None => {
            let st = state.get_mut(kind);
            st.initial_val_loss = Some(start_loss);
            st.best_val_loss = Some(start_loss);
            st.best_epoch = 0;
            report.initial_val_loss = start_loss;
            report.best_val_loss = start_loss;
            // The untrained weights are the best so far: make the checkpoint say so.
            checkpoint(model, state, run, true, progress);
            snapshot(kind.store(model))
        }
        Some(_) => read_best(&spec.out, kind)?,
    };

    let n = kind.stream_len(&data.train);
    let batch_size = kind.batch_size(&model.config);
    let window = kind.loader(&model.config).layer_window;
    let batches = chunks(&(0..n).collect::<Vec<_>>(), batch_size).len();
    progress(Progress::Start {
        sub_model: kind,
        epochs_done: s0.epochs_done,
        max_epochs,
        batches,
        val_loss: start_loss,
    });

    while state.get(kind).epochs_done < max_epochs {
        let epoch = state.get(kind).epochs_done + 1;
        let t0 = Instant::now();
        let order = epoch_order(kind.example_graphs(&data.train), window, derive_seed(seed, kind, epoch, 0));
        tch::manual_seed(derive_seed(seed, kind, epoch, 2) as i64);
        let (mut sum, mut count) = (0.0, 0usize);
        let chunked = chunks(&order, batch_size);
        for (i, idx) in chunked.iter().enumerate() {
            let (loss, _) = batch_loss(model, kind, &data.train, idx, true)?;
            run.opts[kind as usize]
                .backward_step(&loss)
                .map_err(|e| ModelError::Torch { context: format!("the {kind} optimizer step"), source: e })?;
            let l = loss.double_value(&[]);
            sum += l;
            count += 1;
            progress(Progress::Batch { sub_model: kind, epoch, batch: i + 1, batches, loss: l });
        }
        let train_loss = sum / count.max(1) as f64;
        let train_seconds = t0.elapsed().as_secs_f64();
        let (val_loss, accuracy) = validation_metrics(model, kind, &data.validation, val_seed)?;
        let val_seconds = t0.elapsed().as_secs_f64() - train_seconds;
        let st = state.get_mut(kind);
        st.epochs_done = epoch;
        let improved = val_loss < st.best_val_loss.unwrap_or(f64::INFINITY);
        if improved {
            st.best_val_loss = Some(val_loss);
            st.best_epoch = epoch;
            st.epochs_since_best = 0;
            best = snapshot(kind.store(model));
        } else {
            st.epochs_since_best += 1;
        }
        if patience.is_some_and(|p| st.epochs_since_best >= p) {
            st.stopped_early = true;
        }
        let best_val_loss = st.best_val_loss.unwrap_or(val_loss);
        let seconds = t0.elapsed().as_secs_f64();
        report.epochs = epoch;
        report.epochs_run += 1;
        report.best_val_loss = best_val_loss;
        report.best_epoch = st.best_epoch;
        report.stopped_early = st.stopped_early;
        report.train_losses.push(train_loss);
        report.val_losses.push(val_loss);
        report.epoch_seconds.push(seconds);
        report.val_accuracies.extend(accuracy);
        let stop = st.stopped_early;
        run.moments_epoch[kind as usize] = Some(epoch);
        checkpoint(model, state, run, improved, progress);
        progress(Progress::Epoch(EpochReport {
            sub_model: kind,
            epoch,
            max_epochs,
            train_loss,
            val_loss,
            best_val_loss,
            improved,
            seconds,
            train_seconds,
            val_seconds,
            accuracy,
        }));
        if stop {
            break;
        }
    }
    run.last.extend(snapshot(kind.store(model)));
    restore(kind.store(model), &best);
    Ok(report)
}

/// The per-epoch checkpoint: last weights, optimizer state, the best weights
/// when they changed, the state. Failures are reported, not fatal.
fn checkpoint(model: &LayerDag, state: &TrainState, run: &Run, improved: bool, progress: &mut dyn FnMut(Progress)) {
    let mut fail = |e: String| progress(Progress::CheckpointFailed { error: e });
    if let Err(e) = run.save_last(model) {
        fail(e.to_string());
    }
    if let Err(e) = run.save_moments() {
        fail(e.to_string());
    }
    if improved {
        if let Err(e) = model.save(&run.out) {
            fail(e.to_string());
        }
    }
    if let Err(e) = state.write(&run.out.join(STATE_FILE)) {
        fail(e.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::set_precision;
    use crate::model::config::tests::SMALL_TOML;
    use crate::model::tests::{rng_lock, temp_dir, TempPath};

    const TPU_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/tpu-tile");
    const CORPUS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/corpus");

    /// The first 12 graphs of each TPU Tile split.
    fn tiny_data() -> &'static TrainData {
        static D: std::sync::OnceLock<TrainData> = std::sync::OnceLock::new();
        D.get_or_init(|| load_data(&DataSource::TpuTile(TPU_DIR.into()), Some(12)).unwrap())
    }

    fn spec(out: PathBuf, seed: u64, epochs: usize, resume: bool) -> TrainSpec {
        TrainSpec {
            config: SMALL_TOML.into(),
            data: DataSource::TpuTile(TPU_DIR.into()),
            out,
            seed,
            device: Device::Cpu,
            max_epochs: Some(epochs),
            resume,
            max_graphs: Some(12),
        }
    }

    /// The libtorch lock, with one intra-op thread: on a small shared machine
    /// OpenMP's spinning threads make these tiny batches ~20× slower.
    fn lock() -> std::sync::MutexGuard<'static, ()> {
        let guard = rng_lock();
        tch::set_num_threads(1);
        guard
    }

    fn run(s: &TrainSpec) -> Result<TrainReport> {
        train_on(s, ModelConfig::load(&s.config).unwrap(), tiny_data(), &mut |_| {})
    }

    #[test]
    fn layer_windows_keep_runs_of_a_graph_together_and_share_colours() {
        let d = &tiny_data().train;
        let graph = &d.node_attr.graph;
        let n = graph.len();
        // Window 1 is the reference's plain shuffle, draw for draw.
        let mut plain: Vec<usize> = (0..n).collect();
        SplitMix(9).shuffle(&mut plain);
        assert_eq!(epoch_order(graph, 1, 9), plain);
        // Window 4: a permutation made of runs of up to 4 consecutive layers of one graph.
        let order = epoch_order(graph, 4, 9);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>());
        let mut runs = 0;
        let mut i = 0;
        while i < n {
            let mut j = i + 1;
            while j < n && order[j] == order[j - 1] + 1 && graph[order[j]] == graph[order[i]] && j - i < 4 {
                j += 1;
            }
            runs += 1;
            i = j;
        }
        let mut per_graph = std::collections::BTreeMap::<u32, usize>::new();
        for &g in graph {
            *per_graph.entry(g).or_default() += 1;
        }
        assert_eq!(runs, per_graph.values().map(|&l| l.div_ceil(4)).sum::<usize>());
        assert_ne!(epoch_order(graph, 4, 10), order);
        // What the windows are for: a batch of prefixes of the same graphs
        // has far fewer distinct node states than a batch of random prefixes.
        let colours = |idx: &[usize]| {
            let b = d.node_attr.batch(&d.graphs, idx).unwrap();
            let group: Vec<i64> = b.graphs.node_graph.iter().map(|&k| graph[idx[k as usize]] as i64).collect();
            let c = Compression::new(&b.graphs.x, b.graphs.num_features, &group, &b.graphs.src, &b.graphs.dst, 2);
            (*c.num_colors.last().unwrap(), b.graphs.node_graph.len())
        };
        let (windowed, nodes_w) = colours(&epoch_order(graph, 8, 3)[..16]);
        let (shuffled, nodes_s) = colours(&epoch_order(graph, 1, 3)[..16]);
        assert!(
            (windowed as f64 / nodes_w as f64) < 0.7 * (shuffled as f64 / nodes_s as f64),
            "colours per node: windows of 8 {windowed}/{nodes_w}, shuffled {shuffled}/{nodes_s}"
        );
    }

    #[test]
    fn chunks_merge_a_trailing_single_example() {
        let v: Vec<usize> = (0..9).collect();
        let c = chunks(&v, 4);
        assert_eq!(c, vec![&v[0..4], &v[4..9]]);
        assert_eq!(chunks(&v, 3).len(), 3);
        assert_eq!(chunks(&v[..1], 4), vec![&v[0..1]]);
        let mut a: Vec<usize> = (0..50).collect();
        SplitMix(1).shuffle(&mut a);
        let mut b: Vec<usize> = (0..50).collect();
        SplitMix(1).shuffle(&mut b);
        assert_eq!(a, b);
        assert_ne!(a, (0..50).collect::<Vec<_>>());
        assert_ne!(derive_seed(0, SubModelKind::NodeCount, 1, 0), derive_seed(0, SubModelKind::NodeCount, 2, 0));
    }

    #[test]
    fn data_sources_are_detected_and_named() {
        assert_eq!(DataSource::detect(Path::new(TPU_DIR)).unwrap(), DataSource::TpuTile(TPU_DIR.into()));
        assert_eq!(DataSource::detect(Path::new(CORPUS_DIR)).unwrap(), DataSource::Corpus(CORPUS_DIR.into()));
        let dir = temp_dir("train-detect");
        let e = DataSource::detect(&dir).unwrap_err().to_string();
        assert!(e.contains(&dir.display().to_string()) && e.contains("cannot read"), "{e}");
        std::fs::create_dir_all(&dir).unwrap();
        let e = DataSource::detect(&dir).unwrap_err().to_string();
        assert!(e.contains(&dir.display().to_string()) && e.contains("SPLIT.txt"), "{e}");
    }

    /// Corpus ranks are conditioned on their normalized workload features,
    /// and the normalizer travels in the data spec.
    #[test]
    fn corpus_data_carries_its_normalizer() {
        let d = load_data(&DataSource::Corpus(CORPUS_DIR.into()), Some(2)).unwrap();
        assert_eq!((d.train.graphs.num_graphs(), d.validation.graphs.num_graphs()), (2, 2));
        assert_eq!(d.spec.y_dim, WORKLOAD_FEATURES.len());
        assert_eq!(d.spec.y_normalizer.as_ref().map(|n| n.mean.len()), Some(WORKLOAD_FEATURES.len()));
        let deepest = d.train.graphs.stats().max_level.max(d.validation.graphs.stats().max_level);
        assert_eq!(d.spec.max_level, deepest);
        d.spec.validate().unwrap();
    }

    /// An empty TPU Tile file is an error naming it, before any model is built.
    #[test]
    fn an_empty_dataset_is_a_clear_error() {
        let dir = temp_dir("train-empty");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(TPU_TRAIN_FILE), "").unwrap();
        std::fs::write(dir.join(TPU_VALIDATION_FILE), "").unwrap();
        let source = DataSource::detect(&dir).unwrap();
        let e = load_data(&source, None).unwrap_err().to_string();
        assert!(e.contains(&dir.join(TPU_TRAIN_FILE).display().to_string()) && e.contains("no graphs"), "{e}");
        let mut s = spec(dir.join("out"), 0, 1, false);
        s.data = source;
        let e = train(&s, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("no graphs"), "{e}");
        assert!(!dir.join("out").exists());
    }

    /// Two epochs lower each sub-model's validation loss, measured on the
    /// untrained model and on the written checkpoint with the same noise.
    #[test]
    fn training_lowers_every_validation_loss() {
        let _rng = lock();
        let data = tiny_data();
        let seed = 3;
        tch::manual_seed(seed as i64);
        let untrained =
            LayerDag::new(ModelConfig::load(Path::new(SMALL_TOML)).unwrap(), data.spec.clone(), Device::Cpu).unwrap();
        let out = temp_dir("train-lower");
        let mut epochs = Vec::new();
        let s = spec(out.clone(), seed, 2, false);
        let report = train_on(&s, untrained.config.clone(), data, &mut |p| {
            if let Progress::Epoch(e) = p {
                epochs.push((e.sub_model, e.epoch))
            }
        })
        .unwrap();
        assert_eq!(epochs.len(), 6);
        let trained = LayerDag::load(&out, Device::Cpu).unwrap();
        for (kind, r) in SubModelKind::ALL.into_iter().zip(&report.sub_models) {
            let vs = derive_seed(seed, kind, 0, 1);
            let before = validation_loss(&untrained, kind, &data.validation, vs).unwrap();
            let after = validation_loss(&trained, kind, &data.validation, vs).unwrap();
            assert!(after < before, "{kind}: validation loss {before} -> {after}");
            assert!((before - r.initial_val_loss).abs() < 1e-9, "{kind}: {before} vs {}", r.initial_val_loss);
            assert!((after - r.best_val_loss).abs() < 1e-9, "{kind}: {after} vs {}", r.best_val_loss);
            assert_eq!((r.epochs, r.epochs_run, r.epoch_seconds.len()), (2, 2, 2));
        }
        let state = TrainState::read(&out.join(STATE_FILE)).unwrap();
        assert!(state.sub_models.iter().all(|s| s.epochs_done == 2 && !s.stopped_early));
    }

    #[test]
    fn the_same_seed_writes_identical_weights() {
        let _rng = lock();
        let weights = |seed: u64| {
            let out = temp_dir("train-seed");
            run(&spec(out.clone(), seed, 1, false)).unwrap();
            std::fs::read(out.join(crate::model::layer_dag::WEIGHTS_FILE)).unwrap()
        };
        let a = weights(7);
        assert!(a == weights(7), "two runs with seed 7 wrote different weights");
        assert!(a != weights(8), "seeds 7 and 8 wrote the same weights");
    }

    /// bf16 products train reproducibly (the same bytes twice) and not as
    /// fp32 does; the state file records the precision, and resuming with
    /// the other one says so.
    #[test]
    fn bf16_training_is_reproducible_and_recorded() {
        let _rng = lock();
        let train = |precision: Precision, epochs: usize, resume: bool, out: &PathBuf| {
            let mut warnings = Vec::new();
            set_precision(precision);
            let report = train_on(
                &spec(out.clone(), 7, epochs, resume),
                ModelConfig::load(Path::new(SMALL_TOML)).unwrap(),
                tiny_data(),
                &mut |p| {
                    if let Progress::Warning { message } = p {
                        warnings.push(message)
                    }
                },
            );
            set_precision(Precision::Fp32);
            report.unwrap();
            (read(out, crate::model::layer_dag::WEIGHTS_FILE), warnings)
        };
        let (a, b, c) = (temp_dir("train-bf16-a"), temp_dir("train-bf16-b"), temp_dir("train-fp32"));
        let (bf16, warnings) = train(Precision::Bf16, 1, false, &a);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(bf16 == train(Precision::Bf16, 1, false, &b).0, "two bf16 runs wrote different weights");
        assert!(bf16 != train(Precision::Fp32, 1, false, &c).0, "bf16 and fp32 runs wrote the same weights");
        assert_eq!(TrainState::read(&a.join(STATE_FILE)).unwrap().precision, Precision::Bf16);
        assert_eq!(TrainState::read(&c.join(STATE_FILE)).unwrap().precision, Precision::Fp32);
        let (_, warnings) = train(Precision::Fp32, 2, true, &a);
        assert!(warnings.iter().any(|w| w.contains("with bf16") && w.contains("continuing with fp32")), "{warnings:?}");
        assert_eq!(TrainState::read(&a.join(STATE_FILE)).unwrap().precision, Precision::Fp32);
    }

    #[test]
    fn resume_continues_where_the_state_file_left_off() {
        let _rng = lock();
        let out = temp_dir("train-resume");
        let e = run(&spec(out.clone(), 1, 1, true)).unwrap_err().to_string();
        assert!(e.contains(STATE_FILE), "{e}");
        let first = run(&spec(out.clone(), 1, 1, false)).unwrap();
        assert!(first.sub_models.iter().all(|r| r.epochs == 1));
        // A fresh run does not overwrite a run in progress.
        let e = run(&spec(out.clone(), 1, 2, false)).unwrap_err().to_string();
        assert!(e.contains(STATE_FILE) && e.contains("resume"), "{e}");
        let second = run(&spec(out.clone(), 99, 2, true)).unwrap();
        assert_eq!(second.seed, 1, "a resumed run keeps its seed");
        for (a, b) in first.sub_models.iter().zip(&second.sub_models) {
            assert_eq!((b.epochs, b.epochs_run), (2, 1), "{}", b.sub_model);
            assert_eq!(a.initial_val_loss, b.initial_val_loss);
            assert!(b.best_val_loss <= a.best_val_loss);
        }
        let state = TrainState::read(&out.join(STATE_FILE)).unwrap();
        assert!(state.sub_models.iter().all(|s| s.epochs_done == 2));
        // A hand-edited state that contradicts itself is refused, naming the sub-model.
        let text = std::fs::read_to_string(out.join(STATE_FILE)).unwrap();
        let bad = temp_dir("train-state-bad");
        std::fs::create_dir_all(&*bad).unwrap();
        for (key, value, says) in [
            ("best_epoch", serde_json::json!(50), "best_epoch 50"),
            ("best_val_loss", serde_json::json!(-1e308), "-1e308"),
        ] {
            let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
            json["sub_models"][0][key] = value;
            std::fs::write(bad.join(STATE_FILE), json.to_string()).unwrap();
            let e = TrainState::read(&bad.join(STATE_FILE)).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains(STATE_FILE) && e.contains("node_count") && e.contains(says), "{e}");
        }
        // Nothing left to do at the same cap.
        let third = run(&spec(out.clone(), 1, 2, true)).unwrap();
        assert!(third.sub_models.iter().all(|r| r.epochs_run == 0 && r.epochs == 2));
        LayerDag::load(&out, Device::Cpu).unwrap();
    }

    fn read(dir: &Path, file: &str) -> Vec<u8> {
        std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
    }

    /// Trains `epochs` epochs in one go and `first` epochs resumed to
    /// `epochs`, checks that both train the same (the same losses,
    /// byte-identical weights, optimizer state and state file) and returns
    /// the uninterrupted run's report and folder.
    fn straight_and_resumed(name: &str, config: &ModelConfig, first: usize, epochs: usize) -> (TrainReport, TempPath) {
        let (straight, resumed) = (temp_dir(&format!("{name}-straight")), temp_dir(&format!("{name}-resumed")));
        let train = |out: &PathBuf, epochs, resume| {
            train_on(&spec(out.clone(), 5, epochs, resume), config.clone(), tiny_data(), &mut |_| {}).unwrap()
        };
        let a = train(&straight, epochs, false);
        let first = train(&resumed, first, false);
        let b = train(&resumed, epochs, true);
        for ((a, first), b) in a.sub_models.iter().zip(&first.sub_models).zip(&b.sub_models) {
            let kind = a.sub_model;
            assert_eq!(a.epochs, b.epochs, "{kind}");
            assert_eq!(a.train_losses, [first.train_losses.clone(), b.train_losses.clone()].concat(), "{kind}");
            assert_eq!(a.val_losses, [first.val_losses.clone(), b.val_losses.clone()].concat(), "{kind}");
            assert_eq!(
                (a.best_val_loss, a.best_epoch, a.stopped_early),
                (b.best_val_loss, b.best_epoch, b.stopped_early)
            );
        }
        for file in [crate::model::layer_dag::WEIGHTS_FILE, LAST_WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE] {
            assert!(read(&straight, file) == read(&resumed, file), "{name}: {file} differs");
        }
        (a, straight)
    }

    /// Two epochs in one go and one epoch resumed to two train the same.
    #[test]
    fn a_resumed_run_writes_the_bytes_of_an_uninterrupted_one() {
        let _rng = lock();
        let (report, out) =
            straight_and_resumed("train-resume-2", &ModelConfig::load(Path::new(SMALL_TOML)).unwrap(), 1, 2);
        assert!(report.sub_models.iter().all(|r| r.epochs == 2));
        // Every sub-model saved its moments, and they are those of its epoch 2.
        let saved: BTreeMap<String, Tensor> =
            Tensor::read_safetensors(out.join(OPTIMIZER_FILE)).unwrap().into_iter().collect();
        for kind in SubModelKind::ALL {
            assert_eq!(saved[&format!("epochs.{}", kind.name())].int64_value(&[]), 2, "{kind}");
            assert!(saved.keys().any(|k| k.starts_with(&format!("max_exp_avg_sq.{}", kind.var_prefix()))), "{kind}");
        }
    }

    /// With patience 1 and a large learning rate the edge model stops early
    /// in the first run: resumed, it stays at its best weights while the
    /// others go on from their last, as in one go.
    #[test]
    fn a_resumed_run_stops_early_as_an_uninterrupted_one() {
        let _rng = lock();
        let mut config = ModelConfig::load(Path::new(SMALL_TOML)).unwrap();
        config.general.patience = Some(1);
        // A large step, so that validation losses go up now and then.
        config.edge_pred.optimizer.lr = 0.05;
        let (report, _) = straight_and_resumed("train-resume-patience", &config, 4, 6);
        let summary: Vec<_> = report.sub_models.iter().map(|r| (r.epochs, r.best_epoch, r.stopped_early)).collect();
        // The edge model stopped in the first run, its last weights not its
        // best; the resumed run skips it while the others train and save
        // weights.safetensors.
        assert!(matches!(summary[2], (e, b, true) if e <= 4 && b < e), "{summary:?}");
        assert!(summary[..2].iter().all(|&(e, b, _)| e > 4 && b > 4), "{summary:?}");
    }

    /// An output folder without optimizer state resumes with fresh moments
    /// and one warning; a damaged or mismatched one is an error naming the
    /// file and what is wrong, and changes nothing.
    #[test]
    fn optimizer_state_that_is_missing_or_wrong() {
        let _rng = lock();
        let out = temp_dir("train-optimizer-state");
        run(&spec(out.clone(), 6, 1, false)).unwrap();
        let good = read(&out, OPTIMIZER_FILE);
        let path = out.join(OPTIMIZER_FILE);
        let resume = |epochs: usize| {
            let mut warnings = Vec::new();
            let s = spec(out.clone(), 6, epochs, true);
            let r = train_on(&s, ModelConfig::load(&s.config).unwrap(), tiny_data(), &mut |p| {
                if let Progress::Warning { message } = p {
                    warnings.push(message)
                }
            });
            r.map(|_| warnings).map_err(|e| e.to_string())
        };
        let expect_error = |what: &[&str]| {
            let e = resume(2).unwrap_err();
            assert!(e.contains(&path.display().to_string()) && what.iter().all(|w| e.contains(w)), "{e}");
            assert!(TrainState::read(&out.join(STATE_FILE)).unwrap().sub_models.iter().all(|s| s.epochs_done == 1));
        };

        std::fs::write(&path, b"not a safetensors file").unwrap();
        expect_error(&["cannot read"]);

        // The good file with an edit.
        type Named = Vec<(String, Tensor)>;
        let edit = |f: &dyn Fn(&mut Named)| {
            std::fs::write(&path, &good).unwrap();
            let mut tensors = Tensor::read_safetensors(&path).unwrap();
            f(&mut tensors);
            Tensor::write_safetensors(&tensors, &path).unwrap();
        };
        // A moment of the wrong shape, named by its variable.
        std::fs::write(&path, &good).unwrap();
        let var = Tensor::read_safetensors(&path)
            .unwrap()
            .into_iter()
            .find_map(|(n, _)| n.strip_prefix("exp_avg.node_pred_model.").map(|v| format!("node_pred_model.{v}")))
            .unwrap();
        edit(&|tensors| {
            let (_, t) = tensors.iter_mut().find(|(n, _)| *n == format!("exp_avg.{var}")).unwrap();
            *t = Tensor::zeros([t.numel() as i64 + 1], (t.kind(), Device::Cpu));
        });
        expect_error(&["node_pred", &var, "exp_avg"]);
        // Moments from another epoch than the state file's.
        edit(&|tensors| {
            let (_, t) = tensors.iter_mut().find(|(n, _)| n == "epochs.edge_pred").unwrap();
            *t = Tensor::from(3i64);
        });
        expect_error(&["edge_pred", "epoch 3", OPTIMIZER_FILE]);
        // A variable the model does not have.
        edit(&|tensors| tensors.push(("step.edge_pred_model.nothing".into(), Tensor::from(1i64))));
        expect_error(&["edge_pred_model.nothing"]);

        // No file at all: fresh moments, one warning naming it.
        std::fs::remove_file(&path).unwrap();
        let warnings = resume(2).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains(&path.display().to_string()) && warnings[0].contains("afresh"), "{warnings:?}");
        // The run wrote the state it trained with: resuming again is quiet.
        assert_eq!(resume(3).unwrap(), Vec::<String>::new());
    }
}
