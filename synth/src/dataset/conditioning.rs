//! What a graph is conditioned on: a normalized vector of workload features
//! for Chakra traces, or the reference's raw scalar `y` for TPU Tile.
//!
//! # Workload features ([`WORKLOAD_FEATURES`])
//!
//! One row per rank trace, from the workload's `config.json` flags and the
//! rank's pipeline stage. Sizes and degrees enter as log2 (they span 1…32000
//! and act multiplicatively on node counts and sizes); flags as 0/1; model type
//! and graph family one-hot. Parallel degrees are the ones the graph sees: for
//! non-MoE models STG folds `ep` into `tp` (see [`super::layout`]), and
//! `experts` / `kexperts` count only for MoE (1 otherwise, so log2 = 0).
//! `--activation_recompute` is left out: STG ignores it (byte-identical ETs),
//! and `--chakra_schema_version` likewise.
//!
//! | # | name | value |
//! |---|---|---|
//! | 0 | log2_num_stacks | transformer layers of the model |
//! | 1 | log2_layers_in_stage | layers this rank's stage holds |
//! | 2 | log2_dmodel | |
//! | 3 | log2_dff | |
//! | 4 | log2_head | |
//! | 5 | log2_kvhead | |
//! | 6 | log2_seq | |
//! | 7 | log2_batch | |
//! | 8 | log2_micro_batch | |
//! | 9 | log2_n_microbatches | batch / micro_batch |
//! | 10 | log2_dvocal | |
//! | 11 | log2_dp | |
//! | 12 | log2_tp | tp·ep for non-MoE |
//! | 13 | log2_pp | |
//! | 14 | log2_sp | |
//! | 15 | log2_ep | 1 for non-MoE |
//! | 16 | log2_experts | MoE only |
//! | 17 | log2_kexperts | MoE only |
//! | 18 | log2_ranks | |
//! | 19 | weight_sharded | 0/1 |
//! | 20 | tpsp | 0/1 |
//! | 21 | mixed_precision | 0/1 |
//! | 22–25 | model_gpt, model_llama, model_dense, model_moe | one-hot |
//! | 26–28 | family_gpt, family_llama, family_moe | one-hot of the graph STG builds |
//! | 29 | stage | the rank's pipeline stage |
//! | 30 | stage_fraction | stage / (pp − 1), 0 when pp = 1 |
//! | 31 | first_stage | 0/1 |
//! | 32 | last_stage | 0/1 |
//!
//! # Normalization ([`Normalizer`])
//!
//! Per feature, z-scores with the mean and population standard deviation of
//! the **training split's** rows (one row per training graph). A feature that
//! is constant on the training split (std below 1e-9) gets std 1, so it is
//! 0 on the training split and keeps its offset elsewhere. The training
//! split's minimum and maximum per feature are kept too: generation warns
//! about values outside them (what-if questions).
//!
//! # Scalar form
//!
//! [`scalar_condition`] is the reference's TPU Tile conditioning: the raw
//! (not normalized) `y` as a one-value row.

use serde::{Deserialize, Serialize};

use super::corpus::{GraphFamily, ModelType, WorkloadConfig};
use super::error::{DatasetError, Result};

/// Names of the workload features, in row order.
pub const WORKLOAD_FEATURES: [&str; 33] = [
    "log2_num_stacks",
    "log2_layers_in_stage",
    "log2_dmodel",
    "log2_dff",
    "log2_head",
    "log2_kvhead",
    "log2_seq",
    "log2_batch",
    "log2_micro_batch",
    "log2_n_microbatches",
    "log2_dvocal",
    "log2_dp",
    "log2_tp",
    "log2_pp",
    "log2_sp",
    "log2_ep",
    "log2_experts",
    "log2_kexperts",
    "log2_ranks",
    "weight_sharded",
    "tpsp",
    "mixed_precision",
    "model_gpt",
    "model_llama",
    "model_dense",
    "model_moe",
    "family_gpt",
    "family_llama",
    "family_moe",
    "stage",
    "stage_fraction",
    "first_stage",
    "last_stage",
];

