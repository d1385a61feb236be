//! Weisfeiler–Lehman compression of a batch's message passing.
//!
//! A BiMPNN node state after k rounds is a function of the node's own
//! features and conditioning row and of the multisets of its predecessors'
//! and successors' states after k − 1 rounds (sum aggregation, no
//! normalization). Two nodes with the same 1-WL colour at depth k (colour
//! refinement over in- and out-neighbours separately, starting from
//! `(conditioning group, category row)`) therefore have the same state, in any
//! graph of the batch. The encoder then runs every linear layer once per
//! *colour* instead of once per node, and message passing becomes a gather /
//! `index_add` over the colour graph (one message per (neighbour colour,
//! colour) pair and multiplicity). The result is the same function
//! evaluated with fewer floating-point operations (sums may be added in
//! another order).
//!
//! Batches of training examples are prefixes of graphs ("the dummy plus the
//! layers before l"), so the same graph's prefixes in one batch share most
//! colours, and structurally repeated parts of a graph (TPU Tile's many
//! parameter → op fans) share them too.
//!
//! [`Compression::new`] runs in Rust on the batch's flat arrays; colours are
//! numbered in order of first appearance, so the result (and everything
//! computed from it) is deterministic.

use std::collections::HashMap;

use tch::{Device, Tensor};

/// The colour graph of one batch, as flat arrays (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compression {
    /// `K`, the number of message-passing rounds.
    pub depth: usize,
    /// A representative node (batch-global id) of each depth-0 colour: its
    /// category row and graph give the colour's input.
    pub rep0: Vec<i64>,
    /// Number of colours at each depth `0..=K`.
    pub num_colors: Vec<usize>,
    /// For depth `k = 1..=K` (index `k − 1`): each colour's own colour at depth k − 1.
    pub self_idx: Vec<Vec<i64>>,
    /// For depth k: forward messages (predecessor colour at k − 1 → colour at k), one per predecessor.
    pub fwd_src: Vec<Vec<i64>>,
    /// Targets of `fwd_src`.
    pub fwd_dst: Vec<Vec<i64>>,
    /// For depth k: backward messages (successor colour at k − 1 → colour at k).
    pub bwd_src: Vec<Vec<i64>>,
    /// Targets of `bwd_src`.
    pub bwd_dst: Vec<Vec<i64>>,
    /// For depth `k = 0..K` (index k): the depth-k ancestor of every final (depth-K) colour.
    pub anc: Vec<Vec<i64>>,
    /// Each node's final colour.
    pub node_color: Vec<i64>,
}

/// The predecessors and successors of `n` nodes (CSR), and the colour
/// refinement step over them, shared by a batch's colour graph and the
/// sampling run's [`super::colour_cache::ColourCache`].
#[derive(Debug)]
pub(crate) struct Adjacency {
    pred_start: Vec<usize>,
    preds: Vec<usize>,
    succ_start: Vec<usize>,
    succs: Vec<usize>,
}

impl Adjacency {
    /// The adjacency of edges `src → dst` over nodes `0..n`.
    ///
    /// # Panics
    /// If an edge names a node outside `0..n`.
    pub(crate) fn new(n: usize, src: &[i64], dst: &[i64]) -> Self {
        let csr = |from: &[i64], to: &[i64]| -> (Vec<usize>, Vec<usize>) {
            let mut start = vec![0usize; n + 1];
            for &t in to {
                start[t as usize + 1] += 1;
            }
            for i in 0..n {
                start[i + 1] += start[i];
            }
            let mut fill = start.clone();
            let mut adj = vec![0usize; to.len()];
            for (&a, &b) in from.iter().zip(to) {
                adj[fill[b as usize]] = a as usize;
                fill[b as usize] += 1;
            }
            (start, adj)
        };
        let (pred_start, preds) = csr(src, dst);
        let (succ_start, succs) = csr(dst, src);
        Adjacency { pred_start, preds, succ_start, succs }
    }

