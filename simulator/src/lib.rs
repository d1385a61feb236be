//! Strata's simulation library.
//!
//! The library owns everything needed to simulate a distributed training run
//! from Chakra execution traces, without libtorch. Data flows one way:
//! files → [`chakra`] (decode, validate, convert) → workload → system → network → report.
//!
//! ```no_run
//! let trace = simulator::chakra::read_et_file("traces/allreduce/allreduce.0.et")?;
//! println!("{} nodes", trace.nodes.len());
//! # Ok::<(), simulator::chakra::ChakraError>(())
//! ```

#![warn(missing_docs)]

pub mod chakra;
pub mod config;
mod diagnose;
pub mod engine;
pub mod error;
pub mod network;
pub mod report;
pub mod run;
pub mod sim;
mod symmetry;
pub mod system;
pub mod trace;
pub mod util;
pub mod workload;
