//! The LayerDAG models on libtorch: the layer-size classifier, the
//! node-attribute denoiser and the edge denoiser, the two discrete diffusions
//! they are trained under, and checkpoints.
//!
//! A re-implementation of github.com/Graph-COM/LayerDAG (`src/model/`, commit
//! `fbbbd13`), specified in layerdag.md §2–§3. Variable names follow the
//! reference's `state_dict` keys (`node_pred_model.trans_layers.0.to_qk.weight`),
//! and the TPU Tile configuration builds models of exactly the reference's
//! parameter counts (1,755,733 / 17,001,007 / 2,353,090).
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | [`ModelConfig`] (the TOML hyperparameters) and [`DataSpec`] (vocabularies, marginals, widest layer, conditioning width) |
//! | [`compress`] | the Weisfeiler–Lehman colour graph of a batch, so that encoders compute each distinct node state once |
//! | [`colour_cache`] | colours and encoder rows kept across the encoder passes of one sampling run, so each state is computed once per run, not once per pass |
//! | [`layers`] | `SinusoidalPE`, `MultiEmbedding`, `BiMPNNLayer`, `BiMPNNEncoder`, `TransformerLayer`, the conditioning embedding |
//! | [`node_count`] | [`NodeCountModel`]: layer sizes `0..=max_layer_size`, 0 = stop |
//! | [`node_pred`] | [`NodePredModel`]: x₀ logits of a new layer's attributes |
//! | [`edge_pred`] | [`EdgePredModel`]: x₀ logits of the candidate edges into a new layer |
//! | [`diffusion`] | the cosine schedule, the node and edge D3PMs (noising, posterior, repair), the losses |
//! | [`layer_dag`] | [`LayerDag`]: the three models (one `VarStore` each), their diffusions, `save` / `load` |
//! | [`error`] | [`ModelError`] |
//!
//! Each sub-model has its own `VarStore`, so each trains with its own
//! optimizer, as in the reference (three independent trainings). A checkpoint
//! folder holds `config.json` (config + data spec) and one
//! `weights.safetensors` with all three stores' variables.
//!
//! ```no_run
//! use std::path::Path;
//! use synth::dataset::{streams::LayerDagData, tpu_tile, conditioning::scalar_condition};
//! use synth::model::{DataSpec, LayerDag, ModelConfig};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let graphs = tpu_tile::read_tpu_tile(Path::new("../shared/data/tpu-tile/tpu_tile_val.jsonl"))?;
//! let dags: Vec<_> = graphs.iter().map(|g| g.dag.clone()).collect();
//! let y: Vec<_> = graphs.iter().map(|g| scalar_condition(g.y)).collect();
//! let data = LayerDagData::new(&dags, &y)?;
//! let config = ModelConfig::load(Path::new("configs/synth/tpu_tile.toml"))?;
//! let model = LayerDag::new(config, DataSpec::from_graphs(&data.graphs), tch::Device::Cpu)?;
//! let batch = data.node_count.batch(&data.graphs, &[0, 1])?.to_tensors(tch::Device::Cpu);
//! let logits = model.node_count.model.forward_batch(&batch, false)?;
//! let _loss = model.node_count.model.loss(&logits, &batch.label)?;
//! model.save(Path::new("checkpoints/tpu_tile"))?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod colour_cache;
pub mod compress;
pub mod config;
pub mod diffusion;
pub mod edge_pred;
pub mod error;
pub mod layer_dag;
pub mod layers;
pub mod node_count;
pub mod node_pred;

pub use config::{DataSpec, ModelConfig};
pub use diffusion::{EdgeDiffusion, NodeDiffusion, NoiseSchedule};
pub use edge_pred::{EdgePredModel, EdgeQueries};
pub use error::{ModelError, Result};
pub use layer_dag::{LayerDag, SubModel};
pub use layers::GraphInput;
pub use node_count::NodeCountModel;
pub use node_pred::{NodePredModel, NodeQueries};

