//! The edge denoiser (layerdag.md §2.5, reference `EdgePredModel`).
//!
//! A BiMPNN encoder **without pooling** runs over the whole current graph:
//! the previous layers, the new layer's nodes (with their true attributes),
//! the true edges among the previous layers, and the current **noisy**
//! candidate edges into the new layer, all with weight 1 in `A`. Each
//! candidate `(u, v)` is scored from `cat(SinusoidalPE(t), h[u], h[v])` by
//! `Linear → GELU → Linear` into two logits, edge absent / present at t = 0
//! (x₀-parameterization).

use tch::nn::{self, Module};
use tch::{Device, Kind, TchError, Tensor};

use super::colour_cache::{CachedPass, ColourCache, EncoderCache, EncoderTables};
use super::config::{DataSpec, ModelConfig};
use super::error::{ModelError, Result, TorchContext};
use super::layers::{f_linear, f_product, segment_ids, BiMPNNEncoder, GraphInput, Mlp, SinusoidalPE};
use crate::dataset::streams::EdgeTensors;

/// The candidate pairs to score and the noisy edges among them.
#[derive(Clone, Copy, Debug)]
pub struct EdgeQueries<'a> {
    /// `[E_t]` Int64 sources of the noisy edges (global ids).
    pub noisy_src: &'a Tensor,
    /// `[E_t]` Int64 targets of the noisy edges.
    pub noisy_dst: &'a Tensor,
    /// `[B]` Int64 diffusion step of each example (0..=T).
    pub t: &'a Tensor,
    /// `[C]` Int64 candidate sources.
    pub cand_src: &'a Tensor,
    /// `[C]` Int64 candidate targets.
    pub cand_dst: &'a Tensor,
    /// `[C]` Int64 example of each candidate.
    pub cand_graph: &'a Tensor,
}

/// The distinct (source state, target state, graph) triples of a set of
/// candidates. Candidates with the same triple get the same score, so the
/// pair layers run once per triple (about two thirds of the candidates of a
/// TPU Tile training batch, whose prefixes share colours) and the scores are
/// gathered back per candidate.
struct DistinctPairs {
    /// Each triple's source state row.
    src: Tensor,
    /// Each triple's target state row.
    dst: Tensor,
    /// Each triple's graph.
    graph: Tensor,
    /// Each candidate's triple.
    of_candidate: Tensor,
}

impl DistinctPairs {
    /// Triples of `src[i]`, `dst[i]` (rows of a `states`-row table) and
    /// `graph[i]` (of `graphs`), sorted, so the result is deterministic.
    fn new(src: &Tensor, dst: &Tensor, graph: &Tensor, states: i64, graphs: i64) -> Result<Self, TchError> {
        let graphs = graphs.max(1);
        if states.checked_mul(states).and_then(|s| s.checked_mul(graphs)).is_none() {
            return Err(TchError::Shape(format!("{states} states × {states} × {graphs} graphs overflow a pair key")));
        }
        let key = src.f_mul_scalar(states)?.f_add(dst)?.f_mul_scalar(graphs)?.f_add(graph)?;
        let (uniq, of_candidate, _) = key.f_internal_unique2(true, true, false)?;
        let pair = uniq.f_floor_divide_scalar(graphs)?;
        Ok(DistinctPairs {
            src: pair.f_floor_divide_scalar(states)?,
            dst: pair.f_remainder(states)?,
            graph: uniq.f_remainder(graphs)?,
            of_candidate,
        })
    }
}

/// `EdgePredModel`: variables `graph_encoder.*`, `t_emb.div_term`,
/// `pred.{0,2}.*`.
#[derive(Debug)]
pub struct EdgePredModel {
    graph_encoder: BiMPNNEncoder,
    t_emb: SinusoidalPE,
    pred: Mlp,
}

impl EdgePredModel {
    /// Builds the model under `p` (the reference names it `edge_pred_model`).
    pub fn new(p: &nn::Path, config: &ModelConfig, data: &DataSpec) -> Result<Self> {
        config.validate()?;
        config.check_data(data)?;
        let ep = &config.edge_pred;
        let enc = &ep.graph_encoder;
        let y_width = enc.y_width(config.general.conditional, data.y_dim) as i64;
        let graph_encoder =
            BiMPNNEncoder::new(&(p / "graph_encoder"), &data.encoder_vocab(), enc, data.y_dim as i64, y_width);
        let t_emb = SinusoidalPE::new(&(p / "t_emb"), ep.predictor.t_emb_size as i64);
        let h = graph_encoder.hidden_size();
        let pred = Mlp::new(&(p / "pred"), 2 * h + t_emb.size(), ep.predictor.out_hidden_size as i64, 2);
        Ok(EdgePredModel { graph_encoder, t_emb, pred })
    }

