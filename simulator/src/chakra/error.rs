//! Errors of the Chakra layer. Every variant names the file it is about and,
//! where it applies, the message index, byte offset, node or key.

use std::path::PathBuf;

/// Anything that can go wrong reading, writing or converting a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChakraError {
    /// The file could not be opened, read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done (`cannot open`, `cannot write`, ...).
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A directory was given where a trace file was expected.
    #[error("{path}: is a directory, expected a file")]
    IsDirectory {
        /// The path.
        path: PathBuf,
    },
    /// A path names no file and no folder (nor, where it could be one, a
    /// workload prefix: `detail` then says which rank files were looked for).
    #[error("{path}: no such file or folder{detail}")]
    NotFound {
        /// The path as given.
        path: PathBuf,
        /// Empty, or what else the path was tried as, starting with `, `.
        detail: String,
    },
    /// The file holds no bytes at all.
    #[error(
        "{path}: the file is empty, expected a Chakra ET stream (length-prefixed GlobalMetadata and Node messages)"
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The binary stream is malformed at a known place.
    #[error("{path}: message #{index} at byte {offset}: {what}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Zero-based index of the message in the stream (0 is the metadata in current files).
        index: u64,
        /// Byte offset of the message's length prefix in the (decompressed) stream.
        offset: u64,
        /// What is wrong and what was expected.
        what: String,
    },
    /// A JSON (or other text) input does not have the expected shape.
    #[error("{path}: {location}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Where in the file (a JSON path such as `nodes[3].attr[0]`, or `line 4`).
        location: String,
        /// What is wrong and what was expected.
        what: String,
    },
    /// A path's extension names no format this tool reads or writes.
    #[error("{path}: cannot tell the format from the file name; expected {expected}")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The accepted forms.
        expected: &'static str,
    },
}

impl ChakraError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        ChakraError::Io { path: path.into(), action, source }
    }

    pub(crate) fn format(path: impl Into<PathBuf>, location: impl Into<String>, what: impl Into<String>) -> Self {
        ChakraError::Format { path: path.into(), location: location.into(), what: what.into() }
    }
}

/// Result alias for the Chakra layer.
pub type Result<T, E = ChakraError> = std::result::Result<T, E>;
