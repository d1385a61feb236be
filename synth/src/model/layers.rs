//! The building blocks the three LayerDAG models share (layerdag.md §2.2),
//! named after the reference's modules (`src/model/layer_dag.py`) so that
//! variable names match its `state_dict` keys.
//!
//! | block | reference | variables |
//! |---|---|---|
//! | [`SinusoidalPE`] | `SinusoidalPE` | `div_term` (frozen) |
//! | [`ProgressEmbedding`] | (a Strata extension) | `div_term` (frozen) |
//! | [`MultiEmbedding`] | `MultiEmbedding` | `emb_list.{f}.weight` |
//! | [`Mlp`] | `nn.Sequential(Linear, GELU, Linear)` | `0.*`, `2.*` |
//! | [`BiMPNNLayer`] | `BiMPNNLayer` | `W.*`, `W_trans.*`, `W_self.*` |
//! | [`BiMPNNEncoder`] | `BiMPNNEncoder` | `x_n_emb`, `y_emb`, `proj_input`, `mpnn_layers.{k}`, `project_output_n`, `bn_g` |
//! | [`TransformerLayer`] | `TransformerLayer` | `to_v`, `to_qk`, `proj_new.0`, `norm1`, `out_proj.{0,2}`, `norm2` |
//!
//! Initialization follows PyTorch, not tch's defaults: `Linear` weights and
//! biases uniform in ±1/√fan_in, `to_v` / `to_qk` weights Xavier-uniform,
//! embeddings N(0, 1), BatchNorm and LayerNorm weights 1 and biases 0.
//! GELU is the exact (erf) form everywhere.
//!
//! # Message passing
//!
//! `A·X` with `A[dst, src] = 1` is a gather of `X` at the edge sources and an
//! `index_add` into the edge targets; `Aᵀ·X` swaps the two. That costs
//! O(E·h) per layer, needs no sparse tensor, has a plain autograd rule (the
//! gradient of `index_add` with respect to its source is a gather), and on
//! CPU it is deterministic. A sparse COO `mm` would coalesce (sort) the edge
//! list on every call, and dense N×N products waste O(N²) on graphs whose
//! edges are ~1 per node. On CUDA `index_add` uses atomics, so sums are not
//! bitwise reproducible there. A batch without edges skips `W` and `W_trans`,
//! as the reference does (their gradients stay undefined, so Adam leaves them
//! alone on that step).
//!
//! Multi-input blocks expose inherent `f_forward_t(…, train)` methods in the
//! spirit of [`nn::ModuleT`]; [`Mlp`] has a fallible `f_forward`, and the
//! other blocks with one tensor input implement [`nn::Module`] and are applied
//! only to tensors whose shapes construction already fixes. Everything that indexes with data (embeddings, gathers,
//! scatters, padding) uses libtorch's fallible ops.
//!
//! # Precision
//!
//! Every linear layer's product goes through `f_product`, which follows the
//! calling thread's [`Precision`]: fp32, or bfloat16 inputs with fp32 accumulation,
//! output and bias. The attention scores, embedding tables and everything
//! that is not a linear layer stay in fp32.

use tch::nn::{self, Module};
use tch::{Kind, TchError, Tensor};

use super::colour_cache::{CachedPass, EncoderTables};
use super::compress::CompressedTensors;
use super::config::{EncoderConfig, Pool};
use crate::dataset::streams::GraphTensors;
use crate::device::{precision, Precision};

type TResult<T> = std::result::Result<T, TchError>;

/// `nn.Linear(in, out)` with PyTorch's initialization.
pub(crate) fn linear(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    let bound = 1.0 / (in_dim as f64).sqrt();
    let c = nn::LinearConfig { ws_init: nn::Init::Uniform { lo: -bound, up: bound }, bs_init: None, bias: true };
    nn::linear(p, in_dim, out_dim, c)
}

/// `nn.Linear(in, out)` with Xavier-uniform weights (PyTorch's default bias).
fn xavier_linear(p: nn::Path, in_dim: i64, out_dim: i64) -> nn::Linear {
    let bound = (6.0 / (in_dim + out_dim) as f64).sqrt();
    let c = nn::LinearConfig { ws_init: nn::Init::Uniform { lo: -bound, up: bound }, bs_init: None, bias: true };
    nn::linear(p, in_dim, out_dim, c)
}

/// A linear layer applied to a tensor whose width comes from data, in the
/// calling thread's [`Precision`].
pub(crate) fn f_linear(l: &nn::Linear, x: &Tensor) -> TResult<Tensor> {
    f_product(x, &l.ws, l.bs.as_ref())
}

/// Rows of a bf16 product are padded to a multiple of this. oneDNN, which
/// runs libtorch's bf16 products on the CPU, compiles a kernel for every
/// shape it meets and caches it; the row counts of colour graphs and new
/// layers change with every batch, so unpadded, nearly every product paid a
/// compilation (a layer-size epoch on TPU Tile took longer than in fp32).
const BF16_ROW_MULTIPLE: i64 = 64;

