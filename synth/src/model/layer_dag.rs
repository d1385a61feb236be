//! The whole LayerDAG generator's learned state: the three sub-models, each
//! in its own `VarStore` (they train separately, each with its own
//! optimizer, as in the reference), the two diffusions, and checkpoints.
//!
//! # Checkpoints
//!
//! A checkpoint is a folder:
//!
//! | file | holds |
//! |---|---|
//! | `config.json` | `{"format": "strata-layerdag", "version": 1, "model": <ModelConfig>, "data": <DataSpec>}` |
//! | `weights.safetensors` | every variable of the three stores, named as the reference's `state_dict` (`node_count_model.graph_encoder.bn_g.running_mean`, …) |
//!
//! The diffusions have no weights: they are rebuilt from `T`, the marginals
//! and `avg_in_deg` in the data spec. PyTorch's `num_batches_tracked`
//! counters and the diffusion buffers of the reference's `state_dict` have no
//! counterpart here; everything else (123 names for the TPU Tile config) does.
//!
//! [`LayerDag::load`] parses the config, **builds** the models on a fresh
//! store and then copies the weights in (tch's `load` only overwrites
//! variables that already exist); a variable the file lacks, a tensor the
//! model has no variable for, or a shape mismatch is an error naming them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tch::{nn, Device, Tensor};

use super::config::{DataSpec, ModelConfig};
use super::diffusion::{EdgeDiffusion, NodeDiffusion};
use super::edge_pred::EdgePredModel;
use super::error::{ModelError, Result, TorchContext};
use super::node_count::NodeCountModel;
use super::node_pred::NodePredModel;

/// The `format` value of `config.json`.
pub const CHECKPOINT_FORMAT: &str = "strata-layerdag";
/// The `version` value of `config.json`.
pub const CHECKPOINT_VERSION: u32 = 1;
/// The config file of a checkpoint folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a checkpoint folder.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// A model with the store that owns its variables.
#[derive(Debug)]
pub struct SubModel<M> {
    /// The variables (build an optimizer on it to train this model alone).
    pub vs: nn::VarStore,
    /// The model.
    pub model: M,
}

impl<M> SubModel<M> {
    /// Number of trainable parameters (frozen encodings and BatchNorm
    /// running statistics excluded, as PyTorch counts `requires_grad`).
    pub fn num_parameters(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }
}

/// The three LayerDAG models, their diffusions, and what they were built from.
#[derive(Debug)]
pub struct LayerDag {
    /// Hyperparameters.
    pub config: ModelConfig,
    /// Facts of the training data.
    pub data: DataSpec,
    /// The layer-size model, under `node_count_model`.
    pub node_count: SubModel<NodeCountModel>,
    /// The node-attribute denoiser, under `node_pred_model`.
    pub node_pred: SubModel<NodePredModel>,
    /// The edge denoiser, under `edge_pred_model`.
    pub edge_pred: SubModel<EdgePredModel>,
    /// The node-attribute D3PM (`node_pred.T`, the data's marginals).
    pub node_diffusion: NodeDiffusion,
    /// The edge D3PM (`edge_pred.T`, the data's `avg_in_deg`).
    pub edge_diffusion: EdgeDiffusion,
    device: Device,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointConfig {
    format: String,
    version: u32,
    model: ModelConfig,
    data: DataSpec,
}

impl LayerDag {
    /// Builds freshly initialized models on `device` (seed with
    /// `tch::manual_seed` first for reproducible weights).
    pub fn new(config: ModelConfig, data: DataSpec, device: Device) -> Result<Self> {
        config.validate()?;
        config.check_data(&data)?;
        let node_count = {
            let vs = nn::VarStore::new(device);
            let model = NodeCountModel::new(&(vs.root() / "node_count_model"), &config, &data)?;
            SubModel { vs, model }
        };
        let node_pred = {
            let vs = nn::VarStore::new(device);
            let model = NodePredModel::new(&(vs.root() / "node_pred_model"), &config, &data)?;
            SubModel { vs, model }
        };
        let edge_pred = {
            let vs = nn::VarStore::new(device);
            let model = EdgePredModel::new(&(vs.root() / "edge_pred_model"), &config, &data)?;
            SubModel { vs, model }
        };
        let node_diffusion = NodeDiffusion::new(&data.node_marginals, config.node_pred.num_steps, device);
        let edge_diffusion = EdgeDiffusion::new(data.avg_in_deg, config.edge_pred.num_steps, device);
        Ok(LayerDag { config, data, node_count, node_pred, edge_pred, node_diffusion, edge_diffusion, device })
    }

