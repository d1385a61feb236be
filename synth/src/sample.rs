//! Sampling new DAGs from a trained [`LayerDag`] (layerdag.md §4).
//!
//! Graphs grow layer by layer, `B` of them at once, all under `no_grad`:
//!
//! 1. every graph starts as the dummy node alone (category `C_f` in every
//!    feature, level 0, no edges);
//! 2. the layer-size model draws the next layer's size `n_i` per graph (at the
//!    first level size 0 is masked out, so the first layer is never empty;
//!    with a node cap, sizes that would exceed it are masked out too); a
//!    graph that draws 0 is finished;
//! 3. the new nodes' attributes start from the marginal prior `x_T ~ m_f` and
//!    are denoised jointly for `t = T … 1` with the node model (its graph
//!    encoder runs once per layer) and the D3PM posterior, one
//!    `multinomial` draw per step; the last draw is the result;
//! 4. the nodes are appended at the next level; from the second layer on, the
//!    candidate edges (every earlier real node × every new node) start from
//!    the prior `Bernoulli(m_i)` plus the ≥ 1-in-edge repair and are
//!    denoised for `t = T_e … 1`, running the whole edge model at every step,
//!    drawing Bernoulli samples from the posterior and repairing each time;
//! 5. sampling stops for every graph at `max_level` layers.
//!
//! Every encoder keeps its Weisfeiler–Lehman colours in one cache per run
//! ([`crate::model::colour_cache`]), so a pass computes only the node states
//! no earlier pass of the run has; the node denoiser runs once per distinct
//! (graph, noisy row). Both are the reference's functions with sums in
//! another order.
//!
//! Strata's extensions; none touches a TPU Tile checkpoint sampled with
//! [`SampleOptions::default`], which is the reference's sampler (what the
//! TPU Tile check compares against):
//!
//! - a checkpoint trained on the corpus carries a size prior
//!   ([`crate::dataset::size_prior`]): each graph stops at the depth its
//!   conditioning row predicts, and its layer sizes are masked to stay
//!   within the predicted node count (unless
//!   [`SampleOptions::ignore_size_prior`]);
//! - [`SampleOptions::keep_layers`] (off by default; `strata synth generate`
//!   turns it on) makes every node of layer l keep an in-edge from layer
//!   l − 1, moved there from its least likely in-edge. The reference only
//!   guarantees some in-edge, so re-layering a sampled graph collapses it:
//!   the corpus base workload's stage came out 21 Kahn layers deep instead
//!   of 65;
//! - [`SampleOptions::attribute_masks`] (none by default; `strata synth
//!   generate` sets one per graph from the rank layout) restricts what the
//!   node-attribute denoiser may draw: node types per graph, and every other
//!   feature's values given the node type. The denoiser's x₀ prediction
//!   keeps to the allowed node types at every step; at the last step both
//!   the prediction and the draw keep to the whole mask (renormalized; a row
//!   with no mass left on the allowed values draws uniformly among them), so
//!   the graph comes out valid for its layout with the model's own
//!   preferences among the valid values;
//! - a model with a progress encoding ([`crate::model::config`]) is told, for
//!   each layer it sizes and denoises, how many layers precede it out of the
//!   depth the size prior predicts (or the fixed shape's depth).
//!
//! So every sampled graph is acyclic by construction: edges go only from
//! earlier layers into the newest one, and each node past the first layer
//! has at least one predecessor. Categorical rows come from the denoiser's
//! heads, so they lie inside the vocabularies.
//!
//! Randomness is libtorch's global generator, seeded with
//! [`SampleOptions::seed`] at the start: on CPU the same seed, model and
//! conditions give the same graphs (with a fixed libtorch thread count).

use tch::{Device, Kind, Tensor};

use crate::dataset::dag::{Dag, GraphBatch};
use crate::dataset::streams::layer_progress;
use crate::model::colour_cache::{CachedPass, ColourCache, EncoderCache};
use crate::model::diffusion::NoiseSchedule;
use crate::model::error::{ModelError, Result, TorchContext};
use crate::model::layers::{segment_ids, GraphInput};
use crate::model::{EdgeQueries, LayerDag, NodeQueries};

/// How to sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SampleOptions {
    /// Seed of libtorch's generator (set once, when sampling starts).
    pub seed: u64,
    /// The most layers per graph; `None` takes the data spec's `max_level`.
    pub max_level: Option<usize>,
    /// The most real nodes per graph; `None` for no cap beyond the model's.
    pub max_nodes: Option<usize>,
    /// Where to run; `None` for the model's device (anything else must equal it).
    pub device: Option<Device>,
    /// Sample without the checkpoint's size prior (the model alone decides
    /// when to stop, within `max_level` and `max_nodes`).
    pub ignore_size_prior: bool,
    /// After the last edge-denoising step of a layer, give every new node an
    /// in-edge from the layer just before (moving its least likely edge), so
    /// that generation layers stay Kahn layers (a Strata extension; off is
    /// the reference's sampler).
    pub keep_layers: bool,
    /// Every graph's layer sizes, fixed in advance: the layer-size model still
    /// runs but its draw is masked to the given size; attributes and edges are
    /// sampled as usual. For generating or timing graphs of a given shape.
    pub layer_sizes: Option<Vec<usize>>,
    /// One [`AttributeMask`] per condition row: the attribute values each
    /// graph's nodes may take (module docs). `None` allows every value.
    pub attribute_masks: Option<Vec<AttributeMask>>,
    /// Called after every generated layer (a progress bar's hook).
    pub progress: Option<SampleProgress>,
    /// Reverse steps of the two diffusions (default: every step).
    pub steps: DenoisingSteps,
}

/// How many reverse steps the node-attribute and edge diffusions take per
/// layer. `None` takes every step of the model's schedule (`T` = 64 and 16
/// in the TPU Tile config), the reference's sampler. Fewer steps jump from
/// `t` to an earlier `s` in one exact posterior step (marginal transitions
/// compose, [`NoiseSchedule::alpha_between`]), at evenly spaced steps: the
/// denoiser runs fewer times and predicts x₀ from noisier inputs, trading
/// fidelity for time (BENCHMARKS.md measures how much).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DenoisingSteps {
    /// Node-attribute steps per layer, `1..=T`.
    pub node: Option<usize>,
    /// Edge steps per layer, `1..=T`.
    pub edge: Option<usize>,
}

/// A hook [`sample_layered`] calls after every layer with the layers built
/// so far and the most any graph may get (its depth cap): sampling large
/// graphs takes a while. Options with hooks compare equal when they share it.
#[derive(Clone)]
pub struct SampleProgress(pub std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>);

impl std::fmt::Debug for SampleProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SampleProgress")
    }
}

impl PartialEq for SampleProgress {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Which attribute values one graph's nodes may take: which node types
/// (feature 0), and for each node type which values of every feature; and
/// which nodes it must have ([`RequiredNodes`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AttributeMask {
    /// `allowed[v][f][c]`: whether a node of type `v` may have value `c` in
    /// feature `f`; `allowed[v][0]` is the same for every `v`: the types allowed.
    allowed: Vec<Vec<Vec<bool>>>,
    /// Node types allowed in the first layer only (roots, in a Kahn-layered graph).
    first_layer_only: Vec<bool>,
    /// Nodes the graph must have, in the order their layers come.
    required: Vec<RequiredNodes>,
}

