//! The two discrete diffusions of LayerDAG (layerdag.md §2.6–§2.8,
//! reference `src/model/diffusion.py` and `LayerDAG.posterior*`): node
//! attributes under marginal-transition D3PM, edges under a binary D3PM
//! whose marginal is set per step, both on the same cosine schedule, both
//! x₀-parameterized (the denoisers output logits for the clean data and the
//! losses are plain cross-entropies against it).
//!
//! # Schedule ([`NoiseSchedule`])
//!
//! With `n = T + 2` and `i = 0..=T+1`:
//! `ab_raw[i] = cos²(π/2 · (i/(T+1) + s)/(1 + s))`, `s = 0.008`, normalized by
//! `ab_raw[0]`; `α_j = ab_raw[j+1]/ab_raw[j]` for `j = 0..=T`;
//! `β = clamp(1 − α, 0, 0.9999)` in float32, `α = 1 − β`,
//! `ᾱ = exp(cumsum(log α))`. So there are `T + 1` entries, index 0 is already
//! slightly noisy (ᾱ₀ = 0.99883 for T = 64) and the clamp makes `α_T = 1e-4`,
//! `ᾱ_T ≈ 0`. The arithmetic follows the reference's dtypes: float64 up to
//! `1 − α`, float32 after, the cumulative sum accumulated in float64 as
//! PyTorch's CPU kernel does.
//!
//! # Node attributes ([`NodeDiffusion`])
//!
//! Per feature f, `Q_t = α_t I + (1 − α_t) 1 m_fᵀ` and
//! `Q̄_t = ᾱ_t I + (1 − ᾱ_t) 1 m_fᵀ` with `m_f` the training marginal. Training
//! draws one `t ~ U{0..T}` per example (shared by the layer's nodes) and
//! resamples each node from `onehot(x₀)·Q̄_t`. Sampling starts from `x_T ~ m_f`
//! and steps with the posterior
//! `p(x_s = k | x_t) = Σ_c p̂(x₀ = c) · Q_t[k, x_t] · Q̄_s[c, k] / Q̄_t[c, x_t]`
//! (`s = t − 1`; a zero denominator counts as 1; not renormalized).
//!
//! # Edges ([`EdgeDiffusion`])
//!
//! For a step with `B` candidate sources the marginal edge probability is
//! `m = min(avg_in_deg, B)/B`. Forward: `p = ᾱ_t z₀ + (1 − ᾱ_t) m`,
//! `z_t ~ Bernoulli(p)`, then the **repair**: each new node left without an
//! in-edge gets the candidate with the largest `p` (the first one on ties,
//! like `argmax`). The posterior uses the 2×2 matrices
//! `Q = α I + (1 − α)[[1 − m, m], [1 − m, m]]` per candidate, normalized by
//! `sum + 1e-6`. The prior is `Bernoulli(m)` plus the repair.
//!
//! Random draws use libtorch's generator (seed with `tch::manual_seed`); the
//! order of draws differs from the reference's per-example loop, so the same
//! seed gives different (equally distributed) noise than PyTorch.

use tch::{Device, Kind, Reduction, Tensor};

use super::error::{ModelError, Result, TorchContext};
use super::layers::segment_ids;

/// The cosine-schedule offset `s`.
pub const COSINE_S: f64 = 0.008;

/// The clamp on `β`.
pub const MAX_BETA: f32 = 0.9999;

/// `β_t`, `α_t` and `ᾱ_t` for `t = 0..=T` (see the module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    betas: Vec<f32>,
    alphas: Vec<f32>,
    alpha_bars: Vec<f32>,
}

impl NoiseSchedule {
    /// The reference's cosine schedule for `T = num_steps` (T + 1 entries).
    pub fn cosine(num_steps: usize) -> Self {
        let n = num_steps + 2;
        // numpy.linspace(0, n, n): i · n/(n − 1), so t/n = i/(T + 1).
        let raw: Vec<f64> = (0..n)
            .map(|i| {
                let t = i as f64 * n as f64 / (n - 1) as f64;
                (0.5 * std::f64::consts::PI * ((t / n as f64) + COSINE_S) / (1.0 + COSINE_S)).cos().powi(2)
            })
            .collect();
        let raw: Vec<f64> = raw.iter().map(|v| v / raw[0]).collect();
        let betas: Vec<f32> = raw.windows(2).map(|w| (1.0 - w[1] / w[0]) as f32).collect();
        let alphas: Vec<f32> = betas.iter().map(|&b| 1.0 - b.clamp(0.0, MAX_BETA)).collect();
        let mut acc = 0f64;
        let alpha_bars = alphas
            .iter()
            .map(|&a| {
                acc += a.ln() as f64;
                (acc as f32).exp()
            })
            .collect();
        NoiseSchedule { betas, alphas, alpha_bars }
    }