/// `x·Wᵀ + b` for `x` `[M, in]`, `w` `[out, in]`, in the calling thread's
/// [`Precision`]. With bf16, `x` and `w` are rounded to bfloat16 (their
/// gradients come back through the same casts, to fp32), the product is
/// accumulated in fp32 and returned as fp32, and the bias is added in fp32.
pub(crate) fn f_product(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> TResult<Tensor> {
    let m = x.size().first().copied().unwrap_or(0);
    if precision() == Precision::Fp32 || x.kind() != Kind::Float || x.dim() != 2 || m == 0 {
        return x.f_linear(w, b);
    }
    let pad = (m + BF16_ROW_MULTIPLE - 1) / BF16_ROW_MULTIPLE * BF16_ROW_MULTIPLE - m;
    let xb = x.f_to_kind(Kind::BFloat16)?;
    let xb = if pad > 0 { xb.f_constant_pad_nd([0, 0, 0, pad])? } else { xb };
    let y = xb.f_linear(&w.f_to_kind(Kind::BFloat16)?, None::<Tensor>)?.f_to_kind(Kind::Float)?;
    let y = if pad > 0 { y.f_narrow(0, 0, m)? } else { y };
    match b {
        Some(b) => y.f_add(b),
        None => Ok(y),
    }
}

/// [`f_product`] written into `out` (`[M, out]`, e.g. rows of a larger
/// table): in fp32 straight from the matrix product, with bf16 through a
/// copy.
pub(crate) fn f_product_into(out: &Tensor, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> TResult<()> {
    if precision() == Precision::Fp32 && x.kind() == Kind::Float && x.dim() == 2 {
        let wt = w.f_tr()?;
        let _ = match b {
            Some(b) => b.f_addmm_out(out, x, &wt)?,
            None => x.f_mm_out(out, &wt)?,
        };
        return Ok(());
    }
    out.shallow_clone().f_copy_(&f_product(x, w, b)?)
}

/// Node `i`'s segment for `offsets = [0, n_0, n_0 + n_1, …]` (`B + 1`
/// cumulative counts): `[0]·n_0 ++ [1]·n_1 ++ …`.
pub fn segment_ids(offsets: &Tensor) -> TResult<Tensor> {
    let b = offsets.size1()? - 1;
    if b < 0 {
        return Err(TchError::Shape("offsets need at least one entry".into()));
    }
    let counts = offsets.f_narrow(0, 1, b)?.f_sub(&offsets.f_narrow(0, 0, b)?)?;
    let ids = Tensor::f_arange(b, (Kind::Int64, offsets.device()))?;
    let total = offsets.f_int64_value(&[b])?;
    ids.f_repeat_interleave_self_tensor(&counts, 0, total)
}

/// `Linear → GELU → Linear`, the reference's two-layer `nn.Sequential`
/// (variables `0.*` and `2.*`).
#[derive(Debug)]
pub struct Mlp {
    pub(crate) l0: nn::Linear,
    pub(crate) l2: nn::Linear,
}

impl Mlp {
    /// `Linear(in_dim, hidden) → GELU → Linear(hidden, out_dim)`.
    pub fn new(p: &nn::Path, in_dim: i64, hidden: i64, out_dim: i64) -> Self {
        Mlp { l0: linear(p / "0", in_dim, hidden), l2: linear(p / "2", hidden, out_dim) }
    }

    /// The block on an input whose width comes from data.
    pub fn f_forward(&self, xs: &Tensor) -> TResult<Tensor> {
        f_linear(&self.l2, &f_linear(&self.l0, xs)?.f_gelu("none")?)
    }
}

/// `SinusoidalPE(d)`: `cat(sin(p·div), cos(p·div))` with
/// `div = exp(arange(0, d, 2) · (−ln 10000 / d))`, all sines first, then all
/// cosines (not interleaved). `div_term` is a frozen variable, as in the
/// reference. Encodes `y`, the diffusion step `t`, and (in the reference,
/// optionally) levels.
#[derive(Debug)]
pub struct SinusoidalPE {
    div_term: Tensor,
    size: i64,
}

impl SinusoidalPE {
    /// An encoding of even width `size > 0` (the config validation checks it).
    pub fn new(p: &nn::Path, size: i64) -> Self {
        let div =
            (Tensor::arange_start_step(0, size, 2, (Kind::Int64, p.device())) * (-(10000f64.ln()) / size as f64)).exp();
        SinusoidalPE { div_term: p.add("div_term", div, false), size }
    }

    /// The output width.
    pub fn size(&self) -> i64 {
        self.size
    }
}

impl Module for SinusoidalPE {
    /// Positions of any shape with N elements (integers are cast to float)
    /// → `[N, size]`.
    fn forward(&self, position: &Tensor) -> Tensor {
        let arg = position.to_kind(Kind::Float).reshape([-1, 1]) * &self.div_term;
        Tensor::cat(&[arg.sin(), arg.cos()], -1)
    }
}

/// How far through its graph a predicted layer lies, for the pooled models
/// ([`super::config`], "Layer progress"): `SinusoidalPE(w)` of
/// `100 · progress` appended to the graph embedding; nothing at width 0.
#[derive(Debug)]
pub struct ProgressEmbedding(Option<SinusoidalPE>);

/// Progress 1 (the last layer) maps to this position, so that the fastest
/// sinusoid turns about 16 times over a graph.
const PROGRESS_SCALE: f64 = 100.0;

impl ProgressEmbedding {
    /// The encoding of even `width` under `p`, absent at 0.
    pub fn new(p: &nn::Path, width: i64) -> Self {
        ProgressEmbedding((width > 0).then(|| SinusoidalPE::new(p, width)))
    }

    /// The width it appends.
    pub fn size(&self) -> i64 {
        self.0.as_ref().map_or(0, SinusoidalPE::size)
    }

    /// `cat(h_g, PE(100 · progress))` (`[B, hidden + w]`) for the `[B]`
    /// progress values, or `h_g` itself when absent.
    pub fn f_append(&self, h_g: Tensor, progress: Option<&Tensor>) -> TResult<Tensor> {
        let Some(pe) = &self.0 else {
            return Ok(h_g);
        };
        let b = h_g.size()[0];
        match progress {
            Some(p) if p.size() == [b] => {
                Tensor::f_cat(&[h_g, pe.forward(&p.f_to_kind(Kind::Float)?.f_mul_scalar(PROGRESS_SCALE)?)], 1)
            }
            Some(p) => Err(TchError::Shape(format!("layer progress: expected [{b}], got {:?}", p.size()))),
            None => Err(TchError::Shape(format!(
                "the model encodes layer progress: pass the [{b}] progress values, got none"
            ))),
        }
    }
}

/// One embedding table per categorical feature, outputs concatenated:
/// `[N, F]` → `[N, F·d]`.
#[derive(Debug)]
pub struct MultiEmbedding {
    emb_list: Vec<nn::Embedding>,
    dim: i64,
}

impl MultiEmbedding {
    /// Tables of `vocab[f]` rows of width `dim` (`emb_list.{f}.weight`).
    pub fn new(p: &nn::Path, vocab: &[i64], dim: i64) -> Self {
        let list = p / "emb_list";
        let emb_list =
            vocab.iter().enumerate().map(|(f, &n)| nn::embedding(&list / f, n, dim, Default::default())).collect();
        MultiEmbedding { emb_list, dim }
    }

    /// Output width `F·d`.
    pub fn out_size(&self) -> i64 {
        self.emb_list.len() as i64 * self.dim
    }

    /// Looks up `x` (`[N, F]` Int64); an out-of-range category is an error.
    pub fn f_forward(&self, x: &Tensor) -> TResult<Tensor> {
        let f = self.emb_list.len() as i64;
        if x.dim() != 2 || x.size()[1] != f {
            return Err(TchError::Shape(format!("node features: expected [N, {f}], got {:?}", x.size())));
        }
        let parts = self
            .emb_list
            .iter()
            .enumerate()
            .map(|(i, e)| Tensor::f_embedding(&e.ws, &x.f_select(1, i as i64)?, -1, false, false))
            .collect::<TResult<Vec<_>>>()?;
        Tensor::f_cat(&parts, 1)
    }

    /// Per feature f, the table `E_f · w_fᵀ` (`[C_f, out]`), where `w_f` is
    /// block f of the columns of `w` (`[out, F·d]`): a linear layer's
    /// product with the embeddings, computed once per category instead of
    /// once per row.
    pub fn f_projected_tables(&self, w: &Tensor) -> TResult<Vec<Tensor>> {
        if w.dim() != 2 || w.size()[1] != self.out_size() {
            return Err(TchError::Shape(format!(
                "projection: expected [out, {}], got {:?}",
                self.out_size(),
                w.size()
            )));
        }
        self.emb_list
            .iter()
            .enumerate()
            .map(|(f, e)| e.ws.f_matmul(&w.f_narrow(1, f as i64 * self.dim, self.dim)?.f_tr()?))
            .collect()
    }

    /// `f_forward(x) · wᵀ` from the `tables` of [`Self::f_projected_tables`]:
    /// the sum of each feature's table row. An out-of-range category is an error.
    pub fn f_forward_projected(tables: &[Tensor], x: &Tensor) -> TResult<Tensor> {
        let f = tables.len() as i64;
        if x.dim() != 2 || x.size()[1] != f || f == 0 {
            return Err(TchError::Shape(format!("node features: expected [N, {f}], got {:?}", x.size())));
        }
        let mut sum = Tensor::f_embedding(&tables[0], &x.f_select(1, 0)?, -1, false, false)?;
        for (i, t) in tables.iter().enumerate().skip(1) {
            sum = sum.f_add(&Tensor::f_embedding(t, &x.f_select(1, i as i64)?, -1, false, false)?)?;
        }
        Ok(sum)
    }
}

/// How a model embeds the per-graph conditioning rows `[B, y_dim]` (see
/// [`super::config`] for the rule).
#[derive(Debug)]
pub enum CondEmbedding {
    /// Unconditional (or a zero-width embedding): `y` is ignored.
    Absent,
    /// The reference's scalar `y`: `SinusoidalPE(y_emb_size)`.
    Sinusoidal(SinusoidalPE),
    /// A vector `y`: `Linear(y_dim, y_emb_size)`.
    Linear(nn::Linear),
}

impl CondEmbedding {
    /// The embedding for `y_dim`-wide rows and output `width` (0: absent).
    pub fn new(p: nn::Path, y_dim: i64, width: i64) -> Self {
        match (y_dim, width) {
            (_, 0) | (0, _) => CondEmbedding::Absent,
            (1, w) => CondEmbedding::Sinusoidal(SinusoidalPE::new(&p, w)),
            (d, w) => CondEmbedding::Linear(linear(p, d, w)),
        }
    }

    /// `[B, width]`, or `None` when absent. `y` must be `[B, y_dim]`.
    pub fn f_forward(&self, y: Option<&Tensor>, num_graphs: i64) -> TResult<Option<Tensor>> {
        let want = match self {
            CondEmbedding::Absent => return Ok(None),
            CondEmbedding::Sinusoidal(_) => 1,
            CondEmbedding::Linear(l) => l.ws.size()[1],
        };
        let Some(y) = y else {
            return Err(TchError::Shape(format!(
                "the model is conditional: pass the [B, {want}] conditioning rows, got none"
            )));
        };
        if y.size() != [num_graphs, want] {
            return Err(TchError::Shape(format!(
                "conditioning rows: expected [{num_graphs}, {want}], got {:?}",
                y.size()
            )));
        }
        let y = y.f_to_kind(Kind::Float)?;
        Ok(Some(match self {
            CondEmbedding::Absent => unreachable!("returned above"),
            CondEmbedding::Sinusoidal(pe) => pe.forward(&y),
            CondEmbedding::Linear(l) => f_linear(l, &y)?,
        }))
    }
}

/// A batch of disjoint graphs as the encoders read it. Edges point from
/// `src` to `dst` (global node ids): `A[dst, src] = 1`.
#[derive(Clone, Copy, Debug)]
pub struct GraphInput<'a> {
    /// `[N, F]` Int64 categories (the dummy node has category `C_f`).
    pub x: &'a Tensor,
    /// `[E]` Int64 edge sources.
    pub src: &'a Tensor,
    /// `[E]` Int64 edge targets.
    pub dst: &'a Tensor,
    /// `[N]` Int64 graph of each node.
    pub node_graph: &'a Tensor,
    /// `B`.
    pub num_graphs: i64,
    /// The batch's colour graph ([`super::compress`]) over these nodes and
    /// edges, when it has been built: the encoder then computes every state
    /// once per colour. `None`: once per node.
    pub compressed: Option<&'a CompressedTensors>,
}

impl<'a> From<&'a GraphTensors> for GraphInput<'a> {
    fn from(g: &'a GraphTensors) -> Self {
        GraphInput {
            x: &g.x,
            src: &g.src,
            dst: &g.dst,
            node_graph: &g.node_graph,
            num_graphs: g.num_graphs,
            compressed: g.compressed.as_ref(),
        }
    }
}