    /// Node v's predecessors, in edge order.
    pub(crate) fn preds(&self, v: usize) -> &[usize] {
        &self.preds[self.pred_start[v]..self.pred_start[v + 1]]
    }

    /// Node v's successors, in edge order.
    pub(crate) fn succs(&self, v: usize) -> &[usize] {
        &self.succs[self.succ_start[v]..self.succ_start[v + 1]]
    }

    /// Node v's colour at the next depth as a key: its own colour, its
    /// predecessor count (`count` makes it a colour-sized value), then the
    /// sorted colours of its predecessors and of its successors.
    pub(crate) fn refine_key<T: Copy + Ord>(
        &self,
        v: usize,
        color: &[T],
        count: impl Fn(usize) -> T,
        key: &mut Vec<T>,
        tmp: &mut Vec<T>,
    ) {
        key.clear();
        key.push(color[v]);
        key.push(count(self.preds(v).len()));
        for list in [self.preds(v), self.succs(v)] {
            tmp.clear();
            tmp.extend(list.iter().map(|&u| color[u]));
            tmp.sort_unstable();
            key.extend_from_slice(tmp);
        }
    }
}

impl Compression {
    /// Colours the batch of `n = x.len() / f` nodes with category rows `x`
    /// (`[n][f]` flattened), conditioning groups `group` (nodes of one group
    /// share their conditioning row: the graph, or the dataset graph of a
    /// prefix example) and edges `src → dst` (batch-global ids), for `depth`
    /// rounds.
    ///
    /// # Panics
    /// If the lengths disagree or an edge names a node outside `0..n`.
    pub fn new(x: &[i64], f: usize, group: &[i64], src: &[i64], dst: &[i64], depth: usize) -> Self {
        let n = group.len();
        assert_eq!(x.len(), n * f, "x holds {} values for {n} nodes of {f} features", x.len());
        assert_eq!(src.len(), dst.len(), "edge lists of different lengths");
        let adj = Adjacency::new(n, src, dst);

        let mut out = Compression { depth, ..Default::default() };
        // Depth 0: (group, row).
        let mut color = vec![0u32; n];
        {
            let mut ids: HashMap<(i64, &[i64]), u32> = HashMap::with_capacity(n);
            for v in 0..n {
                let key = (group[v], &x[v * f..(v + 1) * f]);
                let next = ids.len() as u32;
                color[v] = *ids.entry(key).or_insert_with(|| {
                    out.rep0.push(v as i64);
                    next
                });
            }
            out.num_colors.push(ids.len());
        }
        let mut key: Vec<u32> = Vec::new();
        let mut tmp: Vec<u32> = Vec::new();
        for _ in 0..depth {
            let mut ids: HashMap<Vec<u32>, u32> = HashMap::with_capacity(n);
            let (mut self_idx, mut fs, mut fd, mut bs, mut bd) = (vec![], vec![], vec![], vec![], vec![]);
            let mut next_color = vec![0u32; n];
            for v in 0..n {
                adj.refine_key(v, &color, |c| c as u32, &mut key, &mut tmp);
                let (ps, ss) = (adj.preds(v), adj.succs(v));
                let c = match ids.get(&key) {
                    Some(&c) => c,
                    None => {
                        let c = ids.len() as u32;
                        ids.insert(key.clone(), c);
                        self_idx.push(color[v] as i64);
                        for &u in ps {
                            fs.push(color[u] as i64);
                            fd.push(c as i64);
                        }
                        for &w in ss {
                            bs.push(color[w] as i64);
                            bd.push(c as i64);
                        }
                        c
                    }
                };
                next_color[v] = c;
            }
            out.num_colors.push(ids.len());
            out.self_idx.push(self_idx);
            out.fwd_src.push(fs);
            out.fwd_dst.push(fd);
            out.bwd_src.push(bs);
            out.bwd_dst.push(bd);
            color = next_color;
        }
        // Ancestors of the final colours, depth K − 1 down to 0.
        let last = *out.num_colors.last().expect("depth 0 is always there");
        let mut anc: Vec<Vec<i64>> = vec![Vec::new(); depth];
        let mut cur: Vec<i64> = (0..last as i64).collect();
        for k in (0..depth).rev() {
            cur = cur.iter().map(|&c| out.self_idx[k][c as usize]).collect();
            anc[k] = cur.clone();
        }
        out.anc = anc;
        out.node_color = color.iter().map(|&c| c as i64).collect();
        out
    }