fn log2(v: u32) -> f32 {
    (v.max(1) as f32).log2()
}

fn flag(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The raw (not normalized) workload features of one rank of a workload.
pub fn workload_features(cfg: &WorkloadConfig, rank: u32) -> Result<Vec<f32>> {
    let f = &cfg.flags;
    let layout = f.layout()?;
    if rank >= layout.ranks() {
        return Err(DatasetError::mismatch(
            format!("conditioning features of {}", cfg.id),
            format!("rank {rank}, the workload has {} ranks", layout.ranks()),
        ));
    }
    let stage = layout.stage(rank);
    let layers_in_stage = cfg.layers_in_stage(stage, "conditioning features")?;
    let moe = f.model_type == ModelType::Moe;
    let family = f.graph_family();
    let mut row = vec![
        log2(f.num_stacks),
        log2(layers_in_stage),
        log2(f.dmodel),
        log2(f.dff),
        log2(f.head),
        log2(f.kvhead),
        log2(f.seq),
        log2(f.batch),
        log2(f.micro_batch),
        log2(f.n_microbatches()),
        log2(f.dvocal),
        log2(layout.dp),
        log2(layout.tp),
        log2(layout.pp),
        log2(layout.sp),
        log2(layout.ep),
        log2(if moe { f.experts } else { 1 }),
        log2(if moe { f.kexperts } else { 1 }),
        log2(layout.ranks()),
        flag(f.weight_sharded),
        flag(f.tpsp),
        flag(f.mixed_precision),
    ];
    row.extend(ModelType::ALL.iter().map(|&m| flag(m == f.model_type)));
    row.extend(GraphFamily::ALL.iter().map(|&g| flag(g == family)));
    let pp = layout.pp;
    row.push(stage as f32);
    row.push(if pp > 1 { stage as f32 / (pp - 1) as f32 } else { 0.0 });
    row.push(flag(stage == 0));
    row.push(flag(stage + 1 == pp));
    debug_assert_eq!(row.len(), WORKLOAD_FEATURES.len());
    Ok(row)
}

/// The reference's scalar conditioning: the raw label as a one-value row.
pub fn scalar_condition(y: f64) -> Vec<f32> {
    vec![y as f32]
}

/// Per-feature z-score statistics, fitted on the training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Feature names, in row order.
    pub names: Vec<String>,
    /// Training-split mean per feature.
    pub mean: Vec<f64>,
    /// Training-split population standard deviation per feature (1 where constant).
    pub std: Vec<f64>,
    /// Whether the feature was constant on the training split.
    pub constant: Vec<bool>,
    /// Training-split minimum per feature (empty in checkpoints written
    /// before ranges were recorded): what-if warnings compare against it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub min: Vec<f64>,
    /// Training-split maximum per feature (empty like `min`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub max: Vec<f64>,
}