/// `count` nodes a graph must have in generation layer `layer` (1-based),
/// with the feature values `values` (`(feature, value)` pairs) fixed. The
/// sampler makes the layer at least that wide (and the graph at least that
/// deep), and denoises the nodes' other features with those values held:
/// the model fills in the rest of the layer, and the edges, around them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredNodes {
    /// The generation layer, 1-based.
    pub layer: usize,
    /// How many such nodes.
    pub count: usize,
    /// The fixed `(feature, value)` pairs.
    pub values: Vec<(usize, u32)>,
}

impl AttributeMask {
    /// A mask allowing every value of features with these cardinalities.
    pub fn allow_all(cardinalities: &[u32]) -> Self {
        let per_type: Vec<Vec<bool>> = cardinalities.iter().map(|&c| vec![true; c as usize]).collect();
        let types = cardinalities.first().map_or(0, |&c| c as usize);
        Self { allowed: vec![per_type; types], first_layer_only: vec![false; types], required: Vec::new() }
    }

    /// Requires nodes ([`RequiredNodes`]); requirements of one layer take its
    /// first rows, in the order they were added.
    pub fn require(&mut self, nodes: RequiredNodes) {
        if nodes.count > 0 {
            self.required.push(nodes);
            self.required.sort_by_key(|r| r.layer);
        }
    }

    /// How many nodes generation layer `layer` (1-based) must have.
    fn required_in(&self, layer: usize) -> usize {
        self.required.iter().filter(|r| r.layer == layer).map(|r| r.count).sum()
    }

    /// The layer (1-based) with the most required nodes and their count
    /// (`None`: no requirement).
    pub fn widest_requirement(&self) -> Option<(usize, usize)> {
        self.required
            .iter()
            .map(|r| (r.layer, self.required_in(r.layer)))
            .max_by_key(|&(l, n)| (n, std::cmp::Reverse(l)))
    }

    /// The deepest layer with required nodes (0: none).
    fn last_required_layer(&self) -> usize {
        self.required.last().map_or(0, |r| r.layer)
    }

    /// Allows node type `v` in the first layer only: every later node has an
    /// in-edge, so this is how to say "nodes of this type are roots".
    pub fn first_layer_only(&mut self, v: usize) {
        if let Some(a) = self.first_layer_only.get_mut(v) {
            *a = true;
        }
    }

    /// Forbids node type `v`.
    pub fn forbid_type(&mut self, v: usize) {
        for t in &mut self.allowed {
            if let Some(a) = t[0].get_mut(v) {
                *a = false;
            }
        }
    }

    /// Keeps, for nodes of type `v`, only the values `c` of feature `f ≥ 1`
    /// with `keep(c)` (node types are [`AttributeMask::forbid_type`]'s).
    pub fn restrict(&mut self, v: usize, f: usize, keep: impl Fn(usize) -> bool) {
        if f == 0 {
            return;
        }
        if let Some(values) = self.allowed.get_mut(v).and_then(|t| t.get_mut(f)) {
            for (c, a) in values.iter_mut().enumerate() {
                *a &= keep(c);
            }
        }
    }

    /// Whether a node with feature row `row` in generation layer `layer`
    /// (1-based) satisfies the mask: what a drawn node may be (required
    /// nodes have their values held, whatever the mask allows).
    pub fn allows(&self, row: &[u32], layer: usize) -> bool {
        let Some(&v) = row.first() else { return false };
        let Some(t) = self.allowed.get(v as usize) else { return false };
        let later_ok = layer <= 1 || !self.first_layer_only[v as usize];
        later_ok && row.iter().zip(t).all(|(&c, values)| values.get(c as usize).copied().unwrap_or(false))
    }

    /// Whether the mask fits features with these cardinalities.
    fn fits(&self, cardinalities: &[u32]) -> bool {
        self.allowed.len() == cardinalities.first().map_or(0, |&c| c as usize)
            && self.first_layer_only.len() == self.allowed.len()
            && self.allowed.iter().all(|t| {
                t.len() == cardinalities.len() && t.iter().zip(cardinalities).all(|(v, &c)| v.len() == c as usize)
            })
            && self
                .required
                .iter()
                .all(|r| r.layer >= 1 && r.values.iter().all(|&(f, c)| cardinalities.get(f).is_some_and(|&n| c < n)))
    }
}

/// The masks of a batch's graphs as one 0/1 table per feature, rows indexed
/// by `graph · C_0 + node type` (`graph` counting the batch's graphs).
struct MaskTables {
    tables: Vec<Tensor>,
    num_types: i64,
}

impl MaskTables {
    /// The tables of `masks` for generation layer `layer` (1-based); the
    /// masks all fit the same cardinalities.
    fn new(masks: &[&AttributeMask], layer: usize, dev: Device) -> Self {
        let first_type = masks.first().and_then(|m| m.allowed.first());
        let num_types = masks.first().map_or(0, |m| m.allowed.len());
        let widths: Vec<i64> = first_type.map_or(vec![], |t| t.iter().map(|v| v.len() as i64).collect());
        let tables = widths
            .iter()
            .enumerate()
            .map(|(f, &width)| {
                let flat: Vec<f32> = masks
                    .iter()
                    .flat_map(|m| {
                        m.allowed.iter().flat_map(move |t| {
                            t[f].iter().enumerate().map(move |(c, &a)| {
                                // Feature 0's values are the node types.
                                let later = f == 0 && layer > 1 && m.first_layer_only[c];
                                f32::from(u8::from(a && !later))
                            })
                        })
                    })
                    .collect();
                Tensor::from_slice(&flat).view([-1, width]).to_device(dev)
            })
            .collect();
        Self { tables, num_types: num_types as i64 }
    }

    /// The allowed values of feature `f` per query: by each query's graph
    /// and, past feature 0, its node type.
    fn rows(&self, f: usize, query_graph: &Tensor, types: Option<&Tensor>) -> Tensor {
        let row = query_graph * self.num_types;
        let row = match types {
            Some(t) if f > 0 => row + t,
            // Feature 0's rows are the type mask under every type: take type 0's.
            _ => row,
        };
        self.tables[f].index_select(0, &row)
    }
}

/// `w` restricted to the allowed values `m` (0/1, same shape): rows with no
/// mass left on them become `m` itself (uniform among the allowed).
fn restrict_to(w: &Tensor, m: &Tensor) -> Tensor {
    let kept = w * m;
    let some = kept.sum_dim_intlist(1, true, Kind::Float).gt(0.0);
    kept.where_self(&some, m)
}

/// A sampled DAG and the layers it was generated in.
#[derive(Clone, Debug, PartialEq)]
pub struct SampledDag {
    /// The DAG (no dummy node); nodes are numbered in generation order.
    pub dag: Dag,
    /// Size of each generated layer: layer `l` holds the next `layer_sizes[l]` node ids.
    pub layer_sizes: Vec<usize>,
}

impl SampledDag {
    /// The generation layer (1-based) of every node.
    pub fn node_layers(&self) -> Vec<usize> {
        self.layer_sizes.iter().enumerate().flat_map(|(l, &n)| std::iter::repeat_n(l + 1, n)).collect()
    }
}

/// Samples one DAG per condition row (rows as the model saw them in
/// training, i.e. already normalized when the data spec has a normalizer).
pub fn sample_dags(model: &LayerDag, conditions: &[Vec<f32>], opts: &SampleOptions) -> Result<Vec<Dag>> {
    Ok(sample_layered(model, conditions, opts)?.into_iter().map(|s| s.dag).collect())
}

/// A graph being generated: local node 0 is the dummy node.
struct Growing {
    x: Vec<i64>,
    level: Vec<i64>,
    src: Vec<i64>,
    dst: Vec<i64>,
    layer_sizes: Vec<usize>,
}