    /// The arrays as Int64 tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> CompressedTensors {
        let long = |v: &[i64]| Tensor::from_slice(v).to_device(device);
        let many = |v: &[Vec<i64>]| v.iter().map(|x| long(x)).collect::<Vec<_>>();
        CompressedTensors {
            depth: self.depth,
            num_colors: self.num_colors.iter().map(|&c| c as i64).collect(),
            rep0: long(&self.rep0),
            self_idx: many(&self.self_idx),
            fwd_src: many(&self.fwd_src),
            fwd_dst: many(&self.fwd_dst),
            bwd_src: many(&self.bwd_src),
            bwd_dst: many(&self.bwd_dst),
            anc: many(&self.anc),
            node_color: long(&self.node_color),
        }
    }
}

/// [`Compression`] as Int64 tensors.
#[derive(Debug)]
pub struct CompressedTensors {
    /// `K`.
    pub depth: usize,
    /// Colours per depth.
    pub num_colors: Vec<i64>,
    /// `[C_0]` representative node of each depth-0 colour.
    pub rep0: Tensor,
    /// Per depth 1..=K: `[C_k]` own colour at depth k − 1.
    pub self_idx: Vec<Tensor>,
    /// Per depth 1..=K: forward message sources (colours at k − 1).
    pub fwd_src: Vec<Tensor>,
    /// Per depth 1..=K: forward message targets (colours at k).
    pub fwd_dst: Vec<Tensor>,
    /// Per depth 1..=K: backward message sources.
    pub bwd_src: Vec<Tensor>,
    /// Per depth 1..=K: backward message targets.
    pub bwd_dst: Vec<Tensor>,
    /// Per depth 0..K: `[C_K]` ancestor colours.
    pub anc: Vec<Tensor>,
    /// `[N]` each node's final colour.
    pub node_color: Tensor,
}

