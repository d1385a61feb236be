//! The model layer's error type.
//!
//! Every variant says what was being done and what did not fit: a config key
//! with the expected and actual values, a checkpoint file with the names that
//! are missing from it, a tensor shape with the one the model needs. Forward
//! passes run libtorch's fallible (`f_`) ops wherever a shape comes from data,
//! so a bad batch is an error here rather than a panic.

use std::path::PathBuf;

use tch::TchError;

/// Anything that can go wrong while configuring, building, running, saving or
/// loading the LayerDAG models.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done (`cannot read`, `cannot create`, ...).
        action: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A TOML or JSON file does not parse into the expected structure
    /// (syntax, an unknown key, a value of the wrong type).
    #[error("{path}: {what}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The parser's message (it names the line and the key).
        what: String,
    },
    /// A config or data-spec value is out of range or inconsistent.
    #[error("{origin}: key `{key}`: {what}")]
    Config {
        /// Where the value came from: a file, or `model config` / `data spec`.
        origin: String,
        /// The dotted key, e.g. `node_pred.predictor.num_heads`.
        key: String,
        /// What is wrong: expected and actual values.
        what: String,
    },
    /// An input does not fit the model (feature count, conditioning width,
    /// number of graphs ...).
    #[error("{context}: {what}")]
    Mismatch {
        /// What was being done.
        context: String,
        /// What did not fit, with the expected and actual values.
        what: String,
    },
    /// A libtorch operation failed (usually a shape or an index that came from
    /// data).
    #[error("{context}: {}", torch_message(.source))]
    Torch {
        /// What was being done.
        context: String,
        /// libtorch's error.
        source: TchError,
    },
    /// A checkpoint's weights do not match the model built from its config.
    #[error("{path}: the weights do not match the model: missing {missing:?}, unexpected {unexpected:?}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// Model variables the file lacks.
        missing: Vec<String>,
        /// File tensors the model has no variable for.
        unexpected: Vec<String>,
    },
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, source: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), action, source }
    }

    pub(crate) fn config(origin: impl Into<String>, key: impl Into<String>, what: impl Into<String>) -> Self {
        ModelError::Config { origin: origin.into(), key: key.into(), what: what.into() }
    }

    pub(crate) fn mismatch(context: impl Into<String>, what: impl Into<String>) -> Self {
        ModelError::Mismatch { context: context.into(), what: what.into() }
    }
}

/// libtorch's message without the C++ backtrace it appends ("Exception
/// raised from …" and the frames after it).
fn torch_message(e: &TchError) -> String {
    let text = e.to_string();
    let kept: Vec<&str> = text.lines().take_while(|l| !l.starts_with("Exception raised from")).collect();
    kept.join("\n").trim_end().to_string()
}

/// Attaches what was being done to a libtorch error.
pub(crate) trait TorchContext<T> {
    /// Wraps the error as [`ModelError::Torch`] with `context`.
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> TorchContext<T> for std::result::Result<T, TchError> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|source| ModelError::Torch { context: context.to_string(), source })
    }
}

/// Result alias for the model layer.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// libtorch's C++ backtrace is cut from the message; its first lines stay.
    #[test]
    fn torch_errors_drop_the_backtrace() {
        let source = TchError::Torch(
            "probability tensor contains either `inf`, `nan` or element < 0\nException raised from multinomial at x.cpp:1\nframe #0: f()".into(),
        );
        let e = ModelError::Torch { context: "sampling".into(), source }.to_string();
        assert!(e.starts_with("sampling: ") && e.contains("probability tensor"), "{e}");
        assert!(!e.contains("Exception raised") && !e.contains("frame #"), "{e}");
    }
}