/// `h' = GELU(A·W(h) + Aᵀ·W_trans(h) + W_self(h))`: sums over predecessors
/// and over successors, no normalization.
#[derive(Debug)]
pub struct BiMPNNLayer {
    w: nn::Linear,
    w_trans: nn::Linear,
    w_self: nn::Linear,
}

impl BiMPNNLayer {
    /// A layer `in_dim → out_dim`.
    pub fn new(p: &nn::Path, in_dim: i64, out_dim: i64) -> Self {
        BiMPNNLayer {
            w: linear(p / "W", in_dim, out_dim),
            w_trans: linear(p / "W_trans", in_dim, out_dim),
            w_self: linear(p / "W_self", in_dim, out_dim),
        }
    }

    /// One round of message passing over the edges `src → dst`.
    pub fn f_forward(&self, h: &Tensor, src: &Tensor, dst: &Tensor) -> TResult<Tensor> {
        let mut out = f_linear(&self.w_self, h)?;
        if src.numel() > 0 {
            // A·W(h): each node sums W(h) of its predecessors.
            let fwd = f_linear(&self.w, h)?.f_index_select(0, src)?;
            out = out.f_index_add(0, dst, &fwd)?;
            // Aᵀ·W_trans(h): each node sums W_trans(h) of its successors.
            let bwd = f_linear(&self.w_trans, h)?.f_index_select(0, dst)?;
            out = out.f_index_add(0, src, &bwd)?;
        }
        out.f_gelu("none")
    }
}

/// The bidirectional MPNN encoder: embeddings (+ conditioning) →
/// `proj_input` → K BiMPNN layers → jumping-knowledge concat of all K+1
/// states → `project_output_n`, then optionally a pooled, batch-normalized
/// graph embedding.
#[derive(Debug)]
pub struct BiMPNNEncoder {
    x_n_emb: MultiEmbedding,
    y_emb: CondEmbedding,
    proj_input: Mlp,
    mpnn_layers: Vec<BiMPNNLayer>,
    project_output_n: Mlp,
    pool: Option<(Pool, nn::BatchNorm)>,
    hidden: i64,
}