impl Growing {
    fn num_nodes(&self) -> usize {
        self.level.len()
    }
}

/// The disjoint union of some growing graphs as tensors.
struct Batch {
    x: Tensor,
    src: Tensor,
    dst: Tensor,
    node_graph: Tensor,
    num_graphs: i64,
    y: Tensor,
    /// `[B]` progress of the layer being predicted, for a model that encodes
    /// it (set per step of the loop).
    progress: Option<Tensor>,
    /// Global id of each graph's local node 0.
    base: Vec<i64>,
    /// Each graph's index among the run's graphs (stable across batches).
    graph_ids: Vec<i64>,
    /// The flat batch the tensors came from (for colour graphs).
    flat: GraphBatch,
}

impl Batch {
    fn new(graphs: &[Growing], which: &[usize], conditions: &[Vec<f32>], f: usize, y_dim: usize, dev: Device) -> Self {
        let mut b = GraphBatch::new(f);
        let mut base = Vec::with_capacity(which.len());
        let mut y = Vec::with_capacity(which.len() * y_dim);
        for &g in which {
            let s = &graphs[g];
            base.push(b.push(&s.x, &s.level, &s.src, &s.dst));
            y.extend_from_slice(&conditions[g]);
        }
        let long = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        Batch {
            x: long(&b.x).view([b.num_nodes() as i64, f as i64]),
            src: long(&b.src),
            dst: long(&b.dst),
            node_graph: long(&b.node_graph),
            num_graphs: which.len() as i64,
            y: Tensor::from_slice(&y).view([which.len() as i64, y_dim as i64]).to_device(dev),
            progress: None,
            base,
            graph_ids: which.iter().map(|&g| g as i64).collect(),
            flat: b,
        }
    }

    /// Colours the batch's nodes, with its edges plus `extra` ones, in the
    /// run's colour cache (graphs keyed by their run-wide index).
    fn cached_pass(&self, cache: &mut ColourCache, extra_src: &[i64], extra_dst: &[i64]) -> CachedPass {
        let b = &self.flat;
        let group: Vec<i64> = b.node_graph.iter().map(|&g| self.graph_ids[g as usize]).collect();
        let src: Vec<i64> = b.src.iter().chain(extra_src).copied().collect();
        let dst: Vec<i64> = b.dst.iter().chain(extra_dst).copied().collect();
        cache.pass(&b.x, b.num_features, &group, &src, &dst)
    }

    fn input(&self) -> GraphInput<'_> {
        GraphInput {
            x: &self.x,
            src: &self.src,
            dst: &self.dst,
            node_graph: &self.node_graph,
            num_graphs: self.num_graphs,
            compressed: None,
        }
    }
}

fn to_vec_i64(t: &Tensor, ctx: &str) -> Result<Vec<i64>> {
    Vec::<i64>::try_from(t.to_kind(Kind::Int64).to_device(Device::Cpu).contiguous().view([-1])).ctx(ctx)
}

/// Like [`sample_dags`], also returning each graph's generation layers.
pub fn sample_layered(model: &LayerDag, conditions: &[Vec<f32>], opts: &SampleOptions) -> Result<Vec<SampledDag>> {
    let ctx = "sampling";
    let dev = model.device();
    if let Some(d) = opts.device {
        if d != dev {
            return Err(ModelError::mismatch(ctx, format!("asked to sample on {d:?}, the model is on {dev:?}")));
        }
    }
    let spec = &model.data;
    if let Some((i, row)) = conditions.iter().enumerate().find(|(_, r)| r.len() != spec.y_dim) {
        return Err(ModelError::mismatch(
            ctx,
            format!("condition row {i} has {} values, the model takes {}", row.len(), spec.y_dim),
        ));
    }
    if let Some(sizes) = &opts.layer_sizes {
        if sizes.is_empty() || sizes.contains(&0) {
            return Err(ModelError::mismatch(ctx, format!("fixed layer sizes must be at least 1 each, got {sizes:?}")));
        }
    }
    if let Some(masks) = &opts.attribute_masks {
        if masks.len() != conditions.len() {
            return Err(ModelError::mismatch(
                ctx,
                format!("{} attribute masks for {} condition rows", masks.len(), conditions.len()),
            ));
        }
        if masks.iter().any(|m| !m.fits(&spec.cardinalities)) {
            return Err(ModelError::mismatch(ctx, "an attribute mask does not fit the model's node features"));
        }
    }
    let node_steps = reverse_steps(model.node_diffusion.schedule(), opts.steps.node, "node-attribute")?;
    let edge_steps = reverse_steps(model.edge_diffusion.schedule(), opts.steps.edge, "edge")?;
    let max_level = match &opts.layer_sizes {
        Some(fixed) => fixed.len(),
        None => opts.max_level.unwrap_or(spec.max_level),
    };
    if max_level == 0 {
        return Err(ModelError::mismatch(ctx, "max_level is 0: no layer could be generated"));
    }
    for (i, m) in opts.attribute_masks.iter().flatten().enumerate() {
        if m.last_required_layer() > max_level {
            return Err(ModelError::mismatch(
                ctx,
                format!("graph {i} requires nodes in layer {}, past max_level {max_level}", m.last_required_layer()),
            ));
        }
        if let Some(r) = m.required.iter().find(|r| m.required_in(r.layer) > spec.max_layer_size) {
            return Err(ModelError::mismatch(
                ctx,
                format!(
                    "graph {i} requires {} nodes in layer {}: the model's widest layer is {}",
                    m.required_in(r.layer),
                    r.layer,
                    spec.max_layer_size
                ),
            ));
        }
    }
    if opts.max_nodes == Some(0) {
        return Err(ModelError::mismatch(ctx, "max_nodes is 0: the first layer cannot be empty"));
    }
    let _guard = tch::no_grad_guard();
    tch::manual_seed(opts.seed as i64);
    let f = spec.num_features();
    let dummy: Vec<i64> = spec.cardinalities.iter().map(|&c| c as i64).collect();
    let mut graphs: Vec<Growing> = conditions
        .iter()
        .map(|_| Growing { x: dummy.clone(), level: vec![0], src: vec![], dst: vec![], layer_sizes: vec![] })
        .collect();
    let caps = graph_caps(model, conditions, opts, max_level);
    let depths = progress_depths(model, conditions, opts)?;
    let mut active: Vec<usize> = (0..graphs.len()).collect();
    let mut level = 0usize;
    // The encoders' colours, kept across the run's passes.
    let mut count_cache = model.node_count.model.new_cache(dev)?;
    let mut node_cache = model.node_pred.model.new_cache(dev)?;
    let mut edge_cache = model.edge_pred.model.new_cache(dev)?;
    let deepest = caps.iter().map(|c| c.layers).max().unwrap_or(max_level).min(max_level);
    while !active.is_empty() && level < max_level {
        if let Some(p) = &opts.progress {
            (p.0)(level, deepest);
        }
        // Graphs at their depth cap are finished.
        active.retain(|&g| graphs[g].layer_sizes.len() < caps[g].layers);
        if active.is_empty() {
            break;
        }
        // (a) The next layer's size per graph; a graph drawing 0 is finished.
        let mut b = Batch::new(&graphs, &active, conditions, f, spec.y_dim, dev);
        b.progress = depths.as_ref().map(|d| progress_of(d, &active, level, dev));
        let sizes = layer_sizes(model, &b, &mut count_cache, &graphs, &active, level, &caps, opts)?;
        let (grow, sizes): (Vec<usize>, Vec<i64>) =
            active.iter().zip(&sizes).filter(|(_, &n)| n > 0).map(|(&g, &n)| (g, n)).unzip();
        active = grow;
        if active.is_empty() {
            break;
        }
        // (b) Their attributes.
        let mut b = Batch::new(&graphs, &active, conditions, f, spec.y_dim, dev);
        let tables = opts
            .attribute_masks
            .as_ref()
            .map(|m| MaskTables::new(&active.iter().map(|&g| &m[g]).collect::<Vec<_>>(), level + 1, dev));
        b.progress = depths.as_ref().map(|d| progress_of(d, &active, level, dev));
        let required = opts
            .attribute_masks
            .as_ref()
            .map(|m| active.iter().map(|&g| m[g].required.iter().filter(|r| r.layer == level + 1).collect()).collect());
        let rows = node_rows(model, &b, &mut node_cache, &sizes, tables.as_ref(), required, &node_steps)?;
        // (c) Append them at the next level.
        level += 1;
        let mut prev = Vec::with_capacity(active.len());
        let mut prev_first = Vec::with_capacity(active.len());
        let mut row = 0usize;
        for (&g, &n) in active.iter().zip(&sizes) {
            let s = &mut graphs[g];
            prev.push(s.num_nodes() as i64);
            prev_first.push((s.num_nodes() - s.layer_sizes.last().copied().unwrap_or(0)) as i64);
            s.x.extend_from_slice(&rows[row * f..(row + n as usize) * f]);
            s.level.extend(std::iter::repeat_n(level as i64, n as usize));
            s.layer_sizes.push(n as usize);
            row += n as usize;
        }
        // (d, e) Edges into the new layer, from the second layer on.
        if level > 1 {
            let b = Batch::new(&graphs, &active, conditions, f, spec.y_dim, dev);
            let keep = opts.keep_layers.then_some(&prev_first[..]);
            let edges = new_edges(model, &b, &mut edge_cache, &prev, &sizes, keep, &edge_steps)?;
            for (&g, e) in active.iter().zip(edges) {
                let s = &mut graphs[g];
                for (u, v) in e {
                    s.src.push(u);
                    s.dst.push(v);
                }
            }
        }
    }
    graphs
        .into_iter()
        .map(|s| {
            let x: Vec<u32> = s.x[f..].iter().map(|&v| v as u32).collect();
            let src: Vec<i64> = s.src.iter().map(|&v| v - 1).collect();
            let dst: Vec<i64> = s.dst.iter().map(|&v| v - 1).collect();
            let dag = Dag::from_signed(spec.cardinalities.clone(), x, &src, &dst)
                .map_err(|e| ModelError::mismatch(ctx, format!("a sampled graph is not a DAG: {e}")))?;
            Ok(SampledDag { dag, layer_sizes: s.layer_sizes })
        })
        .collect()
}