    /// Where the variables live.
    pub fn device(&self) -> Device {
        self.device
    }

    /// Trainable parameters of the layer-size, node and edge models.
    pub fn parameter_counts(&self) -> [i64; 3] {
        [self.node_count.num_parameters(), self.node_pred.num_parameters(), self.edge_pred.num_parameters()]
    }

    fn stores(&self) -> [&nn::VarStore; 3] {
        [&self.node_count.vs, &self.node_pred.vs, &self.edge_pred.vs]
    }

    /// Every variable of the three stores by name (sorted).
    pub fn variables(&self) -> BTreeMap<String, Tensor> {
        self.stores().iter().flat_map(|vs| vs.variables()).collect()
    }

    /// Writes `dir/config.json` and `dir/weights.safetensors`, creating `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, "cannot create", e))?;
        let named: Vec<(String, Tensor)> =
            self.variables().into_iter().map(|(n, t)| (n, t.to_device(Device::Cpu).contiguous())).collect();
        write_safetensors_atomic(&named, &dir.join(WEIGHTS_FILE))?;
        self.save_config(dir)
    }

    /// Writes `dir/config.json` alone (through a temporary file renamed into
    /// place, so a failed write leaves the old file whole).
    pub fn save_config(&self, dir: &Path) -> Result<()> {
        let cfg = CheckpointConfig {
            format: CHECKPOINT_FORMAT.into(),
            version: CHECKPOINT_VERSION,
            model: self.config.clone(),
            data: self.data.clone(),
        };
        let json = serde_json::to_string_pretty(&cfg).expect("the checkpoint config serializes");
        write_text_atomic(&dir.join(CONFIG_FILE), &(json + "\n"))
    }

    /// Reads a checkpoint folder written by [`Self::save`] onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let config_path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&config_path).map_err(|e| ModelError::io(&config_path, "cannot read", e))?;
        let cfg: CheckpointConfig = serde_json::from_str(&text)
            .map_err(|e| ModelError::Format { path: config_path.clone(), what: e.to_string() })?;
        if cfg.format != CHECKPOINT_FORMAT || cfg.version != CHECKPOINT_VERSION {
            return Err(ModelError::Format {
                path: config_path,
                what: format!(
                    "format {:?} version {}, expected {CHECKPOINT_FORMAT:?} version {CHECKPOINT_VERSION}",
                    cfg.format, cfg.version
                ),
            });
        }
        cfg.model.validate_from(&format!("{} (model)", config_path.display()))?;
        cfg.data.validate_from(&format!("{} (data)", config_path.display()))?;
        let mut model = LayerDag::new(cfg.model, cfg.data, device)?;
        model.load_weights(&dir.join(WEIGHTS_FILE))?;
        Ok(model)
    }

    /// Copies the tensors of a safetensors file into the existing variables.
    /// Every variable must be in the file with its shape, and every tensor
    /// of the file must be a variable.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        let ctx = format!("reading {}", path.display());
        let file: BTreeMap<String, Tensor> =
            read_safetensors(path).map_err(|what| ModelError::mismatch(&ctx, what))?.into_iter().collect();
        let vars = self.variables();
        let missing: Vec<String> = vars.keys().filter(|n| !file.contains_key(*n)).cloned().collect();
        let unexpected: Vec<String> = file.keys().filter(|n| !vars.contains_key(*n)).cloned().collect();
        if !missing.is_empty() || !unexpected.is_empty() {
            return Err(ModelError::Weights { path: PathBuf::from(path), missing, unexpected });
        }
        let _guard = tch::no_grad_guard();
        for (name, mut var) in vars {
            let src = &file[&name];
            if src.size() != var.size() {
                return Err(ModelError::mismatch(
                    ctx,
                    format!("{name}: the file has shape {:?}, the model {:?}", src.size(), var.size()),
                ));
            }
            if src.kind() != var.kind() {
                return Err(ModelError::mismatch(
                    ctx,
                    format!("{name}: the file holds {:?} values, the model {:?}", src.kind(), var.kind()),
                ));
            }
            if src.is_floating_point()
                && !bool::try_from(src.f_isfinite().ctx(&ctx)?.f_all().ctx(&ctx)?).unwrap_or(false)
            {
                return Err(ModelError::mismatch(ctx, format!("{name}: holds NaN or infinite values")));
            }
            var.f_copy_(src).ctx(&format!("{ctx}: {name}"))?;
        }
        Ok(())
    }
}

