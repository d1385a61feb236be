//! The node-attribute denoiser (layerdag.md §2.4, reference `NodePredModel`).
//!
//! A pooled BiMPNN encoder embeds the graph of the previous layers (the new
//! layer's nodes are not in it) into `h_g` `[B, hidden]`; `SinusoidalPE(t)`
//! is appended to it. Each of the Q new nodes embeds its noisy attributes
//! `x_t` with tables of `C_f` rows (real categories only, no dummy row),
//! concatenates its graph's `cat(h_g, PE(t))`, and goes through
//! `Linear → GELU`, the set transformer over its layer's nodes, and one
//! `Linear → GELU → Linear` head per feature giving logits for the clean
//! `x₀` (x₀-parameterization). All new nodes of a layer are denoised jointly.
//! With a progress encoding ([`super::config`]), `h_g` carries the new
//! layer's progress.

use rustc_hash::FxHashMap;
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use super::colour_cache::{CachedPass, EncoderCache, EncoderTables};
use super::config::{DataSpec, ModelConfig};
use super::error::{ModelError, Result, TorchContext};
use super::layers::{
    f_linear, f_product, segment_ids, BiMPNNEncoder, GraphInput, Mlp, MultiEmbedding, ProgressEmbedding, SinusoidalPE,
    TransformerLayer,
};
use crate::dataset::streams::NodeAttrTensors;

/// The new nodes to denoise.
#[derive(Clone, Copy, Debug)]
pub struct NodeQueries<'a> {
    /// `[Q, F]` Int64 noisy attributes (real categories).
    pub x_t: &'a Tensor,
    /// `[B]` Int64 diffusion step of each example (0..=T).
    pub t: &'a Tensor,
    /// `[Q]` Int64 example of each new node.
    pub query_graph: &'a Tensor,
    /// `[B + 1]` Int64 cumulative new-node counts.
    pub query_offsets: &'a Tensor,
}

/// `NodePredModel`: variables `graph_encoder.*`, `x_n_emb.emb_list.{f}`,
/// `t_emb.div_term`, `project_h_n.0.*`, `trans_layers.{i}.*`,
/// `pred_list.{f}.{0,2}.*` (and `progress_emb.div_term` with a progress
/// encoding).
#[derive(Debug)]
pub struct NodePredModel {
    graph_encoder: BiMPNNEncoder,
    progress_emb: ProgressEmbedding,
    x_n_emb: MultiEmbedding,
    t_emb: SinusoidalPE,
    project_h_n: nn::Linear,
    trans_layers: Vec<TransformerLayer>,
    pred_list: Vec<Mlp>,
}

impl NodePredModel {
    /// Builds the model under `p` (the reference names it `node_pred_model`).
    pub fn new(p: &nn::Path, config: &ModelConfig, data: &DataSpec) -> Result<Self> {
        config.validate()?;
        config.check_data(data)?;
        let np = &config.node_pred;
        let enc = &np.graph_encoder;
        let y_width = enc.y_width(config.general.conditional, data.y_dim) as i64;
        let graph_encoder =
            BiMPNNEncoder::new(&(p / "graph_encoder"), &data.encoder_vocab(), enc, data.y_dim as i64, y_width);
        let pr = &np.predictor;
        let out = pr.out_hidden_size as i64;
        let x_n_emb = MultiEmbedding::new(&(p / "x_n_emb"), &data.real_vocab(), enc.x_n_emb_size as i64);
        let t_emb = SinusoidalPE::new(&(p / "t_emb"), pr.t_emb_size as i64);
        let progress_emb = ProgressEmbedding::new(&(p / "progress_emb"), config.general.progress_emb_size as i64);
        let in_size = graph_encoder.hidden_size() + progress_emb.size() + t_emb.size() + x_n_emb.out_size();
        let layers = p / "trans_layers";
        let heads = p / "pred_list";
        Ok(NodePredModel {
            project_h_n: super::layers::linear(p / "project_h_n" / "0", in_size, out),
            trans_layers: (0..pr.num_transformer_layers as i64)
                .map(|i| TransformerLayer::new(&(&layers / i), out, pr.num_heads as i64, pr.dropout))
                .collect(),
            pred_list: data
                .real_vocab()
                .iter()
                .enumerate()
                .map(|(f, &c)| Mlp::new(&(&heads / f), out, out, c))
                .collect(),
            graph_encoder,
            progress_emb,
            x_n_emb,
            t_emb,
        })
    }

