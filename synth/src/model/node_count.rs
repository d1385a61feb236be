//! The layer-size model (layerdag.md §2.3, reference `GraphClassifier`):
//! a pooled BiMPNN encoder of the graph built so far (dummy node plus the
//! previous layers) and `Linear → GELU → Linear` to `max_layer_size + 1`
//! classes, a categorical distribution over the next layer's size where class
//! 0 means stop. Trained with cross-entropy. With a progress encoding
//! ([`super::config`]), the pooled embedding carries the layer's progress.

use tch::nn;
use tch::{Device, Reduction, Tensor};

use super::colour_cache::{CachedPass, EncoderCache, EncoderTables};
use super::config::{DataSpec, ModelConfig};
use super::error::{ModelError, Result, TorchContext};
use super::layers::{BiMPNNEncoder, GraphInput, Mlp, ProgressEmbedding};
use crate::dataset::streams::NodeCountTensors;

/// `GraphClassifier`: variables `graph_encoder.*` and `predictor.{0,2}.*`
/// (and `progress_emb.div_term` with a progress encoding).
#[derive(Debug)]
pub struct NodeCountModel {
    graph_encoder: BiMPNNEncoder,
    progress_emb: ProgressEmbedding,
    predictor: Mlp,
    num_classes: i64,
}

impl NodeCountModel {
    /// Builds the model under `p` (the reference names it `node_count_model`).
    pub fn new(p: &nn::Path, config: &ModelConfig, data: &DataSpec) -> Result<Self> {
        config.validate()?;
        config.check_data(data)?;
        let enc = &config.node_count.model;
        let y_width = enc.y_width(config.general.conditional, data.y_dim) as i64;
        let graph_encoder =
            BiMPNNEncoder::new(&(p / "graph_encoder"), &data.encoder_vocab(), enc, data.y_dim as i64, y_width);
        let progress_emb = ProgressEmbedding::new(&(p / "progress_emb"), config.general.progress_emb_size as i64);
        let (h, w) = (graph_encoder.hidden_size(), progress_emb.size());
        let num_classes = data.max_layer_size as i64 + 1;
        Ok(NodeCountModel {
            predictor: Mlp::new(&(p / "predictor"), h + w, h, num_classes),
            graph_encoder,
            progress_emb,
            num_classes,
        })
    }

    /// `max_layer_size + 1`.
    pub fn num_classes(&self) -> i64 {
        self.num_classes
    }

    /// Logits `[B, max_layer_size + 1]` for the next layer's size of each
    /// graph; `y` is `[B, y_dim]` (ignored by an unconditional model),
    /// `progress` `[B]` (ignored without a progress encoding).
    pub fn forward_t(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        progress: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let ctx = "layer-size model forward";
        let h_g = self.graph_encoder.f_forward_t(g, y, train).ctx(ctx)?;
        let h_g = self.progress_emb.f_append(h_g, progress).ctx(ctx)?;
        self.predictor.f_forward(&h_g).ctx(ctx)
    }

    /// [`Self::forward_t`] for one layer of a sampling run: the encoder
    /// computes only the colours of `pass` that earlier layers' passes have
    /// not, into `tables` (see [`super::colour_cache`]).
    pub fn forward_cached(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        progress: Option<&Tensor>,
        pass: &CachedPass,
        tables: &mut EncoderTables,
    ) -> Result<Tensor> {
        let ctx = "layer-size model forward";
        let h_g = self.graph_encoder.f_pooled_cached(g, y, pass, tables).ctx(ctx)?;
        let h_g = self.progress_emb.f_append(h_g, progress).ctx(ctx)?;
        self.predictor.f_forward(&h_g).ctx(ctx)
    }

    /// An empty cache for [`Self::forward_cached`] on `device`.
    pub fn new_cache(&self, device: Device) -> Result<EncoderCache> {
        EncoderCache::new(&self.graph_encoder, device).ctx("layer-size encoder cache")
    }

    /// [`Self::forward_t`] on a dataset batch.
    pub fn forward_batch(&self, b: &NodeCountTensors, train: bool) -> Result<Tensor> {
        self.forward_t(GraphInput::from(&b.graphs), Some(&b.y), Some(&b.progress), train)
    }

