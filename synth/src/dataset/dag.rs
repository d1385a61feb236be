//! The graph a LayerDAG model sees: a DAG with categorical node features, its
//! layering, and batching of several graphs as one disjoint union.
//!
//! * [`Dag`] owns `x` (`[N][F]` categorical ids, row-major) and the edge list
//!   `src → dst` (0-based node ids). Construction checks ids, categories,
//!   self-loops and duplicate edges, so every `Dag` is well formed except
//!   possibly for cycles, which [`Dag::layering`] reports.
//! * [`Layering`] is the unique "layerwise partition" of layerdag.md §1.2:
//!   Kahn's algorithm run synchronously, layer 1 = the sources, layer l+1 = the
//!   nodes whose in-degree drops to 0 once layers ≤ l are removed. A node's
//!   layer is 1 + the length of the longest path reaching it, every edge goes
//!   to a strictly later layer (possibly skipping layers), and inside a layer
//!   nodes come in frontier-discovery order (the reference's order).
//! * [`GraphBatch`] is the disjoint union of §1.6: node ids are offset by the
//!   running node count, and a node→graph index allows sum pooling.
//!
//! The LayerDAG dummy start node (§1.3: index 0, category `C_f` in every
//! feature, level 0, no edges) is added by [`super::streams`], which owns the
//! per-layer examples; a `Dag` holds only real nodes.

use std::fmt;

/// Why a graph is not a valid dataset DAG.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DagError {
    /// No feature columns were given.
    #[error("a DAG needs at least one feature column, got 0")]
    NoFeatures,
    /// `x` does not hold `F` values per node.
    #[error("x holds {len} values, which is not a multiple of the {features} features per node")]
    RaggedFeatures {
        /// Length of `x`.
        len: usize,
        /// Features per node.
        features: usize,
    },
    /// `src` and `dst` differ in length.
    #[error("src has {src} entries but dst has {dst}; expected one per edge in each")]
    EdgeListsDiffer {
        /// Entries in `src`.
        src: usize,
        /// Entries in `dst`.
        dst: usize,
    },
    /// A category id is not below the feature's class count.
    #[error("node {node}: feature {feature} = {value}, expected a category below {cardinality}")]
    CategoryOutOfRange {
        /// The node.
        node: usize,
        /// The feature column.
        feature: usize,
        /// The id found.
        value: u32,
        /// Number of real categories of that feature.
        cardinality: u32,
    },
    /// An edge names a node that does not exist.
    #[error("edge #{edge} ({src} -> {dst}) names a node outside 0..{num_nodes}")]
    NodeOutOfRange {
        /// Index of the edge.
        edge: usize,
        /// Its source.
        src: i64,
        /// Its target.
        dst: i64,
        /// Number of nodes.
        num_nodes: usize,
    },
    /// An edge from a node to itself.
    #[error("edge #{edge} is a self-loop on node {node}; a DAG has none")]
    SelfLoop {
        /// Index of the edge.
        edge: usize,
        /// The node.
        node: u32,
    },
    /// The same edge twice.
    #[error("edge #{edge} ({src} -> {dst}) repeats edge #{first}")]
    DuplicateEdge {
        /// Index of the repeated edge.
        edge: usize,
        /// Index of its first occurrence.
        first: usize,
        /// Source.
        src: u32,
        /// Target.
        dst: u32,
    },
    /// The edges form a cycle, so there is no layering.
    #[error("the edges form a cycle: {remaining} of {num_nodes} nodes never reach in-degree 0 (e.g. node {example})")]
    Cycle {
        /// Nodes left unlayered.
        remaining: usize,
        /// Number of nodes.
        num_nodes: usize,
        /// One node on or behind a cycle.
        example: u32,
    },
}

/// A DAG with `F` categorical features per node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dag {
    cardinalities: Vec<u32>,
    x: Vec<u32>,
    src: Vec<u32>,
    dst: Vec<u32>,
}

