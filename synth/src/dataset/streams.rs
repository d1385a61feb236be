//! The three per-layer example streams of LayerDAG (layerdag.md §1.4), stored
//! as flat arrays plus offsets, and their batches as disjoint unions.
//!
//! # Storage ([`LayeredGraphs`])
//!
//! Every graph is stored once, **renumbered in layer order with the dummy
//! start node first** (§1.3): local node 0 is the dummy (category `C_f` in
//! every feature, level 0, no edges), then layer 1's nodes in discovery
//! order, then layer 2's, and so on. Edges are sorted by `(dst, src)`. With
//! that numbering "the dummy plus layers < l" is a *prefix* of the graph's
//! nodes and "the edges among them" a prefix of its edges, so every example is
//! just `(graph, layer)` and slices into the flat arrays.
//!
//! (The reference stores node features in layer order but keeps the original
//! node ids in its edge lists, which only agree when the input ids are already
//! in frontier order; renumbering makes them agree always.)
//!
//! # Streams
//!
//! For a graph with `L ≥ 1` layers:
//!
//! | stream | examples | input graph | target |
//! |---|---|---|---|
//! | [`NodeCountStream`] | L+1 | dummy + layers < l, their edges | size of layer l; 0 (stop) for l = L+1 |
//! | [`NodeAttrStream`] | L | dummy + layers < l, their edges | the rows of layer l's nodes (clean; the model adds noise) |
//! | [`EdgeStream`] | L−1 (l = 2..L) | dummy + layers ≤ l, the edges into layers < l | 0/1 for each candidate (u, v), u a real node of layers < l, v in layer l |
//!
//! An empty graph (`L = 0`) gives one node-count example (label 0) and no others.
//! Edge candidates are enumerated row-major over new nodes — for each v in
//! layer order, every u in increasing id order — so the labels reshape to
//! `[num_new, num_prev]`. They are built per batch, not stored: their number
//! grows with the square of the graph size.
//!
//! # Batches and tensors
//!
//! Each stream's `batch` gathers examples into a [`GraphBatch`] (node ids
//! offset per example) plus its targets and the per-graph conditioning rows
//! `y` (`[B][y_dim]`; the model broadcasts them to nodes through
//! `node_graph`). Each batch has one `to_tensors` function, the only place
//! tensors are made.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::dag::{Dag, GraphBatch};
use super::error::{DatasetError, Result};
use crate::model::compress::{CompressedTensors, Compression};

/// Many graphs, layered, renumbered and flattened (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct LayeredGraphs {
    cardinalities: Vec<u32>,
    y_dim: usize,
    /// `G + 1` offsets into the node rows (each graph: dummy + its nodes).
    node_offsets: Vec<usize>,
    /// `G + 1` offsets into the edge lists.
    edge_offsets: Vec<usize>,
    /// `G + 1` offsets into `layer_start` / `layer_edge_start`.
    layer_index: Vec<usize>,
    /// Per graph, `L + 1` local node ids: layer l is `[start[l-1], start[l])`.
    layer_start: Vec<usize>,
    /// Per graph, `L + 1` local edge indices: edges into layer l are `[start[l-1], start[l])`.
    layer_edge_start: Vec<usize>,
    x: Vec<i64>,
    level: Vec<i64>,
    src: Vec<i64>,
    dst: Vec<i64>,
    y: Vec<f32>,
}