impl BiMPNNEncoder {
    /// An encoder over features with `vocab[f]` categories each (dummy
    /// included) and conditioning rows of width `y_dim` embedded into
    /// `y_width` (0: unconditional).
    pub fn new(p: &nn::Path, vocab: &[i64], cfg: &EncoderConfig, y_dim: i64, y_width: i64) -> Self {
        let x_n_emb = MultiEmbedding::new(&(p / "x_n_emb"), vocab, cfg.x_n_emb_size as i64);
        let y_emb = CondEmbedding::new(p / "y_emb", y_dim, y_width);
        let hidden = x_n_emb.out_size() + if matches!(y_emb, CondEmbedding::Absent) { 0 } else { y_width };
        let k = cfg.num_mpnn_layers as i64;
        let layers = p / "mpnn_layers";
        let bn =
            nn::BatchNormConfig { ws_init: nn::Init::Const(1.0), bs_init: nn::Init::Const(0.0), ..Default::default() };
        BiMPNNEncoder {
            x_n_emb,
            y_emb,
            proj_input: Mlp::new(&(p / "proj_input"), hidden, hidden, hidden),
            mpnn_layers: (0..k).map(|i| BiMPNNLayer::new(&(&layers / i), hidden, hidden)).collect(),
            project_output_n: Mlp::new(&(p / "project_output_n"), (k + 1) * hidden, hidden, hidden),
            pool: cfg.pool.map(|pool| (pool, nn::batch_norm1d(p / "bn_g", hidden, bn))),
            hidden,
        }
    }

    /// The width of node states and graph embeddings.
    pub fn hidden_size(&self) -> i64 {
        self.hidden
    }

    /// The number of message-passing rounds `K`.
    pub fn depth(&self) -> usize {
        self.mpnn_layers.len()
    }

    /// Node states `[N, hidden]`, or with pooling graph embeddings
    /// `[B, hidden]`. `y` holds one conditioning row per graph (`[B, y_dim]`),
    /// broadcast to the graph's nodes. `train` switches BatchNorm to batch
    /// statistics (and updates its running statistics).
    pub fn f_forward_t(&self, g: GraphInput, y: Option<&Tensor>, train: bool) -> TResult<Tensor> {
        if let Some(c) = g.compressed {
            return match self.f_forward_compressed(g, c, y, train)? {
                (h, Some(node_color)) => h.f_index_select(0, &node_color),
                (hg, None) => Ok(hg),
            };
        }
        self.f_forward_per_node(g, y, train)
    }

    /// Node states `[N, hidden]` as `(h, None)`, or, when `g` carries its
    /// colour graph, per-colour states `[C, hidden]` and each node's colour
    /// `[N]` (the node states are `h[colour]`). Without pooling only.
    pub fn f_node_states_t(&self, g: GraphInput, y: Option<&Tensor>, train: bool) -> TResult<(Tensor, Option<Tensor>)> {
        if self.pool.is_some() {
            return Err(TchError::Shape("node states of a pooled encoder".into()));
        }
        match g.compressed {
            Some(c) => self.f_forward_compressed(g, c, y, train),
            None => Ok((self.f_forward_per_node(g, y, train)?, None)),
        }
    }

    fn check_input(&self, g: &GraphInput) -> TResult<()> {
        let n = g.x.size()[0];
        if g.node_graph.size() != [n] {
            return Err(TchError::Shape(format!("node_graph: expected [{n}], got {:?}", g.node_graph.size())));
        }
        if g.src.size() != g.dst.size() || g.src.dim() != 1 {
            return Err(TchError::Shape(format!("edges: src {:?} and dst {:?}", g.src.size(), g.dst.size())));
        }
        Ok(())
    }

    /// The encoder over the colour graph `c` of `g`: every linear layer runs
    /// once per colour, and at each depth one matrix product serves the next
    /// layer's three projections and this depth's block of
    /// `project_output_n`'s first layer (whose input is the concatenation of
    /// all depths). With pooling the last linear layer runs after the pool
    /// (`Σ_v (W u_v + b) = W Σ_v u_v + n b`). Returns pooled graph embeddings
    /// `(hg, None)`, or per-colour states and the node → colour map.
    fn f_forward_compressed(
        &self,
        g: GraphInput,
        c: &CompressedTensors,
        y: Option<&Tensor>,
        train: bool,
    ) -> TResult<(Tensor, Option<Tensor>)> {
        self.check_input(&g)?;
        let k_max = self.mpnn_layers.len();
        if c.depth != k_max || c.node_color.size() != [g.x.size()[0]] {
            return Err(TchError::Shape(format!(
                "colour graph of depth {} over {:?} nodes for an encoder of {k_max} layers and {} nodes",
                c.depth,
                c.node_color.size(),
                g.x.size()[0]
            )));
        }
        let hd = self.hidden;
        let x0 = g.x.f_index_select(0, &c.rep0)?;
        let mut h = self.x_n_emb.f_forward(&x0)?;
        if let Some(hy) = self.y_emb.f_forward(y, g.num_graphs)? {
            h = Tensor::f_cat(&[h, hy.f_index_select(0, &g.node_graph.f_index_select(0, &c.rep0)?)?], 1)?;
        }
        let mut state = self.proj_input.f_forward(&h)?;
        let out0 = &self.project_output_n.l0;
        let edges = c.has_edges();
        let mut pre: Option<Tensor> = None;
        for k in 0..=k_max {
            // One product: [W_self; W; W_trans] of layer k + 1 (when there is
            // one; W and W_trans only with edges) and block k of out0.
            let layer = self.mpnn_layers.get(k);
            let parts = match layer {
                Some(_) if edges => 3,
                Some(_) => 1,
                None => 0,
            };
            let (w, b) = self.stacked_weights(k, edges)?;
            let prod = f_product(&state, &w, Some(&b))?;
            // One split (its backward concatenates) rather than one narrow per
            // part (each of whose backward would fill a zero tensor of the
            // whole product).
            let mut split = prod.f_split_with_sizes(vec![hd; parts + 1], 1)?;
            let jk = split.pop().expect("the out0 block");
            let jk = if k < k_max { jk.f_index_select(0, &c.anc[k])? } else { jk };
            pre = Some(match pre {
                None => jk,
                Some(p) => p.f_add(&jk)?,
            });
            if layer.is_some() {
                let mut next = split[0].f_index_select(0, &c.self_idx[k])?;
                if edges {
                    let fwd = split[1].f_index_select(0, &c.fwd_src[k])?;
                    let _ = next.f_index_add_(0, &c.fwd_dst[k], &fwd)?;
                    let bwd = split[2].f_index_select(0, &c.bwd_src[k])?;
                    let _ = next.f_index_add_(0, &c.bwd_dst[k], &bwd)?;
                }
                state = next.f_gelu("none")?;
            }
        }
        let pre = pre.expect("depth 0 is always there");
        let u = match &out0.bs {
            Some(b) => pre.f_add(b)?,
            None => pre,
        }
        .f_gelu("none")?;
        let out2 = &self.project_output_n.l2;
        let Some((pool, bn)) = &self.pool else {
            return Ok((f_linear(out2, &u)?, Some(c.node_color.shallow_clone())));
        };
        let u_nodes = u.f_index_select(0, &c.node_color)?;
        Ok((self.f_pool(pool, bn, &u_nodes, g.node_graph, g.num_graphs, train)?, None))
    }