    /// The graph embedding `h_g` `[B, hidden (+ progress width)]` of the
    /// previous layers, with the new layers' `progress` (`[B]`) appended when
    /// the model encodes it. It does not depend on the step, so sampling
    /// computes it once per layer.
    pub fn encode_t(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        progress: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let ctx = "node-attribute encoder";
        let h_g = self.graph_encoder.f_forward_t(g, y, train).ctx(ctx)?;
        self.progress_emb.f_append(h_g, progress).ctx(ctx)
    }

    /// [`Self::encode_t`] for one layer of a sampling run: the encoder
    /// computes only the colours of `pass` that earlier layers' passes have
    /// not, into `cache`'s tables (see [`super::colour_cache`]).
    pub fn encode_cached(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        progress: Option<&Tensor>,
        pass: &CachedPass,
        tables: &mut EncoderTables,
    ) -> Result<Tensor> {
        let ctx = "node-attribute encoder";
        let h_g = self.graph_encoder.f_pooled_cached(g, y, pass, tables).ctx(ctx)?;
        self.progress_emb.f_append(h_g, progress).ctx(ctx)
    }

    /// An empty cache for [`Self::encode_cached`] on `device`.
    pub fn new_cache(&self, device: Device) -> Result<EncoderCache> {
        EncoderCache::new(&self.graph_encoder, device).ctx("node-attribute encoder cache")
    }

    /// The step-independent part of the denoiser's input projection for the
    /// graph embeddings `h_g` (from [`Self::encode_t`]). `project_h_n` acts on
    /// `cat(x_emb(x_t), h_g, PE(t))`, so it splits into a per-category table,
    /// a per-graph term (computed here once; sampling reuses it for every
    /// step) and a per-step term, instead of one product per new node.
    pub fn prepare(&self, h_g: &Tensor) -> Result<PreparedGraphs> {
        let ctx = "node-attribute denoiser";
        let (xs, hd) = (self.x_n_emb.out_size(), self.graph_encoder.hidden_size() + self.progress_emb.size());
        let w = &self.project_h_n.ws;
        let x_tables = self.x_n_emb.f_projected_tables(&w.f_narrow(1, 0, xs).ctx(ctx)?).ctx(ctx)?;
        let graph_part = f_product(h_g, &w.f_narrow(1, xs, hd).ctx(ctx)?, self.project_h_n.bs.as_ref()).ctx(ctx)?;
        let w_t = w.f_narrow(1, xs + hd, self.t_emb.size()).ctx(ctx)?;
        Ok(PreparedGraphs { x_tables, graph_part, w_t })
    }