impl Dag {
    /// Builds a DAG from its feature class counts `C_f`, the row-major node
    /// features `x` (`[N][F]`, each `x[n][f] < C_f`) and the edge lists.
    ///
    /// Rejects ragged `x`, out-of-range categories or node ids, self-loops and
    /// duplicate edges; cycles are only found by [`Dag::layering`].
    pub fn new(cardinalities: Vec<u32>, x: Vec<u32>, src: Vec<u32>, dst: Vec<u32>) -> Result<Dag, DagError> {
        let f = cardinalities.len();
        if f == 0 {
            return Err(DagError::NoFeatures);
        }
        if x.len() % f != 0 {
            return Err(DagError::RaggedFeatures { len: x.len(), features: f });
        }
        if src.len() != dst.len() {
            return Err(DagError::EdgeListsDiffer { src: src.len(), dst: dst.len() });
        }
        for (i, &v) in x.iter().enumerate() {
            let feature = i % f;
            if v >= cardinalities[feature] {
                return Err(DagError::CategoryOutOfRange {
                    node: i / f,
                    feature,
                    value: v,
                    cardinality: cardinalities[feature],
                });
            }
        }
        let n = x.len() / f;
        let mut seen = std::collections::HashMap::with_capacity(src.len());
        for (e, (&s, &d)) in src.iter().zip(&dst).enumerate() {
            if s as usize >= n || d as usize >= n {
                return Err(DagError::NodeOutOfRange { edge: e, src: s as i64, dst: d as i64, num_nodes: n });
            }
            if s == d {
                return Err(DagError::SelfLoop { edge: e, node: s });
            }
            if let Some(&first) = seen.get(&(s, d)) {
                return Err(DagError::DuplicateEdge { edge: e, first, src: s, dst: d });
            }
            seen.insert((s, d), e);
        }
        Ok(Dag { cardinalities, x, src, dst })
    }

    /// Builds a DAG from signed edge ids (as JSON inputs carry them), checking
    /// that each is a valid node id before the checks of [`Dag::new`].
    pub fn from_signed(cardinalities: Vec<u32>, x: Vec<u32>, src: &[i64], dst: &[i64]) -> Result<Dag, DagError> {
        if src.len() != dst.len() {
            return Err(DagError::EdgeListsDiffer { src: src.len(), dst: dst.len() });
        }
        let f = cardinalities.len().max(1);
        let n = x.len() / f;
        let mut s32 = Vec::with_capacity(src.len());
        let mut d32 = Vec::with_capacity(dst.len());
        for (e, (&s, &d)) in src.iter().zip(dst).enumerate() {
            let ok = |v: i64| v >= 0 && (v as u64) < n as u64;
            if !ok(s) || !ok(d) {
                return Err(DagError::NodeOutOfRange { edge: e, src: s, dst: d, num_nodes: n });
            }
            s32.push(s as u32);
            d32.push(d as u32);
        }
        Dag::new(cardinalities, x, s32, d32)
    }

    /// Number of nodes.
    pub fn num_nodes(&self) -> usize {
        self.x.len() / self.cardinalities.len()
    }

    /// Number of features per node (`F`).
    pub fn num_features(&self) -> usize {
        self.cardinalities.len()
    }

    /// Number of edges.
    pub fn num_edges(&self) -> usize {
        self.src.len()
    }

    /// Real categories per feature (`C_f`); the dummy category of feature f is `C_f`.
    pub fn cardinalities(&self) -> &[u32] {
        &self.cardinalities
    }

    /// All node features, row-major `[N][F]`.
    pub fn x(&self) -> &[u32] {
        &self.x
    }

    /// The features of one node (panics if `node >= num_nodes()`, like slice indexing).
    pub fn features(&self, node: usize) -> &[u32] {
        let f = self.num_features();
        &self.x[node * f..(node + 1) * f]
    }

    /// Edge sources.
    pub fn src(&self) -> &[u32] {
        &self.src
    }

    /// Edge targets.
    pub fn dst(&self) -> &[u32] {
        &self.dst
    }

    /// Edges as `(src, dst)` pairs, in stored order.
    pub fn edges(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.src.iter().copied().zip(self.dst.iter().copied())
    }

    /// The synchronous Kahn layering (layerdag.md §1.2), or [`DagError::Cycle`].
    ///
    /// Layer 1 holds the in-degree-0 nodes in id order; each later layer holds
    /// the nodes whose in-degree reached 0 while the previous layer was
    /// removed, in discovery order (frontier order, then edge order), exactly
    /// as the reference's `LayerDAG*Dataset` constructors walk the graph.
    /// O(N + E).
    pub fn layering(&self) -> Result<Layering, DagError> {
        let n = self.num_nodes();
        // Out-edges in CSR form, keeping the stored edge order per source.
        let mut out_start = vec![0usize; n + 1];
        for &s in &self.src {
            out_start[s as usize + 1] += 1;
        }
        for i in 0..n {
            out_start[i + 1] += out_start[i];
        }
        let mut fill = out_start.clone();
        let mut out = vec![0u32; self.src.len()];
        let mut in_deg = vec![0u32; n];
        for (&s, &d) in self.src.iter().zip(&self.dst) {
            out[fill[s as usize]] = d;
            fill[s as usize] += 1;
            in_deg[d as usize] += 1;
        }
        let mut level = vec![0u32; n];
        let mut order: Vec<u32> = (0..n as u32).filter(|&u| in_deg[u as usize] == 0).collect();
        let mut offsets = vec![0usize];
        let mut start = 0;
        let mut l = 0u32;
        while start < order.len() {
            l += 1;
            let end = order.len();
            offsets.push(end);
            for i in start..end {
                let u = order[i] as usize;
                level[u] = l;
                for &v in &out[out_start[u]..out_start[u + 1]] {
                    in_deg[v as usize] -= 1;
                    if in_deg[v as usize] == 0 {
                        order.push(v);
                    }
                }
            }
            start = end;
        }
        if order.len() != n {
            let example = (0..n).find(|&u| in_deg[u] > 0).unwrap_or(0) as u32;
            return Err(DagError::Cycle { remaining: n - order.len(), num_nodes: n, example });
        }
        Ok(Layering { level, order, offsets })
    }