impl CompressedTensors {
    /// Whether the colour graph has any message (the batch has an edge).
    pub fn has_edges(&self) -> bool {
        self.fwd_src.first().is_some_and(|t| t.numel() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The refinement by hand on a diamond plus a copy of it in another
    /// group, and a chain whose two middle nodes differ only by distance.
    #[test]
    fn colours_refine_by_in_and_out_neighbours() {
        // Graph A: 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3 (all category 7 but 0 and 3).
        let x = [1, 7, 7, 2, 1, 7, 7, 2];
        let group = [0, 0, 0, 0, 1, 1, 1, 1];
        let src = [0, 0, 1, 2, 4, 4, 5, 6];
        let dst = [1, 2, 3, 3, 5, 6, 7, 7];
        let c = Compression::new(&x, 1, &group, &src, &dst, 2);
        assert_eq!(c.num_colors, vec![6, 6, 6]);
        // 1 and 2 are twins, in each group.
        assert_eq!(c.node_color[1], c.node_color[2]);
        assert_eq!(c.node_color[5], c.node_color[6]);
        assert_ne!(c.node_color[1], c.node_color[5]);
        assert_eq!(c.rep0, vec![0, 1, 3, 4, 5, 7]);
        // Depth 1 colour of node 3: own colour 2, two preds of colour 1.
        let c3 = c.node_color[3] as usize;
        let k1 = c.anc[1][c3] as usize;
        assert_eq!(c.self_idx[0][k1], 2);
        let msgs: Vec<i64> =
            c.fwd_dst[0].iter().zip(&c.fwd_src[0]).filter(|(&d, _)| d as usize == k1).map(|(_, &s)| s).collect();
        assert_eq!(msgs, vec![1, 1]);
        // No edges: depth-0 colours carry through.
        let c = Compression::new(&[3, 3, 4], 1, &[0, 0, 0], &[], &[], 3);
        assert_eq!(c.num_colors, vec![2, 2, 2, 2]);
        assert_eq!(c.node_color, vec![0, 0, 1]);
        assert!(c.fwd_src.iter().all(|v| v.is_empty()));
    }
}

/// The compressed models against the straightforward per-node computation,
/// on real TPU Tile batches (consecutive examples, so that prefixes of one
/// graph share a batch, and a spread-out selection).
#[cfg(test)]
mod equivalence {
    use std::path::Path;
    use std::sync::OnceLock;

    use tch::{Device, Kind, Tensor};

    use crate::dataset::conditioning::scalar_condition;
    use crate::dataset::streams::LayerDagData;
    use crate::dataset::test_data::TPU_VAL;
    use crate::dataset::tpu_tile::read_tpu_tile;
    use crate::dataset::Dag;
    use crate::model::config::tests::small;
    use crate::model::config::Pool;
    use crate::model::layers::GraphInput;
    use crate::model::tests::rng_lock;
    use crate::model::{DataSpec, EdgeDiffusion, LayerDag, ModelConfig};

    /// The first 40 graphs of TPU Tile val.
    fn data() -> &'static LayerDagData {
        static D: OnceLock<LayerDagData> = OnceLock::new();
        D.get_or_init(|| {
            let graphs = read_tpu_tile(Path::new(TPU_VAL)).unwrap();
            let (dags, y): (Vec<Dag>, Vec<Vec<f32>>) =
                graphs.iter().take(40).map(|g| (g.dag.clone(), scalar_condition(g.y))).unzip();
            LayerDagData::new(&dags, &y).unwrap()
        })
    }

    fn selections(len: usize) -> Vec<Vec<usize>> {
        vec![(0..len.min(60)).collect(), (0..len).step_by(7).collect(), (len / 3..len / 3 + 2).collect()]
    }

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        assert_eq!(a.size(), b.size(), "{what}");
        let err = (a - b).abs().max().double_value(&[]);
        let scale = b.abs().max().double_value(&[]).max(1.0);
        assert!(err <= 1e-4 * scale, "{what}: max difference {err} at scale {scale}");
    }

    fn model(cfg: ModelConfig, d: &LayerDagData) -> LayerDag {
        tch::manual_seed(11);
        LayerDag::new(cfg, DataSpec::from_graphs(&d.graphs), Device::Cpu).unwrap()
    }