    /// x₀ logits per feature (`[Q, C_f]` each) from [`Self::prepare`]d graphs.
    /// Nodes of one example with the same noisy row `x_t` have the same
    /// input and, the transformer having no positional encoding, the same
    /// output: the denoiser runs once per distinct (example, row), with
    /// each row's multiplicity in the attention
    /// ([`TransformerLayer::f_forward_counted`]), and the logits are gathered
    /// back per node. The same function: sums may be added in another order.
    pub fn forward_prepared(&self, g: &PreparedGraphs, q: NodeQueries, train: bool) -> Result<Vec<Tensor>> {
        let ctx = "node-attribute denoiser";
        let b = g.graph_part.size()[0];
        if q.t.size() != [b] || q.query_offsets.size() != [b + 1] || q.query_graph.size() != [q.x_t.size()[0]] {
            return Err(ModelError::mismatch(
                ctx,
                format!(
                    "{b} graphs, t {:?}, query_offsets {:?}, query_graph {:?}, x_t {:?}",
                    q.t.size(),
                    q.query_offsets.size(),
                    q.query_graph.size(),
                    q.x_t.size()
                ),
            ));
        }
        let d = DistinctRows::new(q.query_graph, q.x_t, b).ctx(ctx)?;
        let (graph, x_t, offsets, of_node) = (&d.graph, &d.x_t, &d.offsets, &d.of_node);
        let per_graph = g.graph_part.f_add(&f_product(&self.t_emb.forward(q.t), &g.w_t, None).ctx(ctx)?).ctx(ctx)?;
        let per_node = MultiEmbedding::f_forward_projected(&g.x_tables, x_t).ctx(ctx)?;
        let mut h = per_node.f_add(&per_graph.f_index_select(0, graph).ctx(ctx)?).ctx(ctx)?.gelu("none");
        let log_counts = d.counts.f_to_kind(h.kind()).ctx(ctx)?.f_log().ctx(ctx)?;
        for layer in &self.trans_layers {
            h = layer.f_forward_counted(&h, graph, offsets, Some(&log_counts), train).ctx(ctx)?;
        }
        self.pred_list
            .iter()
            .map(|head| head.f_forward(&h).and_then(|l| l.f_index_select(0, of_node)).ctx(ctx))
            .collect()
    }

    /// x₀ logits per feature (`[Q, C_f]` each) from a precomputed `h_g`, as
    /// the reference computes them: one `project_h_n` product per new node on
    /// `cat(x_emb(x_t), h_g[graph], PE(t)[graph])`. Training uses this form, so
    /// that checkpoints trained before [`Self::forward_prepared`] existed
    /// retrain bit for bit; sampling uses the prepared form (the same function,
    /// summed in another order).
    pub fn forward_with_h_g(&self, h_g: &Tensor, q: NodeQueries, train: bool) -> Result<Vec<Tensor>> {
        let ctx = "node-attribute denoiser";
        let b = h_g.size()[0];
        if q.t.size() != [b] || q.query_offsets.size() != [b + 1] {
            return Err(ModelError::mismatch(
                ctx,
                format!("{b} graphs, t {:?}, query_offsets {:?}", q.t.size(), q.query_offsets.size()),
            ));
        }
        let h_g = Tensor::f_cat(&[h_g.shallow_clone(), self.t_emb.forward(q.t)], 1).ctx(ctx)?;
        let h_n = self.x_n_emb.f_forward(q.x_t).ctx(ctx)?;
        let h_n = Tensor::f_cat(&[h_n, h_g.f_index_select(0, q.query_graph).ctx(ctx)?], 1).ctx(ctx)?;
        let h = f_linear(&self.project_h_n, &h_n).ctx(ctx)?.gelu("none");
        self.denoise_projected(h, q, train)
    }

    /// The transformer and the heads on the projected new-node rows `h`.
    fn denoise_projected(&self, mut h: Tensor, q: NodeQueries, train: bool) -> Result<Vec<Tensor>> {
        let ctx = "node-attribute denoiser";
        for layer in &self.trans_layers {
            h = layer.f_forward_t(&h, q.query_graph, q.query_offsets, train).ctx(ctx)?;
        }
        self.pred_list.iter().map(|head| head.f_forward(&h).ctx(ctx)).collect()
    }

    /// x₀ logits per feature for the new nodes `q` of the graphs `g`.
    pub fn forward_t(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        progress: Option<&Tensor>,
        q: NodeQueries,
        train: bool,
    ) -> Result<Vec<Tensor>> {
        let h_g = self.encode_t(g, y, progress, train)?;
        self.forward_with_h_g(&h_g, q, train)
    }