    /// The weights and biases of depth k's one product: `[W_self; W;
    /// W_trans]` of layer k + 1 (when there is one; `W` and `W_trans` only
    /// `with_messages`) stacked on block k of `project_output_n`'s first
    /// layer (bias 0).
    fn stacked_weights(&self, k: usize, with_messages: bool) -> TResult<(Tensor, Tensor)> {
        let hd = self.hidden;
        let block = self.project_output_n.l0.ws.f_narrow(1, k as i64 * hd, hd)?;
        let (mut ws, mut bs) = (Vec::new(), Vec::new());
        if let Some(l) = self.mpnn_layers.get(k) {
            let lins: &[&nn::Linear] = if with_messages { &[&l.w_self, &l.w, &l.w_trans] } else { &[&l.w_self] };
            for lin in lins {
                ws.push(lin.ws.shallow_clone());
                let b = lin.bs.as_ref().ok_or_else(|| TchError::Shape("a BiMPNN linear without a bias".into()))?;
                bs.push(b.shallow_clone());
            }
        }
        bs.push(Tensor::f_zeros([hd], (block.kind(), block.device()))?);
        ws.push(block);
        Ok((Tensor::f_cat(&ws, 0)?, Tensor::f_cat(&bs, 0)?))
    }

    /// The widths of the [`EncoderTables`] for [`Self::f_forward_cached`]:
    /// `4 × hidden` per depth below K, `final_width` at depth K.
    pub fn cached_table_widths(&self, final_width: i64) -> Vec<i64> {
        let mut w = vec![4 * self.hidden; self.mpnn_layers.len()];
        w.push(final_width);
        w
    }

    /// One pass of a sampling run over the colours `pass` of a
    /// [`super::colour_cache::ColourCache`]: only the pass's new colours are
    /// computed, the way [`Self::f_forward_t`] computes a colour graph, and
    /// appended to `tables`. A row at depth k < K holds
    /// `[W_self; W; W_trans](s_k)` (biases included, the next round's
    /// messages) and the jumping-knowledge sum so far, `Σ_{j≤k} block_j(s_j)`;
    /// a row at depth K holds `finish(u)`, with `u` the activation of
    /// `project_output_n`'s hidden layer ([`Self::f_output`] applies the
    /// rest; [`Self::f_pooled_cached`] keeps `u` and pools it). `g`'s nodes are the ids `pass` names, `y`
    /// holds one conditioning row per graph. Returns the depth-K table; node
    /// v's row is `pass.node_row[v]`. For inference: no gradients flow.
    pub fn f_forward_cached(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        pass: &CachedPass,
        tables: &mut EncoderTables,
        finish: &dyn Fn(Tensor) -> TResult<Tensor>,
    ) -> TResult<Tensor> {
        // Inference only: the rows are written in place.
        let _no_grad = tch::no_grad_guard();
        let k_max = self.mpnn_layers.len();
        if pass.depth != k_max || tables.depths() != k_max + 1 || pass.node_row.len() as i64 != g.x.size()[0] {
            return Err(TchError::Shape(format!(
                "a cached pass of depth {} over {} nodes and {} tables for an encoder of {k_max} layers and {} nodes",
                pass.depth,
                pass.node_row.len(),
                tables.depths(),
                g.x.size()[0]
            )));
        }
        let dev = g.x.device();
        let long = |v: &[i64]| Tensor::from_slice(v).to_device(dev);
        let hd = self.hidden;
        let out0 = &self.project_output_n.l0;
        if tables.stacked.is_empty() {
            tables.stacked = (0..k_max).map(|k| self.stacked_weights(k, true)).collect::<TResult<_>>()?;
        }
        for k in 0..=k_max {
            if pass.num_new[k] == 0 {
                continue;
            }
            // The new colours' states at depth k.
            let (state, self_row) = if k == 0 {
                let rep = long(&pass.rep0);
                let mut h = self.x_n_emb.f_forward(&g.x.f_index_select(0, &rep)?)?;
                if let Some(hy) = self.y_emb.f_forward(y, g.num_graphs)? {
                    h = Tensor::f_cat(&[h, hy.f_index_select(0, &g.node_graph.f_index_select(0, &rep)?)?], 1)?;
                }
                (self.proj_input.f_forward(&h)?, None)
            } else {
                let prev = tables.rows(k - 1)?;
                let self_row = long(&pass.self_row[k - 1]);
                let mut next = prev.f_narrow(1, 0, hd)?.f_index_select(0, &self_row)?;
                for (part, from, to) in
                    [(1, &pass.fwd_src[k - 1], &pass.fwd_dst[k - 1]), (2, &pass.bwd_src[k - 1], &pass.bwd_dst[k - 1])]
                {
                    if !from.is_empty() {
                        let msgs = prev.f_narrow(1, part * hd, hd)?.f_index_select(0, &long(from))?;
                        let _ = next.f_index_add_(0, &long(to), &msgs)?;
                    }
                }
                (next.f_gelu("none")?, Some(self_row))
            };
            let pre_below = match &self_row {
                Some(r) => Some(tables.rows(k - 1)?.f_narrow(1, 3 * hd, hd)?.f_index_select(0, r)?),
                None => None,
            };
            let mut rows = tables.push_rows(k, pass.first_new[k], pass.num_new[k])?;
            if k < k_max {
                let (w, b) = &tables.stacked[k];
                f_product_into(&rows, &state, w, Some(b))?;
                if let Some(p) = &pre_below {
                    let _ = rows.f_narrow(1, 3 * hd, hd)?.f_add_(p)?;
                }
            } else {
                let jk = f_product(&state, &out0.ws.f_narrow(1, k as i64 * hd, hd)?, None)?;
                let pre = match &pre_below {
                    Some(p) => p.f_add(&jk)?,
                    None => jk,
                };
                let u = match &out0.bs {
                    Some(b) => pre.f_add(b)?,
                    None => pre,
                }
                .f_gelu("none")?;
                rows.f_copy_(&finish(u)?)?;
            }
        }
        tables.rows(k_max)
    }

    /// `project_output_n`'s output layer on the hidden activations `u`
    /// (rows of a cached pass's final table): node states.
    pub fn f_output(&self, u: &Tensor) -> TResult<Tensor> {
        f_linear(&self.project_output_n.l2, u)
    }

