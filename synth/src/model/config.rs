//! What the three LayerDAG models are built from: the hyperparameters
//! ([`ModelConfig`], a TOML file Strata owns) and the facts taken from the
//! training data ([`DataSpec`]: vocabulary sizes, marginals, widest layer,
//! conditioning width).
//!
//! # The TOML file
//!
//! [`ModelConfig`] mirrors the reference's `configs/LayerDAG/tpu_tile.yaml`
//! key for key (layerdag.md §2.1): a `[general]` table and one table per
//! sub-model, `[node_count]`, `[node_pred]`, `[edge_pred]`, each with its
//! `loader`, encoder (`model` for the layer-size model, `graph_encoder` for
//! the other two), `predictor`, `optimizer`, `num_epochs` and, for the two
//! diffusions, `T`. `configs/synth/tpu_tile.toml` is the reference's file in
//! TOML and equals [`ModelConfig::tpu_tile`]; `configs/synth/small.toml` is a
//! tiny model for CPU tests. Unknown keys are errors, and [`ModelConfig::validate`]
//! refuses values the models cannot be built from, naming the key.
//!
//! `loader.num_workers` is accepted for parity with the reference and unused:
//! batches are assembled in-process.
//!
//! Not supported: the reference's optional level encodings (`pe`,
//! `pe_emb_size`); the shipped config leaves them off (`pe: None`,
//! `pe_emb_size: 0`), so the keys are refused rather than silently ignored
//! (Strata's own layer-progress encoding is below).
//!
//! # Conditioning (an extension of the reference)
//!
//! The reference conditions on one scalar `y` per graph, embedded with
//! `SinusoidalPE(y_emb_size)` (§1.5). Strata's traces are conditioned on a
//! vector of workload features instead ([`crate::dataset::conditioning`]). The
//! encoders therefore embed the `[B, y_dim]` conditioning rows as follows:
//!
//! | `general.conditional` | `y_dim` (from the data) | `y_emb` |
//! |---|---|---|
//! | false | any | none: `y` is ignored, width 0 |
//! | true | 0 | error: the data carries no condition |
//! | true | 1 | `SinusoidalPE(y_emb_size)` of the raw scalar, exactly as the reference |
//! | true | > 1 | `Linear(y_dim, y_emb_size)` (PyTorch's default init) |
//!
//! In every case the embedding is concatenated to each node's categorical
//! embedding before the encoder's first projection, as in the reference.
//!
//! # Layer progress (an extension of the reference)
//!
//! With `general.progress_emb_size = w > 0`, the layer-size model and the
//! node-attribute denoiser also see how far through its graph the layer they
//! predict lies: `progress = layers built / depth`, encoded as
//! `SinusoidalPE(w)` of `100 · progress` and concatenated to the pooled graph
//! embedding (the encoders are unchanged). Training uses each graph's own
//! depth; sampling uses the depth the size prior predicts for the condition
//! (or the fixed layer sizes' count), so such a model needs a size prior
//! (corpus data). The reference's own level encodings (`pe`: a node's
//! absolute or relative level, added to the encoders' inputs) are a
//! different thing and unsupported. Without it, a model knows how deep it is
//! only through what its few message-passing hops see. (Tried on the shipped
//! config, it did not improve the generated timings: BENCHMARKS.md.)

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{ModelError, Result};
use crate::dataset::collective_mix::CollectiveMix;
use crate::dataset::conditioning::Normalizer;
use crate::dataset::magnitude_prior::MagnitudePrior;
use crate::dataset::size_prior::SizePrior;
use crate::dataset::stage_work::TermSet;
use crate::dataset::streams::LayeredGraphs;
use crate::dataset::vocab::Representatives;

/// The most diffusion steps `T` a config may ask for (the reference uses 64
/// and 16; sampling runs every step for every layer).
pub const MAX_STEPS: usize = 4096;
/// The widest embedding, hidden layer or head count a config may ask for
/// (the reference's widest is 512); wider models do not fit in memory.
pub const MAX_WIDTH: usize = 16_384;
/// The most message-passing or transformer layers per model (the reference
/// uses up to 4).
pub const MAX_DEPTH: usize = 64;
/// The most trainable parameters of the three models together (2^30, 4 GiB
/// of fp32 weights; the reference's TPU Tile models have 21 M).
pub const MAX_PARAMETERS: u128 = 1 << 30;
/// The largest count (batch size, layer window, epochs) a config may ask for.
pub const MAX_COUNT: usize = 1 << 30;