impl LayeredGraphs {
    /// Layers and flattens `dags`, with one conditioning row per graph
    /// (`y[g]`, all of one width; pass empty rows for an unconditional model).
    ///
    /// Every DAG must have the same feature classes; a cycle is an error
    /// naming the graph's index.
    pub fn new(dags: &[Dag], y: &[Vec<f32>]) -> Result<Self> {
        let context = "building the layered dataset";
        let Some(first) = dags.first() else {
            return Err(DatasetError::mismatch(context, "no graphs given"));
        };
        if y.len() != dags.len() {
            return Err(DatasetError::mismatch(
                context,
                format!("{} graphs but {} conditioning rows", dags.len(), y.len()),
            ));
        }
        let cardinalities = first.cardinalities().to_vec();
        let y_dim = y[0].len();
        let f = cardinalities.len();
        let mut out = LayeredGraphs {
            cardinalities,
            y_dim,
            node_offsets: vec![0],
            edge_offsets: vec![0],
            layer_index: vec![0],
            layer_start: Vec::new(),
            layer_edge_start: Vec::new(),
            x: Vec::new(),
            level: Vec::new(),
            src: Vec::new(),
            dst: Vec::new(),
            y: Vec::with_capacity(dags.len() * y_dim),
        };
        for (g, (dag, yg)) in dags.iter().zip(y).enumerate() {
            if dag.cardinalities() != out.cardinalities.as_slice() {
                return Err(DatasetError::mismatch(
                    context,
                    format!(
                        "graph #{g} has feature classes {:?}, graph #0 has {:?}",
                        dag.cardinalities(),
                        out.cardinalities
                    ),
                ));
            }
            if yg.len() != y_dim {
                return Err(DatasetError::mismatch(
                    context,
                    format!("graph #{g} has a conditioning row of {} values, graph #0 of {y_dim}", yg.len()),
                ));
            }
            let layering =
                dag.layering().map_err(|source| DatasetError::Dag { origin: format!("graph #{g}"), source })?;
            let (r, _) = dag.relabel(&layering);
            // Dummy node, then the relabelled nodes (local id = new id + 1).
            out.x.extend(out.cardinalities.iter().map(|&c| c as i64));
            out.x.extend(r.x().iter().map(|&v| v as i64));
            out.level.push(0);
            out.level.extend(layering.order.iter().map(|&u| layering.level[u as usize] as i64));
            out.src.extend(r.src().iter().map(|&s| s as i64 + 1));
            out.dst.extend(r.dst().iter().map(|&d| d as i64 + 1));
            // Layer boundaries in local node ids, and in local edge indices (edges sorted by dst).
            let mut e = 0usize;
            for &o in &layering.offsets {
                let start = o + 1;
                while e < r.num_edges() && (r.dst()[e] as usize + 1) < start {
                    e += 1;
                }
                out.layer_start.push(start);
                out.layer_edge_start.push(e);
            }
            out.layer_index.push(out.layer_start.len());
            out.node_offsets.push(out.level.len());
            out.edge_offsets.push(out.src.len());
            out.y.extend_from_slice(yg);
            debug_assert_eq!(out.x.len(), out.level.len() * f);
        }
        Ok(out)
    }

    /// Number of graphs.
    pub fn num_graphs(&self) -> usize {
        self.node_offsets.len() - 1
    }

    /// Number of features per node.
    pub fn num_features(&self) -> usize {
        self.cardinalities.len()
    }

    /// Real categories per feature; the dummy category of feature f is `cardinalities()[f]`.
    pub fn cardinalities(&self) -> &[u32] {
        &self.cardinalities
    }

    /// Width of the conditioning rows (0 for unconditional data).
    pub fn y_dim(&self) -> usize {
        self.y_dim
    }

    /// Number of layers of graph `g`.
    pub fn num_layers(&self, g: usize) -> usize {
        self.layer_index[g + 1] - self.layer_index[g] - 1
    }