    /// `T`.
    pub fn num_steps(&self) -> usize {
        self.alphas.len() - 1
    }

    /// `β_t` before the clamp (as the reference stores it).
    pub fn beta(&self, t: usize) -> f64 {
        self.betas[t] as f64
    }

    /// `α_t`.
    pub fn alpha(&self, t: usize) -> f64 {
        self.alphas[t] as f64
    }

    /// `ᾱ_t`.
    pub fn alpha_bar(&self, t: usize) -> f64 {
        self.alpha_bars[t] as f64
    }

    /// All `ᾱ_t`, `t = 0..=T`.
    pub fn alpha_bars(&self) -> &[f32] {
        &self.alpha_bars
    }

    /// `α_{t|s}`, the signal kept from step `s` to step `t > s`: `α_t` for one
    /// step, else `ᾱ_t / ᾱ_s`. Marginal transitions compose,
    /// `Q_{s+1}⋯Q_t = α_{t|s} I + (1 − α_{t|s}) 1 mᵀ`, so a reverse step may
    /// jump from `t` to any earlier `s` exactly.
    pub fn alpha_between(&self, t: usize, s: usize) -> f64 {
        if s + 1 == t {
            self.alpha(t)
        } else {
            self.alpha_bar(t) / self.alpha_bar(s)
        }
    }

    /// The reverse steps `(t, s)` of a sampler that takes `steps` of them
    /// (`1..=T`), from `T` down to 0 at evenly spaced steps
    /// (`round(i·T/steps)`): `steps = T` gives `(T, T − 1), …, (1, 0)`, the
    /// reference's sampler. `None` for `steps` outside `1..=T`.
    pub fn reverse_steps(&self, steps: usize) -> Option<Vec<(usize, usize)>> {
        let big_t = self.num_steps();
        if steps == 0 || steps > big_t {
            return None;
        }
        let at = |i: usize| ((i * big_t) as f64 / steps as f64).round() as usize;
        Some((1..=steps).rev().map(|i| (at(i), at(i - 1))).collect())
    }

    fn alpha_bar_tensor(&self, device: Device) -> Tensor {
        Tensor::from_slice(&self.alpha_bars).to_device(device)
    }

    fn check_step(&self, t: usize, s: usize) -> Result<()> {
        if t == 0 || t > self.num_steps() || s >= t {
            return Err(ModelError::mismatch(
                "diffusion posterior",
                format!("steps t = {t} → s = {s}, expected 1 ≤ t ≤ {} and s < t", self.num_steps()),
            ));
        }
        Ok(())
    }
}

/// Draws one step per example, uniform over `0..=T`, as Int64 `[n]`.
fn sample_steps(schedule: &NoiseSchedule, n: i64, device: Device) -> Tensor {
    Tensor::randint(schedule.num_steps() as i64 + 1, [n], (Kind::Int64, device))
}

/// Marginal-transition D3PM over the categorical node attributes.
#[derive(Debug)]
pub struct NodeDiffusion {
    schedule: NoiseSchedule,
    alpha_bars: Tensor,
    /// Per feature, `m_f` as a `[C_f]` float tensor.
    marginals: Vec<Tensor>,
}

impl NodeDiffusion {
    /// The diffusion with per-feature marginals `m_f` (each a distribution
    /// over the feature's real categories) and `T = num_steps`.
    pub fn new(marginals: &[Vec<f64>], num_steps: usize, device: Device) -> Self {
        let schedule = NoiseSchedule::cosine(num_steps);
        let marginals = marginals
            .iter()
            .map(|m| Tensor::from_slice(&m.iter().map(|&v| v as f32).collect::<Vec<_>>()).to_device(device))
            .collect();
        NodeDiffusion { alpha_bars: schedule.alpha_bar_tensor(device), schedule, marginals }
    }

    /// The schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// Number of features.
    pub fn num_features(&self) -> usize {
        self.marginals.len()
    }

    /// Real categories of feature `f`.
    pub fn num_classes(&self, f: usize) -> i64 {
        self.marginals[f].size()[0]
    }

    /// One training step per example, uniform over `0..=T`: Int64 `[n]`.
    pub fn sample_t(&self, n: i64) -> Tensor {
        sample_steps(&self.schedule, n, self.alpha_bars.device())
    }

