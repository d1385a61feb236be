//! Strata's LayerDAG trace generator on libtorch (through `tch`).
//!
//! This crate will learn from Chakra execution traces and synthesize what-if
//! traces. For now it holds the libtorch plumbing every later part stands on:
//! [`device`] picks where tensors live, and the tests prove that libtorch loads,
//! runs a forward and backward pass and yields correct gradients.

pub mod dataset;
pub mod device;
pub mod eval;
pub mod generate;
pub mod gradient_sync;
pub mod model;
pub mod optim;
pub mod sample;
pub mod train;