    /// Sizes of graph `g`'s layers.
    pub fn layer_sizes(&self, g: usize) -> Vec<usize> {
        self.layer_starts(g).windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Real nodes of graph `g` (the dummy excluded).
    pub fn num_nodes(&self, g: usize) -> usize {
        self.node_offsets[g + 1] - self.node_offsets[g] - 1
    }

    /// Edges of graph `g`.
    pub fn num_edges(&self, g: usize) -> usize {
        self.edge_offsets[g + 1] - self.edge_offsets[g]
    }

    /// The conditioning row of graph `g`.
    pub fn y(&self, g: usize) -> &[f32] {
        &self.y[g * self.y_dim..(g + 1) * self.y_dim]
    }

    fn layer_starts(&self, g: usize) -> &[usize] {
        &self.layer_start[self.layer_index[g]..self.layer_index[g + 1]]
    }

    fn layer_edge_starts(&self, g: usize) -> &[usize] {
        &self.layer_edge_start[self.layer_index[g]..self.layer_index[g + 1]]
    }

    /// The first layer (1-based) of graph `g` holding a node whose feature
    /// row satisfies `pred`.
    pub fn first_layer_with(&self, g: usize, pred: impl Fn(&[i64]) -> bool) -> Option<usize> {
        let f = self.num_features();
        (1..=self.num_layers(g)).find(|&l| {
            let (lo, hi) = self.layer_nodes(g, l);
            self.rows(g, lo, hi).chunks(f).any(&pred)
        })
    }

    /// Local node range of layer `l` (1-based) of graph `g`.
    fn layer_nodes(&self, g: usize, l: usize) -> (usize, usize) {
        let s = self.layer_starts(g);
        (s[l - 1], s[l])
    }

    /// Appends the prefix graph of `g` made of local nodes `< n_end` and local
    /// edges `< e_end` to a batch.
    fn push_prefix(&self, batch: &mut GraphBatch, g: usize, n_end: usize, e_end: usize) -> i64 {
        let f = self.num_features();
        let (n0, e0) = (self.node_offsets[g], self.edge_offsets[g]);
        batch.push(
            &self.x[n0 * f..(n0 + n_end) * f],
            &self.level[n0..n0 + n_end],
            &self.src[e0..e0 + e_end],
            &self.dst[e0..e0 + e_end],
        )
    }

    /// The local node rows `[lo, hi)` of graph `g`, flattened.
    fn rows(&self, g: usize, lo: usize, hi: usize) -> &[i64] {
        let f = self.num_features();
        let n0 = self.node_offsets[g];
        &self.x[(n0 + lo) * f..(n0 + hi) * f]
    }

    /// Statistics the model needs: layer-size classes, depth, in-degree,
    /// per-feature marginals.
    pub fn stats(&self) -> DatasetStats {
        let f = self.num_features();
        let mut counts: Vec<Vec<u64>> = self.cardinalities.iter().map(|&c| vec![0u64; c as usize]).collect();
        let (mut nodes, mut edges, mut sources, mut max_layer_size, mut max_level) = (0usize, 0usize, 0usize, 0, 0);
        for g in 0..self.num_graphs() {
            nodes += self.num_nodes(g);
            edges += self.num_edges(g);
            let sizes = self.layer_sizes(g);
            sources += sizes.first().copied().unwrap_or(0);
            max_layer_size = max_layer_size.max(sizes.iter().copied().max().unwrap_or(0));
            max_level = max_level.max(sizes.len());
            for row in self.rows(g, 1, self.num_nodes(g) + 1).chunks_exact(f) {
                for (c, &v) in counts.iter_mut().zip(row) {
                    c[v as usize] += 1;
                }
            }
        }
        let marginals = counts
            .into_iter()
            .map(|c| {
                let total: u64 = c.iter().sum();
                c.into_iter().map(|v| if total == 0 { 0.0 } else { v as f64 / total as f64 }).collect()
            })
            .collect();
        let non_sources = nodes - sources;
        DatasetStats {
            num_graphs: self.num_graphs(),
            num_nodes: nodes,
            num_edges: edges,
            max_layer_size,
            max_level,
            avg_in_deg: if non_sources == 0 { 0.0 } else { edges as f64 / non_sources as f64 },
            marginals,
        }
    }
}

/// Dataset-wide numbers the three models are built from (computed on the
/// training split, stored with checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetStats {
    /// Graphs.
    pub num_graphs: usize,
    /// Real nodes over all graphs.
    pub num_nodes: usize,
    /// Edges over all graphs.
    pub num_edges: usize,
    /// The widest layer: the layer-size classifier predicts `0..=max_layer_size`.
    pub max_layer_size: usize,
    /// The deepest graph's layer count (sampling stops there).
    pub max_level: usize,
    /// Edges per non-source node (§2.8's `avg_in_deg`); 0 when every node is a source.
    pub avg_in_deg: f64,
    /// Per feature, the frequency of each real category over all real nodes
    /// (the D3PM marginal `m_f`, dummy excluded).
    pub marginals: Vec<Vec<f64>>,
}

/// Checks that every requested example exists and that each one's `(graph,
/// layer)` lies in `graphs` with `first <= layer <= num_layers + extra`, so a
/// stream used with the wrong graphs is an error rather than a panic.
fn check_examples(
    context: &str,
    indices: &[usize],
    graph: &[u32],
    layer: &[u32],
    graphs: &LayeredGraphs,
    (first, extra): (usize, usize),
) -> Result<()> {
    for &i in indices {
        if i >= graph.len() {
            return Err(DatasetError::mismatch(
                context,
                format!("example {i} requested, the stream has {}", graph.len()),
            ));
        }
        let (g, l) = (graph[i] as usize, layer[i] as usize);
        if g >= graphs.num_graphs() || l < first || l > graphs.num_layers(g) + extra {
            return Err(DatasetError::mismatch(
                context,
                format!("example {i} is (graph {g}, layer {l}), which these graphs do not have: the stream was built from other graphs"),
            ));
        }
    }
    Ok(())
}