    /// `ᾱ I + (1 − ᾱ) 1 m_fᵀ` (`[C_f, C_f]`) for any `alpha` (use `α_t` for
    /// `Q_t`, `ᾱ_t` for `Q̄_t`).
    pub fn transition(&self, f: usize, alpha: f64) -> Tensor {
        let m = &self.marginals[f];
        let c = m.size()[0];
        Tensor::eye(c, (Kind::Float, m.device())) * alpha + m.unsqueeze(0).expand([c, c], false) * (1.0 - alpha)
    }

    /// Noises clean rows `x0` (`[Q, F]` Int64) to the steps `t` (`[Q]` Int64,
    /// one per node: expand the per-example step through `query_graph`).
    /// Each node is drawn from `onehot(x₀)·Q̄_t`, independently per feature.
    pub fn q_sample(&self, x0: &Tensor, t: &Tensor) -> Result<Tensor> {
        let ctx = "noising node attributes";
        let f = self.marginals.len() as i64;
        if x0.dim() != 2 || x0.size()[1] != f || t.size() != [x0.size()[0]] {
            return Err(ModelError::mismatch(
                ctx,
                format!("x0 {:?} and t {:?}, expected [Q, {f}] and [Q]", x0.size(), t.size()),
            ));
        }
        if x0.size()[0] == 0 {
            return Ok(x0.shallow_clone());
        }
        let ab = self.alpha_bars.f_index_select(0, t).ctx(ctx)?.unsqueeze(1);
        let cols = self
            .marginals
            .iter()
            .enumerate()
            .map(|(d, m)| {
                let onehot = x0.f_select(1, d as i64)?.f_one_hot(m.size()[0])?.to_kind(Kind::Float);
                let probs = &onehot * &ab + m.unsqueeze(0) * (ab.neg() + 1.0);
                Ok(probs.f_multinomial(1, true)?.squeeze_dim(1))
            })
            .collect::<std::result::Result<Vec<_>, tch::TchError>>()
            .ctx(ctx)?;
        Tensor::f_stack(&cols, 1).ctx(ctx)
    }

    /// The prior `x_T ~ m_f` for `q` nodes: `[q, F]` Int64.
    pub fn prior_sample(&self, q: i64) -> Tensor {
        let cols: Vec<Tensor> = self
            .marginals
            .iter()
            .map(|m| {
                if q == 0 {
                    Tensor::zeros([0], (Kind::Int64, m.device()))
                } else {
                    m.unsqueeze(0).expand([q, m.size()[0]], false).multinomial(1, true).squeeze_dim(1)
                }
            })
            .collect();
        Tensor::stack(&cols, 1)
    }

    /// The unnormalized reverse step for feature `f` from `t` to `s < t`
    /// (`t` in `1..=T`; `s = t − 1` is the reference's step): `x_t` is `[Q]`
    /// Int64, `x0_probs` the denoiser's softmax `[Q, C_f]`; returns
    /// `[Q, C_f]` weights for `x_s` (sample them with `multinomial`, which
    /// normalizes).
    pub fn posterior(&self, f: usize, x_t: &Tensor, x0_probs: &Tensor, (t, s): (usize, usize)) -> Result<Tensor> {
        let ctx = "node posterior";
        self.schedule.check_step(t, s)?;
        let c = self.num_classes(f);
        let q_t = self.transition(f, self.schedule.alpha_between(t, s));
        let q_bar_s = self.transition(f, self.schedule.alpha_bar(s));
        let q_bar_t = self.transition(f, self.schedule.alpha_bar(t));
        let z_t = x_t.f_one_hot(c).ctx(ctx)?.to_kind(Kind::Float);
        // left[r, k] = Q_t[k, x_t]; den[r, c] = Q̄_t[c, x_t] (0 → 1).
        let left = z_t.f_matmul(&q_t.tr()).ctx(ctx)?;
        let den = z_t.matmul(&q_bar_t.tr());
        let den = den.masked_fill(&den.eq(0.0), 1.0);
        let weighted = x0_probs.f_div(&den).ctx(ctx)?.f_matmul(&q_bar_s).ctx(ctx)?;
        Ok(left * weighted)
    }
}

/// Where each candidate pair of an edge batch sits: its example, its row
/// (global new-node index) and its marginal `m`.
#[derive(Debug)]
pub struct CandidateLayout {
    /// `[C]` Int64 example of each candidate.
    pub cand_graph: Tensor,
    /// `[C]` Int64 row (new node, numbered across the batch) of each candidate.
    pub row: Tensor,
    /// Total new nodes (rows).
    pub num_rows: i64,
    /// `[C]` Int64 column (candidate source, 0..num_prev) of each candidate.
    pub col: Tensor,
    /// The most candidate sources of any example (the width of a row).
    pub max_cols: i64,
    /// `[C]` Float marginal edge probability of each candidate's example.
    pub m: Tensor,
}