    /// Logits `[C, 2]` (absent, present) for every candidate of `q`, with the
    /// noisy edges of `q` added to the edges of `g`.
    pub fn forward_t(&self, g: GraphInput, y: Option<&Tensor>, q: EdgeQueries, train: bool) -> Result<Tensor> {
        let ctx = "edge denoiser";
        self.check_queries(&g, &q)?;
        let src = Tensor::f_cat(&[g.src, q.noisy_src], 0).ctx(ctx)?;
        let dst = Tensor::f_cat(&[g.dst, q.noisy_dst], 0).ctx(ctx)?;
        let (h, node_color) =
            self.graph_encoder.f_node_states_t(GraphInput { src: &src, dst: &dst, ..g }, y, train).ctx(ctx)?;
        let w_uv = self.pair_weights(h.size()[1]).ctx(ctx)?;
        let huv = f_product(&h, &w_uv, None).ctx(ctx)?;
        let (iu, iv) = match &node_color {
            Some(nc) => (nc.f_index_select(0, q.cand_src).ctx(ctx)?, nc.f_index_select(0, q.cand_dst).ctx(ctx)?),
            None => (q.cand_src.shallow_clone(), q.cand_dst.shallow_clone()),
        };
        self.score(&huv, &iu, &iv, q, g.num_graphs).ctx(ctx)
    }

    /// An empty cache for [`Self::forward_cached`] on `device`: its final
    /// rows hold each colour's pair projections.
    pub fn new_cache(&self, device: Device) -> Result<EncoderCache> {
        let encoder = &self.graph_encoder;
        let widths = encoder.cached_table_widths(2 * self.pred.l0.ws.size()[0]);
        Ok(EncoderCache {
            colours: ColourCache::new(encoder.depth()),
            tables: EncoderTables::new(&widths, device).ctx("edge denoiser cache")?,
        })
    }

    /// [`Self::forward_t`] for one denoising step of a sampling run: `pass`
    /// colours the step's graph (`g`'s edges plus `q`'s noisy ones) with the
    /// run's [`EncoderCache`], and the encoder computes only the colours
    /// earlier steps have not (into `cache`), with each final colour's pair
    /// projections `W_u·h`, `W_v·h` stored once. The same function: sums
    /// may be added in another order.
    pub fn forward_cached(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        q: EdgeQueries,
        pass: &CachedPass,
        tables: &mut EncoderTables,
    ) -> Result<Tensor> {
        let ctx = "edge denoiser";
        self.check_queries(&g, &q)?;
        let w_uv = self.pair_weights(self.graph_encoder.hidden_size()).ctx(ctx)?;
        let finish = |u: Tensor| f_product(&self.graph_encoder.f_output(&u)?, &w_uv, None);
        let huv = self.graph_encoder.f_forward_cached(g, y, pass, tables, &finish).ctx(ctx)?;
        let node_row = Tensor::from_slice(&pass.node_row).to_device(g.x.device());
        let iu = node_row.f_index_select(0, q.cand_src).ctx(ctx)?;
        let iv = node_row.f_index_select(0, q.cand_dst).ctx(ctx)?;
        self.score(&huv, &iu, &iv, q, g.num_graphs).ctx(ctx)
    }

    fn check_queries(&self, g: &GraphInput, q: &EdgeQueries) -> Result<()> {
        let c = q.cand_src.size()[0];
        if q.cand_dst.size() != [c] || q.cand_graph.size() != [c] || q.t.size() != [g.num_graphs] {
            return Err(ModelError::mismatch(
                "edge denoiser",
                format!(
                    "{} graphs; candidates src {:?}, dst {:?}, graph {:?}; t {:?}",
                    g.num_graphs,
                    q.cand_src.size(),
                    q.cand_dst.size(),
                    q.cand_graph.size(),
                    q.t.size()
                ),
            ));
        }
        Ok(())
    }