    /// The same DAG with nodes renumbered in layer order (node `order[i]` becomes
    /// `i`) and edges sorted by `(dst, src)`. Returns the renumbered DAG and the
    /// map old id → new id.
    pub fn relabel(&self, layering: &Layering) -> (Dag, Vec<u32>) {
        let n = self.num_nodes();
        let f = self.num_features();
        let mut new_of = vec![0u32; n];
        for (i, &u) in layering.order.iter().enumerate() {
            new_of[u as usize] = i as u32;
        }
        let mut x = Vec::with_capacity(self.x.len());
        for &u in &layering.order {
            x.extend_from_slice(&self.x[u as usize * f..(u as usize + 1) * f]);
        }
        let mut edges: Vec<(u32, u32)> = self.edges().map(|(s, d)| (new_of[s as usize], new_of[d as usize])).collect();
        edges.sort_unstable_by_key(|&(s, d)| (d, s));
        let (src, dst) = edges.into_iter().unzip();
        (Dag { cardinalities: self.cardinalities.clone(), x, src, dst }, new_of)
    }
}

/// The synchronous Kahn layering of a [`Dag`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layering {
    /// `level[u]`: node u's layer, 1-based (1 = sources).
    pub level: Vec<u32>,
    /// All nodes in layer order; layer `l` (1-based) is `order[offsets[l-1]..offsets[l]]`.
    pub order: Vec<u32>,
    /// `L + 1` offsets into `order`, starting at 0.
    pub offsets: Vec<usize>,
}

impl Layering {
    /// Number of layers `L` (0 for an empty graph).
    pub fn num_layers(&self) -> usize {
        self.offsets.len() - 1
    }

    /// The nodes of layer `l` (1-based), in discovery order; empty when out of range.
    pub fn layer(&self, l: usize) -> &[u32] {
        if l == 0 || l >= self.offsets.len() {
            return &[];
        }
        &self.order[self.offsets[l - 1]..self.offsets[l]]
    }

    /// Size of each layer, in order.
    pub fn sizes(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// The widest layer's size (0 for an empty graph).
    pub fn max_width(&self) -> usize {
        self.sizes().into_iter().max().unwrap_or(0)
    }
}

impl fmt::Display for Layering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} layers, sizes {:?}", self.num_layers(), self.sizes())
    }
}

/// Several graphs as one disjoint union (layerdag.md §1.6), as flat arrays
/// ready to become tensors.
///
/// Node `i` of the `g`-th pushed graph is global node `graph_offsets[g] + i`.
/// Edges are kept as separate `src` / `dst` lists of global ids; the model's
/// message passing uses `A[dst, src] = 1` (a node sums its predecessors).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GraphBatch {
    /// Features per node.
    pub num_features: usize,
    /// Node features, row-major `[N][F]`.
    pub x: Vec<i64>,
    /// Each node's layer (0 for the dummy node).
    pub level: Vec<i64>,
    /// Edge sources (global ids).
    pub src: Vec<i64>,
    /// Edge targets (global ids).
    pub dst: Vec<i64>,
    /// Each node's graph index in the batch (the `A_n2g` incidence as a list).
    pub node_graph: Vec<i64>,
    /// `B + 1` cumulative node counts.
    pub graph_offsets: Vec<i64>,
}

impl GraphBatch {
    /// An empty batch of graphs with `num_features` features per node.
    pub fn new(num_features: usize) -> Self {
        GraphBatch { num_features, graph_offsets: vec![0], ..Default::default() }
    }

    /// Number of graphs.
    pub fn num_graphs(&self) -> usize {
        self.graph_offsets.len().saturating_sub(1)
    }

    /// Number of nodes over all graphs.
    pub fn num_nodes(&self) -> usize {
        self.level.len()
    }

