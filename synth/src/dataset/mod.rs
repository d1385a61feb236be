//! The dataset layer of the LayerDAG generator: from Chakra execution traces
//! (and the reference's TPU Tile graphs) to the three per-layer example
//! streams the models train on, and from a generated DAG back to a trace.
//!
//! Pure Rust except for `to_tensors` on the batches in [`streams`], the only
//! place tensors are made.
//!
//! | module | owns |
//! |---|---|
//! | [`dag`] | [`Dag`] (categorical node rows + edges), Kahn layering, disjoint-union batches |
//! | [`vocab`] | the ET node vocabularies with stable ids (tables there), log2 magnitude buckets and their representatives |
//! | [`layout`] | the rank layout, comm-group files, and the per-rank context that resolves `pg_name` to a communicator kind |
//! | [`tokenize`] | Chakra ET → [`Dag`] and [`Dag`] → a valid ET |
//! | [`streams`] | the flat layered storage, the node-count / node-attribute / edge streams, their batches and tensors |
//! | [`size_prior`] | the depth and node count a condition predicts (fitted on the train split; caps sampling) |
//! | [`magnitude_prior`] | the compute and communication totals a condition predicts (fitted on the train split; rescales generated graphs) |
//! | [`stage_work`] | analytic per-stage work terms of a workload and the non-negative fits of `num_ops`, send and collective bytes on them |
//! | [`collective_mix`] | which communicator kinds and collective types a stage's collectives fall in, and the bytes of each (fitted on the train split; regroups and rescales generated collectives) |
//! | [`conditioning`] | the workload feature vector, its train-split normalization, and the scalar form |
//! | [`corpus`] | the STG corpus on disk: splits, `config.json`, comm groups, rank files |
//! | [`tpu_tile`] | the TPU Tile JSON Lines reader |
//! | [`error`] | [`DatasetError`] |
//!
//! # From a corpus to training data
//!
//! ```no_run
//! use std::path::Path;
//! use synth::dataset::{conditioning, corpus::{Corpus, Split}, streams::LayerDagData};
//!
//! # fn main() -> Result<(), synth::dataset::DatasetError> {
//! let corpus = Corpus::open(Path::new("../shared/data/corpus"))?;
//! let train = corpus.ranks(Split::Train, true);
//! let raw: Vec<Vec<f32>> = train
//!     .iter()
//!     .map(|r| conditioning::workload_features(&r.workload.config, r.rank))
//!     .collect::<Result<_, _>>()?;
//! let norm = conditioning::Normalizer::fit(&conditioning::WORKLOAD_FEATURES, &raw)?;
//! let y: Vec<Vec<f32>> = raw.iter().map(|r| norm.apply(r)).collect::<Result<_, _>>()?;
//! let dags = train.iter().map(|r| r.tokenize()).collect::<Result<Vec<_>, _>>()?;
//! let data = LayerDagData::new(&dags, &y)?;
//! let batch = data.node_count.batch(&data.graphs, &[0, 1, 2])?;
//! let _tensors = batch.to_tensors(tch::Device::Cpu);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod collective_mix;
pub mod conditioning;
pub mod corpus;
pub mod dag;
pub mod error;
pub mod layout;
pub mod magnitude_prior;
pub mod size_prior;
pub mod stage_work;
pub mod streams;
pub mod tokenize;
pub mod tpu_tile;
pub mod vocab;

pub use dag::{Dag, DagError, GraphBatch, Layering};
pub use error::{DatasetError, Result};

/// Paths of the shared data the tests read, and a corpus opened once.
#[cfg(test)]
pub(crate) mod test_data {
    use std::path::Path;
    use std::sync::OnceLock;

    use super::corpus::Corpus;

    /// The STG corpus.
    pub const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/corpus");
    /// TPU Tile, the reference's validation split.
    pub const TPU_VAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/tpu-tile/tpu_tile_val.jsonl");
    /// TPU Tile, the reference's test split.
    pub const TPU_TEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/tpu-tile/tpu_tile_test.jsonl");

    /// The corpus metadata, read once per test binary.
    pub fn corpus() -> &'static Corpus {
        static C: OnceLock<Corpus> = OnceLock::new();
        C.get_or_init(|| Corpus::open(Path::new(CORPUS)).expect("the shared corpus opens"))
    }
}