/// Real data for the model tests: tiny batches of TPU Tile graphs (one
/// feature, scalar `y`) and of a corpus workload (ten features, 33-wide `y`).
#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;
    use std::sync::OnceLock;

    use tch::Device;

    use super::DataSpec;
    use crate::dataset::conditioning::{scalar_condition, workload_features};
    use crate::dataset::corpus::{CorpusRank, Split, Workload};
    use crate::dataset::streams::{EdgeTensors, LayerDagData, NodeAttrTensors, NodeCountTensors};
    use crate::dataset::test_data::{CORPUS, TPU_VAL};
    use crate::dataset::tpu_tile::read_tpu_tile;
    use crate::dataset::Dag;

    /// One batch of each stream and the data spec of the graphs they came from.
    pub(crate) struct TestBatches {
        pub spec: DataSpec,
        pub node_count: NodeCountTensors,
        pub node_attr: NodeAttrTensors,
        pub edge: EdgeTensors,
    }

    fn batches(data: &LayerDagData, n: usize) -> TestBatches {
        let pick = |len: usize| -> Vec<usize> { (0..len).step_by((len / n).max(1)).take(n).collect() };
        let g = &data.graphs;
        TestBatches {
            spec: DataSpec::from_graphs(g),
            node_count: data.node_count.batch(g, &pick(data.node_count.len())).unwrap().to_tensors(Device::Cpu),
            node_attr: data.node_attr.batch(g, &pick(data.node_attr.len())).unwrap().to_tensors(Device::Cpu),
            edge: data.edge.batch(g, &pick(data.edge.len())).unwrap().to_tensors(Device::Cpu),
        }
    }

    /// The first three graphs of TPU Tile val with their raw scalar `y`.
    pub(crate) fn tiny_tpu_data() -> &'static LayerDagData {
        static D: OnceLock<LayerDagData> = OnceLock::new();
        D.get_or_init(|| {
            let graphs = read_tpu_tile(Path::new(TPU_VAL)).unwrap();
            let (dags, y): (Vec<Dag>, Vec<Vec<f32>>) =
                graphs.iter().take(3).map(|g| (g.dag.clone(), scalar_condition(g.y))).unzip();
            LayerDagData::new(&dags, &y).unwrap()
        })
    }

    /// Six examples of each stream from [`tiny_tpu_data`].
    pub(crate) fn tiny_tpu_batches() -> TestBatches {
        batches(tiny_tpu_data(), 6)
    }

    /// Rank 0 of the smallest corpus workload (a 2-layer Llama), conditioned on
    /// its raw workload features.
    pub(crate) fn tiny_corpus_data() -> &'static LayerDagData {
        static D: OnceLock<LayerDagData> = OnceLock::new();
        D.get_or_init(|| {
            let dir = Path::new(CORPUS).join("workloads/w002_llama_mp_L2_d1024_dp1tp2pp2sp1");
            let w = Workload::open(&dir, Split::Train).unwrap();
            let rank = *w.config.kept_ranks.iter().min().unwrap();
            let r = CorpusRank { workload: &w, rank, stage: w.layout.stage(rank), path: w.rank_path(rank) };
            let dag = r.tokenize().unwrap();
            let y = workload_features(&w.config, rank).unwrap();
            LayerDagData::new(&[dag], &[y]).unwrap()
        })
    }

    /// Six examples of each stream from [`tiny_corpus_data`].
    pub(crate) fn tiny_corpus_batches() -> TestBatches {
        batches(tiny_corpus_data(), 6)
    }

    /// libtorch's random generator is global to the process and the test
    /// harness runs tests on several threads, so every model test that seeds
    /// or draws holds this lock: a seeded test then sees only its own draws.
    pub(crate) fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
        static L: std::sync::Mutex<()> = std::sync::Mutex::new(());
        L.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh path for a test's files, not yet created, inside a private
    /// temporary folder that is removed, with everything in it, when the
    /// guard drops (so tests leave nothing behind in the temp dir).
    pub(crate) struct TempPath {
        path: std::path::PathBuf,
        _root: tempfile::TempDir,
    }

    impl std::ops::Deref for TempPath {
        type Target = std::path::PathBuf;
        fn deref(&self) -> &std::path::PathBuf {
            &self.path
        }
    }

    impl AsRef<std::path::Path> for TempPath {
        fn as_ref(&self) -> &std::path::Path {
            &self.path
        }
    }

    /// A [`TempPath`] named after `tag`.
    pub(crate) fn temp_dir(tag: &str) -> TempPath {
        let root = tempfile::Builder::new().prefix(&format!("synth-model-{tag}-")).tempdir().unwrap();
        TempPath { path: root.path().join(tag), _root: root }
    }

    #[test]
    fn test_data_covers_both_conditionings() {
        let t = tiny_tpu_batches();
        assert_eq!((t.spec.cardinalities.clone(), t.spec.y_dim), (vec![47], 1));
        let c = tiny_corpus_batches();
        assert_eq!((c.spec.num_features(), c.spec.y_dim), (10, 33));
        assert!(c.edge.label.size()[0] > 0 && t.edge.label.size()[0] > 0);
    }
}