/// The named tensors of a safetensors file, or what is wrong with it in
/// words (the safetensors crate's error kinds come through libtorch as
/// Rust debug text, e.g. `MetadataIncompleteBuffer`).
pub(crate) fn read_safetensors(path: &Path) -> std::result::Result<Vec<(String, Tensor)>, String> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(format!("cannot read: {e}"));
    }
    Tensor::read_safetensors(path).map_err(|e| {
        let raw = e.to_string();
        let says = |kinds: &[&str]| kinds.iter().any(|k| raw.contains(k));
        let what = if says(&["MetadataIncompleteBuffer", "HeaderTooSmall", "InvalidHeaderLength"]) {
            "the file ends before the data its header describes (a truncated file?)"
        } else if says(&["InvalidOffset", "TensorInvalidInfo", "InvalidTensorView", "ValidationOverflow"]) {
            "a tensor's data does not fit the file (a damaged file?)"
        } else if says(&["InvalidHeader", "HeaderTooLarge"]) {
            "its header is not safetensors metadata (a damaged file, or not a safetensors file?)"
        } else {
            "not a readable safetensors file"
        };
        format!("{what} ({})", raw.trim())
    })
}

/// Writes named tensors as a safetensors file through a temporary file
/// (`PATH.partial`) renamed into place, so that a failed write leaves the
/// previous file whole and no partial file behind.
/// Writes `text` to `path` whole or not at all (the simulator's
/// [`simulator::util::write_atomic`]: a temporary file, synced, renamed into place).
pub(crate) fn write_text_atomic(path: &Path, text: &str) -> Result<()> {
    simulator::util::write_atomic(path, |w| w.write_all(text.as_bytes())).map_err(|e| match e {
        simulator::chakra::ChakraError::Io { path, action, source } => ModelError::Io { path, action, source },
        other => ModelError::io(path, "cannot write", std::io::Error::other(other.to_string())),
    })
}

pub(crate) fn write_safetensors_atomic(named: &[(String, Tensor)], path: &Path) -> Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if let Err(e) = Tensor::write_safetensors(named, &partial).ctx(&format!("writing {}", partial.display())) {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, path).map_err(|e| ModelError::io(path, "cannot replace", e))
}

#[cfg(test)]
mod tests {
    use tch::nn::OptimizerConfig;
    use tch::Kind;

    use super::*;
    use crate::model::config::tests::small;
    use crate::model::diffusion::{edge_loss, node_loss};
    use crate::model::node_pred::steps_per_node;
    use crate::model::tests::{rng_lock, temp_dir, tiny_tpu_batches, TestBatches};

    /// The reference's TPU Tile setup: 47 op types, widest layer 20, scalar y.
    fn tpu_tile_spec() -> DataSpec {
        DataSpec {
            cardinalities: vec![47],
            y_dim: 1,
            max_layer_size: 20,
            max_level: 72,
            node_marginals: vec![vec![1.0 / 47.0; 47]],
            avg_in_deg: 1.0737,
            y_normalizer: None,
            size_prior: None,
            magnitude_prior: None,
            representatives: None,
        }
    }

    /// layerdag.md §2.3–§2.5 / SOURCES.txt: the reference's trainable
    /// parameter counts with C = 47 and max_layer_size = 20, and its
    /// `state_dict` names (133 keys, less 2 `num_batches_tracked` and 8
    /// diffusion buffers).
    #[test]
    fn reference_config_has_the_reference_parameter_counts() {
        let _rng = rng_lock();
        let m = LayerDag::new(ModelConfig::tpu_tile(), tpu_tile_spec(), Device::Cpu).unwrap();
        assert_eq!(m.parameter_counts(), [1_755_733, 17_001_007, 2_353_090]);
        assert_eq!(m.config.parameter_counts(&m.data), [1_755_733, 17_001_007, 2_353_090]);
        let vars = m.variables();
        assert_eq!(vars.len(), 133 - 2 - 8);
        for (name, shape) in [
            ("node_pred_model.trans_layers.0.to_qk.weight", vec![1024, 512]),
            ("edge_pred_model.pred.0.weight", vec![320, 896]),
            ("node_count_model.graph_encoder.x_n_emb.emb_list.0.weight", vec![48, 64]),
            ("node_count_model.graph_encoder.y_emb.div_term", vec![128]),
            ("node_count_model.graph_encoder.bn_g.running_var", vec![320]),
            ("node_count_model.predictor.2.weight", vec![21, 320]),
            ("node_pred_model.x_n_emb.emb_list.0.weight", vec![47, 512]),
            ("node_pred_model.project_h_n.0.weight", vec![512, 1792]),
            ("node_pred_model.trans_layers.0.out_proj.2.weight", vec![512, 2048]),
            ("node_pred_model.pred_list.0.2.weight", vec![47, 512]),
            ("node_pred_model.graph_encoder.mpnn_layers.1.W_trans.weight", vec![1024, 1024]),
            ("edge_pred_model.graph_encoder.project_output_n.0.weight", vec![320, 1600]),
            ("edge_pred_model.t_emb.div_term", vec![128]),
        ] {
            assert_eq!(vars.get(name).map(|t| t.size()), Some(shape), "{name}");
        }
        assert!(!vars.keys().any(|k| k.contains("edge_pred_model.graph_encoder.bn_g")));
    }