    #[test]
    fn pooled_encoders_match_per_node_on_tpu_tile() {
        let _rng = rng_lock();
        let d = data();
        for pool in [Pool::Sum, Pool::Mean] {
            let mut cfg = small();
            cfg.node_count.model.pool = Some(pool);
            cfg.node_count.model.num_mpnn_layers = 3;
            let m = model(cfg.clone(), d);
            for idx in selections(d.node_count.len()) {
                let batch = d.node_count.batch(&d.graphs, &idx).unwrap();
                let plain = batch.to_tensors(Device::Cpu);
                let mut comp = batch.to_tensors(Device::Cpu);
                let group: Vec<i64> = idx.iter().map(|&i| d.node_count.graph[i] as i64).collect();
                comp.graphs.compress(&batch.graphs, &group, 3);
                let c = comp.graphs.compressed.as_ref().unwrap();
                assert!(c.num_colors[3] <= plain.graphs.x.size()[0]);
                for train in [false, true] {
                    let a = m.node_count.model.forward_batch(&comp, train).unwrap();
                    let b = m.node_count.model.forward_batch(&plain, train).unwrap();
                    close(&a, &b, &format!("{pool:?} layer sizes, train {train}, {} examples", idx.len()));
                }
            }
            // Gradients agree too.
            let idx: Vec<usize> = (0..40).collect();
            let batch = d.node_count.batch(&d.graphs, &idx).unwrap();
            let grads = |compress: bool| -> Vec<Tensor> {
                let mut b = batch.to_tensors(Device::Cpu);
                if compress {
                    let group: Vec<i64> = idx.iter().map(|&i| d.node_count.graph[i] as i64).collect();
                    b.graphs.compress(&batch.graphs, &group, 3);
                }
                for mut v in m.node_count.vs.trainable_variables() {
                    v.zero_grad();
                }
                let logits = m.node_count.model.forward_batch(&b, true).unwrap();
                m.node_count.model.loss(&logits, &b.label).unwrap().backward();
                let mut v = m.node_count.vs.trainable_variables();
                v.sort_by_key(|t| t.numel());
                v.iter().map(|t| t.grad().copy()).collect()
            };
            for (a, b) in grads(true).iter().zip(&grads(false)) {
                close(a, b, &format!("{pool:?} gradient"));
            }
        }
    }

    /// Sampling's cached pooled encoders (layer sizes and node attributes)
    /// against the per-node ones over a run of overlapping batches of
    /// prefixes, with both pools and a cache that compacts after every pass.
    #[test]
    fn pooled_cached_passes_match_per_node_on_tpu_tile() {
        let _rng = rng_lock();
        let d = data();
        for (pool, compact_always) in [(Pool::Sum, false), (Pool::Mean, true)] {
            let mut cfg = small();
            cfg.node_count.model.pool = Some(pool);
            cfg.node_pred.graph_encoder.pool = Some(pool);
            let m = model(cfg, d);
            let mut count_cache = m.node_count.model.new_cache(Device::Cpu).unwrap();
            let mut node_cache = m.node_pred.model.new_cache(Device::Cpu).unwrap();
            if compact_always {
                count_cache.colours =
                    super::super::colour_cache::ColourCache::with_limits(count_cache.colours.depth(), 1, 0);
                node_cache.colours =
                    super::super::colour_cache::ColourCache::with_limits(node_cache.colours.depth(), 1, 0);
            }
            let mut new_rows = Vec::new();
            for start in [0usize, 3, 6, 9] {
                let idx: Vec<usize> = (start..start + 8).collect();
                let batch = d.node_count.batch(&d.graphs, &idx).unwrap();
                let b = batch.to_tensors(Device::Cpu);
                let g = &batch.graphs;
                let group: Vec<i64> =
                    g.node_graph.iter().map(|&i| d.node_count.graph[idx[i as usize]] as i64).collect();
                let input = GraphInput::from(&b.graphs);
                let (y, progress) = (Some(&b.y), Some(&b.progress));
                // Each pooled model, per node and with its run cache.
                let run = |cache: &mut super::super::colour_cache::EncoderCache,
                           want: Tensor,
                           cached: &dyn Fn(
                    &super::super::colour_cache::CachedPass,
                    &mut super::super::colour_cache::EncoderTables,
                ) -> Tensor,
                           what: &str| {
                    let pass = cache.colours.pass(&g.x, 1, &group, &g.src, &g.dst);
                    let got = cached(&pass, &mut cache.tables);
                    close(&got, &want, &format!("{pool:?} {what}, cached, batch at {start}"));
                    cache.compact().unwrap();
                    pass.num_new.iter().sum::<i64>()
                };
                new_rows.push(run(
                    &mut count_cache,
                    m.node_count.model.forward_batch(&b, false).unwrap(),
                    &|p, t| m.node_count.model.forward_cached(input, y, progress, p, t).unwrap(),
                    "layer-size logits",
                ));
                run(
                    &mut node_cache,
                    m.node_pred.model.encode_t(input, y, progress, false).unwrap(),
                    &|p, t| m.node_pred.model.encode_cached(input, y, progress, p, t).unwrap(),
                    "node-attribute graph embeddings",
                );
            }
            assert!(new_rows[1..].iter().all(|&n| n < new_rows[0]), "overlapping batches reuse colours: {new_rows:?}");
        }
    }