/// One graph's limits: the most layers and the most real nodes.
#[derive(Clone, Copy, Debug)]
struct Caps {
    layers: usize,
    nodes: usize,
}

/// Each graph's limits: `max_level` and `opts.max_nodes`, tightened by the
/// checkpoint's size prior unless the options ignore it, but never above a
/// layer with required nodes.
/// The `(t, s)` steps of a diffusion for `steps` (`None`: all of them), or
/// an error naming the allowed range.
fn reverse_steps(schedule: &NoiseSchedule, steps: Option<usize>, which: &str) -> Result<Vec<(usize, usize)>> {
    let big_t = schedule.num_steps();
    schedule.reverse_steps(steps.unwrap_or(big_t)).ok_or_else(|| {
        ModelError::mismatch(
            "sampling",
            format!("{} {which} denoising steps asked for; the model's schedule has 1 to {big_t}", steps.unwrap_or(0)),
        )
    })
}

fn graph_caps(model: &LayerDag, conditions: &[Vec<f32>], opts: &SampleOptions, max_level: usize) -> Vec<Caps> {
    if opts.layer_sizes.is_some() {
        return vec![Caps { layers: max_level, nodes: usize::MAX }; conditions.len()];
    }
    let prior = model.data.size_prior.as_ref().filter(|_| !opts.ignore_size_prior);
    conditions
        .iter()
        .enumerate()
        .map(|(g, y)| {
            let (layers, nodes) = prior.map_or((usize::MAX, usize::MAX), |p| p.predict(y));
            let required = opts.attribute_masks.as_ref().map_or(0, |m| m[g].last_required_layer());
            Caps { layers: layers.max(required).min(max_level), nodes: nodes.min(opts.max_nodes.unwrap_or(usize::MAX)) }
        })
        .collect()
}

/// Each graph's depth for the models' progress encoding, when they have one
/// ([`crate::model::config`]): the fixed layer sizes' count, or the depth the
/// size prior predicts for the graph's condition (also when the options
/// ignore the prior as a cap: the models were trained on a graph's true
/// depth, and the prediction is the sampler's best guess of it).
fn progress_depths(model: &LayerDag, conditions: &[Vec<f32>], opts: &SampleOptions) -> Result<Option<Vec<usize>>> {
    if model.config.general.progress_emb_size == 0 {
        return Ok(None);
    }
    if let Some(fixed) = &opts.layer_sizes {
        return Ok(Some(vec![fixed.len(); conditions.len()]));
    }
    let Some(prior) = &model.data.size_prior else {
        return Err(ModelError::mismatch(
            "sampling",
            "the model encodes layer progress but its checkpoint has no size prior to predict a graph's depth",
        ));
    };
    Ok(Some(conditions.iter().map(|y| prior.predict(y).0).collect()))
}

/// `[B]` progress of the layer after `built` ones for the `active` graphs.
fn progress_of(depths: &[usize], active: &[usize], built: usize, dev: Device) -> Tensor {
    let p: Vec<f32> = active.iter().map(|&g| layer_progress(built, depths[g])).collect();
    Tensor::from_slice(&p).to_device(dev)
}

/// Draws each graph's next layer size from the layer-size model: at level 0
/// size 0 is impossible, and sizes above a graph's remaining node budget are.
/// With masks, a layer is at least as wide as its required nodes (which may
/// overrun the node budget), and "stop" is impossible while a later layer
/// has required nodes. A `fixed` size is the only possible draw (the model
/// still runs, so timing a fixed shape costs what sampling that shape does).
#[allow(clippy::too_many_arguments)]
fn layer_sizes(
    model: &LayerDag,
    b: &Batch,
    cache: &mut EncoderCache,
    graphs: &[Growing],
    active: &[usize],
    level: usize,
    caps: &[Caps],
    opts: &SampleOptions,
) -> Result<Vec<i64>> {
    let ctx = "sampling layer sizes";
    let fixed = opts.layer_sizes.as_ref().map(|s| s[level]);
    let masks = opts.attribute_masks.as_deref();
    let pass = b.cached_pass(&mut cache.colours, &[], &[]);
    let logits =
        model.node_count.model.forward_cached(b.input(), Some(&b.y), b.progress.as_ref(), &pass, &mut cache.tables)?;
    cache.compact().ctx(ctx)?;
    let k = logits.size()[1] as usize;
    if let Some(n) = fixed.filter(|&n| n >= k) {
        return Err(ModelError::mismatch(
            ctx,
            format!("fixed layer size {n} at layer {}: the model's widest layer is {}", level + 1, k - 1),
        ));
    }
    let mut mask = vec![0f32; active.len() * k];
    for (i, &g) in active.iter().enumerate() {
        let (required, pending) =
            masks.map_or((0, false), |m| (m[g].required_in(level + 1), m[g].last_required_layer() > level + 1));
        if let Some(n) = fixed.filter(|&n| n < required) {
            return Err(ModelError::mismatch(
                ctx,
                format!("fixed layer size {n} at layer {}: graph {g} requires {required} nodes there", level + 1),
            ));
        }
        let lowest = required.max(usize::from(level == 0 || pending));
        // Under a caller's hard node cap, the later layers' required nodes
        // (at least one node per layer up to the last required one) are
        // kept out of this layer's budget, so the cap still holds at the end.
        let reserve = match (opts.max_nodes, masks) {
            (Some(_), Some(m)) => {
                ((level + 2)..=m[g].last_required_layer()).map(|l| m[g].required_in(l).max(1)).sum::<usize>()
            }
            _ => 0,
        };
        let remaining = caps[g].nodes.saturating_sub(graphs[g].num_nodes() - 1).saturating_sub(reserve).max(lowest);
        for c in 0..k {
            if c < lowest || c > remaining || fixed.is_some_and(|n| n != c) {
                mask[i * k + c] = f32::NEG_INFINITY;
            }
        }
    }
    let mask = Tensor::from_slice(&mask).view([active.len() as i64, k as i64]).to_device(logits.device());
    let probs = (logits.to_kind(Kind::Float) + mask).softmax(1, Kind::Float);
    let n = probs.f_multinomial(1, true).ctx(ctx)?;
    to_vec_i64(&n, ctx)
}