/// How far through a graph of `depth` layers a layer lies when `built`
/// layers precede it: `built / depth` (0 for the first layer, 1 after the
/// last; the models' progress encoding, [`crate::model::config`]).
pub fn layer_progress(built: usize, depth: usize) -> f32 {
    (built as f64 / depth.max(1) as f64) as f32
}

fn push_y(out: &mut Vec<f32>, graphs: &LayeredGraphs, g: usize) {
    out.extend_from_slice(graphs.y(g));
}

/// The batched graph part as tensors on a device.
#[derive(Debug)]
pub struct GraphTensors {
    /// `[N, F]` Int64 categorical features.
    pub x: Tensor,
    /// `[N]` Int64 layer index (0 for dummy nodes).
    pub level: Tensor,
    /// `[E]` Int64 edge sources (global ids).
    pub src: Tensor,
    /// `[E]` Int64 edge targets (global ids).
    pub dst: Tensor,
    /// `[N]` Int64 graph index of each node.
    pub node_graph: Tensor,
    /// Number of graphs `B`.
    pub num_graphs: i64,
    /// The batch's colour graph, when built ([`GraphTensors::compress`]):
    /// the encoders then compute each distinct node state once.
    pub compressed: Option<CompressedTensors>,
}

impl GraphTensors {
    /// Builds the colour graph of `b` (the batch these tensors came from) for
    /// an encoder of `depth` layers; `group[i]` names example i's
    /// conditioning row (examples of one dataset graph share it).
    pub fn compress(&mut self, b: &GraphBatch, group: &[i64], depth: usize) {
        let node_group: Vec<i64> = b.node_graph.iter().map(|&i| group[i as usize]).collect();
        let c = Compression::new(&b.x, b.num_features, &node_group, &b.src, &b.dst, depth);
        self.compressed = Some(c.to_tensors(self.x.device()));
    }
}

fn long(v: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(v).to_device(device)
}

fn graph_tensors(b: &GraphBatch, device: Device) -> GraphTensors {
    GraphTensors {
        x: long(&b.x, device).view([b.num_nodes() as i64, b.num_features as i64]),
        level: long(&b.level, device),
        src: long(&b.src, device),
        dst: long(&b.dst, device),
        node_graph: long(&b.node_graph, device),
        num_graphs: b.num_graphs() as i64,
        compressed: None,
    }
}

fn y_tensor(y: &[f32], rows: usize, y_dim: usize, device: Device) -> Tensor {
    Tensor::from_slice(y).to_kind(Kind::Float).view([rows as i64, y_dim as i64]).to_device(device)
}

/// `(graph, layer)` of every layer from `first` to the last of every graph,
/// graph by graph, layer by layer.
fn layer_examples(graphs: &LayeredGraphs, first: usize) -> (Vec<u32>, Vec<u32>) {
    let (mut graph, mut layer) = (Vec::new(), Vec::new());
    for g in 0..graphs.num_graphs() {
        for l in first..=graphs.num_layers(g) {
            graph.push(g as u32);
            layer.push(l as u32);
        }
    }
    (graph, layer)
}

/// `len` and `is_empty` of the example streams (one entry per example in `graph`).
macro_rules! example_count {
    ($($stream:ty),*) => {$(
        impl $stream {
            /// Number of examples.
            pub fn len(&self) -> usize {
                self.graph.len()
            }

            /// Whether there are none.
            pub fn is_empty(&self) -> bool {
                self.graph.is_empty()
            }
        }
    )*};
}

example_count!(NodeCountStream, NodeAttrStream, EdgeStream);

/// Layer-size examples: `L + 1` per graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeCountStream {
    /// Graph of each example.
    pub graph: Vec<u32>,
    /// Layer to predict (1-based; `L + 1` is the stop example).
    pub layer: Vec<u32>,
    /// Target: the layer's size, 0 for the stop example.
    pub label: Vec<i64>,
}

impl NodeCountStream {
    /// All examples of all graphs, graph by graph, layer by layer.
    pub fn new(graphs: &LayeredGraphs) -> Self {
        let mut s = NodeCountStream::default();
        for g in 0..graphs.num_graphs() {
            let sizes = graphs.layer_sizes(g);
            for l in 1..=sizes.len() + 1 {
                s.graph.push(g as u32);
                s.layer.push(l as u32);
                s.label.push(sizes.get(l - 1).copied().unwrap_or(0) as i64);
            }
        }
        s
    }

