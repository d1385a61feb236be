//! The size prior: how deep and how large a stage graph should be for a
//! conditioning row, fitted on the training split and stored in every corpus
//! checkpoint (a Strata extension of LayerDAG).
//!
//! LayerDAG decides when to stop from the graph built so far. Teacher-forced,
//! the layer-size model stops the real stage graphs at the right layer (it
//! recognizes how a stage ends), but a sampled graph drifts away from the
//! real ones within a few dozen layers and the model then rarely draws
//! "stop": the small shipped model grew 2,000+ nodes where the real stage had
//! 209. GraphRNN and GRAN draw the node count from the training distribution
//! for the same reason; for conditional generation the count must follow the
//! condition, so Strata fits two ridge regressions on the normalized
//! conditioning row: `log2(layers)` and `log2(nodes)`. The sampler caps each
//! graph at the predicted depth and node count (rounded to the nearest
//! integer, at least 1), on top of the model's own stop and any user cap.
//!
//! The fits are closed-form (normal equations with a small ridge term, solved
//! by Cholesky in f64), so the same training split gives the same bytes.

use serde::{Deserialize, Serialize};

use super::streams::LayeredGraphs;

/// The ridge term added to the normal equations' diagonal (intercept
/// excluded): conditioning features are standardized, so this is small
/// against the 100s of graphs a corpus split holds, and it keeps features
/// that are constant on the split (all zero after normalization) at weight 0.
const RIDGE: f64 = 1e-3;

/// `log2(target) ≈ intercept + weights · y` for one size measure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogLinearFit {
    /// The constant term.
    pub intercept: f64,
    /// One weight per conditioning feature.
    pub weights: Vec<f64>,
    /// Median of `|predicted / actual − 1|` over the training split.
    pub train_median_rel_error: f64,
}

impl LogLinearFit {
    /// Fits `log2(targets[g])` on `rows[g]` (all rows of one width; at least
    /// one row; targets below 1 count as 1).
    pub fn fit(rows: &[&[f32]], targets: &[f64]) -> Self {
        let d = rows.first().map_or(0, |r| r.len());
        let k = d + 1;
        // Normal equations over [1, y].
        let mut a = vec![0f64; k * k];
        let mut b = vec![0f64; k];
        for (row, &t) in rows.iter().zip(targets) {
            let x: Vec<f64> = std::iter::once(1.0).chain(row.iter().map(|&v| v as f64)).collect();
            let z = t.max(1.0).log2();
            for i in 0..k {
                b[i] += x[i] * z;
                for j in 0..k {
                    a[i * k + j] += x[i] * x[j];
                }
            }
        }
        for i in 1..k {
            a[i * k + i] += RIDGE * rows.len() as f64;
        }
        // A tiny ridge on the intercept too keeps A positive definite when
        // there is a single row.
        a[0] += 1e-9;
        let w = cholesky_solve(&mut a, &mut b, k);
        let mut fit = LogLinearFit { intercept: w[0], weights: w[1..].to_vec(), train_median_rel_error: 0.0 };
        let errors: Vec<f64> =
            rows.iter().zip(targets).map(|(r, &t)| (fit.predict_f64(r) / t.max(1.0) - 1.0).abs()).collect();
        fit.train_median_rel_error = median(errors);
        fit
    }

    /// The predicted value for a conditioning row, unrounded.
    pub fn predict_f64(&self, y: &[f32]) -> f64 {
        let z = self.intercept + self.weights.iter().zip(y).map(|(w, &v)| w * v as f64).sum::<f64>();
        z.exp2()
    }

    /// The predicted size for a conditioning row, rounded, at least 1.
    pub fn predict(&self, y: &[f32]) -> usize {
        let v = self.predict_f64(y).round();
        if v.is_finite() {
            (v as usize).max(1)
        } else {
            usize::MAX
        }
    }
}

/// Predicted depth and node count of a stage graph for a conditioning row,
/// and the layer its first send to the next pipeline stage sits in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SizePrior {
    /// Layers (Kahn levels) per graph.
    pub layers: LogLinearFit,
    /// Real nodes per graph.
    pub nodes: LogLinearFit,
    /// The layer (1-based) of a graph's first send to the next pipeline
    /// stage, over the graphs that have one ([`SizePrior::fit_forward_send`]);
    /// absent in checkpoints from before it and for data without pipelines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_send_layer: Option<LogLinearFit>,
}