    /// `pred`'s first layer on `cat(PE(t), h[u], h[v])` splits into three
    /// products, `W_t·PE(t) + W_u·h[u] + W_v·h[v]`: `[W_u; W_v]`
    /// (`[2·out, hd]`) for states of width `hd`.
    fn pair_weights(&self, hd: i64) -> Result<Tensor, TchError> {
        let (te, l0) = (self.t_emb.size(), &self.pred.l0);
        Tensor::f_cat(&[l0.ws.f_narrow(1, te, hd)?, l0.ws.f_narrow(1, te + hd, hd)?], 0)
    }

    /// The candidates' logits from the pair projections `huv` (`[S, 2·out]`,
    /// one row per state) and each candidate's source and target rows `iu`,
    /// `iv`: `pred`'s first layer is `W_t·PE(t) + W_u·h[u] + W_v·h[v] + b`,
    /// computed once per graph, per state and per distinct triple.
    fn score(&self, huv: &Tensor, iu: &Tensor, iv: &Tensor, q: EdgeQueries, graphs: i64) -> Result<Tensor, TchError> {
        let l0 = &self.pred.l0;
        let w_t = l0.ws.f_narrow(1, 0, self.t_emb.size())?;
        let at = f_product(&self.t_emb.forward(q.t), &w_t, l0.bs.as_ref())?;
        let out = huv.size()[1] / 2;
        let distinct = DistinctPairs::new(iu, iv, q.cand_graph, huv.size()[0], graphs)?;
        let (iu, iv, graph) = (&distinct.src, &distinct.dst, &distinct.graph);
        let pre = at
            .f_index_select(0, graph)?
            .f_add(&huv.f_narrow(1, 0, out)?.f_index_select(0, iu)?)?
            .f_add(&huv.f_narrow(1, out, out)?.f_index_select(0, iv)?)?;
        f_linear(&self.pred.l2, &pre.f_gelu("none")?)?.f_index_select(0, &distinct.of_candidate)
    }

    /// The candidate scores of [`Self::forward_t`] computed the
    /// straightforward way, `pred(cat(PE(t), h[u], h[v]))` per candidate
    /// (for tests).
    #[cfg(test)]
    pub(crate) fn forward_reference(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        q: EdgeQueries,
        train: bool,
    ) -> Result<Tensor> {
        let ctx = "edge denoiser";
        let src = Tensor::f_cat(&[g.src, q.noisy_src], 0).ctx(ctx)?;
        let dst = Tensor::f_cat(&[g.dst, q.noisy_dst], 0).ctx(ctx)?;
        let g = GraphInput { src: &src, dst: &dst, compressed: None, ..g };
        let h = self.graph_encoder.f_forward_t(g, y, train).ctx(ctx)?;
        let h_t = self.t_emb.forward(q.t).f_index_select(0, q.cand_graph).ctx(ctx)?;
        let h_e = Tensor::f_cat(
            &[h_t, h.f_index_select(0, q.cand_src).ctx(ctx)?, h.f_index_select(0, q.cand_dst).ctx(ctx)?],
            1,
        )
        .ctx(ctx)?;
        self.pred.f_forward(&h_e).ctx(ctx)
    }

    /// [`Self::forward_t`] on a dataset batch whose candidates are noised to
    /// the Bool mask `noisy` (`[C]`) at per-example steps `t` (`[B]`).
    pub fn forward_batch(&self, b: &EdgeTensors, noisy: &Tensor, t: &Tensor, train: bool) -> Result<Tensor> {
        let ctx = "edge denoiser batch";
        let cand_graph = segment_ids(&b.cand_offsets).ctx(ctx)?;
        let noisy = noisy.to_kind(Kind::Bool);
        let noisy_src = b.cand_src.f_masked_select(&noisy).ctx(ctx)?;
        let noisy_dst = b.cand_dst.f_masked_select(&noisy).ctx(ctx)?;
        let q = EdgeQueries {
            noisy_src: &noisy_src,
            noisy_dst: &noisy_dst,
            t,
            cand_src: &b.cand_src,
            cand_dst: &b.cand_dst,
            cand_graph: &cand_graph,
        };
        self.forward_t(GraphInput::from(&b.graphs), Some(&b.y), q, train)
    }
}

#[cfg(test)]
mod tests {
    use tch::nn::OptimizerConfig;
    use tch::Device;

    use super::*;