/// Binary D3PM over the candidate edges into a new layer.
#[derive(Debug)]
pub struct EdgeDiffusion {
    schedule: NoiseSchedule,
    alpha_bars: Tensor,
    avg_in_deg: f64,
}

impl EdgeDiffusion {
    /// The diffusion for a training set with `avg_in_deg` edges per non-source
    /// node and `T = num_steps`.
    pub fn new(avg_in_deg: f64, num_steps: usize, device: Device) -> Self {
        let schedule = NoiseSchedule::cosine(num_steps);
        EdgeDiffusion { alpha_bars: schedule.alpha_bar_tensor(device), schedule, avg_in_deg }
    }

    /// The schedule.
    pub fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    /// `avg_in_deg`.
    pub fn avg_in_deg(&self) -> f64 {
        self.avg_in_deg
    }

    /// The marginal edge probability with `num_prev` candidate sources:
    /// `min(avg_in_deg, B)/B`, so each new node expects `avg_in_deg` in-edges.
    pub fn marginal(&self, num_prev: i64) -> f64 {
        if num_prev <= 0 {
            0.0
        } else {
            self.avg_in_deg.min(num_prev as f64) / num_prev as f64
        }
    }

    /// One training step per example, uniform over `0..=T`: Int64 `[n]`.
    pub fn sample_t(&self, n: i64) -> Tensor {
        sample_steps(&self.schedule, n, self.alpha_bars.device())
    }

    /// The layout of a batch whose example i has `num_prev[i]` candidate
    /// sources and `num_new[i]` new nodes, candidates row-major over new
    /// nodes, `cand_offsets` the `B + 1` cumulative candidate counts.
    pub fn layout(&self, num_prev: &Tensor, num_new: &Tensor, cand_offsets: &Tensor) -> Result<CandidateLayout> {
        let ctx = "edge candidate layout";
        let prev = Vec::<i64>::try_from(num_prev).ctx(ctx)?;
        let new = Vec::<i64>::try_from(num_new).ctx(ctx)?;
        let offsets = Vec::<i64>::try_from(cand_offsets).ctx(ctx)?;
        if prev.len() != new.len() || offsets.len() != prev.len() + 1 {
            return Err(ModelError::mismatch(
                ctx,
                format!("{} num_prev, {} num_new, {} offsets", prev.len(), new.len(), offsets.len()),
            ));
        }
        for (i, w) in offsets.windows(2).enumerate() {
            if w[1] - w[0] != prev[i] * new[i] {
                return Err(ModelError::mismatch(
                    ctx,
                    format!("example {i} has {} candidates, expected {} × {}", w[1] - w[0], prev[i], new[i]),
                ));
            }
        }
        let dev = cand_offsets.device();
        let cand_graph = segment_ids(cand_offsets).ctx(ctx)?;
        let c = cand_graph.size()[0];
        let local = Tensor::arange(c, (Kind::Int64, dev)) - cand_offsets.index_select(0, &cand_graph);
        let row_start: Vec<i64> = new.iter().scan(0, |acc, &n| Some(std::mem::replace(acc, *acc + n))).collect();
        let row_start = Tensor::from_slice(&row_start).to_device(dev);
        let width = num_prev.to_device(dev).clamp_min(1).index_select(0, &cand_graph);
        let row_in = local.f_div_tensor_mode(&width, "floor").ctx(ctx)?;
        let col = &local - &row_in * &width;
        let row = row_start.index_select(0, &cand_graph) + row_in;
        let m: Vec<f32> = prev.iter().map(|&b| self.marginal(b) as f32).collect();
        let m = Tensor::from_slice(&m).to_device(dev).index_select(0, &cand_graph);
        let max_cols = prev.iter().copied().max().unwrap_or(0).max(1);
        Ok(CandidateLayout { cand_graph, row, num_rows: new.iter().sum(), col, max_cols, m })
    }

    /// Noises the clean 0/1 candidate labels (`[C]`) to the per-example steps
    /// `t` (`[B]` Int64): `z_t ~ Bernoulli(ᾱ_t z₀ + (1 − ᾱ_t) m)`, then the
    /// repair. Returns a `[C]` Bool mask of noisy edges.
    pub fn q_sample(&self, label: &Tensor, t: &Tensor, layout: &CandidateLayout) -> Result<Tensor> {
        let ctx = "noising edges";
        if label.size() != layout.row.size() {
            return Err(ModelError::mismatch(
                ctx,
                format!("{:?} labels for {:?} candidates", label.size(), layout.row.size()),
            ));
        }
        let ab = self.alpha_bars.f_index_select(0, t).ctx(ctx)?.f_index_select(0, &layout.cand_graph).ctx(ctx)?;
        let p = &ab * label.to_kind(Kind::Float) + (ab.neg() + 1.0) * &layout.m;
        let z = p.f_bernoulli().ctx(ctx)?.gt(0.5);
        repair(&z, &p, layout)
    }