    /// Gathers examples into one batch.
    pub fn batch(&self, graphs: &LayeredGraphs, indices: &[usize]) -> Result<NodeCountBatch> {
        check_examples("node-count batch", indices, &self.graph, &self.layer, graphs, (1, 1))?;
        let mut b = NodeCountBatch {
            graphs: GraphBatch::new(graphs.num_features()),
            y: Vec::new(),
            y_dim: graphs.y_dim(),
            progress: Vec::with_capacity(indices.len()),
            label: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            let (g, l) = (self.graph[i] as usize, self.layer[i] as usize);
            let n_end = graphs.layer_starts(g)[l - 1];
            let e_end = graphs.layer_edge_starts(g)[l - 1];
            graphs.push_prefix(&mut b.graphs, g, n_end, e_end);
            push_y(&mut b.y, graphs, g);
            b.progress.push(layer_progress(l - 1, graphs.num_layers(g)));
            b.label.push(self.label[i]);
        }
        Ok(b)
    }
}

/// A batch of layer-size examples.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeCountBatch {
    /// The input graphs (dummy + previous layers).
    pub graphs: GraphBatch,
    /// Conditioning rows, `[B][y_dim]`.
    pub y: Vec<f32>,
    /// Conditioning width.
    pub y_dim: usize,
    /// `[B]`: the layers built before the predicted one over the graph's
    /// depth ([`layer_progress`]; 1 for the stop example).
    pub progress: Vec<f32>,
    /// Targets `[B]`: the next layer's size (0 = stop).
    pub label: Vec<i64>,
}

/// [`NodeCountBatch`] as tensors.
#[derive(Debug)]
pub struct NodeCountTensors {
    /// The input graphs.
    pub graphs: GraphTensors,
    /// `[B, y_dim]` Float.
    pub y: Tensor,
    /// `[B]` Float.
    pub progress: Tensor,
    /// `[B]` Int64.
    pub label: Tensor,
}

impl NodeCountBatch {
    /// The batch as tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> NodeCountTensors {
        NodeCountTensors {
            graphs: graph_tensors(&self.graphs, device),
            y: y_tensor(&self.y, self.label.len(), self.y_dim, device),
            progress: Tensor::from_slice(&self.progress).to_device(device),
            label: long(&self.label, device),
        }
    }
}

/// Node-attribute examples: `L` per graph.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeAttrStream {
    /// Graph of each example.
    pub graph: Vec<u32>,
    /// Layer whose rows are the target (1-based).
    pub layer: Vec<u32>,
}

impl NodeAttrStream {
    /// All examples of all graphs.
    pub fn new(graphs: &LayeredGraphs) -> Self {
        let (graph, layer) = layer_examples(graphs, 1);
        NodeAttrStream { graph, layer }
    }

    /// Gathers examples into one batch.
    pub fn batch(&self, graphs: &LayeredGraphs, indices: &[usize]) -> Result<NodeAttrBatch> {
        check_examples("node-attribute batch", indices, &self.graph, &self.layer, graphs, (1, 0))?;
        let mut b = NodeAttrBatch {
            graphs: GraphBatch::new(graphs.num_features()),
            y: Vec::new(),
            y_dim: graphs.y_dim(),
            progress: Vec::with_capacity(indices.len()),
            target: Vec::new(),
            query_graph: Vec::new(),
            query_offsets: vec![0],
        };
        for (k, &i) in indices.iter().enumerate() {
            let (g, l) = (self.graph[i] as usize, self.layer[i] as usize);
            let (lo, hi) = graphs.layer_nodes(g, l);
            graphs.push_prefix(&mut b.graphs, g, lo, graphs.layer_edge_starts(g)[l - 1]);
            push_y(&mut b.y, graphs, g);
            b.progress.push(layer_progress(l - 1, graphs.num_layers(g)));
            b.target.extend_from_slice(graphs.rows(g, lo, hi));
            b.query_graph.extend(std::iter::repeat_n(k as i64, hi - lo));
            b.query_offsets.push(b.query_graph.len() as i64);
        }
        Ok(b)
    }
}