    /// The counts computed from a config's shapes are the built models'
    /// counts: scalar and vector conditioning, the shipped config, a
    /// progress encoding.
    #[test]
    fn parameter_counts_from_the_config_match_the_built_models() {
        let _rng = rng_lock();
        let (tpu, mut corpus) = (tiny_tpu_batches().spec, crate::model::tests::tiny_corpus_batches().spec);
        corpus.size_prior = crate::dataset::size_prior::SizePrior::fit(&crate::model::tests::tiny_corpus_data().graphs);
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/../configs/synth/default.toml");
        let mut progress = small();
        progress.general.progress_emb_size = 16;
        for (cfg, spec) in [
            (small(), &tpu),
            (small(), &corpus),
            (ModelConfig::load(Path::new(shipped)).unwrap(), &corpus),
            (progress, &corpus),
        ] {
            let m = LayerDag::new(cfg, spec.clone(), Device::Cpu).unwrap();
            let built: Vec<u128> = m.parameter_counts().iter().map(|&n| n as u128).collect();
            assert_eq!(m.config.parameter_counts(&m.data).to_vec(), built);
        }
        // A config too large to allocate is refused before libtorch tries.
        let mut big = ModelConfig::tpu_tile();
        big.node_pred.predictor.out_hidden_size = 16_384;
        let e = LayerDag::new(big, tpu, Device::Cpu).unwrap_err().to_string();
        assert!(e.contains("node_pred") && e.contains("trainable parameters") && e.contains("smaller"), "{e}");
    }

    /// One training step of each model on a tiny real batch (so BatchNorm's
    /// running statistics move), then eval-mode outputs.
    fn outputs(m: &LayerDag, b: &TestBatches, train_first: bool) -> Vec<Tensor> {
        let (x_t, t_n) = {
            tch::manual_seed(11);
            let t = m.node_diffusion.sample_t(b.node_attr.graphs.num_graphs);
            let x_t = m
                .node_diffusion
                .q_sample(&b.node_attr.target, &steps_per_node(&t, &b.node_attr.query_offsets).unwrap());
            (x_t.unwrap(), t)
        };
        let layout = m.edge_diffusion.layout(&b.edge.num_prev, &b.edge.num_new, &b.edge.cand_offsets).unwrap();
        let t_e = m.edge_diffusion.sample_t(b.edge.num_prev.size()[0]);
        let noisy = m.edge_diffusion.q_sample(&b.edge.label, &t_e, &layout).unwrap();
        if train_first {
            let adam = nn::Adam { amsgrad: true, ..Default::default() };
            let mut o = adam.build(&m.node_count.vs, 1e-3).unwrap();
            let nc = &m.node_count.model;
            o.backward_step(&nc.loss(&nc.forward_batch(&b.node_count, true).unwrap(), &b.node_count.label).unwrap());
            let mut o = adam.build(&m.node_pred.vs, 1e-3).unwrap();
            let logits = m.node_pred.model.forward_batch(&b.node_attr, &x_t, &t_n, true).unwrap();
            o.backward_step(&node_loss(&logits, &b.node_attr.target).unwrap());
            let mut o = adam.build(&m.edge_pred.vs, 1e-3).unwrap();
            let logits = m.edge_pred.model.forward_batch(&b.edge, &noisy, &t_e, true).unwrap();
            o.backward_step(&edge_loss(&logits, &b.edge.label).unwrap());
        }
        let _guard = tch::no_grad_guard();
        let mut out = vec![m.node_count.model.forward_batch(&b.node_count, false).unwrap()];
        out.extend(m.node_pred.model.forward_batch(&b.node_attr, &x_t, &t_n, false).unwrap());
        out.push(m.edge_pred.model.forward_batch(&b.edge, &noisy, &t_e, false).unwrap());
        out
    }