    #[test]
    fn node_pred_matches_per_node_on_tpu_tile() {
        let _rng = rng_lock();
        let d = data();
        let m = model(small(), d);
        let k = m.config.node_pred.graph_encoder.num_mpnn_layers;
        for idx in selections(d.node_attr.len()) {
            let batch = d.node_attr.batch(&d.graphs, &idx).unwrap();
            let plain = batch.to_tensors(Device::Cpu);
            let mut comp = batch.to_tensors(Device::Cpu);
            let group: Vec<i64> = idx.iter().map(|&i| d.node_attr.graph[i] as i64).collect();
            comp.graphs.compress(&batch.graphs, &group, k);
            let t = m.node_diffusion.sample_t(plain.graphs.num_graphs);
            let steps = crate::model::node_pred::steps_per_node(&t, &plain.query_offsets).unwrap();
            let x_t = m.node_diffusion.q_sample(&plain.target, &steps).unwrap();
            let a = m.node_pred.model.forward_batch(&comp, &x_t, &t, true).unwrap();
            let b = m.node_pred.model.forward_batch(&plain, &x_t, &t, true).unwrap();
            for (a, b) in a.iter().zip(&b) {
                close(a, b, "node logits");
            }
        }
    }

    #[test]
    fn edge_pred_matches_per_node_on_tpu_tile() {
        let _rng = rng_lock();
        let d = data();
        let m = model(small(), d);
        let k = m.config.edge_pred.graph_encoder.num_mpnn_layers;
        let ed = EdgeDiffusion::new(2.0, 8, Device::Cpu);
        for idx in selections(d.edge.len()) {
            let batch = d.edge.batch(&d.graphs, &idx).unwrap();
            let mut b = batch.to_tensors(Device::Cpu);
            let layout = ed.layout(&b.num_prev, &b.num_new, &b.cand_offsets).unwrap();
            let t = ed.sample_t(b.num_prev.size()[0]);
            let noisy = ed.q_sample(&b.label, &t, &layout).unwrap();
            let on = Vec::<bool>::try_from(&noisy).unwrap();
            let (mut src, mut dst) = (batch.graphs.src.clone(), batch.graphs.dst.clone());
            for ((&keep, &u), &v) in on.iter().zip(&batch.cand_src).zip(&batch.cand_dst) {
                if keep {
                    src.push(u);
                    dst.push(v);
                }
            }
            let group: Vec<i64> =
                batch.graphs.node_graph.iter().map(|&i| d.edge.graph[idx[i as usize]] as i64).collect();
            let c = super::Compression::new(&batch.graphs.x, 1, &group, &src, &dst, k);
            let noisy_src = b.cand_src.masked_select(&noisy);
            let noisy_dst = b.cand_dst.masked_select(&noisy);
            let cand_graph = crate::model::layers::segment_ids(&b.cand_offsets).unwrap();
            let q = crate::model::EdgeQueries {
                noisy_src: &noisy_src,
                noisy_dst: &noisy_dst,
                t: &t,
                cand_src: &b.cand_src,
                cand_dst: &b.cand_dst,
                cand_graph: &cand_graph,
            };
            let want = m.edge_pred.model.forward_reference(GraphInput::from(&b.graphs), Some(&b.y), q, false).unwrap();
            // Decomposed scoring, per node and per colour.
            let per_node = m.edge_pred.model.forward_t(GraphInput::from(&b.graphs), Some(&b.y), q, false).unwrap();
            close(&per_node, &want, "edge logits, per node");
            b.graphs.compressed = Some(c.to_tensors(Device::Cpu));
            let a = m.edge_pred.model.forward_batch(&b, &noisy, &t, false).unwrap();
            close(&a, &want, "edge logits, per colour");
            assert_eq!(a.kind(), Kind::Float);
        }
    }