    /// Graph embeddings `[B, hidden]` of a pooled encoder for one cached
    /// pass ([`Self::f_forward_cached`] keeping the hidden activations, then
    /// the pool over each node's row). For inference.
    pub fn f_pooled_cached(
        &self,
        g: GraphInput,
        y: Option<&Tensor>,
        pass: &CachedPass,
        tables: &mut EncoderTables,
    ) -> TResult<Tensor> {
        let Some((pool, bn)) = &self.pool else {
            return Err(TchError::Shape("graph embeddings of an encoder without pooling".into()));
        };
        let u = self.f_forward_cached(g, y, pass, tables, &Ok)?;
        let node_row = Tensor::from_slice(&pass.node_row).to_device(g.x.device());
        let _no_grad = tch::no_grad_guard();
        self.f_pool(pool, bn, &u.f_index_select(0, &node_row)?, g.node_graph, g.num_graphs, false)
    }

    /// Pools the nodes' hidden activations `u_nodes` per graph, with
    /// `project_output_n`'s output layer after the pool
    /// (`Σ_v (W u_v + b) = W Σ_v u_v + n b`), then the batch norm.
    fn f_pool(
        &self,
        pool: &Pool,
        bn: &nn::BatchNorm,
        u_nodes: &Tensor,
        node_graph: &Tensor,
        num_graphs: i64,
        train: bool,
    ) -> TResult<Tensor> {
        let hd = self.hidden;
        let opts = (u_nodes.kind(), u_nodes.device());
        let n = u_nodes.size()[0];
        let out2 = &self.project_output_n.l2;
        let sum_u = Tensor::f_zeros([num_graphs, hd], opts)?.f_index_add(0, node_graph, u_nodes)?;
        let counts = Tensor::f_zeros([num_graphs], opts)?.f_index_add(0, node_graph, &Tensor::f_ones([n], opts)?)?;
        let hg = match pool {
            Pool::Sum => {
                let hg = f_product(&sum_u, &out2.ws, None)?;
                match &out2.bs {
                    Some(b) => hg.f_add(&counts.f_unsqueeze(1)?.f_mul(&b.f_unsqueeze(0)?)?)?,
                    None => hg,
                }
            }
            Pool::Mean => f_linear(out2, &sum_u.f_div(&counts.f_clamp_min(1.0)?.f_unsqueeze(1)?)?)?,
        };
        // A graph without nodes pools to zero, as index_add leaves it.
        let hg = if matches!(pool, Pool::Mean) {
            hg.f_mul(&counts.f_gt(0.0)?.f_to_kind(hg.kind())?.f_unsqueeze(1)?)?
        } else {
            hg
        };
        pooled_norm(bn, &hg, train)
    }

    /// The straightforward encoder: every state once per node.
    fn f_forward_per_node(&self, g: GraphInput, y: Option<&Tensor>, train: bool) -> TResult<Tensor> {
        let n = g.x.size()[0];
        if g.node_graph.size() != [n] {
            return Err(TchError::Shape(format!("node_graph: expected [{n}], got {:?}", g.node_graph.size())));
        }
        if g.src.size() != g.dst.size() || g.src.dim() != 1 {
            return Err(TchError::Shape(format!("edges: src {:?} and dst {:?}", g.src.size(), g.dst.size())));
        }
        let mut h = self.x_n_emb.f_forward(g.x)?;
        if let Some(hy) = self.y_emb.f_forward(y, g.num_graphs)? {
            h = Tensor::f_cat(&[h, hy.f_index_select(0, g.node_graph)?], 1)?;
        }
        let mut states = vec![self.proj_input.f_forward(&h)?];
        for layer in &self.mpnn_layers {
            let next = layer.f_forward(states.last().expect("proj_input state"), g.src, g.dst)?;
            states.push(next);
        }
        let h = self.project_output_n.f_forward(&Tensor::f_cat(&states, 1)?)?;
        let Some((pool, bn)) = &self.pool else {
            return Ok(h);
        };
        let opts = (h.kind(), h.device());
        let mut hg = Tensor::f_zeros([g.num_graphs, self.hidden], opts)?.f_index_add(0, g.node_graph, &h)?;
        if *pool == Pool::Mean {
            let ones = Tensor::f_ones([n], opts)?;
            let counts = Tensor::f_zeros([g.num_graphs], opts)?.f_index_add(0, g.node_graph, &ones)?;
            hg = hg.f_div(&counts.f_clamp_min(1.0)?.f_unsqueeze(1)?)?;
        }
        pooled_norm(bn, &hg, train)
    }
}

/// The pooled encoders' BatchNorm over graph states (momentum 0.1, eps 1e-5,
/// as the reference's `nn.BatchNorm1d`), fallible where `nn::BatchNorm` panics.
fn pooled_norm(bn: &nn::BatchNorm, hg: &Tensor, train: bool) -> TResult<Tensor> {
    Tensor::f_batch_norm(
        hg,
        bn.ws.as_ref(),
        bn.bs.as_ref(),
        Some(&bn.running_mean),
        Some(&bn.running_var),
        train,
        0.1,
        1e-5,
        true,
    )
}

/// A post-norm transformer block over each new layer's node set
/// (`h = LN1(h + Dropout(proj_new(attn)))`, `h = LN2(h + Dropout(FFN(h)))`),
/// attention restricted to the nodes of the same example, no positional
/// encoding.
#[derive(Debug)]
pub struct TransformerLayer {
    to_v: nn::Linear,
    to_qk: nn::Linear,
    proj_new: nn::Linear,
    norm1: nn::LayerNorm,
    out_proj: Mlp,
    norm2: nn::LayerNorm,
    num_heads: i64,
    dropout: f64,
}

impl TransformerLayer {
    /// A block of width `d` with `num_heads` heads (`num_heads` divides `d`).
    pub fn new(p: &nn::Path, d: i64, num_heads: i64, dropout: f64) -> Self {
        TransformerLayer {
            to_v: xavier_linear(p / "to_v", d, d),
            to_qk: xavier_linear(p / "to_qk", d, 2 * d),
            proj_new: linear(p / "proj_new" / "0", d, d),
            norm1: nn::layer_norm(p / "norm1", vec![d], Default::default()),
            out_proj: Mlp::new(&(p / "out_proj"), d, 4 * d, d),
            norm2: nn::layer_norm(p / "norm2", vec![d], Default::default()),
            num_heads,
            dropout,
        }
    }

    fn drop(&self, x: Tensor, train: bool) -> TResult<Tensor> {
        if self.dropout > 0.0 && train {
            x.f_dropout(self.dropout, train)
        } else {
            Ok(x)
        }
    }

    /// `h` holds the new nodes of all examples, example by example
    /// (`query_graph[i]` is node i's example, `query_offsets` the `B + 1`
    /// cumulative counts).
    pub fn f_forward_t(
        &self,
        h: &Tensor,
        query_graph: &Tensor,
        query_offsets: &Tensor,
        train: bool,
    ) -> TResult<Tensor> {
        self.f_forward_counted(h, query_graph, query_offsets, None, train)
    }

