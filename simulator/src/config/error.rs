//! Errors of the config layer. Every variant names the file; every variant
//! about a value also names the key (a path such as `npus_count[1]` or
//! `dims[0].bandwidth_gbps`) and says what was expected and what was found.

use std::path::{Path, PathBuf};

/// Anything that can go wrong reading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not well-formed YAML, JSON or TOML, or (TOML) a key does
    /// not fit the native schema: an unknown key, a value of the wrong kind.
    #[error("{path}: {location}invalid {format}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// `YAML`, `JSON` or `TOML`.
        format: &'static str,
        /// `line L, column C: key `k`: ` where known (empty otherwise).
        location: String,
        /// The parser's message.
        message: String,
    },
    /// A key holds a value of the wrong kind or out of range.
    #[error("{path}: key `{key}`: expected {expected}, got {got}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key, as written in the file (with an index for list items).
        key: String,
        /// What would have been accepted.
        expected: String,
        /// What the file holds.
        got: String,
    },
    /// A key that is needed is absent.
    #[error("{path}: key `{key}` is missing; expected {expected}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What it should hold, and why it is needed.
        expected: String,
    },
    /// The file name's extension names no format this kind of config comes in.
    #[error("{path}: cannot tell the format of this {what} from the file name; expected {expected}")]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// Which config (`network config`, `system config`, ...).
        what: &'static str,
        /// The accepted extensions.
        expected: &'static str,
    },
}

impl ConfigError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        ConfigError::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn invalid(
        path: &Path,
        key: impl Into<String>,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid { path: path.to_path_buf(), key: key.into(), expected: expected.into(), got: got.into() }
    }

    pub(crate) fn missing(path: &Path, key: impl Into<String>, expected: impl Into<String>) -> Self {
        ConfigError::Missing { path: path.to_path_buf(), key: key.into(), expected: expected.into() }
    }

    pub(crate) fn syntax(
        path: &Path,
        format: &'static str,
        location: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Syntax { path: path.to_path_buf(), format, location: location.into(), message: message.into() }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ConfigError::Io { path, .. }
            | ConfigError::Syntax { path, .. }
            | ConfigError::Invalid { path, .. }
            | ConfigError::Missing { path, .. }
            | ConfigError::UnknownFormat { path, .. } => path,
        }
    }
}

/// Result alias for the config layer.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;