/// All hyperparameters of the three LayerDAG models (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Dataset name, conditioning switch, early-stopping patience.
    pub general: GeneralConfig,
    /// The layer-size model (layerdag.md §2.3).
    pub node_count: NodeCountConfig,
    /// The node-attribute denoiser (§2.4).
    pub node_pred: NodePredConfig,
    /// The edge denoiser (§2.5).
    pub edge_pred: EdgePredConfig,
}

/// The `[general]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneralConfig {
    /// A name for the training data (used in logs and file names only).
    pub dataset: String,
    /// Whether the models are conditioned on the per-graph `y` rows.
    pub conditional: bool,
    /// Early stopping: epochs without improvement before stopping (none: run
    /// every epoch).
    #[serde(default)]
    pub patience: Option<usize>,
    /// A Strata extension: the width of the layer-progress encoding (see the
    /// module docs); 0, the default, is the reference (no encoding).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub progress_emb_size: usize,
}

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// A sub-model's `loader` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoaderConfig {
    /// Examples per batch.
    pub batch_size: usize,
    /// Accepted for parity with the reference's PyTorch `DataLoader`; unused.
    #[serde(default)]
    pub num_workers: usize,
    /// A Strata extension: each epoch shuffles runs of up to this many
    /// consecutive layers of one graph instead of single examples, so a
    /// batch holds several prefixes of the same graph and their message
    /// passing is shared ([`crate::model::compress`]). 1 (the default) is the
    /// reference's loader, every example shuffled on its own.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub layer_window: usize,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

/// A sub-model's `optimizer` table: Adam with betas (0.9, 0.999), no weight
/// decay, no schedule (layerdag.md §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerConfig {
    /// Learning rate.
    pub lr: f64,
    /// Use the AMSGrad variant.
    #[serde(default)]
    pub amsgrad: bool,
}

/// Graph-level readout of an encoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pool {
    /// Sum over each graph's nodes (dummy included), then BatchNorm1d.
    Sum,
    /// Mean over each graph's nodes, then BatchNorm1d.
    Mean,
}

/// A BiMPNN encoder's table (`model` / `graph_encoder`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    /// Embedding width per categorical node feature.
    pub x_n_emb_size: usize,
    /// Width of the conditioning embedding (see the module docs).
    #[serde(default)]
    pub y_emb_size: usize,
    /// Number of BiMPNN layers `K`.
    pub num_mpnn_layers: usize,
    /// Graph readout; none returns node states.
    #[serde(default)]
    pub pool: Option<Pool>,
}

impl EncoderConfig {
    /// The width of the conditioning embedding actually used.
    pub fn y_width(&self, conditional: bool, y_dim: usize) -> usize {
        if conditional && y_dim > 0 {
            self.y_emb_size
        } else {
            0
        }
    }

    /// The encoder's hidden width: `F · x_n_emb_size + y width` (no level
    /// encoding).
    pub fn hidden_size(&self, num_features: usize, conditional: bool, y_dim: usize) -> usize {
        num_features * self.x_n_emb_size + self.y_width(conditional, y_dim)
    }
}

/// The `[node_count]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeCountConfig {
    /// Batching.
    pub loader: LoaderConfig,
    /// The encoder (must pool).
    pub model: EncoderConfig,
    /// Epoch cap.
    pub num_epochs: usize,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
}

/// The `[node_pred]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePredConfig {
    /// Diffusion steps `T` (the schedule has `T + 1` entries, 0..=T).
    #[serde(rename = "T")]
    pub num_steps: usize,
    /// Batching.
    pub loader: LoaderConfig,
    /// Epoch cap.
    pub num_epochs: usize,
    /// The encoder of the previous layers (must pool).
    pub graph_encoder: EncoderConfig,
    /// The set-transformer denoiser.
    pub predictor: NodePredictorConfig,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
}

/// `[node_pred.predictor]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodePredictorConfig {
    /// Width of `SinusoidalPE(t)`.
    pub t_emb_size: usize,
    /// Width of the transformer and the heads.
    pub out_hidden_size: usize,
    /// Transformer layers.
    pub num_transformer_layers: usize,
    /// Attention heads (must divide `out_hidden_size`).
    pub num_heads: usize,
    /// Dropout after the attention projection and the feed-forward block.
    #[serde(default)]
    pub dropout: f64,
}