    /// [`Self::f_forward_t`] where row i stands for `counts[i]` identical
    /// nodes of its example (`log_counts` holds `ln counts`, `[Q]`). With no
    /// positional encoding identical nodes get identical outputs, and
    /// attending to c copies of a key is attending once with its score
    /// raised by `ln c`, so this is the block over all the copies, computed
    /// once per distinct row.
    pub fn f_forward_counted(
        &self,
        h: &Tensor,
        query_graph: &Tensor,
        query_offsets: &Tensor,
        log_counts: Option<&Tensor>,
        train: bool,
    ) -> TResult<Tensor> {
        let q = h.size()[0];
        if q == 0 {
            return Ok(h.shallow_clone());
        }
        let attn = self.attention(h, query_graph, query_offsets, log_counts)?;
        let h = self.norm1.forward(&h.f_add(&self.drop(f_linear(&self.proj_new, &attn)?, train)?)?);
        let ffn = self.drop(self.out_proj.f_forward(&h)?, train)?;
        Ok(self.norm2.forward(&(h + ffn)))
    }

    /// Multi-head attention within each example: pad to the largest example,
    /// mask the padding keys with −∞, scale by `head_dim^-0.5`, unpad.
    fn attention(
        &self,
        h: &Tensor,
        query_graph: &Tensor,
        query_offsets: &Tensor,
        log_counts: Option<&Tensor>,
    ) -> TResult<Tensor> {
        let (q, d) = (h.size()[0], h.size()[1]);
        let b = query_offsets.size1()? - 1;
        if query_graph.size() != [q] || b < 1 {
            return Err(TchError::Shape(format!(
                "queries: {q} nodes, query_graph {:?}, query_offsets {:?}",
                query_graph.size(),
                query_offsets.size()
            )));
        }
        let dev = h.device();
        let counts = query_offsets.f_narrow(0, 1, b)?.f_sub(&query_offsets.f_narrow(0, 0, b)?)?;
        let max_n = counts.f_max()?.f_int64_value(&[])?;
        let pos = Tensor::f_arange(q, (Kind::Int64, dev))?.f_sub(&query_offsets.f_index_select(0, query_graph)?)?;
        let flat = query_graph.f_mul_scalar(max_n)?.f_add(&pos)?;
        let (heads, dh) = (self.num_heads, d / self.num_heads);
        let pad = |x: &Tensor| -> TResult<Tensor> {
            Tensor::f_zeros([b * max_n, d], (x.kind(), dev))?
                .f_index_add(0, &flat, x)?
                .f_view([b, max_n, heads, dh])?
                .f_permute([0, 2, 1, 3])
        };
        let v = pad(&f_linear(&self.to_v, h)?)?;
        let qk = f_linear(&self.to_qk, h)?.f_chunk(2, -1)?;
        let (qp, kp) = (pad(&qk[0])?, pad(&qk[1])?);
        let mut dot = qp.f_matmul(&kp.f_transpose(-1, -2)?)?.f_mul_scalar((dh as f64).powf(-0.5))?;
        if let Some(lc) = log_counts {
            let per_key = Tensor::f_zeros([b * max_n], (dot.kind(), dev))?.f_index_add(0, &flat, lc)?;
            dot = dot.f_add(&per_key.f_view([b, 1, 1, max_n])?)?;
        }
        let padding =
            Tensor::f_arange(max_n, (Kind::Int64, dev))?.f_unsqueeze(0)?.f_ge_tensor(&counts.f_unsqueeze(1)?)?;
        let dot = dot.f_masked_fill(&padding.f_view([b, 1, 1, max_n])?, f64::NEG_INFINITY)?;
        let out = dot.f_softmax(-1, Kind::Float)?.f_matmul(&v)?;
        out.f_permute([0, 2, 1, 3])?.f_reshape([b * max_n, d])?.f_index_select(0, &flat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::set_precision;
    use crate::model::tests::{rng_lock, tiny_tpu_batches, TestBatches};
    use tch::Device;

    /// With bf16 products a linear layer still returns fp32 rows, one per
    /// input row whatever the padding, within bfloat16 rounding of the fp32
    /// product but not equal to it (the inputs were rounded), and its
    /// gradients reach the fp32 weights and inputs, close to fp32's.
    #[test]
    fn bf16_products_round_the_inputs_and_keep_rows_and_gradients() {
        let _rng = rng_lock();
        tch::manual_seed(3);
        let opts = (Kind::Float, Device::Cpu);
        for m in [1, 63, 64, 65, 200] {
            let (x0, w0, b) = (Tensor::randn([m, 96], opts), Tensor::randn([40, 96], opts), Tensor::randn([40], opts));
            let run = |p: Precision| {
                let (x, w) = (x0.copy().set_requires_grad(true), w0.copy().set_requires_grad(true));
                set_precision(p);
                let y = f_product(&x, &w, Some(&b));
                set_precision(Precision::Fp32);
                let y = y.unwrap();
                (&y * &y).sum(Kind::Float).backward();
                (y.detach(), x.grad().copy(), w.grad().copy())
            };
            let (exact, gx32, gw32) = run(Precision::Fp32);
            let (got, gx16, gw16) = run(Precision::Bf16);
            assert_eq!((got.size(), got.kind()), (vec![m, 40], Kind::Float), "m = {m}");
            let rel = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]) / b.abs().max().double_value(&[]);
            let err = rel(&got, &exact);
            assert!(err > 0.0 && err < 0.02, "m = {m}: relative error {err}");
            assert_eq!((gx16.kind(), gw16.kind()), (Kind::Float, Kind::Float));
            assert!(rel(&gx16, &gx32) < 0.03 && rel(&gw16, &gw32) < 0.03, "m = {m}: gradients");
        }
        // Not a float matrix (or no rows): the fp32 path, unchanged.
        set_precision(Precision::Bf16);
        let empty = f_product(&Tensor::zeros([0, 8], opts), &Tensor::ones([3, 8], opts), None);
        set_precision(Precision::Fp32);
        assert_eq!(empty.unwrap().size(), [0, 3]);
    }

    /// The encoding equals `sin(p·10000^(−2i/d))` for `i < d/2`, then the
    /// cosines, at a few positions.
    #[test]
    fn sinusoidal_pe_matches_the_closed_form() {
        let vs = nn::VarStore::new(Device::Cpu);
        let d = 8;
        let pe = SinusoidalPE::new(&vs.root(), d);
        let pos = [0.0f64, 1.0, 3.0, 17.5, 64.0];
        let out = pe.forward(&Tensor::from_slice(&pos).unsqueeze(1));
        assert_eq!(out.size(), vec![5, d]);
        for (r, &p) in pos.iter().enumerate() {
            for i in 0..d / 2 {
                let w = (-(10000f64.ln()) * (2 * i) as f64 / d as f64).exp();
                let sin = out.double_value(&[r as i64, i]);
                let cos = out.double_value(&[r as i64, i + d / 2]);
                assert!((sin - (p * w).sin()).abs() < 1e-5, "sin p={p} i={i}: {sin}");
                assert!((cos - (p * w).cos()).abs() < 1e-5, "cos p={p} i={i}: {cos}");
            }
        }
        // div_term is a frozen variable under the reference's name.
        assert_eq!(vs.variables()["div_term"].size(), vec![d / 2]);
        assert!(vs.trainable_variables().is_empty());
    }