/// Denoises the attributes of `sizes[i]` new nodes per graph of `b`; returns
/// their rows, graph by graph, flattened `[Q * F]`, within `masks` (rows by
/// the batch's graphs) when given. `required[i]` are graph i's required nodes
/// in this layer: its first rows, whose fixed values are held at every step.
fn node_rows(
    model: &LayerDag,
    b: &Batch,
    cache: &mut EncoderCache,
    sizes: &[i64],
    masks: Option<&MaskTables>,
    required: Option<Vec<Vec<&RequiredNodes>>>,
    steps: &[(usize, usize)],
) -> Result<Vec<i64>> {
    let ctx = "sampling node attributes";
    let dev = b.x.device();
    let nd = &model.node_diffusion;
    let pass = b.cached_pass(&mut cache.colours, &[], &[]);
    let h_g =
        model.node_pred.model.encode_cached(b.input(), Some(&b.y), b.progress.as_ref(), &pass, &mut cache.tables)?;
    cache.compact().ctx(ctx)?;
    let graphs = model.node_pred.model.prepare(&h_g)?;
    let mut offsets = vec![0i64];
    for &n in sizes {
        offsets.push(offsets.last().expect("offsets start at 0") + n);
    }
    let query_offsets = Tensor::from_slice(&offsets).to_device(dev);
    let query_graph = segment_ids(&query_offsets).ctx(ctx)?;
    let q = *offsets.last().expect("offsets start at 0");
    // Per feature, the rows whose value is held and the values.
    let num_features = model.data.num_features();
    let mut held = vec![(Vec::<i64>::new(), Vec::<i64>::new()); num_features];
    for (i, reqs) in required.iter().flatten().enumerate() {
        let mut row = offsets[i];
        for r in reqs {
            for _ in 0..r.count {
                for &(feature, v) in &r.values {
                    held[feature].0.push(row);
                    held[feature].1.push(v as i64);
                }
                row += 1;
            }
        }
    }
    let held: Vec<Option<(Tensor, Tensor)>> = held
        .into_iter()
        .map(|(rows, values)| {
            (!rows.is_empty())
                .then(|| (Tensor::from_slice(&rows).to_device(dev), Tensor::from_slice(&values).to_device(dev)))
        })
        .collect();
    let hold = |f: usize, col: Tensor| match &held[f] {
        Some((rows, values)) => col.index_put(&[Some(rows)], values, false),
        None => col,
    };
    let prior = nd.prior_sample(q).to_device(dev);
    let mut x = Tensor::f_stack(&(0..num_features).map(|f| hold(f, prior.select(1, f as i64))).collect::<Vec<_>>(), 1)
        .ctx(ctx)?;
    for &(t, s) in steps {
        let t_b = Tensor::full([b.num_graphs], t as i64, (Kind::Int64, dev));
        let queries = NodeQueries { x_t: &x, t: &t_b, query_graph: &query_graph, query_offsets: &query_offsets };
        let logits = model.node_pred.model.forward_prepared(&graphs, queries, false)?;
        let mut cols: Vec<Tensor> = Vec::with_capacity(logits.len());
        for (f, l) in logits.iter().enumerate() {
            let mut probs = l.softmax(1, Kind::Float);
            // The x₀ prediction keeps to the allowed node types at every
            // step; the last step's draw keeps to the whole mask (feature 0,
            // the node type, is drawn first: the others' masks depend on it).
            // Restricting the other features at earlier steps would make a
            // node's noisy type decide its attributes, which then keep the
            // type: a bias the model never saw in training.
            let allowed = masks.filter(|_| f == 0 || s == 0).map(|m| m.rows(f, &query_graph, cols.first()));
            if let Some(m) = &allowed {
                probs = restrict_to(&probs, m);
            }
            let mut w = nd.posterior(f, &x.select(1, f as i64), &probs, (t, s))?;
            if let (Some(m), 0) = (&allowed, s) {
                w = restrict_to(&w, m);
            }
            cols.push(hold(f, w.f_multinomial(1, true).ctx(ctx)?.squeeze_dim(1)));
        }
        x = Tensor::f_stack(&cols, 1).ctx(ctx)?;
    }
    to_vec_i64(&x, ctx)
}

/// Denoises the edges into the newest layer of every graph of `b`: graph i
/// had `prev[i]` nodes (dummy included) before its `sizes[i]` new ones.
/// The encoder keeps its colours in the run's `cache` across steps and
/// layers. Returns per graph its new edges `(src, dst)` in local ids.
fn new_edges(
    model: &LayerDag,
    b: &Batch,
    cache: &mut EncoderCache,
    prev: &[i64],
    sizes: &[i64],
    prev_layer_first: Option<&[i64]>,
    steps: &[(usize, usize)],
) -> Result<Vec<Vec<(i64, i64)>>> {
    let ctx = "sampling edges";
    let dev = b.x.device();
    let ed = &model.edge_diffusion;
    let (mut cand_src, mut cand_dst, mut local) = (Vec::new(), Vec::new(), Vec::new());
    let mut offsets = vec![0i64];
    for (i, (&p, &n)) in prev.iter().zip(sizes).enumerate() {
        for v in p..p + n {
            for u in 1..p {
                cand_src.push(b.base[i] + u);
                cand_dst.push(b.base[i] + v);
                local.push((i, u, v));
            }
        }
        offsets.push(cand_src.len() as i64);
    }
    let long = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
    let num_prev: Vec<i64> = prev.iter().map(|&p| p - 1).collect();
    let layout = ed.layout(&long(&num_prev), &long(sizes), &long(&offsets))?;
    let (cand_src_v, cand_dst_v) = (cand_src, cand_dst);
    let (cand_src, cand_dst) = (long(&cand_src_v), long(&cand_dst_v));
    let mut z = ed.prior_sample(&layout)?;
    let mut last_p: Option<Tensor> = None;
    for &(t, s) in steps {
        // The colour graph over the true and the current noisy edges.
        let on = to_vec_i64(&z, ctx)?;
        let (mut es, mut ed_) = (Vec::new(), Vec::new());
        for ((&keep, &u), &v) in on.iter().zip(&cand_src_v).zip(&cand_dst_v) {
            if keep != 0 {
                es.push(u);
                ed_.push(v);
            }
        }
        let pass = b.cached_pass(&mut cache.colours, &es, &ed_);
        let t_b = Tensor::full([b.num_graphs], t as i64, (Kind::Int64, dev));
        let noisy_src = cand_src.f_masked_select(&z).ctx(ctx)?;
        let noisy_dst = cand_dst.f_masked_select(&z).ctx(ctx)?;
        let queries = EdgeQueries {
            noisy_src: &noisy_src,
            noisy_dst: &noisy_dst,
            t: &t_b,
            cand_src: &cand_src,
            cand_dst: &cand_dst,
            cand_graph: &layout.cand_graph,
        };
        let logits = model.edge_pred.model.forward_cached(b.input(), Some(&b.y), queries, &pass, &mut cache.tables)?;
        cache.compact().ctx(ctx)?;
        let p = ed.posterior(&z, &logits.softmax(1, Kind::Float), (t, s), &layout)?;
        let drawn = p.f_bernoulli().ctx(ctx)?.gt(0.5);
        z = crate::model::diffusion::repair(&drawn, &p, &layout)?;
        last_p = Some(p);
    }
    let mut on = to_vec_i64(&z, ctx)?;
    if let (Some(first), Some(p)) = (prev_layer_first, &last_p) {
        let p: Vec<f32> = Vec::try_from(p.to_kind(Kind::Float).to_device(Device::Cpu).contiguous()).ctx(ctx)?;
        keep_layers(&mut on, &p, &local, first);
    }
    let mut out = vec![Vec::new(); prev.len()];
    for (&(i, u, v), &keep) in local.iter().zip(&on) {
        if keep != 0 {
            out[i].push((u, v));
        }
    }
    Ok(out)
}