    /// Appends one graph given by its local node rows, levels and local edges;
    /// returns the global id of its node 0.
    ///
    /// The caller guarantees `x.len() == level.len() * F` and local ids below
    /// `level.len()`; the streams build these slices from validated DAGs.
    pub fn push(&mut self, x: &[i64], level: &[i64], src: &[i64], dst: &[i64]) -> i64 {
        let base = *self.graph_offsets.last().unwrap_or(&0);
        let g = self.num_graphs() as i64;
        self.x.extend_from_slice(x);
        self.level.extend_from_slice(level);
        self.src.extend(src.iter().map(|&s| s + base));
        self.dst.extend(dst.iter().map(|&d| d + base));
        self.node_graph.extend(std::iter::repeat_n(g, level.len()));
        self.graph_offsets.push(base + level.len() as i64);
        base
    }

    /// Appends a whole [`Dag`] (no dummy node; every level 0 as it is not
    /// layered here); returns the global id of its node 0.
    pub fn push_dag(&mut self, dag: &Dag) -> i64 {
        let x: Vec<i64> = dag.x().iter().map(|&v| v as i64).collect();
        let level = vec![0i64; dag.num_nodes()];
        let src: Vec<i64> = dag.src().iter().map(|&v| v as i64).collect();
        let dst: Vec<i64> = dag.dst().iter().map(|&v| v as i64).collect();
        self.push(&x, &level, &src, &dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diamond() -> Dag {
        // 0 -> 1, 0 -> 2, 1 -> 3, 2 -> 3, 0 -> 3 (skips a layer), 4 isolated.
        Dag::new(vec![5], vec![0, 1, 2, 3, 4], vec![0, 0, 1, 2, 0], vec![1, 2, 3, 3, 3]).unwrap()
    }

    #[test]
    fn kahn_layers_follow_the_longest_path() {
        let d = diamond();
        let l = d.layering().unwrap();
        assert_eq!(l.level, vec![1, 2, 2, 3, 1]);
        assert_eq!(l.layer(1), &[0, 4]);
        assert_eq!(l.layer(2), &[1, 2]);
        assert_eq!(l.layer(3), &[3]);
        assert_eq!(l.num_layers(), 3);
        assert_eq!(l.max_width(), 2);
        for (s, t) in d.edges() {
            assert!(l.level[s as usize] < l.level[t as usize]);
        }
        let (r, new_of) = d.relabel(&l);
        assert_eq!(new_of, vec![0, 2, 3, 4, 1]);
        assert_eq!(r.x(), &[0, 4, 1, 2, 3]);
        assert_eq!(r.edges().collect::<Vec<_>>(), vec![(0, 2), (0, 3), (0, 4), (2, 4), (3, 4)]);
    }

    #[test]
    fn bad_graphs_are_typed_errors() {
        assert_eq!(Dag::new(vec![], vec![], vec![], vec![]), Err(DagError::NoFeatures));
        assert!(matches!(Dag::new(vec![2, 2], vec![0, 1, 1], vec![], vec![]), Err(DagError::RaggedFeatures { .. })));
        assert!(matches!(
            Dag::new(vec![2], vec![0, 2], vec![], vec![]),
            Err(DagError::CategoryOutOfRange { node: 1, value: 2, .. })
        ));
        assert!(matches!(Dag::new(vec![2], vec![0, 1], vec![0], vec![2]), Err(DagError::NodeOutOfRange { .. })));
        assert!(matches!(Dag::new(vec![2], vec![0, 1], vec![1], vec![1]), Err(DagError::SelfLoop { node: 1, .. })));
        assert!(matches!(
            Dag::new(vec![2], vec![0, 1], vec![0, 0], vec![1, 1]),
            Err(DagError::DuplicateEdge { edge: 1, first: 0, .. })
        ));
        assert!(matches!(Dag::from_signed(vec![2], vec![0, 1], &[-1], &[0]), Err(DagError::NodeOutOfRange { .. })));
        let cyc = Dag::new(vec![2], vec![0, 1, 0], vec![0, 1, 2], vec![1, 2, 1]).unwrap();
        assert!(matches!(cyc.layering(), Err(DagError::Cycle { remaining: 2, .. })));
    }

    #[test]
    fn batches_are_disjoint_unions() {
        let mut b = GraphBatch::new(1);
        b.push_dag(&diamond());
        let second = b.push_dag(&Dag::new(vec![5], vec![1, 2], vec![0], vec![1]).unwrap());
        assert_eq!(second, 5);
        assert_eq!(b.num_graphs(), 2);
        assert_eq!(b.graph_offsets, vec![0, 5, 7]);
        assert_eq!(b.node_graph, vec![0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(b.src.last(), Some(&5));
        assert_eq!(b.dst.last(), Some(&6));
    }
}