    /// Sampling's cached encoder against the per-node reference over a run
    /// of passes that differ in their noisy edges and steps, with a cache
    /// that compacts after every pass and one that keeps its colours.
    #[test]
    fn edge_pred_cached_passes_match_per_node_on_tpu_tile() {
        let _rng = rng_lock();
        let d = data();
        let m = model(small(), d);
        let k = m.config.edge_pred.graph_encoder.num_mpnn_layers;
        let ed = EdgeDiffusion::new(2.0, 8, Device::Cpu);
        let idx: Vec<usize> = (0..d.edge.len()).step_by(5).take(12).collect();
        let batch = d.edge.batch(&d.graphs, &idx).unwrap();
        let b = batch.to_tensors(Device::Cpu);
        let layout = ed.layout(&b.num_prev, &b.num_new, &b.cand_offsets).unwrap();
        let group: Vec<i64> = batch.graphs.node_graph.iter().map(|&i| d.edge.graph[idx[i as usize]] as i64).collect();
        let cand_graph = crate::model::layers::segment_ids(&b.cand_offsets).unwrap();
        let mut caches =
            [m.edge_pred.model.new_cache(Device::Cpu).unwrap(), m.edge_pred.model.new_cache(Device::Cpu).unwrap()];
        caches[0].colours = super::super::colour_cache::ColourCache::with_limits(k, 1, 0);
        let mut reused = 0;
        for pass_no in 0..6 {
            let t = ed.sample_t(b.num_prev.size()[0]);
            let noisy = ed.q_sample(&b.label, &t, &layout).unwrap();
            let on = Vec::<bool>::try_from(&noisy).unwrap();
            let (mut es, mut ed_) = (Vec::new(), Vec::new());
            for ((&keep, &u), &v) in on.iter().zip(&batch.cand_src).zip(&batch.cand_dst) {
                if keep {
                    es.push(u);
                    ed_.push(v);
                }
            }
            let (src, dst): (Vec<i64>, Vec<i64>) = (
                batch.graphs.src.iter().chain(&es).copied().collect(),
                batch.graphs.dst.iter().chain(&ed_).copied().collect(),
            );
            let noisy_src = b.cand_src.masked_select(&noisy);
            let noisy_dst = b.cand_dst.masked_select(&noisy);
            let q = crate::model::EdgeQueries {
                noisy_src: &noisy_src,
                noisy_dst: &noisy_dst,
                t: &t,
                cand_src: &b.cand_src,
                cand_dst: &b.cand_dst,
                cand_graph: &cand_graph,
            };
            let want = m.edge_pred.model.forward_reference(GraphInput::from(&b.graphs), Some(&b.y), q, false).unwrap();
            for (i, cache) in caches.iter_mut().enumerate() {
                let pass = cache.colours.pass(&batch.graphs.x, 1, &group, &src, &dst);
                if pass_no > 0 && i == 1 {
                    reused += pass.node_row.len() as i64 - pass.num_new[k];
                }
                let got = m
                    .edge_pred
                    .model
                    .forward_cached(GraphInput::from(&b.graphs), Some(&b.y), q, &pass, &mut cache.tables)
                    .unwrap();
                close(&got, &want, &format!("edge logits, cached pass {pass_no}, cache {i}"));
                cache.compact().unwrap();
            }
        }
        assert!(reused > 0, "later passes reuse final colours");
        // Every pass compacts the first cache to what that pass used.
        assert!(caches[0].colours.num_rows().iter().zip(caches[1].colours.num_rows()).all(|(a, b)| *a <= b));
    }
}