/// Moves one in-edge of every new node without an in-edge from the layer
/// just before its own: its least likely edge (by the final posterior `p`)
/// is replaced by the most likely candidate from that layer (the first on
/// ties). In-degrees stay as sampled, and the graph's Kahn layering equals
/// its generation layering. `on` and `p` run over the candidates `local`
/// (`(graph, src, dst)` in local ids, grouped by destination);
/// `prev_first[i]` is graph i's first node of the previous layer.
fn keep_layers(on: &mut [i64], p: &[f32], local: &[(usize, i64, i64)], prev_first: &[i64]) {
    let mut start = 0;
    while start < local.len() {
        let (i, _, v) = local[start];
        let mut end = start;
        while end < local.len() && local[end].0 == i && local[end].2 == v {
            end += 1;
        }
        let from_prev = |c: &usize| local[*c].1 >= prev_first[i];
        if !(start..end).filter(from_prev).any(|c| on[c] != 0) {
            let best = (start..end).filter(from_prev).fold(None, |best: Option<usize>, c| match best {
                Some(b) if p[b] >= p[c] => Some(b),
                _ => Some(c),
            });
            if let Some(c) = best {
                let worst = (start..end).filter(|&c| on[c] != 0).fold(None, |w: Option<usize>, c| match w {
                    Some(w) if p[w] <= p[c] => Some(w),
                    _ => Some(c),
                });
                if let Some(w) = worst {
                    on[w] = 0;
                }
                on[c] = 1;
            }
        }
        start = end;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::dataset::layout::RankContext;
    use crate::dataset::streams::LayerDagData;
    use crate::dataset::tokenize::detokenize;
    use crate::dataset::vocab::Representatives;
    use crate::model::config::tests::small;
    use crate::model::tests::{rng_lock, tiny_corpus_data, tiny_tpu_data};
    use crate::model::DataSpec;

    fn model(data: &LayerDagData, seed: i64) -> LayerDag {
        tch::manual_seed(seed);
        LayerDag::new(small(), DataSpec::from_graphs(&data.graphs), Device::Cpu).unwrap()
    }

    fn conditions(data: &LayerDagData, b: usize) -> Vec<Vec<f32>> {
        (0..b).map(|i| data.graphs.y(i % data.graphs.num_graphs()).to_vec()).collect()
    }

    fn opts(seed: u64) -> SampleOptions {
        SampleOptions { seed, max_level: Some(6), max_nodes: Some(40), ..Default::default() }
    }

    /// The §4 validity guarantees, checked on each sampled graph.
    fn check_structure(s: &SampledDag, spec: &DataSpec, o: &SampleOptions) {
        let dag = &s.dag;
        let layers = s.node_layers();
        assert_eq!(layers.len(), dag.num_nodes());
        assert!(!s.layer_sizes.is_empty() && s.layer_sizes.iter().all(|&n| n >= 1));
        assert!(s.layer_sizes.len() <= o.max_level.unwrap_or(spec.max_level));
        assert!(s.layer_sizes.iter().all(|&n| n <= spec.max_layer_size));
        assert!(dag.num_nodes() <= o.max_nodes.unwrap_or(usize::MAX));
        dag.layering().expect("acyclic");
        let mut has_in = vec![false; dag.num_nodes()];
        for (u, v) in dag.edges() {
            assert!(layers[u as usize] < layers[v as usize], "edge {u} -> {v} does not go to a later layer");
            has_in[v as usize] = true;
        }
        for (v, &l) in layers.iter().enumerate() {
            assert!(l == 1 || has_in[v], "node {v} of layer {l} has no in-edge");
        }
        for v in 0..dag.num_nodes() {
            for (c, &card) in dag.features(v).iter().zip(&spec.cardinalities) {
                assert!(*c < card);
            }
        }
    }

    #[test]
    fn sampled_dags_are_layered_and_within_the_caps() {
        let _rng = rng_lock();
        tch::set_num_threads(1);
        for (name, data) in [("tpu", tiny_tpu_data()), ("corpus", tiny_corpus_data())] {
            let m = model(data, 0);
            let o = opts(7);
            let start = Instant::now();
            let out = sample_layered(&m, &conditions(data, 4), &o).unwrap();
            assert_eq!(out.len(), 4);
            for s in &out {
                check_structure(s, &m.data, &o);
            }
            let nodes: Vec<usize> = out.iter().map(|s| s.dag.num_nodes()).collect();
            let layers: Vec<usize> = out.iter().map(|s| s.layer_sizes.len()).collect();
            eprintln!("{name}: nodes {nodes:?}, layers {layers:?} in {:?}", start.elapsed());
            assert!(out.iter().any(|s| s.layer_sizes.len() >= 2 && s.dag.num_edges() > 0));
            // A tight cap and depth bind.
            let tight = SampleOptions { seed: 8, max_level: Some(2), max_nodes: Some(3), ..Default::default() };
            for s in sample_layered(&m, &conditions(data, 3), &tight).unwrap() {
                check_structure(&s, &m.data, &tight);
            }
        }
    }

    /// With a size prior in the checkpoint each graph stops at the depth and
    /// node count its condition predicts; ignoring the prior lifts both caps.
    #[test]
    fn the_size_prior_caps_each_graph_by_its_condition() {
        use crate::dataset::size_prior::SizePrior;
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_corpus_data();
        let mut m = model(data, 4);
        let mut prior = SizePrior::fit(&data.graphs).unwrap();
        let y = conditions(data, 3);
        // An untrained model rarely draws "stop": without the prior it runs to max_level.
        let free = SampleOptions { seed: 3, max_level: Some(12), max_nodes: Some(200), ..Default::default() };
        let unbounded = sample_layered(&m, &y, &free).unwrap();
        assert!(
            unbounded.iter().any(|s| s.layer_sizes.len() > 4),
            "{:?}",
            unbounded.iter().map(|s| s.layer_sizes.len()).collect::<Vec<_>>()
        );
        // A prior of 4 layers and 9 nodes for every condition.
        prior.layers.weights.iter_mut().for_each(|w| *w = 0.0);
        prior.nodes.weights.iter_mut().for_each(|w| *w = 0.0);
        prior.layers.intercept = 2.0;
        prior.nodes.intercept = 9f64.log2();
        m.data.size_prior = Some(prior);
        for s in sample_layered(&m, &y, &free).unwrap() {
            check_structure(&s, &m.data, &free);
            assert!(s.layer_sizes.len() <= 4 && s.dag.num_nodes() <= 9, "{:?}", s.layer_sizes);
        }
        let ignored = SampleOptions { ignore_size_prior: true, ..free.clone() };
        assert_eq!(sample_layered(&m, &y, &ignored).unwrap(), unbounded);
    }

    /// A model encoding layer progress samples with the size prior's depth
    /// (or the fixed shape's), and its draws follow the progress it is given:
    /// the same seed with another depth gives other graphs.
    #[test]
    fn a_progress_model_samples_against_the_predicted_depth() {
        use crate::dataset::size_prior::SizePrior;
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_corpus_data();
        let mut cfg = small();
        cfg.general.progress_emb_size = 8;
        let mut spec = DataSpec::from_graphs(&data.graphs);
        let mut prior = SizePrior::fit(&data.graphs).unwrap();
        prior.layers.weights.iter_mut().for_each(|w| *w = 0.0);
        prior.layers.intercept = 3.0; // 8 layers
        spec.size_prior = Some(prior.clone());
        tch::manual_seed(4);
        let mut m = LayerDag::new(cfg, spec, Device::Cpu).unwrap();
        let y = conditions(data, 3);
        // Ignoring the prior as a cap (the same caps for both depths below).
        let o = SampleOptions {
            seed: 2,
            max_level: Some(6),
            max_nodes: Some(60),
            ignore_size_prior: true,
            ..Default::default()
        };
        let shallow = sample_layered(&m, &y, &o).unwrap();
        for s in &shallow {
            check_structure(s, &m.data, &o);
        }
        assert_eq!(sample_layered(&m, &y, &o).unwrap(), shallow);
        prior.layers.intercept = 6.0; // 64 layers: every layer earlier in its graph
        m.data.size_prior = Some(prior);
        assert_ne!(sample_layered(&m, &y, &o).unwrap(), shallow);
        let fixed = SampleOptions { layer_sizes: Some(vec![2, 3, 1]), ..o.clone() };
        for s in sample_layered(&m, &y, &fixed).unwrap() {
            assert_eq!(s.layer_sizes, vec![2, 3, 1]);
        }
        m.data.size_prior = None;
        let e = sample_layered(&m, &y, &o).unwrap_err().to_string();
        assert!(e.contains("size prior"), "{e}");
    }

    /// Required nodes come out in their layers with their values held, even
    /// past the node budget, and keep the graph going until their layer.
    #[test]
    fn required_nodes_are_placed_with_their_values() {
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_corpus_data();
        let m = model(data, 6);
        let y = conditions(data, 3);
        let card = &m.data.cardinalities;
        let held = |ty: u32, peer: u32| vec![(0, ty), (9, peer)];
        let mut mask = AttributeMask::allow_all(card);
        mask.require(RequiredNodes { layer: 5, count: 3, values: held(2, 1) });
        mask.require(RequiredNodes { layer: 1, count: 2, values: held(3, 2) });
        let o = SampleOptions {
            seed: 9,
            max_level: Some(6),
            max_nodes: Some(4),
            attribute_masks: Some(vec![mask.clone(); 3]),
            ..Default::default()
        };
        for s in sample_layered(&m, &y, &o).unwrap() {
            assert!(s.layer_sizes.len() >= 5 && s.layer_sizes[0] >= 2 && s.layer_sizes[4] >= 3, "{:?}", s.layer_sizes);
            let first_of = |layer: usize| s.layer_sizes[..layer - 1].iter().sum::<usize>();
            for v in 0..2 {
                assert_eq!((s.dag.features(v)[0], s.dag.features(v)[9]), (3, 2));
            }
            for v in first_of(5)..first_of(5) + 3 {
                assert_eq!((s.dag.features(v)[0], s.dag.features(v)[9]), (2, 1));
            }
        }
        let mut deep = mask.clone();
        deep.require(RequiredNodes { layer: 7, count: 1, values: held(2, 1) });
        let e = sample_layered(&m, &y, &SampleOptions { attribute_masks: Some(vec![deep; 3]), ..o.clone() })
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 7") && e.contains("max_level"), "{e}");
        let mut wide = mask;
        wide.require(RequiredNodes { layer: 2, count: m.data.max_layer_size + 1, values: held(0, 0) });
        let e = sample_layered(&m, &y, &SampleOptions { attribute_masks: Some(vec![wide; 3]), ..o })
            .unwrap_err()
            .to_string();
        assert!(e.contains("widest layer"), "{e}");
    }

    #[test]
    fn fixed_layer_sizes_give_every_graph_that_shape() {
        let _rng = rng_lock();
        let data = tiny_tpu_data();
        let m = model(data, 4);
        let y = conditions(data, 3);
        let shape = vec![2, 1, 3, 2];
        let o = SampleOptions { seed: 5, layer_sizes: Some(shape.clone()), keep_layers: true, ..Default::default() };
        for s in sample_layered(&m, &y, &o).unwrap() {
            assert_eq!(s.layer_sizes, shape);
            assert_eq!(s.dag.num_nodes(), 8);
            check_structure(&s, &m.data, &o);
        }
        for bad in [vec![], vec![2, 0], vec![m.data.max_layer_size + 1]] {
            let o = SampleOptions { layer_sizes: Some(bad.clone()), ..opts(0) };
            let e = sample_layered(&m, &y, &o).unwrap_err().to_string();
            assert!(e.contains("layer size"), "{bad:?}: {e}");
        }
    }

    /// An untrained corpus model draws attribute rows a mask forbids; with
    /// the masks every node of every graph keeps to its own graph's mask.
    #[test]
    fn attribute_masks_keep_each_graphs_nodes_within_them() {
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_corpus_data();
        let m = model(data, 6);
        let y = conditions(data, 3);
        let cards = &m.data.cardinalities;
        // Graph 0: no type 1, type 2 only in the first layer; type 0 only
        // with value 0 of feature 2 and 1 of feature 5. Graph 1: type 0 only.
        // Graph 2: anything.
        let mut strict = AttributeMask::allow_all(cards);
        strict.forbid_type(1);
        strict.first_layer_only(2);
        strict.restrict(0, 2, |c| c == 0);
        strict.restrict(0, 5, |c| c == 1);
        let mut compute = AttributeMask::allow_all(cards);
        (1..cards[0] as usize).for_each(|t| compute.forbid_type(t));
        let masks = vec![strict, compute, AttributeMask::allow_all(cards)];
        let free = SampleOptions { max_nodes: Some(30), ..opts(9) };
        let breaks = |dags: &[SampledDag], g: usize| {
            let layers = dags[g].node_layers();
            (0..dags[g].dag.num_nodes()).filter(|&v| !masks[g].allows(dags[g].dag.features(v), layers[v])).count()
        };
        let unmasked = sample_layered(&m, &y, &free).unwrap();
        assert!(breaks(&unmasked, 0) > 0 && breaks(&unmasked, 1) > 0, "the test needs rows the masks forbid");
        let type2_later = |d: &SampledDag| {
            let layers = d.node_layers();
            (0..d.dag.num_nodes()).filter(|&v| layers[v] > 1 && d.dag.features(v)[0] == 2).count()
        };
        assert!(type2_later(&unmasked[0]) > 0, "the test needs type 2 past the first layer");
        let masked = SampleOptions { attribute_masks: Some(masks.clone()), ..free.clone() };
        let out = sample_layered(&m, &y, &masked).unwrap();
        assert!(out[0].layer_sizes.len() > 1 && type2_later(&out[0]) == 0);
        for g in 0..3 {
            assert!(out[g].dag.num_nodes() > 0);
            assert_eq!(breaks(&out, g), 0, "graph {g}");
        }
        let wrong = SampleOptions { attribute_masks: Some(masks[..2].to_vec()), ..free.clone() };
        assert!(sample_dags(&m, &y, &wrong).unwrap_err().to_string().contains("2 attribute masks for 3"));
        let narrow = SampleOptions { attribute_masks: Some(vec![AttributeMask::allow_all(&[3]); 3]), ..free };
        assert!(sample_dags(&m, &y, &narrow).unwrap_err().to_string().contains("does not fit"));
    }

    /// Layer 2 = nodes 3, 4 (earlier: 1, 2); the new layer is 5, 6, 7.
    #[test]
    fn keep_layers_moves_the_least_likely_edge_to_the_previous_layer() {
        let local: Vec<(usize, i64, i64)> =
            [5, 6, 7].iter().flat_map(|&v| (1..=4).map(move |u| (0usize, u, v))).collect();
        #[rustfmt::skip]
        let p = [0.9, 0.1, 0.3, 0.6,   0.5, 0.5, 0.2, 0.1,   0.2, 0.8, 0.5, 0.5];
        #[rustfmt::skip]
        let mut on = vec![1, 0, 0, 0,   1, 0, 1, 0,   1, 1, 0, 0];
        keep_layers(&mut on, &p, &local, &[3]);
        // 5: its only edge (from 1) moves to 4, the likelier of 3 and 4.
        // 6: already has one from 3, untouched. 7: its least likely edge (from 1)
        // moves to 3 (3 and 4 tie: the first wins); in-degrees stay 1, 2, 2.
        #[rustfmt::skip]
        assert_eq!(on, vec![0, 0, 0, 1,   1, 0, 1, 0,   0, 1, 1, 0]);
    }

    #[test]
    fn same_seed_same_dags_other_seed_other_dags() {
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_tpu_data();
        let m = model(data, 1);
        let y = conditions(data, 4);
        let a = sample_dags(&m, &y, &opts(11)).unwrap();
        let b = sample_dags(&m, &y, &opts(11)).unwrap();
        assert_eq!(a, b);
        let c = sample_dags(&m, &y, &opts(12)).unwrap();
        assert_ne!(a, c);
        assert!(sample_dags(&m, &[], &opts(11)).unwrap().is_empty());
    }

    /// Asking for every step is the default sampler, draw for draw; fewer
    /// steps (down to one jump from T to 0) still give layered DAGs within
    /// the caps, and other DAGs.
    #[test]
    fn fewer_denoising_steps_still_give_layered_dags() {
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_tpu_data();
        let m = model(data, 1);
        let y = conditions(data, 4);
        let (nt, et) = (m.node_diffusion.schedule().num_steps(), m.edge_diffusion.schedule().num_steps());
        let default = sample_layered(&m, &y, &opts(11)).unwrap();
        let all = DenoisingSteps { node: Some(nt), edge: Some(et) };
        assert_eq!(sample_layered(&m, &y, &SampleOptions { steps: all, ..opts(11) }).unwrap(), default);
        for steps in [DenoisingSteps { node: Some(2), edge: Some(1) }, DenoisingSteps { node: Some(1), edge: None }] {
            let o = SampleOptions { steps, ..opts(11) };
            let fewer = sample_layered(&m, &y, &o).unwrap();
            for s in &fewer {
                check_structure(s, &m.data, &o);
            }
            assert_ne!(fewer, default, "{steps:?}");
        }
    }

    #[test]
    fn a_sampled_et_dag_detokenizes_into_a_valid_trace() {
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_corpus_data();
        let m = model(data, 2);
        let out = sample_dags(&m, &conditions(data, 2), &opts(5)).unwrap();
        for dag in &out {
            let det = detokenize(dag, &RankContext::standalone(), &Representatives::default()).unwrap();
            assert_eq!(det.trace.nodes.len(), dag.num_nodes());
            let findings = simulator::chakra::validate::validate_trace(&det.trace, Path::new("sampled.et"));
            assert_eq!(findings.errors(), 0, "{findings}");
        }
    }

    /// A briefly trained checkpoint, loaded back, samples valid graphs at the
    /// data's own depth, reproducibly.
    #[test]
    fn a_briefly_trained_checkpoint_samples_reproducibly() {
        use crate::train::{train, DataSource, TrainSpec};
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let out = crate::model::tests::temp_dir("sample-trained");
        let start = Instant::now();
        let spec = TrainSpec {
            config: crate::model::config::tests::SMALL_TOML.into(),
            data: DataSource::TpuTile(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/tpu-tile").into()),
            out: out.clone(),
            seed: 4,
            device: Device::Cpu,
            max_epochs: Some(1),
            resume: false,
            max_graphs: Some(12),
        };
        train(&spec, &mut |_| {}).unwrap();
        let trained = Instant::now();
        let m = LayerDag::load(&out, Device::Cpu).unwrap();
        let y: Vec<Vec<f32>> = (0..4).map(|i| vec![0.25 * i as f32]).collect();
        let o = SampleOptions {
            seed: 21,
            max_level: None,
            max_nodes: Some(60),
            device: Some(Device::Cpu),
            ..Default::default()
        };
        let a = sample_layered(&m, &y, &o).unwrap();
        for s in &a {
            check_structure(s, &m.data, &o);
        }
        let nodes: Vec<usize> = a.iter().map(|s| s.dag.num_nodes()).collect();
        eprintln!(
            "trained in {:?}, sampled {nodes:?} nodes (max_level {}) in {:?}",
            trained - start,
            m.data.max_level,
            trained.elapsed()
        );
        assert_eq!(a, sample_layered(&m, &y, &o).unwrap());
    }

    #[test]
    fn bad_requests_are_errors() {
        let _rng = rng_lock();
        tch::set_num_threads(1);
        let data = tiny_tpu_data();
        let m = model(data, 3);
        let y = conditions(data, 1);
        let e = sample_dags(&m, &[vec![0.0, 1.0]], &opts(0)).unwrap_err().to_string();
        assert!(e.contains("condition row 0 has 2 values"), "{e}");
        assert!(sample_dags(&m, &y, &SampleOptions { max_nodes: Some(0), ..opts(0) }).is_err());
        assert!(sample_dags(&m, &y, &SampleOptions { max_level: Some(0), ..opts(0) }).is_err());
        let other = SampleOptions { device: Some(Device::Cuda(0)), ..opts(0) };
        assert!(sample_dags(&m, &y, &other).unwrap_err().to_string().contains("model is on"));
        let nt = m.node_diffusion.schedule().num_steps();
        for node in [0, nt + 1] {
            let o = SampleOptions { steps: DenoisingSteps { node: Some(node), edge: None }, ..opts(0) };
            let e = sample_dags(&m, &y, &o).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{node} node-attribute denoising steps")) && e.contains(&format!("1 to {nt}")),
                "{e}"
            );
        }
        let o = SampleOptions { steps: DenoisingSteps { node: None, edge: Some(0) }, ..opts(0) };
        assert!(sample_dags(&m, &y, &o).unwrap_err().to_string().contains("edge denoising steps"));
    }
}