    /// The prior `Bernoulli(m)` plus the repair (which then picks each row's
    /// first candidate): a `[C]` Bool mask.
    pub fn prior_sample(&self, layout: &CandidateLayout) -> Result<Tensor> {
        let z = layout.m.f_bernoulli().ctx("edge prior")?.gt(0.5);
        repair(&z, &layout.m, layout)
    }

    /// `P(edge)` for `x_s`, `s < t` (`t − 1` is the reference's step), per
    /// candidate (`[C]` Float): the posterior of the noisy mask `z_t` (`[C]`,
    /// 0/1 or Bool) given the denoiser's softmax `x0_probs` (`[C, 2]`), with
    /// each candidate's marginal from `layout`, normalized by `sum + 1e-6`.
    pub fn posterior(
        &self,
        z_t: &Tensor,
        x0_probs: &Tensor,
        (t, s): (usize, usize),
        layout: &CandidateLayout,
    ) -> Result<Tensor> {
        let ctx = "edge posterior";
        self.schedule.check_step(t, s)?;
        let (a_t, ab_s, ab_t) =
            (self.schedule.alpha_between(t, s), self.schedule.alpha_bar(s), self.schedule.alpha_bar(t));
        let z = z_t.to_kind(Kind::Int64);
        let z_hot = z.f_one_hot(2).ctx(ctx)?.to_kind(Kind::Float);
        let m = &layout.m;
        // [1 − m, m] per candidate, and its entry at z_t.
        let mk = Tensor::stack(&[m.neg() + 1.0, m.shallow_clone()], 1);
        let m_z = (&mk * &z_hot).sum_dim_intlist(1, true, Kind::Float);
        let left = &z_hot * a_t + &m_z * (1.0 - a_t);
        let den = &z_hot * ab_t + &m_z * (1.0 - ab_t);
        let den = den.masked_fill(&den.eq(0.0), 1.0);
        let w = x0_probs.f_div(&den).ctx(ctx)?;
        let right = &w * ab_s + &mk * w.sum_dim_intlist(1, true, Kind::Float) * (1.0 - ab_s);
        let prob = left * right;
        let prob = &prob / (prob.sum_dim_intlist(1, true, Kind::Float) + 1e-6);
        Ok(prob.select(1, 1))
    }
}

/// Gives every row (new node) without an edge in `mask` the candidate with
/// the largest `p` in that row, the first one on ties (`argmax`, which
/// returns the first maximum). The rows are laid out densely
/// (`[rows, max_cols]`, padding −∞) so that one `argmax` serves them all.
pub fn repair(mask: &Tensor, p: &Tensor, layout: &CandidateLayout) -> Result<Tensor> {
    let ctx = "edge repair";
    let c = mask.size()[0];
    if c == 0 {
        return Ok(mask.shallow_clone());
    }
    let (dev, r) = (mask.device(), layout.num_rows);
    let (row, col) = (&layout.row, &layout.col);
    let has = Tensor::zeros([r], (Kind::Float, dev)).f_index_add(0, row, &mask.to_kind(Kind::Float)).ctx(ctx)?.gt(0.0);
    let dense = Tensor::full([r, layout.max_cols], f64::NEG_INFINITY, (Kind::Float, dev))
        .f_index_put(&[Some(row.shallow_clone()), Some(col.shallow_clone())], &p.to_kind(Kind::Float), false)
        .ctx(ctx)?;
    let best = dense.argmax(1, false);
    let chosen = col.eq_tensor(&best.index_select(0, row)).logical_and(&has.logical_not().index_select(0, row));
    Ok(mask.to_kind(Kind::Bool).logical_or(&chosen))
}

/// The node denoiser's loss: the mean over features of the cross-entropy of
/// each feature's x₀ logits (`[Q, C_f]`) against the clean rows `x0`
/// (`[Q, F]`), each averaged over all new nodes of the batch.
pub fn node_loss(logits: &[Tensor], x0: &Tensor) -> Result<Tensor> {
    let ctx = "node-attribute loss";
    if x0.dim() != 2 || x0.size()[1] != logits.len() as i64 || logits.is_empty() {
        return Err(ModelError::mismatch(ctx, format!("{} feature heads for targets {:?}", logits.len(), x0.size())));
    }
    let mut total: Option<Tensor> = None;
    for (f, l) in logits.iter().enumerate() {
        let ce =
            l.f_cross_entropy_loss(&x0.select(1, f as i64), None::<Tensor>, Reduction::Mean, -100, 0.0).ctx(ctx)?;
        total = Some(match total {
            None => ce,
            Some(t) => t + ce,
        });
    }
    Ok(total.expect("at least one feature") / logits.len() as f64)
}