impl SizePrior {
    /// Fits both measures on every graph of a split; `None` when the split
    /// has no graphs or no conditioning (nothing to predict from).
    pub fn fit(graphs: &LayeredGraphs) -> Option<Self> {
        let n = graphs.num_graphs();
        if n == 0 || graphs.y_dim() == 0 {
            return None;
        }
        let rows: Vec<&[f32]> = (0..n).map(|g| graphs.y(g)).collect();
        let layers: Vec<f64> = (0..n).map(|g| graphs.num_layers(g) as f64).collect();
        let nodes: Vec<f64> = (0..n).map(|g| graphs.num_nodes(g) as f64).collect();
        Some(SizePrior {
            layers: LogLinearFit::fit(&rows, &layers),
            nodes: LogLinearFit::fit(&rows, &nodes),
            forward_send_layer: None,
        })
    }

    /// Fits [`SizePrior::forward_send_layer`] on the graphs with a node
    /// `is_forward_send` accepts (by feature row); none when no graph has one.
    /// In every pipelined corpus stage graph the sends to the next stage sit
    /// together in one layer: after the forward pass (about half the depth
    /// with mixed precision, 80–95 % without), while receives are roots and
    /// sends to the previous stage end the graph.
    pub fn fit_forward_send(&mut self, graphs: &LayeredGraphs, is_forward_send: impl Fn(&[i64]) -> bool) {
        let (rows, layers): (Vec<&[f32]>, Vec<f64>) = (0..graphs.num_graphs())
            .filter_map(|g| graphs.first_layer_with(g, &is_forward_send).map(|l| (graphs.y(g), l as f64)))
            .unzip();
        self.forward_send_layer = (!rows.is_empty()).then(|| LogLinearFit::fit(&rows, &layers));
    }

    /// Median relative error of [`SizePrior::forward_send_layer`] over the
    /// graphs of a split with a node `is_forward_send` accepts; `None` without
    /// the fit or such graphs.
    pub fn forward_send_rel_error(
        &self,
        graphs: &LayeredGraphs,
        is_forward_send: impl Fn(&[i64]) -> bool,
    ) -> Option<f64> {
        let fit = self.forward_send_layer.as_ref()?;
        let errors: Vec<f64> = (0..graphs.num_graphs())
            .filter_map(|g| {
                let actual = graphs.first_layer_with(g, &is_forward_send)?;
                Some((fit.predict_f64(graphs.y(g)) / actual as f64 - 1.0).abs())
            })
            .collect();
        (!errors.is_empty()).then(|| median(errors))
    }

    /// `(layers, nodes)` predicted for a conditioning row.
    pub fn predict(&self, y: &[f32]) -> (usize, usize) {
        (self.layers.predict(y), self.nodes.predict(y))
    }

    /// Median relative errors `(layers, nodes)` of the prediction on another
    /// split (e.g. validation), `None` when it has no graphs.
    pub fn median_rel_errors(&self, graphs: &LayeredGraphs) -> Option<(f64, f64)> {
        let n = graphs.num_graphs();
        if n == 0 {
            return None;
        }
        let err = |f: &LogLinearFit, actual: &dyn Fn(usize) -> usize| {
            median((0..n).map(|g| (f.predict_f64(graphs.y(g)) / actual(g).max(1) as f64 - 1.0).abs()).collect())
        };
        Some((err(&self.layers, &|g| graphs.num_layers(g)), err(&self.nodes, &|g| graphs.num_nodes(g))))
    }
}

