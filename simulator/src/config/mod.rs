//! Simulation inputs other than traces: the network, the system layer, remote
//! memory and communicator groups, read into typed, validated structs.
//!
//! Each config comes in two forms, chosen by the file's extension:
//!
//! | kind | ASTRA-sim form (read exactly as ASTRA-sim 518bd513 reads it) | native form |
//! |---|---|---|
//! | [`NetworkConfig`] | `.yml` / `.yaml` (analytical backend YAML) | `.toml` |
//! | [`SystemConfig`] | `.json` (`Sys::initialize_sys`) | `.toml` |
//! | [`MemoryConfig`] | `.json` (`AnalyticalRemoteMemory`) | `.toml` |
//! | [`CommGroups`] | `.json` (`--comm-group-configuration`) | — |
//!
//! The ASTRA-sim forms are third-party formats: unknown keys are warned about
//! (through `tracing::warn!`) and ignored, as ASTRA-sim ignores them; in the
//! JSON forms a key starting with `_` (`"_comment"`) is a silent comment. The native
//! TOML forms are Strata's own: snake_case keys with the unit in the name, enums
//! in kebab-case, and any unknown key is an error. Both forms go through the
//! same validation, so a value ASTRA-sim would crash on, hang on or divide by
//! zero with is refused here with the file, the key and what was expected,
//! where that can be known from the config alone; where it depends on the
//! workload (say `local-mem-bw`, needed only by reducing collectives), an
//! accessor returns the same kind of error when the simulator asks.
//!
//! ```no_run
//! use simulator::config::{NetworkConfig, SystemConfig};
//! let net = NetworkConfig::load("topologies/Ring_8npus.toml")?;
//! let sys = SystemConfig::load("configs/system/ring_lifo.json")?;
//! assert_eq!(net.total_npus(), 8);
//! println!("{} chunks per collective", sys.preferred_dataset_splits);
//! # Ok::<(), simulator::config::ConfigError>(())
//! ```

pub mod comm_group;
pub mod error;
pub mod memory;
pub mod network;
pub mod paths;
pub(crate) mod reader;
pub mod system;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use comm_group::{CommGroup, CommGroups};
pub use error::{ConfigError, Result};
pub use memory::{MemoryConfig, MemoryType, PerNodeLayout};
pub use network::{NetworkConfig, NetworkDim, Topology};
pub use paths::resolve_config_path;
pub use system::{
    Collective, CollectiveImpl, CollectiveOptimization, LogGp, PerCollective, SchedulingPolicy, SystemConfig,
};

/// The on-disk form of a config, decided by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigFormat {
    /// ASTRA-sim's analytical network YAML (`.yml`, `.yaml`).
    AstraYaml,
    /// ASTRA-sim's JSON (`.json`): system, remote memory, communicator groups.
    AstraJson,
    /// Strata's native TOML (`.toml`).
    NativeToml,
}

impl ConfigFormat {
    /// The format named by `path`'s extension (case-insensitive), if any.
    pub fn from_path(path: &Path) -> Option<ConfigFormat> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "yml" | "yaml" => Some(ConfigFormat::AstraYaml),
            "json" => Some(ConfigFormat::AstraJson),
            "toml" => Some(ConfigFormat::NativeToml),
            _ => None,
        }
    }
}

/// Where a config came from: the file (used in error messages and to resolve
/// paths written inside it) and its format (which decides how keys are named
/// in messages). Two configs with equal settings are equal wherever they came
/// from, so `Origin` compares equal to every other `Origin`.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The file the config was read from (or the name given to a parsed string).
    pub path: PathBuf,
    /// The form it was written in.
    pub format: ConfigFormat,
}

impl Origin {
    pub(crate) fn new(path: &Path, format: ConfigFormat) -> Self {
        Origin { path: path.to_path_buf(), format }
    }

    /// The key as this file spells it: ASTRA-sim's kebab-case name, or the
    /// native snake_case name with its unit.
    pub(crate) fn key(&self, astra: &str, native: &str) -> String {
        match self.format {
            ConfigFormat::NativeToml => native.to_string(),
            _ => astra.to_string(),
        }
    }
}

impl PartialEq for Origin {
    fn eq(&self, _: &Origin) -> bool {
        true
    }
}

/// Reads a config file to a string, naming the file on failure.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::io(path, e))
}

/// Deserializes a native TOML document into `T`; on failure the error names
/// the line, the column and the key path (`dims[1].npus`).
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, path, &e, None))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        toml_error(text, path, e.inner(), Some(key))
    })
}

fn toml_error(text: &str, path: &Path, e: &toml::de::Error, key: Option<String>) -> ConfigError {
    let mut location = String::new();
    if let Some(span) = e.span() {
        let (line, col) = line_col(text, span.start);
        location.push_str(&format!("line {line}, column {col}: "));
    }
    if let Some(key) = key.filter(|k| !k.is_empty() && k != ".") {
        location.push_str(&format!("key `{key}`: "));
    }
    ConfigError::syntax(path, "TOML", location, e.message().trim_end().to_string())
}

/// One-based line and column of byte offset `at` in `text`.
pub(crate) fn line_col(text: &str, at: usize) -> (usize, usize) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Decides the format of `path` for a config of kind `what` that accepts
/// `allowed` formats.
pub(crate) fn format_for(
    path: &Path,
    what: &'static str,
    allowed: &[ConfigFormat],
    expected: &'static str,
) -> Result<ConfigFormat> {
    match ConfigFormat::from_path(path) {
        Some(f) if allowed.contains(&f) => Ok(f),
        _ => Err(ConfigError::UnknownFormat { path: path.to_path_buf(), what, expected }),
    }
}