/// A batch of node-attribute examples.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeAttrBatch {
    /// The input graphs (dummy + previous layers; the new layer is not in them).
    pub graphs: GraphBatch,
    /// Conditioning rows, `[B][y_dim]`.
    pub y: Vec<f32>,
    /// Conditioning width.
    pub y_dim: usize,
    /// `[B]`: the layers before the new one over the graph's depth
    /// ([`layer_progress`]).
    pub progress: Vec<f32>,
    /// Clean rows of the new layers' nodes, `[Q][F]`.
    pub target: Vec<i64>,
    /// Example index of each new node, `[Q]`.
    pub query_graph: Vec<i64>,
    /// `B + 1` cumulative new-node counts.
    pub query_offsets: Vec<i64>,
}

/// [`NodeAttrBatch`] as tensors.
#[derive(Debug)]
pub struct NodeAttrTensors {
    /// The input graphs.
    pub graphs: GraphTensors,
    /// `[B, y_dim]` Float.
    pub y: Tensor,
    /// `[B]` Float.
    pub progress: Tensor,
    /// `[Q, F]` Int64.
    pub target: Tensor,
    /// `[Q]` Int64.
    pub query_graph: Tensor,
    /// `[B + 1]` Int64.
    pub query_offsets: Tensor,
}

impl NodeAttrBatch {
    /// The batch as tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> NodeAttrTensors {
        let f = self.graphs.num_features as i64;
        NodeAttrTensors {
            graphs: graph_tensors(&self.graphs, device),
            y: y_tensor(&self.y, self.query_offsets.len() - 1, self.y_dim, device),
            progress: Tensor::from_slice(&self.progress).to_device(device),
            target: long(&self.target, device).view([self.query_graph.len() as i64, f]),
            query_graph: long(&self.query_graph, device),
            query_offsets: long(&self.query_offsets, device),
        }
    }
}

/// Edge examples: `L − 1` per graph (layers 2..=L).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EdgeStream {
    /// Graph of each example.
    pub graph: Vec<u32>,
    /// The new layer (1-based, ≥ 2).
    pub layer: Vec<u32>,
}

impl EdgeStream {
    /// All examples of all graphs.
    pub fn new(graphs: &LayeredGraphs) -> Self {
        let (graph, layer) = layer_examples(graphs, 2);
        EdgeStream { graph, layer }
    }

    /// Number of candidate pairs of an example (`num_prev · num_new`).
    pub fn num_candidates(&self, graphs: &LayeredGraphs, i: usize) -> usize {
        let (lo, hi) = graphs.layer_nodes(self.graph[i] as usize, self.layer[i] as usize);
        (lo - 1) * (hi - lo)
    }

    /// Gathers examples into one batch, enumerating candidates and labels.
    pub fn batch(&self, graphs: &LayeredGraphs, indices: &[usize]) -> Result<EdgeBatch> {
        check_examples("edge batch", indices, &self.graph, &self.layer, graphs, (2, 0))?;
        let mut b = EdgeBatch {
            graphs: GraphBatch::new(graphs.num_features()),
            y: Vec::new(),
            y_dim: graphs.y_dim(),
            cand_src: Vec::new(),
            cand_dst: Vec::new(),
            label: Vec::new(),
            cand_offsets: vec![0],
            num_prev: Vec::with_capacity(indices.len()),
            num_new: Vec::with_capacity(indices.len()),
        };
        for &i in indices {
            let (g, l) = (self.graph[i] as usize, self.layer[i] as usize);
            let (lo, hi) = graphs.layer_nodes(g, l);
            let edges = graphs.layer_edge_starts(g);
            let (e_lo, e_hi) = (edges[l - 1], edges[l]);
            let base = graphs.push_prefix(&mut b.graphs, g, hi, e_lo);
            push_y(&mut b.y, graphs, g);
            let num_prev = lo - 1;
            let first = b.label.len();
            for v in lo..hi {
                for u in 1..lo {
                    b.cand_src.push(base + u as i64);
                    b.cand_dst.push(base + v as i64);
                }
            }
            b.label.resize(first + num_prev * (hi - lo), 0);
            let e0 = graphs.edge_offsets[g];
            for e in e_lo..e_hi {
                let (u, v) = (graphs.src[e0 + e] as usize, graphs.dst[e0 + e] as usize);
                b.label[first + (v - lo) * num_prev + (u - 1)] = 1;
            }
            b.cand_offsets.push(b.label.len() as i64);
            b.num_prev.push(num_prev as i64);
            b.num_new.push((hi - lo) as i64);
        }
        Ok(b)
    }
}