impl Normalizer {
    /// Fits on the training rows. Errors when there are no rows or a row's
    /// width differs from `names`.
    pub fn fit(names: &[&str], rows: &[Vec<f32>]) -> Result<Self> {
        let context = "fitting the conditioning normalizer";
        if rows.is_empty() {
            return Err(DatasetError::mismatch(context, "no training rows"));
        }
        let k = names.len();
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != k) {
            return Err(DatasetError::mismatch(context, format!("row {i} has {} values, expected {k}", r.len())));
        }
        let n = rows.len() as f64;
        let mut mean = vec![0f64; k];
        for r in rows {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; k];
        for r in rows {
            for ((s, &v), m) in var.iter_mut().zip(r).zip(&mean) {
                *s += (v as f64 - m).powi(2);
            }
        }
        let mut std = Vec::with_capacity(k);
        let mut constant = Vec::with_capacity(k);
        for s in var {
            let sd = (s / n).sqrt();
            constant.push(sd < 1e-9);
            std.push(if sd < 1e-9 { 1.0 } else { sd });
        }
        let mut min = vec![f64::INFINITY; k];
        let mut max = vec![f64::NEG_INFINITY; k];
        for r in rows {
            for ((lo, hi), &v) in min.iter_mut().zip(max.iter_mut()).zip(r) {
                *lo = lo.min(v as f64);
                *hi = hi.max(v as f64);
            }
        }
        Ok(Normalizer { names: names.iter().map(|s| s.to_string()).collect(), mean, std, constant, min, max })
    }

    /// Feature `k`'s training range `(min, max)`, when the checkpoint records ranges.
    pub fn range(&self, k: usize) -> Option<(f64, f64)> {
        Some((*self.min.get(k)?, *self.max.get(k)?))
    }

    /// The same statistics without the ranges (checkpoints written before
    /// ranges were recorded compare equal to a fresh fit this way).
    pub fn without_ranges(&self) -> Normalizer {
        Normalizer { min: Vec::new(), max: Vec::new(), ..self.clone() }
    }

    /// Normalizes one row.
    pub fn apply(&self, row: &[f32]) -> Result<Vec<f32>> {
        if row.len() != self.mean.len() {
            return Err(DatasetError::mismatch(
                "normalizing a conditioning row",
                format!("{} values, the normalizer has {} features", row.len(), self.mean.len()),
            ));
        }
        Ok(row.iter().zip(&self.mean).zip(&self.std).map(|((&v, m), s)| ((v as f64 - m) / s) as f32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::corpus::Split;
    use crate::dataset::test_data::corpus;

    #[test]
    fn normalizer_handles_constant_features_and_widths() {
        let rows = vec![vec![1.0, 5.0], vec![3.0, 5.0]];
        let n = Normalizer::fit(&["a", "b"], &rows).unwrap();
        assert_eq!(n.constant, vec![false, true]);
        assert_eq!((n.range(0), n.range(1), n.range(2)), (Some((1.0, 3.0)), Some((5.0, 5.0)), None));
        assert_eq!(n.apply(&[1.0, 5.0]).unwrap(), vec![-1.0, 0.0]);
        assert_eq!(n.apply(&[3.0, 7.0]).unwrap(), vec![1.0, 2.0]);
        assert!(n.apply(&[1.0]).is_err());
        assert!(Normalizer::fit(&["a"], &[]).is_err());
        assert!(Normalizer::fit(&["a"], &[vec![1.0, 2.0]]).is_err());
        assert_eq!(scalar_condition(2.5), vec![2.5]);
    }

    /// Normalized on the rows it was fitted on, every non-constant feature has
    /// mean 0 and variance 1 over the training split, and constant ones are 0.
    #[test]
    fn workload_features_are_standardized_on_the_train_split() {
        let c = corpus();
        let rows: Vec<Vec<f32>> = c
            .ranks(Split::Train, false)
            .iter()
            .map(|r| workload_features(&r.workload.config, r.rank).unwrap())
            .collect();
        let norm = Normalizer::fit(&WORKLOAD_FEATURES, &rows).unwrap();
        let z: Vec<Vec<f32>> = rows.iter().map(|r| norm.apply(r).unwrap()).collect();
        let n = z.len() as f64;
        for (k, name) in WORKLOAD_FEATURES.iter().enumerate() {
            let mean = z.iter().map(|r| r[k] as f64).sum::<f64>() / n;
            let var = z.iter().map(|r| (r[k] as f64 - mean).powi(2)).sum::<f64>() / n;
            assert!(mean.abs() < 1e-5, "{name}: mean {mean}");
            if norm.constant[k] {
                assert!(var < 1e-12, "{name} is constant but has variance {var}");
            } else {
                assert!((var - 1.0).abs() < 1e-4, "{name}: variance {var}");
            }
        }
        let constant: Vec<&str> =
            WORKLOAD_FEATURES.iter().zip(&norm.constant).filter(|(_, &c)| c).map(|(n, _)| *n).collect();
        eprintln!(
            "conditioning: {} train rows, {} features, constant on train: {constant:?}",
            rows.len(),
            WORKLOAD_FEATURES.len()
        );
        // The stage features agree with config.json's per-rank stage.
        for r in c.ranks(Split::Validation, false) {
            let row = workload_features(&r.workload.config, r.rank).unwrap();
            assert_eq!(row[29] as u32, r.info().unwrap().stage);
        }
    }
}
