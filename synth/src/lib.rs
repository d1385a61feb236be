//! Strata's LayerDAG trace generator on libtorch (through `tch`): it learns
//! from Chakra execution traces and synthesizes what-if traces.
//!
//! | module | owns |
//! |---|---|
//! | [`dataset`] | traces ↔ token DAGs, the example streams, conditioning, the fitted priors |
//! | [`model`] | the LayerDAG networks, their config and checkpoints |
//! | [`train`] | seeded, resumable training with early stopping |
//! | [`optim`] | Adam with its state in the open |
//! | [`sample`] | batched layer-by-layer sampling |
//! | [`generate`] | `--set` flags → consistent multi-rank Chakra workloads |
//! | [`collective_placement`] | where a generated stage's collectives sit in its graph |
//! | [`eval`] | generated against real workloads: validity, structure, timing |
//! | [`device`] | where tensors live |

pub mod collective_placement;
pub mod dataset;
pub mod device;
pub mod eval;
pub mod generate;
pub mod model;
pub mod optim;
pub mod sample;
pub mod train;