    /// Duplicate candidates share one triple, every candidate maps back to
    /// its own (source, target, graph), and the triples are distinct.
    #[test]
    fn distinct_pairs_merge_duplicate_candidates_and_map_back() {
        let src = Tensor::from_slice(&[3i64, 0, 3, 2, 3, 0]);
        let dst = Tensor::from_slice(&[1i64, 4, 1, 1, 1, 4]);
        let graph = Tensor::from_slice(&[0i64, 1, 0, 0, 1, 1]);
        let d = DistinctPairs::new(&src, &dst, &graph, 5, 2).unwrap();
        // (3,1,0) twice, (0,4,1) twice, (2,1,0), (3,1,1): four triples.
        assert_eq!(d.src.size(), vec![4]);
        for (triple, input) in [(&d.src, &src), (&d.dst, &dst), (&d.graph, &graph)] {
            assert!(triple.index_select(0, &d.of_candidate).equal(input));
        }
        let key = |i: i64| (d.src.int64_value(&[i]), d.dst.int64_value(&[i]), d.graph.int64_value(&[i]));
        let keys: std::collections::BTreeSet<_> = (0..4).map(key).collect();
        assert_eq!(keys.len(), 4);
        // No candidates, no triples.
        let none = Tensor::zeros([0], (Kind::Int64, Device::Cpu));
        assert_eq!(DistinctPairs::new(&none, &none, &none, 5, 2).unwrap().of_candidate.size(), vec![0]);
    }
    use crate::model::config::tests::small;
    use crate::model::diffusion::{edge_loss, EdgeDiffusion};
    use crate::model::tests::{rng_lock, tiny_corpus_batches, tiny_tpu_batches, TestBatches};

    fn noised(spec: &DataSpec, b: &EdgeTensors, steps: usize) -> (Tensor, Tensor) {
        let d = EdgeDiffusion::new(spec.avg_in_deg, steps, Device::Cpu);
        let layout = d.layout(&b.num_prev, &b.num_new, &b.cand_offsets).unwrap();
        let t = d.sample_t(b.num_prev.size()[0]);
        (d.q_sample(&b.label, &t, &layout).unwrap(), t)
    }

    #[test]
    fn edge_pred_shapes_on_real_batches() {
        let _rng = rng_lock();
        tch::manual_seed(3);
        for TestBatches { spec, edge: b, .. } in [tiny_tpu_batches(), tiny_corpus_batches()] {
            let cfg = small();
            let vs = nn::VarStore::new(Device::Cpu);
            let m = EdgePredModel::new(&(vs.root() / "edge_pred_model"), &cfg, &spec).unwrap();
            let (noisy, t) = noised(&spec, &b, cfg.edge_pred.num_steps);
            let logits = m.forward_batch(&b, &noisy, &t, true).unwrap();
            assert_eq!(logits.size(), vec![b.label.size()[0], 2]);
            assert!(edge_loss(&logits, &b.label).unwrap().double_value(&[]).is_finite());
            // The noisy edges reach the encoder: other noise, other logits.
            let none = noisy.zeros_like();
            let clean = m.forward_batch(&b, &none, &t, false).unwrap();
            let noisy_eval = m.forward_batch(&b, &noisy, &t, false).unwrap();
            assert!(!clean.allclose(&noisy_eval, 1e-6, 1e-6, false));
            assert!(m.forward_batch(&b, &noisy, &t.narrow(0, 0, 1), false).is_err());
        }
    }

    #[test]
    fn adam_steps_reduce_the_edge_pred_loss() {
        let _rng = rng_lock();
        tch::manual_seed(4);
        let TestBatches { spec, edge: b, .. } = tiny_tpu_batches();
        let cfg = small();
        let vs = nn::VarStore::new(Device::Cpu);
        let m = EdgePredModel::new(&(vs.root() / "edge_pred_model"), &cfg, &spec).unwrap();
        let (noisy, t) = noised(&spec, &b, cfg.edge_pred.num_steps);
        let mut opt = nn::Adam { amsgrad: true, ..Default::default() }.build(&vs, 1e-2).unwrap();
        let loss_now = || edge_loss(&m.forward_batch(&b, &noisy, &t, true).unwrap(), &b.label).unwrap();
        let first = loss_now().double_value(&[]);
        for _ in 0..15 {
            opt.backward_step(&loss_now());
        }
        let last = loss_now().double_value(&[]);
        assert!(last < 0.7 * first, "loss {first} -> {last}");
    }
}