    /// Mean cross-entropy against the layer sizes `label` (`[B]` Int64).
    /// Sizes above the largest class are clamped to it, as the reference's
    /// validation does (a validation split can have wider layers than the
    /// training split the classes come from).
    pub fn loss(&self, logits: &Tensor, label: &Tensor) -> Result<Tensor> {
        if logits.size() != [label.size()[0], self.num_classes] {
            return Err(ModelError::mismatch(
                "layer-size loss",
                format!("logits {:?} for labels {:?}", logits.size(), label.size()),
            ));
        }
        let label = label.clamp_max(self.num_classes - 1);
        logits.f_cross_entropy_loss(&label, None::<Tensor>, Reduction::Mean, -100, 0.0).ctx("layer-size loss")
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::OptimizerConfig;
    use tch::{Device, Kind};

    use super::*;
    use crate::model::config::tests::small;
    use crate::model::config::DataSpec;
    use crate::model::tests::{rng_lock, tiny_corpus_batches, tiny_tpu_batches, TestBatches};

    #[test]
    fn node_count_shapes_on_real_batches() {
        let _rng = rng_lock();
        for TestBatches { spec, node_count: b, .. } in [tiny_tpu_batches(), tiny_corpus_batches()] {
            let vs = nn::VarStore::new(Device::Cpu);
            let m = NodeCountModel::new(&(vs.root() / "node_count_model"), &small(), &spec).unwrap();
            let logits = m.forward_batch(&b, true).unwrap();
            assert_eq!(logits.size(), vec![b.graphs.num_graphs, spec.max_layer_size as i64 + 1]);
            let loss = m.loss(&logits, &b.label).unwrap();
            assert!(loss.double_value(&[]).is_finite());
            // Wrong conditioning width: an error naming the shapes.
            let y = Tensor::zeros([b.graphs.num_graphs, spec.y_dim as i64 + 1], (Kind::Float, Device::Cpu));
            let e = m.forward_t(GraphInput::from(&b.graphs), Some(&y), None, false).unwrap_err().to_string();
            assert!(e.contains("conditioning rows"), "{e}");
        }
    }

    /// With a progress encoding the logits follow each example's progress;
    /// without the values, or without a size prior to sample with, it is an
    /// error naming them.
    #[test]
    fn the_progress_encoding_reaches_the_layer_size_logits() {
        use crate::dataset::size_prior::SizePrior;
        use crate::model::tests::{tiny_corpus_data, tiny_tpu_data};
        let _rng = rng_lock();
        let mut cfg = small();
        cfg.general.progress_emb_size = 8;
        let TestBatches { mut spec, node_count: b, .. } = tiny_corpus_batches();
        let vs = nn::VarStore::new(Device::Cpu);
        let e = NodeCountModel::new(&vs.root(), &cfg, &spec).unwrap_err().to_string();
        assert!(e.contains("general.progress_emb_size") && e.contains("size prior"), "{e}");
        spec.size_prior = SizePrior::fit(&tiny_corpus_data().graphs);
        let m = NodeCountModel::new(&(vs.root() / "node_count_model"), &cfg, &spec).unwrap();
        let g = GraphInput::from(&b.graphs);
        let with = m.forward_t(g, Some(&b.y), Some(&b.progress), false).unwrap();
        assert_eq!(with.size(), vec![b.graphs.num_graphs, spec.max_layer_size as i64 + 1]);
        let later = m.forward_t(g, Some(&b.y), Some(&(&b.progress + 0.25)), false).unwrap();
        assert!((&with - &later).abs().max().double_value(&[]) > 1e-4);
        let e = m.forward_t(g, Some(&b.y), None, false).unwrap_err().to_string();
        assert!(e.contains("progress"), "{e}");
        // The scalar-conditioned TPU Tile data has no size prior.
        let tpu = DataSpec::from_graphs(&tiny_tpu_data().graphs);
        assert!(NodeCountModel::new(&vs.root(), &cfg, &tpu).is_err());
        cfg.general.progress_emb_size = 7;
        assert!(cfg.validate().unwrap_err().to_string().contains("general.progress_emb_size"));
    }

    #[test]
    fn adam_steps_reduce_the_node_count_loss() {
        let _rng = rng_lock();
        tch::manual_seed(0);
        let TestBatches { spec, node_count: b, .. } = tiny_tpu_batches();
        let cfg = small();
        let vs = nn::VarStore::new(Device::Cpu);
        let m = NodeCountModel::new(&(vs.root() / "node_count_model"), &cfg, &spec).unwrap();
        let mut opt = nn::Adam { amsgrad: true, ..Default::default() }.build(&vs, 1e-2).unwrap();
        let loss_now = || m.loss(&m.forward_batch(&b, true).unwrap(), &b.label).unwrap();
        let first = loss_now().double_value(&[]);
        for _ in 0..15 {
            opt.backward_step(&loss_now());
        }
        let last = loss_now().double_value(&[]);
        assert!(last < 0.7 * first, "loss {first} -> {last}");
    }
}