/// The `[edge_pred]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgePredConfig {
    /// Diffusion steps `T`.
    #[serde(rename = "T")]
    pub num_steps: usize,
    /// Batching.
    pub loader: LoaderConfig,
    /// Epoch cap.
    pub num_epochs: usize,
    /// The encoder of the whole current graph (must not pool).
    pub graph_encoder: EncoderConfig,
    /// The pair head.
    pub predictor: EdgePredictorConfig,
    /// Optimizer.
    pub optimizer: OptimizerConfig,
}

/// `[edge_pred.predictor]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgePredictorConfig {
    /// Width of `SinusoidalPE(t)`.
    pub t_emb_size: usize,
    /// Hidden width of the pair head.
    pub out_hidden_size: usize,
}

impl ModelConfig {
    /// The reference's TPU Tile configuration, `configs/LayerDAG/tpu_tile.yaml`
    /// of github.com/Graph-COM/LayerDAG at `fbbbd13` (layerdag.md §2.1), with
    /// the pydantic defaults of `setup_utils.py` for the keys it leaves out
    /// (no pooling in the edge encoder).
    pub fn tpu_tile() -> Self {
        let loader = |batch_size| LoaderConfig { batch_size, num_workers: 4, layer_window: 1 };
        let adam = || OptimizerConfig { lr: 0.0003, amsgrad: true };
        let enc = |x, y, k, pool| EncoderConfig { x_n_emb_size: x, y_emb_size: y, num_mpnn_layers: k, pool };
        ModelConfig {
            general: GeneralConfig {
                dataset: "tpu_tile".into(),
                conditional: true,
                patience: Some(10),
                progress_emb_size: 0,
            },
            node_count: NodeCountConfig {
                loader: loader(128),
                model: enc(64, 256, 3, Some(Pool::Sum)),
                num_epochs: 500,
                optimizer: adam(),
            },
            node_pred: NodePredConfig {
                num_steps: 64,
                loader: loader(256),
                num_epochs: 700,
                graph_encoder: enc(512, 512, 2, Some(Pool::Sum)),
                predictor: NodePredictorConfig {
                    t_emb_size: 256,
                    out_hidden_size: 512,
                    num_transformer_layers: 1,
                    num_heads: 4,
                    dropout: 0.0,
                },
                optimizer: adam(),
            },
            edge_pred: EdgePredConfig {
                num_steps: 16,
                loader: loader(256),
                num_epochs: 1000,
                graph_encoder: enc(256, 64, 4, None),
                predictor: EdgePredictorConfig { t_emb_size: 256, out_hidden_size: 320 },
                optimizer: adam(),
            },
        }
    }