    /// [`Self::forward_t`] on a dataset batch with noisy rows `x_t` (`[Q, F]`)
    /// at per-example steps `t` (`[B]`).
    pub fn forward_batch(&self, b: &NodeAttrTensors, x_t: &Tensor, t: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        let q = NodeQueries { x_t, t, query_graph: &b.query_graph, query_offsets: &b.query_offsets };
        self.forward_t(GraphInput::from(&b.graphs), Some(&b.y), Some(&b.progress), q, train)
    }
}

/// The distinct (example, noisy row) pairs of a layer's new nodes, in order
/// of first appearance (so still grouped by example).
struct DistinctRows {
    /// `[U]` each distinct row's example.
    graph: Tensor,
    /// `[U, F]` the distinct rows.
    x_t: Tensor,
    /// `[B + 1]` cumulative distinct rows per example.
    offsets: Tensor,
    /// `[U]` how many nodes each distinct row stands for.
    counts: Tensor,
    /// `[Q]` each node's distinct row.
    of_node: Tensor,
}

impl DistinctRows {
    /// From the nodes' examples `query_graph` (`[Q]`, grouped by example)
    /// and rows `x_t` (`[Q, F]`) of `b` examples; computed on the host (a
    /// hash per node; `unique_dim`'s row sort costs more).
    fn new(query_graph: &Tensor, x_t: &Tensor, b: i64) -> Result<Self, tch::TchError> {
        let host = |t: &Tensor| Vec::<i64>::try_from(t.to_device(Device::Cpu).contiguous().view([-1]));
        let (graph, rows) = (host(query_graph)?, host(x_t)?);
        let f = x_t.size()[1].max(1) as usize;
        if graph.windows(2).any(|w| w[1] < w[0]) || graph.iter().any(|&g| g < 0 || g >= b) {
            return Err(tch::TchError::Shape(format!("query_graph must list the {b} examples' nodes in order")));
        }
        let mut ids: FxHashMap<(i64, &[i64]), i64> = FxHashMap::default();
        let (mut first, mut counts, mut of_node) = (Vec::new(), Vec::<i64>::new(), Vec::with_capacity(graph.len()));
        let mut offsets = vec![0i64; b as usize + 1];
        for (i, &g) in graph.iter().enumerate() {
            let next = first.len() as i64;
            let id = *ids.entry((g, &rows[i * f..(i + 1) * f])).or_insert(next);
            if id == next {
                first.push(i as i64);
                counts.push(0);
                offsets[g as usize + 1] += 1;
            }
            counts[id as usize] += 1;
            of_node.push(id);
        }
        for e in 0..b as usize {
            offsets[e + 1] += offsets[e];
        }
        let dev = x_t.device();
        let long = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        let first = long(&first);
        Ok(DistinctRows {
            graph: query_graph.f_index_select(0, &first)?,
            x_t: x_t.f_index_select(0, &first)?,
            offsets: long(&offsets),
            counts: long(&counts),
            of_node: long(&of_node),
        })
    }
}

/// The step-independent terms of the denoiser's input projection for a set
/// of graphs ([`NodePredModel::prepare`]).
#[derive(Debug)]
pub struct PreparedGraphs {
    /// Per feature, `E_f · W_fᵀ` over its categories (`[C_f, out]`).
    x_tables: Vec<Tensor>,
    /// `h_g · W_gᵀ + b` (`[B, out]`).
    graph_part: Tensor,
    /// The projection's columns for `PE(t)` (`[out, t_emb]`).
    w_t: Tensor,
}

/// The per-node steps of a batch: each example's `t` repeated over its new
/// nodes (`query_offsets` the `B + 1` cumulative counts).
pub fn steps_per_node(t: &Tensor, query_offsets: &Tensor) -> Result<Tensor> {
    let ctx = "expanding steps to nodes";
    t.f_index_select(0, &segment_ids(query_offsets).ctx(ctx)?).ctx(ctx)
}

#[cfg(test)]
mod tests {
    use tch::nn::OptimizerConfig;
    use tch::Device;