/// The edge denoiser's loss: unweighted two-class cross-entropy of the x₀
/// logits (`[C, 2]`) against the 0/1 labels (`[C]`), averaged over every
/// candidate of the batch.
pub fn edge_loss(logits: &Tensor, label: &Tensor) -> Result<Tensor> {
    logits.f_cross_entropy_loss(label, None::<Tensor>, Reduction::Mean, -100, 0.0).ctx("edge loss")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::rng_lock;

    /// layerdag.md §2.6 lists the measured ᾱ of the T = 16 edge schedule and
    /// the ends of the T = 64 node schedule.
    #[test]
    fn cosine_schedule_matches_the_measured_values() {
        let measured = [
            0.9893, 0.9623, 0.9198, 0.8631, 0.7944, 0.7157, 0.6299, 0.5396, 0.4481, 0.3583, 0.2732, 0.1958, 0.1285,
            0.0737, 0.0332, 0.0084, 0.0000,
        ];
        let s = NoiseSchedule::cosine(16);
        assert_eq!(s.num_steps(), 16);
        assert_eq!(s.alpha_bars().len(), 17);
        for (t, &v) in measured.iter().enumerate() {
            assert!((s.alpha_bar(t) - v).abs() < 5e-5, "T=16: ᾱ_{t} = {} vs {v}", s.alpha_bar(t));
        }
        assert!(s.alpha_bar(16) < 1e-4 && s.alpha_bar(16) > 0.0);
        let s = NoiseSchedule::cosine(64);
        assert_eq!(s.alpha_bars().len(), 65);
        assert!((s.alpha_bar(0) - 0.99883).abs() < 5e-6, "ᾱ_0 = {}", s.alpha_bar(0));
        assert!((s.alpha_bar(64) - 5.7e-8).abs() < 0.1e-8, "ᾱ_64 = {}", s.alpha_bar(64));
        // The clamp bites only at the last step, and ᾱ is the product of α.
        assert!((s.alpha(64) - 1e-4).abs() < 1e-7 && s.beta(64) > 0.9999);
        let prod: f64 = (0..=64).map(|t| s.alpha(t)).product();
        assert!((prod - s.alpha_bar(64)).abs() / s.alpha_bar(64) < 1e-4);
        assert!(s.alpha_bars().windows(2).all(|w| w[1] < w[0]));
    }

    fn diffusion() -> NodeDiffusion {
        NodeDiffusion::new(&[vec![0.5, 0.3, 0.2, 0.0], vec![0.9, 0.1]], 8, Device::Cpu)
    }

    /// With a one-hot x₀ the posterior is Bayes' rule
    /// `Q_t[k, x_t] Q̄_s[c, k] / Q̄_t[c, x_t]`, a distribution.
    #[test]
    fn node_posterior_is_bayes_rule() {
        let d = diffusion();
        let s = d.schedule().clone();
        for t in [1usize, 4, 8] {
            let q_t = d.transition(0, s.alpha(t));
            let qb_s = d.transition(0, s.alpha_bar(t - 1));
            let qb_t = d.transition(0, s.alpha_bar(t));
            for x0 in 0..3i64 {
                for xt in 0..3i64 {
                    let probs = Tensor::from_slice(&[x0]).one_hot(4).to_kind(Kind::Float);
                    let got = d.posterior(0, &Tensor::from_slice(&[xt]), &probs, (t, t - 1)).unwrap();
                    let den = qb_t.double_value(&[x0, xt]);
                    let mut sum = 0.0;
                    for k in 0..4 {
                        let want = q_t.double_value(&[k, xt]) * qb_s.double_value(&[x0, k]) / den;
                        assert!((got.double_value(&[0, k]) - want).abs() < 1e-5, "t={t} x0={x0} xt={xt} k={k}");
                        sum += want;
                    }
                    assert!((sum - 1.0).abs() < 1e-4, "t={t}: posterior sums to {sum}");
                }
            }
        }
        assert!(d
            .posterior(0, &Tensor::from_slice(&[0i64]), &Tensor::ones([1, 4], (Kind::Float, Device::Cpu)), (0, 0))
            .is_err());
    }

    /// A jump from t to s < t − 1 is Bayes' rule with the product of the
    /// one-step transitions `Q_{s+1}⋯Q_t` (built here step by step, not from
    /// `ᾱ_t / ᾱ_s`): the same as taking each step with x₀ known.
    #[test]
    fn a_posterior_jump_uses_the_product_of_the_steps_it_skips() {
        let d = diffusion();
        let sch = d.schedule().clone();
        for (t, s) in [(8usize, 4usize), (5, 0), (3, 1)] {
            let mut q = d.transition(0, sch.alpha(s + 1));
            for k in s + 2..=t {
                q = q.matmul(&d.transition(0, sch.alpha(k)));
            }
            let qb_s = d.transition(0, sch.alpha_bar(s));
            for x0 in 0..3i64 {
                for xt in 0..3i64 {
                    let probs = Tensor::from_slice(&[x0]).one_hot(4).to_kind(Kind::Float);
                    let got = d.posterior(0, &Tensor::from_slice(&[xt]), &probs, (t, s)).unwrap();
                    let w: Vec<f64> = (0..4).map(|k| q.double_value(&[k, xt]) * qb_s.double_value(&[x0, k])).collect();
                    let total: f64 = w.iter().sum();
                    let got_total = got.sum(Kind::Float).double_value(&[]);
                    for (k, want) in w.iter().enumerate() {
                        let g = got.double_value(&[0, k as i64]) / got_total;
                        assert!((g - want / total).abs() < 1e-4, "t={t} s={s} x0={x0} xt={xt} k={k}: {g}");
                    }
                }
            }
        }
        assert!(d
            .posterior(0, &Tensor::from_slice(&[0i64]), &Tensor::ones([1, 4], (Kind::Float, Device::Cpu)), (3, 3))
            .is_err());
    }

    /// `steps = T` is the reference's one-step sampler; fewer steps are
    /// evenly spaced jumps from T to 0; 0 or more than T is refused.
    #[test]
    fn reverse_steps_span_t_down_to_zero() {
        let sch = NoiseSchedule::cosine(16);
        let all = sch.reverse_steps(16).unwrap();
        assert_eq!(all, (1..=16).rev().map(|t| (t, t - 1)).collect::<Vec<_>>());
        assert_eq!(sch.reverse_steps(4).unwrap(), vec![(16, 12), (12, 8), (8, 4), (4, 0)]);
        assert_eq!(sch.reverse_steps(1).unwrap(), vec![(16, 0)]);
        let five = sch.reverse_steps(5).unwrap();
        assert_eq!((five[0].0, five[4].1, five.len()), (16, 0, 5));
        assert!(five.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 > w[0].1));
        assert!(sch.reverse_steps(0).is_none() && sch.reverse_steps(17).is_none());
        assert_eq!(sch.alpha_between(5, 4), sch.alpha(5));
    }

    /// The binary posterior equals the categorical one with marginal
    /// `[1 − m, m]`, normalized.
    #[test]
    fn edge_posterior_is_the_two_class_node_posterior() {
        let e = EdgeDiffusion::new(1.5, 8, Device::Cpu);
        let layout = e
            .layout(
                &Tensor::from_slice(&[3i64, 1]),
                &Tensor::from_slice(&[2i64, 1]),
                &Tensor::from_slice(&[0i64, 6, 7]),
            )
            .unwrap();
        assert_eq!(Vec::<i64>::try_from(&layout.row).unwrap(), vec![0, 0, 0, 1, 1, 1, 2]);
        assert_eq!(Vec::<i64>::try_from(&layout.col).unwrap(), vec![0, 1, 2, 0, 1, 2, 0]);
        let z = Tensor::from_slice(&[1i64, 0, 0, 0, 1, 1, 1]);
        let x0 =
            Tensor::from_slice(&[0.2f32, 0.8, 0.6, 0.4, 0.9, 0.1, 0.5, 0.5, 0.3, 0.7, 0.0, 1.0, 1.0, 0.0]).view([7, 2]);
        for t in [1usize, 3, 8] {
            let got = e.posterior(&z, &x0, (t, t - 1), &layout).unwrap();
            for (c, m) in [(0i64, 0.5f64), (6, 1.0)] {
                let nd = NodeDiffusion::new(&[vec![1.0 - m, m]], 8, Device::Cpu);
                let w = nd.posterior(0, &z.narrow(0, c, 1), &x0.narrow(0, c, 1), (t, t - 1)).unwrap();
                let want = w.double_value(&[0, 1]) / (w.sum(Kind::Float).double_value(&[]) + 1e-6);
                assert!((got.double_value(&[c]) - want).abs() < 1e-5, "t={t} c={c}");
            }
        }
    }

    /// Noising keeps shapes and categories; at t = 0 it mostly keeps x₀, at T
    /// it follows the marginal; unseen categories never appear.
    #[test]
    fn node_noise_follows_the_schedule() {
        let _rng = rng_lock();
        tch::manual_seed(0);
        let d = diffusion();
        let n = 4000;
        let x0 = Tensor::stack(
            &[Tensor::full([n], 2, (Kind::Int64, Device::Cpu)), Tensor::ones([n], (Kind::Int64, Device::Cpu))],
            1,
        );
        let keep0 = d.q_sample(&x0, &Tensor::zeros([n], (Kind::Int64, Device::Cpu))).unwrap();
        assert_eq!(keep0.size(), vec![n, 2]);
        // P(keep) = ᾱ_0 + (1 − ᾱ_0)·m[x0]: ᾱ_0 ≈ 0.966 for T = 8.
        let ab0 = d.schedule().alpha_bar(0);
        for (f, m) in [(0i64, 0.2), (1, 0.1)] {
            let same = keep0.select(1, f).eq_tensor(&x0.select(1, f)).to_kind(Kind::Float).mean(Kind::Float);
            let want = ab0 + (1.0 - ab0) * m;
            assert!((same.double_value(&[]) - want).abs() < 0.015, "feature {f}: {same} vs {want}");
        }
        let xt = d.q_sample(&x0, &Tensor::full([n], 8, (Kind::Int64, Device::Cpu))).unwrap();
        let col = xt.select(1, 0);
        let frac0 = col.eq(0).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!((frac0 - 0.5).abs() < 0.05, "{frac0}");
        assert_eq!(col.eq(3).sum(Kind::Int64).int64_value(&[]), 0);
        assert_eq!(d.prior_sample(5).size(), vec![5, 2]);
        assert!(d.q_sample(&x0, &Tensor::zeros([3], (Kind::Int64, Device::Cpu))).is_err());
    }

    /// Edge noise: every new node keeps at least one in-edge, the repair picks
    /// a true edge when there is one (argmax p), else the first candidate.
    #[test]
    fn edge_noise_repairs_isolated_nodes() {
        let _rng = rng_lock();
        tch::manual_seed(1);
        let e = EdgeDiffusion::new(1.0, 4, Device::Cpu);
        // Example 0: 4 sources × 2 new nodes; example 1: 2 sources × 1 new node.
        let layout = e
            .layout(
                &Tensor::from_slice(&[4i64, 2]),
                &Tensor::from_slice(&[2i64, 1]),
                &Tensor::from_slice(&[0i64, 8, 10]),
            )
            .unwrap();
        assert!((e.marginal(4) - 0.25).abs() < 1e-12 && (e.marginal(1) - 1.0).abs() < 1e-12);
        let label = Tensor::from_slice(&[0i64, 0, 1, 0, 0, 0, 0, 0, 0, 1]);
        for _ in 0..50 {
            let z = e.q_sample(&label, &Tensor::from_slice(&[4i64, 4]), &layout).unwrap();
            let per_row =
                Tensor::zeros([3], (Kind::Float, Device::Cpu)).index_add(0, &layout.row, &z.to_kind(Kind::Float));
            assert!(bool::try_from(per_row.ge(1.0).all()).unwrap());
        }
        // The repair alone: row 0 has a true edge at 2, row 1 none (first = 4), row 2 has one at 9.
        let p = &layout.m * 0.9 + label.to_kind(Kind::Float) * 0.1;
        let none = Tensor::zeros([10], (Kind::Bool, Device::Cpu));
        let fixed = repair(&none, &p, &layout).unwrap();
        let on: Vec<i64> = Vec::try_from(fixed.nonzero().squeeze_dim(1)).unwrap();
        assert_eq!(on, vec![2, 4, 9]);
        let prior = e.prior_sample(&layout).unwrap();
        assert_eq!(prior.size(), vec![10]);
        assert!(e
            .layout(&Tensor::from_slice(&[4i64]), &Tensor::from_slice(&[2i64]), &Tensor::from_slice(&[0i64, 7]))
            .is_err());
    }

    #[test]
    fn losses_are_mean_cross_entropies() {
        let logits = Tensor::zeros([3, 4], (Kind::Float, Device::Cpu));
        let x0 = Tensor::from_slice(&[0i64, 1, 2]).view([3, 1]);
        let l = node_loss(&[logits], &x0).unwrap().double_value(&[]);
        assert!((l - 4f64.ln()).abs() < 1e-6);
        let l = edge_loss(&Tensor::zeros([5, 2], (Kind::Float, Device::Cpu)), &Tensor::from_slice(&[0i64, 1, 0, 0, 1]))
            .unwrap()
            .double_value(&[]);
        assert!((l - 2f64.ln()).abs() < 1e-6);
        assert!(node_loss(&[], &x0).is_err());
    }
}
