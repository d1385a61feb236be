//! Resolving paths written inside config files (custom-collective ET
//! prefixes, the per-node custom implementation YAML).
//!
//! ASTRA-sim opens such paths as written, so relative paths are taken from the
//! process's working directory: the oracle cases work only because ASTRA-sim
//! is started inside the case folder. Strata keeps that behaviour when the path
//! exists from the working directory, and otherwise falls back to the folder of
//! the config file, so `strata sim --system cases/x/system.json` also works
//! from elsewhere.

use std::path::{Path, PathBuf};

/// Resolves `raw`, a path written in `config_file`.
///
/// - An absolute `raw` is returned unchanged.
/// - If `raw` exists relative to the working directory (as ASTRA-sim would
///   open it), it is returned unchanged.
/// - Otherwise, if it exists relative to the config file's folder, that path
///   is returned.
/// - If it exists in neither place, the path relative to the config file's
///   folder is returned, so the error the caller reports points at the most
///   likely intended place.
///
/// `raw` may also be a file-name *prefix*, as custom collectives use
/// (`custom/custom_allreduce` names `custom/custom_allreduce.0.et`, ...): a
/// prefix "exists" when its folder holds an entry whose name starts with the
/// prefix's last component followed by a dot.
pub fn resolve_config_path(raw: &str, config_file: &Path) -> PathBuf {
    let raw_path = Path::new(raw);
    if raw_path.is_absolute() || exists_or_prefix(raw_path) {
        return raw_path.to_path_buf();
    }
    let base = config_file.parent().unwrap_or_else(|| Path::new(""));
    base.join(raw_path)
}

/// True when `p` exists, or names a prefix of at least one entry of its folder
/// (`<folder>/<name>.<anything>`).
fn exists_or_prefix(p: &Path) -> bool {
    if p.exists() {
        return true;
    }
    let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let wanted = format!("{name}.");
    // A first quick check on the usual per-rank name avoids listing the folder.
    if dir.join(format!("{name}.0.et")).exists() {
        return true;
    }
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            entries.filter_map(|e| e.ok()).any(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&wanted)))
        }
        Err(_) => false,
    }
}