/// A batch of edge examples.
#[derive(Clone, Debug, PartialEq)]
pub struct EdgeBatch {
    /// The input graphs: dummy + layers ≤ l, with the true edges into layers < l
    /// (the model adds the noisy candidate edges).
    pub graphs: GraphBatch,
    /// Conditioning rows, `[B][y_dim]`.
    pub y: Vec<f32>,
    /// Conditioning width.
    pub y_dim: usize,
    /// Candidate sources (global ids), row-major over new nodes.
    pub cand_src: Vec<i64>,
    /// Candidate targets (global ids).
    pub cand_dst: Vec<i64>,
    /// 1 when the candidate is a true edge.
    pub label: Vec<i64>,
    /// `B + 1` cumulative candidate counts.
    pub cand_offsets: Vec<i64>,
    /// Per example, the real nodes before the new layer (`B_i` of §2.8).
    pub num_prev: Vec<i64>,
    /// Per example, the new layer's size.
    pub num_new: Vec<i64>,
}

/// [`EdgeBatch`] as tensors.
#[derive(Debug)]
pub struct EdgeTensors {
    /// The input graphs.
    pub graphs: GraphTensors,
    /// `[B, y_dim]` Float.
    pub y: Tensor,
    /// `[C]` Int64.
    pub cand_src: Tensor,
    /// `[C]` Int64.
    pub cand_dst: Tensor,
    /// `[C]` Int64 (0/1).
    pub label: Tensor,
    /// `[B + 1]` Int64.
    pub cand_offsets: Tensor,
    /// `[B]` Int64.
    pub num_prev: Tensor,
    /// `[B]` Int64.
    pub num_new: Tensor,
}

impl EdgeBatch {
    /// The batch as tensors on `device`.
    pub fn to_tensors(&self, device: Device) -> EdgeTensors {
        EdgeTensors {
            graphs: graph_tensors(&self.graphs, device),
            y: y_tensor(&self.y, self.num_prev.len(), self.y_dim, device),
            cand_src: long(&self.cand_src, device),
            cand_dst: long(&self.cand_dst, device),
            label: long(&self.label, device),
            cand_offsets: long(&self.cand_offsets, device),
            num_prev: long(&self.num_prev, device),
            num_new: long(&self.num_new, device),
        }
    }
}

/// The graphs with all three streams and their statistics.
#[derive(Clone, Debug)]
pub struct LayerDagData {
    /// The flat graphs.
    pub graphs: LayeredGraphs,
    /// Layer-size examples.
    pub node_count: NodeCountStream,
    /// Node-attribute examples.
    pub node_attr: NodeAttrStream,
    /// Edge examples.
    pub edge: EdgeStream,
}