/// The median (0 for none).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Solves `A w = b` for a symmetric positive definite `k × k` matrix `A`
/// (row-major; overwritten by its Cholesky factor).
pub(crate) fn cholesky_solve(a: &mut [f64], b: &mut [f64], k: usize) -> Vec<f64> {
    for j in 0..k {
        let mut d = a[j * k + j];
        for p in 0..j {
            d -= a[j * k + p] * a[j * k + p];
        }
        let d = d.max(f64::MIN_POSITIVE).sqrt();
        a[j * k + j] = d;
        for i in j + 1..k {
            let mut s = a[i * k + j];
            for p in 0..j {
                s -= a[i * k + p] * a[j * k + p];
            }
            a[i * k + j] = s / d;
        }
    }
    // L z = b, then Lᵀ w = z.
    for i in 0..k {
        let mut s = b[i];
        for p in 0..i {
            s -= a[i * k + p] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
    for i in (0..k).rev() {
        let mut s = b[i];
        for p in i + 1..k {
            s -= a[p * k + i] * b[p];
        }
        b[i] = s / a[i * k + i];
    }
    b.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::Dag;

    /// A chain of `n` nodes (n layers of one node).
    fn chain(n: usize) -> Dag {
        let src: Vec<u32> = (0..n as u32 - 1).collect();
        let dst: Vec<u32> = (1..n as u32).collect();
        Dag::new(vec![3], vec![0; n], src, dst).unwrap()
    }

    #[test]
    fn an_exact_log_linear_law_is_recovered() {
        // Depth 2^(3 + y): y = 0, 1, 2 → chains of 8, 16, 32 nodes.
        let dags = vec![chain(8), chain(16), chain(32)];
        let y = vec![vec![0.0], vec![1.0], vec![2.0]];
        let data = LayeredGraphs::new(&dags, &y).unwrap();
        let p = SizePrior::fit(&data).unwrap();
        assert!((p.layers.intercept - 3.0).abs() < 0.01, "{:?}", p.layers);
        assert!((p.layers.weights[0] - 1.0).abs() < 0.01, "{:?}", p.layers);
        assert_eq!(p.predict(&[1.0]), (16, 16));
        // Extrapolation follows the law: y = 3 → 64.
        assert_eq!(p.predict(&[3.0]), (64, 64));
        assert!(p.layers.train_median_rel_error < 0.01);
        let (l, n) = p.median_rel_errors(&data).unwrap();
        assert!(l < 0.01 && n < 0.01);
    }

    #[test]
    fn the_forward_send_layer_follows_its_law_and_the_real_trace() {
        // Chains of 8, 16, 32 nodes with the marked node (value 2) at layer
        // 2^(2 + y): 4, 8, 16; a fourth graph has none and is not fitted.
        let marked = |n: usize, at: usize| {
            let mut x = vec![0; n];
            x[at - 1] = 2;
            let src: Vec<u32> = (0..n as u32 - 1).collect();
            let dst: Vec<u32> = (1..n as u32).collect();
            Dag::new(vec![3], x, src, dst).unwrap()
        };
        let dags = vec![marked(8, 4), marked(16, 8), marked(32, 16), chain(5)];
        let y = vec![vec![0.0], vec![1.0], vec![2.0], vec![7.0]];
        let data = LayeredGraphs::new(&dags, &y).unwrap();
        let mut p = SizePrior::fit(&data).unwrap();
        p.fit_forward_send(&data, |row| row[0] == 2);
        let send = p.forward_send_layer.as_ref().unwrap();
        assert_eq!((send.predict(&[1.0]), send.predict(&[3.0])), (8, 32));
        p.fit_forward_send(&data, |row| row[0] == 1);
        assert!(p.forward_send_layer.is_none());
        // Stage 0 of w002 (2 layers, pp = 2): its two sends to stage 1 sit in
        // layer 17 of 32 (Kahn layers of workload.0.et, counted independently).
        use crate::dataset::vocab::PeerStage;
        use simulator::chakra::NodeType;
        let real = &crate::model::tests::tiny_corpus_data().graphs;
        let mut p = SizePrior::fit(real).unwrap();
        p.fit_forward_send(real, |row| PeerStage::Next.is_p2p(row, NodeType::CommSendNode));
        assert_eq!(real.num_layers(0), 32);
        assert_eq!(p.forward_send_layer.unwrap().predict(real.y(0)), 17);
    }

    #[test]
    fn constant_features_get_no_weight_and_unconditional_data_no_prior() {
        let dags = vec![chain(4), chain(8)];
        let y = vec![vec![0.0, 0.0], vec![0.0, 1.0]];
        let p = SizePrior::fit(&LayeredGraphs::new(&dags, &y).unwrap()).unwrap();
        assert_eq!(p.layers.weights[0], 0.0);
        assert_eq!(p.predict(&[0.0, 0.0]).0, 4);
        assert_eq!(p.predict(&[0.0, 1.0]).0, 8);
        let none = LayeredGraphs::new(&dags, &[vec![], vec![]]).unwrap();
        assert!(SizePrior::fit(&none).is_none());
    }

    #[test]
    fn the_fit_is_reproducible_to_the_bit() {
        let dags = vec![chain(5), chain(9), chain(17), chain(3)];
        let y = vec![vec![0.1, -1.0], vec![0.7, 0.2], vec![1.3, 0.9], vec![-0.4, 0.0]];
        let data = LayeredGraphs::new(&dags, &y).unwrap();
        assert_eq!(SizePrior::fit(&data), SizePrior::fit(&data));
    }
}