    #[test]
    fn segment_ids_expand_offsets() {
        let ids = segment_ids(&Tensor::from_slice(&[0i64, 2, 2, 5])).unwrap();
        assert_eq!(Vec::<i64>::try_from(&ids).unwrap(), vec![0, 0, 2, 2, 2]);
    }

    /// The message-passing layer equals the dense formula
    /// `GELU(A·W(h) + Aᵀ·W_trans(h) + W_self(h))` with `A[dst, src] = 1`.
    #[test]
    fn bimpnn_layer_equals_the_dense_formula() {
        let _rng = rng_lock();
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = BiMPNNLayer::new(&vs.root(), 4, 3);
        let h = Tensor::randn([5, 4], (Kind::Float, Device::Cpu));
        let (src, dst) = (Tensor::from_slice(&[0i64, 0, 2, 3]), Tensor::from_slice(&[1i64, 2, 4, 4]));
        let got = layer.f_forward(&h, &src, &dst).unwrap();
        let a = Tensor::zeros([5, 5], (Kind::Float, Device::Cpu));
        let a = a.index_put(&[Some(dst.shallow_clone()), Some(src.shallow_clone())], &Tensor::from(1.0f32), false);
        let want =
            (a.matmul(&layer.w.forward(&h)) + a.tr().matmul(&layer.w_trans.forward(&h)) + layer.w_self.forward(&h))
                .gelu("none");
        assert!(got.allclose(&want, 1e-5, 1e-6, false));
        // No edges: only W_self.
        let none = Tensor::zeros([0], (Kind::Int64, Device::Cpu));
        let got = layer.f_forward(&h, &none, &none).unwrap();
        assert!(got.allclose(&layer.w_self.forward(&h).gelu("none"), 1e-6, 1e-6, false));
    }

    /// Attention restricted to each example equals running the block on each
    /// example alone.
    #[test]
    fn transformer_attends_within_each_example_only() {
        let _rng = rng_lock();
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let block = TransformerLayer::new(&vs.root(), 8, 2, 0.0);
        let h = Tensor::randn([6, 8], (Kind::Float, Device::Cpu));
        let offsets = Tensor::from_slice(&[0i64, 1, 4, 6]);
        let graph = segment_ids(&offsets).unwrap();
        let all = block.f_forward_t(&h, &graph, &offsets, false).unwrap();
        assert_eq!(all.size(), vec![6, 8]);
        for (lo, hi) in [(0, 1), (1, 4), (4, 6)] {
            let part = h.narrow(0, lo, hi - lo);
            let one = Tensor::from_slice(&[0i64, hi - lo]);
            let alone = block.f_forward_t(&part, &segment_ids(&one).unwrap(), &one, false).unwrap();
            assert!(alone.allclose(&all.narrow(0, lo, hi - lo), 1e-5, 1e-6, false));
        }
        // An example without new nodes (a finished graph) changes nothing and
        // leaks no NaN into the others, forward or backward.
        let h = h.set_requires_grad(true);
        let gap = Tensor::from_slice(&[0i64, 1, 1, 4, 6]);
        let out = block.f_forward_t(&h, &segment_ids(&gap).unwrap(), &gap, true).unwrap();
        assert!(out.allclose(&all, 1e-5, 1e-6, false));
        out.sum(Kind::Float).backward();
        assert!(bool::try_from(h.grad().isfinite().all()).unwrap());
    }

    /// Rows repeated within an example, run once each with their counts,
    /// give what the block gives every copy; counts of 1 change nothing.
    #[test]
    fn a_counted_row_stands_for_its_copies() {
        let _rng = rng_lock();
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let block = TransformerLayer::new(&vs.root(), 8, 2, 0.0);
        let distinct = Tensor::randn([5, 8], (Kind::Float, Device::Cpu));
        // Example 0: rows 0, 1, 1, 1; example 1: rows 2, 3, 4, 4.
        let copies = Tensor::from_slice(&[0i64, 1, 1, 1, 2, 3, 4, 4]);
        let all_offsets = Tensor::from_slice(&[0i64, 4, 8]);
        let all = block.f_forward_t(
            &distinct.index_select(0, &copies),
            &segment_ids(&all_offsets).unwrap(),
            &all_offsets,
            false,
        );
        let offsets = Tensor::from_slice(&[0i64, 2, 5]);
        let log_counts = Tensor::from_slice(&[1.0f32, 3.0, 1.0, 1.0, 2.0]).log();
        let graph = segment_ids(&offsets).unwrap();
        let once = block.f_forward_counted(&distinct, &graph, &offsets, Some(&log_counts), false).unwrap();
        assert!(once.index_select(0, &copies).allclose(&all.unwrap(), 1e-5, 1e-6, false));
        // Ignoring the counts is another function.
        let plain = block.f_forward_t(&distinct, &graph, &offsets, false).unwrap();
        assert!(!plain.allclose(&once, 1e-3, 1e-3, false));
        let ones = Tensor::zeros([5], (Kind::Float, Device::Cpu));
        assert!(block
            .f_forward_counted(&distinct, &graph, &offsets, Some(&ones), false)
            .unwrap()
            .allclose(&plain, 1e-6, 1e-7, false));
    }

    /// Encoder shapes on a real TPU Tile batch: node states without pooling,
    /// graph embeddings with; a bad category or a missing condition is an
    /// error, not a panic.
    #[test]
    fn encoder_shapes_on_real_graphs() {
        let _rng = rng_lock();
        let TestBatches { node_count, .. } = tiny_tpu_batches();
        let g = GraphInput::from(&node_count.graphs);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut cfg = EncoderConfig { x_n_emb_size: 4, y_emb_size: 6, num_mpnn_layers: 2, pool: None };
        let enc = BiMPNNEncoder::new(&(vs.root() / "a"), &[48], &cfg, 1, 6);
        let h = enc.f_forward_t(g, Some(&node_count.y), false).unwrap();
        assert_eq!(h.size(), vec![node_count.graphs.x.size()[0], 10]);
        cfg.pool = Some(Pool::Mean);
        let enc = BiMPNNEncoder::new(&(vs.root() / "b"), &[48], &cfg, 1, 6);
        let hg = enc.f_forward_t(g, Some(&node_count.y), true).unwrap();
        assert_eq!(hg.size(), vec![node_count.graphs.num_graphs, 10]);
        assert!(enc.f_forward_t(g, None, false).is_err());
        let bad = node_count.graphs.x.full_like(48);
        assert!(enc.f_forward_t(GraphInput { x: &bad, ..g }, Some(&node_count.y), false).is_err());
    }
}