impl LayerDagData {
    /// Layers `dags` (with conditioning rows `y`) and builds the three streams.
    pub fn new(dags: &[Dag], y: &[Vec<f32>]) -> Result<Self> {
        let graphs = LayeredGraphs::new(dags, y)?;
        Ok(LayerDagData {
            node_count: NodeCountStream::new(&graphs),
            node_attr: NodeAttrStream::new(&graphs),
            edge: EdgeStream::new(&graphs),
            graphs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sources 2 (x 5) and 3 (x 6), then 1 (x 7), then 0 (x 8): ids deliberately
    /// not in layer order. Edges 1 -> 0, 2 -> 0, 3 -> 1, 2 -> 1.
    fn graph() -> Dag {
        Dag::new(vec![10], vec![8, 7, 5, 6], vec![1, 2, 3, 2], vec![0, 0, 1, 1]).unwrap()
    }

    #[test]
    fn examples_slice_prefixes_with_the_dummy_first() {
        let d = LayerDagData::new(&[graph()], &[vec![0.5]]).unwrap();
        assert_eq!(d.graphs.layer_sizes(0), vec![2, 1, 1]);
        assert_eq!((d.node_count.len(), d.node_attr.len(), d.edge.len()), (4, 3, 2));
        assert_eq!(d.node_count.label, vec![2, 1, 1, 0]);

        let b = d.node_count.batch(&d.graphs, &[0, 3]).unwrap();
        // Example 0: just the dummy (category 10). Example 3: everything.
        assert_eq!(b.graphs.graph_offsets, vec![0, 1, 6]);
        assert_eq!(b.graphs.x, vec![10, 10, 5, 6, 7, 8]);
        assert_eq!(b.graphs.level, vec![0, 0, 1, 1, 2, 3]);
        assert_eq!(b.graphs.src, vec![2, 3, 2, 4]);
        assert_eq!(b.graphs.dst, vec![4, 4, 5, 5]);
        assert_eq!(b.y, vec![0.5, 0.5]);
        // Layers built over the depth of 3: none before the first, all at the stop.
        assert_eq!(b.progress, vec![0.0, 1.0]);

        let a = d.node_attr.batch(&d.graphs, &[1]).unwrap();
        assert_eq!(a.progress, vec![1.0 / 3.0]);
        assert_eq!(a.graphs.x, vec![10, 5, 6]);
        assert!(a.graphs.src.is_empty());
        assert_eq!(a.target, vec![7]);
        assert_eq!(a.query_offsets, vec![0, 1]);

        let e = d.edge.batch(&d.graphs, &[0, 1]).unwrap();
        // Layer 2 = {node 2}: candidates 1, 2 (local) -> 3, both true.
        // Layer 3 = {node 3}: candidates 1, 2, 3 -> 4, true from 1 and 3.
        assert_eq!(e.num_prev, vec![2, 3]);
        assert_eq!(e.num_new, vec![1, 1]);
        assert_eq!(e.label, vec![1, 1, 1, 0, 1]);
        assert_eq!(e.cand_src, vec![1, 2, 5, 6, 7]);
        assert_eq!(e.cand_dst, vec![3, 3, 8, 8, 8]);
        // The second example's graph holds layers <= 3 and only the edges into layers < 3.
        assert_eq!(e.graphs.graph_offsets, vec![0, 4, 9]);
        assert_eq!(&e.graphs.src[..], &[5, 6]);
        assert_eq!(&e.graphs.dst[..], &[7, 7]);
        assert!(d.edge.batch(&d.graphs, &[2]).is_err());
        // A stream used with graphs it was not built from is an error, not a panic.
        let small = LayeredGraphs::new(&[Dag::new(vec![10], vec![1], vec![], vec![]).unwrap()], &[vec![0.0]]).unwrap();
        assert!(d.node_count.batch(&small, &[3]).is_err());
        assert!(d.node_attr.batch(&small, &[1]).is_err());
        assert!(d.edge.batch(&small, &[0]).is_err());
        assert_eq!(d.edge.num_candidates(&d.graphs, 1), 3);
    }

    #[test]
    fn stats_follow_the_reference_definitions() {
        let d = LayerDagData::new(&[graph(), Dag::new(vec![10], vec![1], vec![], vec![]).unwrap()], &[vec![], vec![]])
            .unwrap();
        let s = d.graphs.stats();
        assert_eq!((s.num_graphs, s.num_nodes, s.num_edges, s.max_layer_size, s.max_level), (2, 5, 4, 2, 3));
        assert!((s.avg_in_deg - 2.0).abs() < 1e-12);
        assert!((s.marginals[0][5] - 0.2).abs() < 1e-12);
        assert_eq!((d.node_count.len(), d.node_attr.len(), d.edge.len()), (6, 4, 2));
    }

    #[test]
    fn batches_become_tensors_of_the_documented_shapes() {
        let d = LayerDagData::new(&[graph(), graph()], &[vec![1.0, 2.0], vec![3.0, 4.0]]).unwrap();
        let t = d.node_count.batch(&d.graphs, &[2, 5]).unwrap().to_tensors(Device::Cpu);
        assert_eq!(t.graphs.x.size(), vec![7, 1]);
        assert_eq!(t.y.size(), vec![2, 2]);
        assert_eq!(t.label.size(), vec![2]);
        let t = d.node_attr.batch(&d.graphs, &[0, 4]).unwrap().to_tensors(Device::Cpu);
        assert_eq!(t.target.size(), vec![3, 1]);
        assert_eq!(t.graphs.num_graphs, 2);
        let t = d.edge.batch(&d.graphs, &[0, 3]).unwrap().to_tensors(Device::Cpu);
        assert_eq!(t.label.size(), vec![5]);
        assert_eq!(t.cand_offsets.size(), vec![3]);
        assert_eq!(t.graphs.src.kind(), Kind::Int64);
    }
}
