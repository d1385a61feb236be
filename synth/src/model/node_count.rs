//! The layer-size model (layerdag.md §2.3, reference `GraphClassifier`):
//! a pooled BiMPNN encoder of the graph built so far (dummy node plus the
//! previous layers) and `Linear → GELU → Linear` to `max_layer_size + 1`
//! classes, a categorical distribution over the next layer's size where class
//! 0 means stop. Trained with cross-entropy.

use tch::nn::{self, Module};
use tch::{Reduction, Tensor};

use super::config::{DataSpec, ModelConfig};
use super::error::{ModelError, Result, TorchContext};
use super::layers::{BiMPNNEncoder, GraphInput, Mlp};
use crate::dataset::streams::NodeCountTensors;

/// `GraphClassifier`: variables `graph_encoder.*` and `predictor.{0,2}.*`.
#[derive(Debug)]
pub struct NodeCountModel {
    graph_encoder: BiMPNNEncoder,
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
        let h = graph_encoder.hidden_size();
        let num_classes = data.max_layer_size as i64 + 1;
        Ok(NodeCountModel { predictor: Mlp::new(&(p / "predictor"), h, h, num_classes), graph_encoder, num_classes })
    }

    /// `max_layer_size + 1`.
    pub fn num_classes(&self) -> i64 {
        self.num_classes
    }

    /// Logits `[B, max_layer_size + 1]` for the next layer's size of each
    /// graph; `y` is `[B, y_dim]` (ignored by an unconditional model).
    pub fn forward_t(&self, g: GraphInput, y: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let ctx = "layer-size model forward";
        let h_g = self.graph_encoder.f_forward_t(g, y, train).ctx(ctx)?;
        Ok(self.predictor.forward(&h_g))
    }

    /// [`Self::forward_t`] on a dataset batch.
    pub fn forward_batch(&self, b: &NodeCountTensors, train: bool) -> Result<Tensor> {
        self.forward_t(GraphInput::from(&b.graphs), Some(&b.y), train)
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
            let e = m.forward_t(GraphInput::from(&b.graphs), Some(&y), false).unwrap_err().to_string();
            assert!(e.contains("conditioning rows"), "{e}");
        }
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