    #[test]
    fn checkpoint_round_trip_gives_identical_outputs() {
        let _rng = rng_lock();
        let b = tiny_tpu_batches();
        tch::manual_seed(5);
        let m = LayerDag::new(small(), b.spec.clone(), Device::Cpu).unwrap();
        let want = outputs(&m, &b, true);
        let dir = temp_dir("ckpt");
        m.save(&dir).unwrap();
        // A differently seeded model differs until the checkpoint is loaded.
        tch::manual_seed(6);
        let fresh = LayerDag::new(small(), b.spec.clone(), Device::Cpu).unwrap();
        assert!(!outputs(&fresh, &b, false)[0].equal(&want[0]));
        let loaded = LayerDag::load(&dir, Device::Cpu).unwrap();
        assert_eq!((&loaded.config, &loaded.data), (&m.config, &m.data));
        let got = outputs(&loaded, &b, false);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert!(g.equal(w), "outputs differ after loading");
        }
        // The running statistics travelled too.
        let rm = "node_count_model.graph_encoder.bn_g.running_mean";
        assert!(loaded.variables()[rm].equal(&m.variables()[rm]));
        assert!(m.variables()[rm].abs().sum(Kind::Float).double_value(&[]) > 0.0);

        // A checkpoint of another shape names what does not fit.
        let mut other = small();
        other.edge_pred.graph_encoder.num_mpnn_layers += 1;
        let o = LayerDag::new(other, b.spec.clone(), Device::Cpu).unwrap();
        o.save(&dir).unwrap();
        std::fs::copy(dir.join(WEIGHTS_FILE), dir.join("other.safetensors")).unwrap();
        m.save(&dir).unwrap();
        let mut target = LayerDag::load(&dir, Device::Cpu).unwrap();
        let e = target.load_weights(&dir.join("other.safetensors")).unwrap_err().to_string();
        assert!(e.contains("unexpected") && e.contains("edge_pred_model.graph_encoder.mpnn_layers.2.W.weight"), "{e}");
        // A tensor of the right shape in another dtype is refused, by name.
        let mut named: Vec<(String, Tensor)> = Tensor::read_safetensors(dir.join(WEIGHTS_FILE)).unwrap();
        let t0 = "edge_pred_model.t_emb.div_term";
        let at = named.iter().position(|(n, _)| n == t0).unwrap();
        named[at].1 = named[at].1.to_kind(Kind::Double);
        Tensor::write_safetensors(&named, dir.join("double.safetensors")).unwrap();
        let e = target.load_weights(&dir.join("double.safetensors")).unwrap_err().to_string();
        assert!(e.contains(t0) && e.contains("Double"), "{e}");
        // A config.json with a value no model can be sampled from names the file and key.
        let text = std::fs::read_to_string(dir.join(CONFIG_FILE)).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
        json["model"]["edge_pred"]["T"] = serde_json::json!(1_000_000_000u64);
        std::fs::write(dir.join(CONFIG_FILE), json.to_string()).unwrap();
        let e = LayerDag::load(&dir, Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(CONFIG_FILE) && e.contains("edge_pred.T"), "{e}");
        json["model"]["edge_pred"]["T"] = serde_json::json!(m.config.edge_pred.num_steps);
        json["data"]["max_level"] = serde_json::json!(0);
        std::fs::write(dir.join(CONFIG_FILE), json.to_string()).unwrap();
        let e = LayerDag::load(&dir, Device::Cpu).unwrap_err().to_string();
        assert!(e.contains(CONFIG_FILE) && e.contains("max_level"), "{e}");
        std::fs::write(dir.join(CONFIG_FILE), "{\"format\": \"x\"}").unwrap();
        assert!(LayerDag::load(&dir, Device::Cpu).is_err());
    }

    /// Same seed, same weights, same noise, same outputs (CPU).
    #[test]
    fn seeded_runs_are_deterministic() {
        let _rng = rng_lock();
        let b = tiny_tpu_batches();
        let run = || {
            tch::manual_seed(9);
            let m = LayerDag::new(small(), b.spec.clone(), Device::Cpu).unwrap();
            outputs(&m, &b, true)
        };
        let (first, second) = (run(), run());
        for (x, y) in first.iter().zip(&second) {
            assert!(x.equal(y));
        }
    }
}