    /// Reads and validates a TOML config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, "cannot read", e))?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates a TOML document; `path` names it in errors.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self> {
        let cfg: ModelConfig = toml::from_str(text)
            .map_err(|e| ModelError::Format { path: path.to_path_buf(), what: e.to_string().trim_end().to_string() })?;
        cfg.validate_from(&path.display().to_string())?;
        Ok(cfg)
    }

    /// Checks every value the models are built from.
    pub fn validate(&self) -> Result<()> {
        self.validate_from("model config")
    }

    /// [`Self::validate`], errors naming `origin` (the file the config came from).
    pub(crate) fn validate_from(&self, origin: &str) -> Result<()> {
        let err = |key: &str, what: String| Err(ModelError::config(origin, key, what));
        let within = |key: &str, v: usize, lo: usize, hi: usize| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                err(key, format!("must be {lo} to {hi}, got {v}"))
            }
        };
        let positive = |key: &str, v: usize| within(key, v, 1, MAX_COUNT);
        let width = |key: &str, v: usize| within(key, v, 1, MAX_WIDTH);
        let even = |key: &str, v: usize| {
            within(key, v, 0, MAX_WIDTH)?;
            if v % 2 != 0 {
                err(key, format!("a sinusoidal encoding width must be even (sines then cosines), got {v}"))
            } else {
                Ok(())
            }
        };
        let optimizer = |key: &str, o: &OptimizerConfig| {
            // The optimizer computes in fp32: a larger rate does not convert.
            if !(o.lr.is_finite() && o.lr > 0.0 && o.lr <= f64::from(f32::MAX)) {
                err(&format!("{key}.optimizer.lr"), format!("must be a positive fp32 number, got {:e}", o.lr))
            } else {
                Ok(())
            }
        };
        let loader = |key: &str, l: &LoaderConfig| {
            positive(&format!("{key}.loader.batch_size"), l.batch_size)?;
            positive(&format!("{key}.loader.layer_window"), l.layer_window)
        };
        let encoder = |key: &str, e: &EncoderConfig, pooled: bool| {
            width(&format!("{key}.x_n_emb_size"), e.x_n_emb_size)?;
            within(&format!("{key}.y_emb_size"), e.y_emb_size, 0, MAX_WIDTH)?;
            within(&format!("{key}.num_mpnn_layers"), e.num_mpnn_layers, 0, MAX_DEPTH)?;
            match (pooled, e.pool) {
                (true, None) => {
                    err(&format!("{key}.pool"), "this model reads a graph embedding: set \"sum\" or \"mean\"".into())
                }
                (false, Some(p)) => {
                    err(&format!("{key}.pool"), format!("the edge model reads node states: leave it out, got {p:?}"))
                }
                _ => Ok(()),
            }
        };

        let nc = &self.node_count;
        positive("node_count.num_epochs", nc.num_epochs)?;
        loader("node_count", &nc.loader)?;
        encoder("node_count.model", &nc.model, true)?;
        optimizer("node_count", &nc.optimizer)?;

        let np = &self.node_pred;
        within("node_pred.T", np.num_steps, 1, MAX_STEPS)?;
        positive("node_pred.num_epochs", np.num_epochs)?;
        loader("node_pred", &np.loader)?;
        encoder("node_pred.graph_encoder", &np.graph_encoder, true)?;
        let pr = &np.predictor;
        even("node_pred.predictor.t_emb_size", pr.t_emb_size)?;
        width("node_pred.predictor.out_hidden_size", pr.out_hidden_size)?;
        within("node_pred.predictor.num_transformer_layers", pr.num_transformer_layers, 0, MAX_DEPTH)?;
        width("node_pred.predictor.num_heads", pr.num_heads)?;
        if pr.out_hidden_size % pr.num_heads != 0 {
            return err(
                "node_pred.predictor.num_heads",
                format!("must divide out_hidden_size {}, got {}", pr.out_hidden_size, pr.num_heads),
            );
        }
        if !(0.0..1.0).contains(&pr.dropout) {
            return err("node_pred.predictor.dropout", format!("must lie in [0, 1), got {:e}", pr.dropout));
        }
        optimizer("node_pred", &np.optimizer)?;

        even("general.progress_emb_size", self.general.progress_emb_size)?;

        let ep = &self.edge_pred;
        within("edge_pred.T", ep.num_steps, 1, MAX_STEPS)?;
        positive("edge_pred.num_epochs", ep.num_epochs)?;
        loader("edge_pred", &ep.loader)?;
        encoder("edge_pred.graph_encoder", &ep.graph_encoder, false)?;
        even("edge_pred.predictor.t_emb_size", ep.predictor.t_emb_size)?;
        width("edge_pred.predictor.out_hidden_size", ep.predictor.out_hidden_size)?;
        optimizer("edge_pred", &ep.optimizer)?;
        Ok(())
    }

    /// The trainable parameters of the three models this config builds on
    /// `data` (layer sizes, node attributes, edges), computed from the
    /// shapes alone, so that a config too large to allocate is refused
    /// before libtorch tries (tested equal to the built models' counts).
    pub fn parameter_counts(&self, data: &DataSpec) -> [u128; 3] {
        let c = self.general.conditional;
        let f = data.num_features() as u128;
        let linear = |i: u128, o: u128| i * o + o;
        let mlp = |i: u128, h: u128, o: u128| linear(i, h) + linear(h, o);
        // Embedding tables (dummy row included), the conditioning Linear
        // (a scalar condition is sinusoidal: no weights), proj_input, K
        // BiMPNN layers of three Linears, the jumping-knowledge output MLP
        // and, pooled, a BatchNorm.
        let encoder = |e: &EncoderConfig, pooled: bool| -> (u128, u128) {
            let h = e.hidden_size(data.num_features(), c, data.y_dim) as u128;
            let (x, k) = (e.x_n_emb_size as u128, e.num_mpnn_layers as u128);
            let vocab: u128 = data.encoder_vocab().iter().map(|&v| v as u128).sum();
            let y_w = e.y_width(c, data.y_dim) as u128;
            let y = if data.y_dim > 1 && y_w > 0 { linear(data.y_dim as u128, y_w) } else { 0 };
            let n = vocab * x + y + mlp(h, h, h) + k * 3 * linear(h, h) + mlp((k + 1) * h, h, h);
            (n + if pooled { 2 * h } else { 0 }, h)
        };
        let progress = self.general.progress_emb_size as u128;
        let nc = &self.node_count;
        let (enc, h) = encoder(&nc.model, true);
        let node_count = enc + mlp(h + progress, h, data.max_layer_size as u128 + 1);

        let np = &self.node_pred;
        let pr = &np.predictor;
        let (enc, h) = encoder(&np.graph_encoder, true);
        let (x, d, t) = (np.graph_encoder.x_n_emb_size as u128, pr.out_hidden_size as u128, pr.t_emb_size as u128);
        let real: u128 = data.real_vocab().iter().map(|&v| v as u128).sum();
        // to_v and to_qk (d → 3d), proj_new, two LayerNorms, the 4d MLP.
        let transformer = linear(d, 3 * d) + linear(d, d) + 4 * d + mlp(d, 4 * d, d);
        let heads: u128 = data.real_vocab().iter().map(|&v| mlp(d, d, v as u128)).sum();
        let node_pred = enc
            + real * x
            + linear(h + progress + t + f * x, d)
            + pr.num_transformer_layers as u128 * transformer
            + heads;

        let ep = &self.edge_pred;
        let (enc, h) = encoder(&ep.graph_encoder, false);
        let edge_pred = enc + mlp(2 * h + ep.predictor.t_emb_size as u128, ep.predictor.out_hidden_size as u128, 2);
        [node_count, node_pred, edge_pred]
    }

    /// Checks that the data can feed a model of this config: a conditional
    /// model needs conditioning rows, a scalar condition (sinusoidal
    /// embedding) needs even `y_emb_size`s, and a progress encoding needs a
    /// size prior.
    pub fn check_data(&self, data: &DataSpec) -> Result<()> {
        data.validate()?;
        let counts = self.parameter_counts(data);
        if counts.iter().sum::<u128>() > MAX_PARAMETERS {
            let names = ["node_count", "node_pred", "edge_pred"];
            let (largest, n) = names.iter().zip(counts).max_by_key(|&(_, n)| n).expect("three models");
            return Err(ModelError::config(
                "model config",
                *largest,
                format!(
                    "builds {n:.3e} trainable parameters on this data ({:.1} GB in fp32, about four times that to \
                     train with Adam), past the {MAX_PARAMETERS:.3e} Strata allocates: make its widths smaller",
                    n as f64 * 4e-9
                ),
            ));
        }
        if self.general.progress_emb_size > 0 && data.size_prior.is_none() {
            return Err(ModelError::config(
                "model config",
                "general.progress_emb_size",
                format!(
                    "{}, but the data has no size prior to take a sampled graph's depth from (only corpus data has one): set it to 0",
                    self.general.progress_emb_size
                ),
            ));
        }
        if !self.general.conditional {
            return Ok(());
        }
        if data.y_dim == 0 {
            return Err(ModelError::config(
                "model config",
                "general.conditional",
                "true, but the data has no conditioning rows (y_dim = 0)",
            ));
        }
        if data.y_dim == 1 {
            for (key, e) in [
                ("node_count.model", &self.node_count.model),
                ("node_pred.graph_encoder", &self.node_pred.graph_encoder),
                ("edge_pred.graph_encoder", &self.edge_pred.graph_encoder),
            ] {
                if e.y_emb_size % 2 != 0 {
                    return Err(ModelError::config(
                        "model config",
                        format!("{key}.y_emb_size"),
                        format!(
                            "a scalar condition is encoded sinusoidally (sines then cosines), so the width must be even, got {}",
                            e.y_emb_size
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Facts about the training data that fix the models' shapes and the
/// diffusions' priors; stored in every checkpoint next to the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Real categories per node feature. Feature f's dummy category is
    /// `cardinalities[f]`, so the encoders' embedding tables have
    /// `cardinalities[f] + 1` rows and the denoiser's have `cardinalities[f]`.
    pub cardinalities: Vec<u32>,
    /// Width of the conditioning rows (1 for the reference's scalar `y`).
    pub y_dim: usize,
    /// The widest layer of the training split: the layer-size model predicts
    /// `0..=max_layer_size`.
    pub max_layer_size: usize,
    /// The deepest graph's layer count: sampling stops there. The reference
    /// takes the maximum over the training and validation splits;
    /// [`DataSpec::from_graphs`] sees one split, so raise it for the other.
    pub max_level: usize,
    /// Per feature, the frequency of each real category over the training
    /// split's real nodes (the node D3PM's marginal `m_f`).
    pub node_marginals: Vec<Vec<f64>>,
    /// Edges per non-source node (the edge D3PM's `avg_in_deg`).
    pub avg_in_deg: f64,
    /// How raw conditioning rows were normalized before training (none for
    /// the reference's raw scalar; filled in by whoever fits one).
    #[serde(default)]
    pub y_normalizer: Option<Normalizer>,
    /// Depth and node count predicted from the conditioning row (corpus
    /// data only; the sampler caps each graph there). Absent in checkpoints
    /// of the reference's data and in ones written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_prior: Option<SizePrior>,
    /// Compute and communication totals predicted from the conditioning row
    /// (corpus data only; `strata synth generate` rescales each stage graph
    /// to them). Absent where the size prior is, and in checkpoints written
    /// before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub magnitude_prior: Option<MagnitudePrior>,
    /// The value written back for each magnitude bucket: the median of the
    /// training split's values in it (corpus data only; without it, each
    /// bucket's lower bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representatives: Option<Representatives>,
}

impl DataSpec {
    /// The facts of a training split (no normalizer recorded).
    pub fn from_graphs(graphs: &LayeredGraphs) -> Self {
        let stats = graphs.stats();
        DataSpec {
            cardinalities: graphs.cardinalities().to_vec(),
            y_dim: graphs.y_dim(),
            max_layer_size: stats.max_layer_size,
            max_level: stats.max_level,
            node_marginals: stats.marginals,
            avg_in_deg: stats.avg_in_deg,
            y_normalizer: None,
            size_prior: None,
            magnitude_prior: None,
            representatives: None,
        }
    }

    /// Number of categorical node features.
    pub fn num_features(&self) -> usize {
        self.cardinalities.len()
    }

    /// Checks that the facts are usable: categories exist, the marginals are
    /// distributions of the right length, the widest layer is positive.
    pub fn validate(&self) -> Result<()> {
        self.validate_from("data spec")
    }

    /// [`Self::validate`], errors naming `origin` (the file the facts came from).
    pub(crate) fn validate_from(&self, origin: &str) -> Result<()> {
        let err = |key: &str, what: String| Err(ModelError::config(origin, key, what));
        if self.cardinalities.is_empty() {
            return err("cardinalities", "no node features".into());
        }
        if let Some(f) = self.cardinalities.iter().position(|&c| c == 0) {
            return err(&format!("cardinalities[{f}]"), "a feature needs at least one category, got 0".into());
        }
        if self.node_marginals.len() != self.cardinalities.len() {
            return err(
                "node_marginals",
                format!(
                    "{} features in the marginals, {} in cardinalities",
                    self.node_marginals.len(),
                    self.cardinalities.len()
                ),
            );
        }
        for (f, (m, &c)) in self.node_marginals.iter().zip(&self.cardinalities).enumerate() {
            if m.len() != c as usize {
                return err(
                    &format!("node_marginals[{f}]"),
                    format!("{} entries, feature {f} has {c} categories", m.len()),
                );
            }
            let sum: f64 = m.iter().sum();
            if m.iter().any(|v| !v.is_finite() || *v < 0.0) || (sum - 1.0).abs() > 1e-6 {
                return err(&format!("node_marginals[{f}]"), format!("not a distribution (sum {sum})"));
            }
        }
        if self.max_layer_size == 0 {
            return err("max_layer_size", "must be at least 1, got 0".into());
        }
        if self.max_level == 0 {
            return err("max_level", "must be at least 1, got 0".into());
        }
        if !(self.avg_in_deg.is_finite() && self.avg_in_deg >= 0.0) {
            return err("avg_in_deg", format!("must be a non-negative number, got {}", self.avg_in_deg));
        }
        if let Some(n) = &self.y_normalizer {
            if n.mean.len() != self.y_dim || n.std.len() != self.y_dim || n.constant.len() != self.y_dim {
                return err(
                    "y_normalizer",
                    format!(
                        "{} means, {} standard deviations and {} constant flags, y_dim is {}",
                        n.mean.len(),
                        n.std.len(),
                        n.constant.len(),
                        self.y_dim
                    ),
                );
            }
            if let Some(k) = n.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
                return err("y_normalizer.std", format!("feature {k}: must be a positive number, got {}", n.std[k]));
            }
            if let Some(k) = n.mean.iter().position(|m| !m.is_finite()) {
                return err("y_normalizer.mean", format!("feature {k}: must be a finite number, got {}", n.mean[k]));
            }
            let ranged = !n.min.is_empty() || !n.max.is_empty();
            if ranged && (n.min.len() != self.y_dim || n.max.len() != self.y_dim) {
                return err(
                    "y_normalizer",
                    format!("{} minima and {} maxima, y_dim is {}", n.min.len(), n.max.len(), self.y_dim),
                );
            }
            if let Some(k) =
                (0..n.min.len()).find(|&k| !(n.min[k].is_finite() && n.max[k].is_finite() && n.min[k] <= n.max[k]))
            {
                return err(
                    "y_normalizer.min",
                    format!("feature {k}: range {}..{} is not an interval", n.min[k], n.max[k]),
                );
            }
        }
        let size_fits = self
            .size_prior
            .iter()
            .flat_map(|p| [("size_prior.layers".to_string(), &p.layers), ("size_prior.nodes".to_string(), &p.nodes)]);
        let magnitude_fits = self
            .magnitude_prior
            .iter()
            .flat_map(|p| p.fits())
            .map(|(name, fit)| (format!("magnitude_prior.{name}"), fit));
        for (key, fit) in size_fits.chain(magnitude_fits) {
            if fit.weights.len() != self.y_dim {
                return err(&key, format!("{} weights, y_dim is {}", fit.weights.len(), self.y_dim));
            }
            if !fit.intercept.is_finite() || fit.weights.iter().any(|w| !w.is_finite()) {
                return err(&key, "weights must be finite numbers".into());
            }
        }
        if let Some(p) = &self.magnitude_prior {
            for (key, fit, terms) in [
                ("compute_ops_by_work", &p.compute_ops_by_work, TermSet::Compute),
                ("send_bytes_by_work", &p.send_bytes_by_work, TermSet::Messages),
                ("compute_bytes_by_work", &p.compute_bytes_by_work, TermSet::ComputeBytes),
            ] {
                let Some(fit) = fit else { continue };
                if fit.terms != terms {
                    return err(
                        &format!("magnitude_prior.{key}"),
                        format!("fitted on {:?}, expected {terms:?}", fit.terms),
                    );
                }
                if let Some(what) = fit.problem() {
                    return err(&format!("magnitude_prior.{key}"), what);
                }
            }
            if let Some(what) = p.collective_mix.as_ref().and_then(CollectiveMix::problem) {
                return err("magnitude_prior.collective_mix", what);
            }
        }
        if let Some(r) = &self.representatives {
            if let Some(what) = r.problem() {
                return err("representatives", what);
            }
        }
        Ok(())
    }

    /// Embedding-table sizes of the encoders: real categories plus the dummy.
    pub(crate) fn encoder_vocab(&self) -> Vec<i64> {
        self.cardinalities.iter().map(|&c| c as i64 + 1).collect()
    }

    /// Real categories per feature.
    pub(crate) fn real_vocab(&self) -> Vec<i64> {
        self.cardinalities.iter().map(|&c| c as i64).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const TPU_TILE_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/synth/tpu_tile.toml");
    pub(crate) const SMALL_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/synth/small.toml");

    /// The small config every CPU test builds from.
    pub(crate) fn small() -> ModelConfig {
        ModelConfig::load(Path::new(SMALL_TOML)).unwrap()
    }

    #[test]
    fn tpu_tile_toml_is_the_reference_yaml() {
        let mut cfg = ModelConfig::load(Path::new(TPU_TILE_TOML)).unwrap();
        // Strata's one addition: batching runs of a graph's layers.
        let windows = [&mut cfg.node_count.loader, &mut cfg.node_pred.loader, &mut cfg.edge_pred.loader]
            .map(|l| std::mem::replace(&mut l.layer_window, 1));
        assert_eq!(windows, [2, 8, 8]);
        assert_eq!(cfg, ModelConfig::tpu_tile());
        assert_eq!(cfg.node_pred.graph_encoder.hidden_size(1, true, 1), 1024);
        assert_eq!(cfg.node_count.model.hidden_size(1, true, 1), 320);
        assert_eq!(cfg.edge_pred.graph_encoder.hidden_size(1, true, 1), 320);
        // Without conditioning the y embedding drops out of the width.
        assert_eq!(cfg.edge_pred.graph_encoder.hidden_size(1, false, 1), 256);
        small().validate().unwrap();
    }

    #[test]
    fn config_errors_name_the_key() {
        let text = std::fs::read_to_string(TPU_TILE_TOML).unwrap();
        let p = Path::new("x.toml");
        let typo = text.replace("num_heads = 4", "num_head = 4");
        let e = ModelConfig::from_toml_str(&typo, p).unwrap_err().to_string();
        assert!(e.contains("x.toml") && e.contains("num_head"), "{e}");
        let bad = text.replace("num_heads = 4", "num_heads = 3");
        let e = ModelConfig::from_toml_str(&bad, p).unwrap_err().to_string();
        assert!(e.contains("node_pred.predictor.num_heads") && e.contains("512"), "{e}");
        let odd = text.replace("t_emb_size = 256\nout_hidden_size = 320", "t_emb_size = 255\nout_hidden_size = 320");
        let e = ModelConfig::from_toml_str(&odd, p).unwrap_err().to_string();
        assert!(e.contains("edge_pred.predictor.t_emb_size") && e.contains("255"), "{e}");
        let zero = text.replacen("layer_window = 8", "layer_window = 0", 1);
        let e = ModelConfig::from_toml_str(&zero, p).unwrap_err().to_string();
        assert!(e.contains("node_pred.loader.layer_window") && e.contains("must be 1 to"), "{e}");
        // Values a model cannot be built or sampled from in memory and time.
        for (from, to, key) in [
            ("T = 16", "T = 1000000000", "edge_pred.T"),
            ("x_n_emb_size = 512", "x_n_emb_size = 100000000", "node_pred.graph_encoder.x_n_emb_size"),
            (
                "num_transformer_layers = 1",
                "num_transformer_layers = 1000",
                "node_pred.predictor.num_transformer_layers",
            ),
            ("lr = 0.0003", "lr = 1e300", "node_count.optimizer.lr"),
            ("num_epochs = 500", "num_epochs = 0", "node_count.num_epochs"),
        ] {
            let bad = text.replacen(from, to, 1);
            assert_ne!(bad, text, "{from}");
            let e = ModelConfig::from_toml_str(&bad, p).unwrap_err().to_string();
            assert!(e.contains("x.toml") && e.contains(key), "{key}: {e}");
        }
        let mut pooled = ModelConfig::tpu_tile();
        pooled.edge_pred.graph_encoder.pool = Some(Pool::Sum);
        assert!(pooled.validate().unwrap_err().to_string().contains("edge_pred.graph_encoder.pool"));
        // The reference's level encodings are not supported, and say so.
        let level = text.replace("num_mpnn_layers = 3", "num_mpnn_layers = 3\npe_emb_size = 0");
        let e = ModelConfig::from_toml_str(&level, p).unwrap_err().to_string();
        assert!(e.contains("pe_emb_size"), "{e}");
    }

    #[test]
    fn data_spec_checks_its_facts() {
        let mut d = DataSpec {
            cardinalities: vec![3],
            y_dim: 0,
            max_layer_size: 2,
            max_level: 3,
            node_marginals: vec![vec![0.5, 0.25, 0.25]],
            avg_in_deg: 1.0,
            y_normalizer: None,
            size_prior: None,
            magnitude_prior: None,
            representatives: None,
        };
        d.validate().unwrap();
        assert!(ModelConfig::tpu_tile().check_data(&d).unwrap_err().to_string().contains("general.conditional"));
        // An odd conditioning width is fine for a vector condition (Linear),
        // not for the scalar one (sinusoidal).
        let mut odd = ModelConfig::tpu_tile();
        odd.edge_pred.graph_encoder.y_emb_size = 63;
        odd.validate().unwrap();
        d.y_dim = 3;
        odd.check_data(&d).unwrap();
        d.y_dim = 1;
        assert!(odd.check_data(&d).unwrap_err().to_string().contains("edge_pred.graph_encoder.y_emb_size"));
        d.node_marginals[0].pop();
        assert!(d.validate().unwrap_err().to_string().contains("node_marginals[0]"));
        let json = serde_json::to_string(&ModelConfig::tpu_tile()).unwrap();
        assert!(json.contains("\"T\":64"));
        assert_eq!(serde_json::from_str::<ModelConfig>(&json).unwrap(), ModelConfig::tpu_tile());
    }
}
