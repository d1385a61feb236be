//! Errors of a simulation run. Each names the file and the node or key that
//! is wrong and what was expected.

use std::path::PathBuf;

use crate::chakra::ChakraError;
use crate::config::ConfigError;

/// Anything that stops a simulation from starting or finishing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A trace file could not be read.
    #[error(transparent)]
    Trace(#[from] ChakraError),
    /// A configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A node cannot be simulated as written.
    #[error("{path}: node {node} ({}): {what}", crate::chakra::schema::short_name(name))]
    Node {
        /// The trace file.
        path: PathBuf,
        /// Node id.
        node: u64,
        /// Node name.
        name: String,
        /// What is wrong and what was expected.
        what: String,
    },
    /// The inputs do not fit together (rank counts, groups, algorithms).
    #[error("{0}")]
    Setup(String),
    /// Simulated time passed what 64-bit nanoseconds hold (the clock
    /// saturates instead of wrapping): some input value is out of range.
    #[error(
        "simulated time passed 2^64 ns (about 584 years) on rank {rank} ({}): a node duration there, or a \
         latency, bandwidth or scale of the network and system, is out of range",
        trace.display()
    )]
    TimeOverflow {
        /// The first rank whose time overflowed.
        rank: u32,
        /// Its trace file.
        trace: PathBuf,
    },
    /// The run stopped with unfinished work; the text says who waits on what.
    #[error("the simulation stalled at {time_ns} ns with unfinished work:\n{diagnosis}")]
    Stalled {
        /// Simulated time when the event queue ran dry.
        time_ns: u64,
        /// Per rank: the nodes waiting and on what.
        diagnosis: String,
        /// The partial report (ranks that finished have their times).
        report: Box<crate::report::Report>,
    },
}
