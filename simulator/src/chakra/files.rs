//! Which file holds which trace: format by extension, and expansion of a
//! workload argument (a file, a `PREFIX` naming `PREFIX.<rank>.et`, or a folder)
//! into per-rank files.

use std::path::{Path, PathBuf};

use super::codec::{read_et_file, write_et_file, EtTrace};
use super::error::{ChakraError, Result};
use super::json::{read_json_trace, write_json_trace};

/// On-disk forms a trace can be written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceFormat {
    /// Binary `.et`.
    Et,
    /// Gzip-compressed binary `.et.gz`.
    EtGz,
    /// JSON (any of the forms in [`super::json`] when reading; the document form when writing).
    Json,
}

impl TraceFormat {
    /// The format a file name implies: `.json`, `.gz`, else binary.
    pub fn from_path(path: &Path) -> TraceFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("json") => TraceFormat::Json,
            Some(e) if e.eq_ignore_ascii_case("gz") => TraceFormat::EtGz,
            _ => TraceFormat::Et,
        }
    }
}

/// Reads a trace in any supported form (binary, gzip, or JSON by extension).
pub fn read_trace(path: impl AsRef<Path>) -> Result<EtTrace> {
    let path = path.as_ref();
    match TraceFormat::from_path(path) {
        TraceFormat::Json => read_json_trace(path),
        TraceFormat::Et | TraceFormat::EtGz => read_et_file(path),
    }
}

/// Writes a trace in the form its extension names: `.et`, `.et.gz` or `.json`.
pub fn write_trace(path: impl AsRef<Path>, trace: &EtTrace) -> Result<()> {
    let path = path.as_ref();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".json") {
        write_json_trace(path, trace)
    } else if name.ends_with(".et") || name.ends_with(".et.gz") {
        write_et_file(path, trace)
    } else {
        Err(ChakraError::UnknownFormat { path: path.to_path_buf(), expected: "a name ending in .et, .et.gz or .json" })
    }
}

/// One rank's trace file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RankFile {
    /// The rank, when the name says it (`PREFIX.<rank>.et`).
    pub rank: Option<u32>,
    /// The file.
    pub path: PathBuf,
}

/// Parses the rank out of `<stem>.<rank>.et[.gz]` or `<stem>.<rank>.json`.
fn rank_of(name: &str) -> Option<(String, u32)> {
    let base =
        name.strip_suffix(".et.gz").or_else(|| name.strip_suffix(".et")).or_else(|| name.strip_suffix(".json"))?;
    let (stem, rank) = base.rsplit_once('.')?;
    if rank.is_empty() || !rank.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.to_string(), rank.parse().ok()?))
}

/// Expands a workload argument into per-rank files, ordered by rank.
///
/// * an existing file is itself (its rank parsed from the name when possible);
/// * a folder holds `<stem>.<rank>.et` files of a single stem;
/// * anything else is a prefix: `PREFIX.0.et`, `PREFIX.1.et`, ... (`.et.gz` too).
///
/// Ranks must run from 0 without gaps; a gap is an error naming the missing file.
pub fn expand_workload(arg: &Path) -> Result<Vec<RankFile>> {
    if arg.is_file() {
        let rank = arg.file_name().and_then(|n| n.to_str()).and_then(rank_of).map(|(_, r)| r);
        return Ok(vec![RankFile { rank, path: arg.to_path_buf() }]);
    }
    let (dir, stem_filter): (PathBuf, Option<String>) = if arg.is_dir() {
        (arg.to_path_buf(), None)
    } else {
        let dir = match arg.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let stem = arg.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        (dir, Some(stem))
    };
    let entries = std::fs::read_dir(&dir).map_err(|e| ChakraError::io(&dir, "cannot list", e))?;
    let mut found: Vec<(String, u32, PathBuf)> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ChakraError::io(&dir, "cannot list", e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            continue; // comm-group files live beside the traces
        }
        if let Some((stem, rank)) = rank_of(&name) {
            if stem_filter.as_ref().is_none_or(|s| *s == stem) {
                found.push((stem, rank, entry.path()));
            }
        }
    }
    if found.is_empty() {
        let what = match &stem_filter {
            Some(stem) => format!("no file named {stem}.<rank>.et or {stem}.<rank>.et.gz in {}", dir.display()),
            None => format!("no <name>.<rank>.et files in the folder {}", dir.display()),
        };
        return Err(ChakraError::format(arg, "workload", what));
    }
    let stems: std::collections::BTreeSet<&str> = found.iter().map(|(s, _, _)| s.as_str()).collect();
    if stems.len() > 1 {
        let list: Vec<&str> = stems.into_iter().collect();
        return Err(ChakraError::format(
            arg,
            "workload",
            format!("the folder holds traces of several workloads ({}); name one as FOLDER/<name>", list.join(", ")),
        ));
    }
    found.sort_by_key(|(_, r, _)| *r);
    if let Some(w) = found.windows(2).find(|w| w[0].1 == w[1].1) {
        let what = format!("rank {} has two files: {} and {}", w[0].1, w[0].2.display(), w[1].2.display());
        return Err(ChakraError::format(arg, "workload", what));
    }
    for (expected, (stem, rank, path)) in (0u32..).zip(&found) {
        if *rank != expected {
            let what = format!("rank {expected} is missing: expected {stem}.{expected}.et beside {}", path.display());
            return Err(ChakraError::format(arg, "workload", what));
        }
    }
    Ok(found.into_iter().map(|(_, rank, path)| RankFile { rank: Some(rank), path }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_names() {
        assert_eq!(rank_of("allreduce.12.et"), Some(("allreduce".into(), 12)));
        assert_eq!(rank_of("a.b.3.et.gz"), Some(("a.b".into(), 3)));
        assert_eq!(rank_of("x.et"), None);
        assert_eq!(rank_of("x.-1.et"), None);
    }

    #[test]
    fn prefix_expansion_finds_ranks_in_order_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        for r in [0, 1, 2, 10] {
            std::fs::write(dir.path().join(format!("w.{r}.et")), b"\x00").unwrap();
        }
        let err = expand_workload(&dir.path().join("w")).unwrap_err().to_string();
        assert!(err.contains("rank 3 is missing"), "{err}");
        std::fs::remove_file(dir.path().join("w.10.et")).unwrap();
        let files = expand_workload(&dir.path().join("w")).unwrap();
        assert_eq!(files.iter().map(|f| f.rank).collect::<Vec<_>>(), vec![Some(0), Some(1), Some(2)]);
        assert_eq!(expand_workload(dir.path()).unwrap().len(), 3);
        let err = expand_workload(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.contains("no file named nope.<rank>.et"), "{err}");
    }
}