    use super::*;
    use crate::model::config::tests::small;
    use crate::model::diffusion::{node_loss, NodeDiffusion};
    use crate::model::tests::{rng_lock, tiny_corpus_batches, tiny_tpu_batches, TestBatches};

    fn noised(spec: &DataSpec, b: &NodeAttrTensors, steps: usize) -> (Tensor, Tensor) {
        let d = NodeDiffusion::new(&spec.node_marginals, steps, Device::Cpu);
        let t = d.sample_t(b.graphs.num_graphs);
        let x_t = d.q_sample(&b.target, &steps_per_node(&t, &b.query_offsets).unwrap()).unwrap();
        (x_t, t)
    }

    #[test]
    fn node_pred_shapes_and_the_split_projection_on_real_batches() {
        let _rng = rng_lock();
        tch::manual_seed(1);
        for TestBatches { spec, node_attr: b, .. } in [tiny_tpu_batches(), tiny_corpus_batches()] {
            let cfg = small();
            let vs = nn::VarStore::new(Device::Cpu);
            let m = NodePredModel::new(&(vs.root() / "node_pred_model"), &cfg, &spec).unwrap();
            let (x_t, t) = noised(&spec, &b, cfg.node_pred.num_steps);
            let logits = m.forward_batch(&b, &x_t, &t, true).unwrap();
            assert_eq!(logits.len(), spec.num_features());
            let q = b.target.size()[0];
            for (l, &c) in logits.iter().zip(&spec.cardinalities) {
                assert_eq!(l.size(), vec![q, c as i64]);
            }
            assert!(node_loss(&logits, &b.target).unwrap().double_value(&[]).is_finite());
            // The graph embedding is shared across steps.
            let h_g = m.encode_t(GraphInput::from(&b.graphs), Some(&b.y), Some(&b.progress), false).unwrap();
            assert_eq!(
                h_g.size(),
                vec![
                    b.graphs.num_graphs,
                    cfg.node_pred.graph_encoder.hidden_size(spec.num_features(), true, spec.y_dim) as i64
                ]
            );
            // Sampling's split input projection is the same function.
            let q = NodeQueries { x_t: &x_t, t: &t, query_graph: &b.query_graph, query_offsets: &b.query_offsets };
            let prepared = m.prepare(&h_g).unwrap();
            let split = m.forward_prepared(&prepared, q, false).unwrap();
            for (a, r) in split.iter().zip(&m.forward_with_h_g(&h_g, q, false).unwrap()) {
                assert!(a.allclose(r, 1e-4, 1e-4, false), "max diff {}", (a - r).abs().max().double_value(&[]));
            }
            // A category outside the real vocabulary (the dummy) is an error.
            let dummy = x_t.full_like(spec.cardinalities[0] as i64);
            assert!(m.forward_batch(&b, &dummy, &t, false).is_err());
            assert!(m.forward_prepared(&prepared, NodeQueries { x_t: &dummy, ..q }, false).is_err());
        }
    }

    #[test]
    fn adam_steps_reduce_the_node_pred_loss() {
        let _rng = rng_lock();
        tch::manual_seed(2);
        let TestBatches { spec, node_attr: b, .. } = tiny_corpus_batches();
        let cfg = small();
        let vs = nn::VarStore::new(Device::Cpu);
        let m = NodePredModel::new(&(vs.root() / "node_pred_model"), &cfg, &spec).unwrap();
        let (x_t, t) = noised(&spec, &b, cfg.node_pred.num_steps);
        let mut opt = nn::Adam { amsgrad: true, ..Default::default() }.build(&vs, 1e-2).unwrap();
        let loss_now = || node_loss(&m.forward_batch(&b, &x_t, &t, true).unwrap(), &b.target).unwrap();
        let first = loss_now().double_value(&[]);
        for _ in 0..15 {
            opt.backward_step(&loss_now());
        }
        let last = loss_now().double_value(&[]);
        assert!(last < 0.7 * first, "loss {first} -> {last}");
    }
}
