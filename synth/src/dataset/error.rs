//! The dataset layer's error type.
//!
//! Every variant names where the problem is: the file (and, for text inputs,
//! the line or key), and for a trace node its id and name. Nothing in the
//! dataset layer panics on bad input; it returns one of these.

use std::path::PathBuf;

use simulator::chakra::ChakraError;

use super::dag::DagError;

/// Anything that can go wrong while reading, tokenizing or batching data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file could not be opened or read.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`cannot open`, `cannot read`, ...).
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A Chakra trace could not be read or written (the error names the file).
    #[error(transparent)]
    Chakra(#[from] ChakraError),
    /// A JSON or text input does not have the expected shape.
    #[error("{path}: {location}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in the file: `line 4`, a key such as `flags.dp`, ...
        location: String,
        /// What is wrong and what was expected.
        what: String,
    },
    /// One node of a trace cannot be tokenized.
    #[error("{path}: node {node_id} ({node_name}): {what}")]
    Node {
        /// The trace file (or a description of the in-memory trace).
        path: PathBuf,
        /// The node's id.
        node_id: u64,
        /// The node's name.
        node_name: String,
        /// What is wrong and what was expected.
        what: String,
    },
    /// A graph is not a valid DAG for the dataset (cycle, bad id, bad category).
    #[error("{origin}: {source}")]
    Dag {
        /// Where the graph came from: a file, `file line N`, or `graph #i`.
        origin: String,
        /// The problem.
        source: DagError,
    },
    /// A request does not fit the data it is applied to (a wrong feature count,
    /// an example index out of range, conditioning of the wrong width, ...).
    #[error("{context}: {what}")]
    Mismatch {
        /// What was being done.
        context: String,
        /// What did not fit, with the expected and actual values.
        what: String,
    },
}

impl DatasetError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        DatasetError::Io { path: path.into(), action, source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, location: impl Into<String>, what: impl Into<String>) -> Self {
        DatasetError::Format { path: path.into(), location: location.into(), what: what.into() }
    }

    pub(crate) fn mismatch(context: impl Into<String>, what: impl Into<String>) -> Self {
        DatasetError::Mismatch { context: context.into(), what: what.into() }
    }
}

/// Result alias for the dataset layer.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;
