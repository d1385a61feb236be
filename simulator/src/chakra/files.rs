//! Which file holds which trace: format by extension, expansion of a workload
//! argument (a file, a `PREFIX` naming `PREFIX.<rank>.et`, or a folder) into
//! per-rank files, and writing a workload's rank files all or nothing.

use std::path::{Path, PathBuf};

use super::codec::{read_et_file, stage_et_file, EtTrace};
use super::error::{ChakraError, Result};
use super::json::{read_json_trace, stage_json_trace};
use crate::util::{commit_all, same_file, StagedFile};

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
    stage_trace(path, trace)?.commit()
}

/// Writes what [`write_trace`] writes, staged: complete under a temporary
/// name, in place on [`StagedFile::commit`].
pub fn stage_trace(path: impl AsRef<Path>, trace: &EtTrace) -> Result<StagedFile> {
    let path = path.as_ref();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name.ends_with(".json") {
        stage_json_trace(path, trace)
    } else if name.ends_with(".et") || name.ends_with(".et.gz") {
        stage_et_file(path, trace)
    } else {
        Err(ChakraError::UnknownFormat { path: path.to_path_buf(), expected: "a name ending in .et, .et.gz or .json" })
    }
}

/// `PREFIX.<rank>.et`: where rank `rank` of the workload `prefix` is written.
pub fn rank_file_path(prefix: &Path, rank: u32) -> PathBuf {
    let mut s = prefix.as_os_str().to_os_string();
    s.push(format!(".{rank}.et"));
    PathBuf::from(s)
}

/// Fails with [`ChakraError::IsDirectory`] naming the first of `paths` that is
/// a folder: checked before writing any of them, so a folder in the way of a
/// later file does not leave the earlier ones behind.
pub fn check_output_paths<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<()> {
    match paths.into_iter().find(|p| p.is_dir()) {
        Some(p) => Err(ChakraError::IsDirectory { path: p.clone() }),
        None => Ok(()),
    }
}

/// Removes the rank files an earlier workload left under `prefix` that would
/// make it name something other than a workload of `ranks` ranks just
/// written as `PREFIX.<r>.et`: the gzip twins `PREFIX.<r>.et.gz` of its ranks
/// (reading the prefix would find two files for one rank), and
/// `PREFIX.<r>.et` or `.et.gz` for `r = ranks, ranks + 1, …` as long as one
/// exists (ranks of a larger workload, which [`expand_workload`] would read
/// as this one's). Returns the files removed, by rank.
pub fn remove_stale_ranks(prefix: &Path, ranks: u32) -> Result<Vec<PathBuf>> {
    let gz_of = |r: u32| {
        let mut gz = rank_file_path(prefix, r).into_os_string();
        gz.push(".gz");
        PathBuf::from(gz)
    };
    let mut removed = Vec::new();
    let mut remove = |path: PathBuf| {
        std::fs::remove_file(&path)
            .map_err(|e| ChakraError::io(&path, "cannot remove this rank file of an earlier workload", e))?;
        removed.push(path);
        Ok::<_, ChakraError>(())
    };
    // A rank file may be a link to its own twin: then the twin holds the
    // rank and stays (a twin that is itself a link is only a name: removed).
    let holds = |gz: &Path, rank: &Path| gz.symlink_metadata().is_ok_and(|m| m.is_file()) && same_file(gz, rank);
    for r in 0.. {
        let stale: Vec<PathBuf> = if r < ranks {
            Some(gz_of(r)).into_iter().filter(|gz| !holds(gz, &rank_file_path(prefix, r))).collect()
        } else {
            vec![rank_file_path(prefix, r), gz_of(r)]
        };
        let stale: Vec<PathBuf> = stale.into_iter().filter(|p| p.is_file()).collect();
        if r >= ranks && stale.is_empty() {
            break;
        }
        stale.into_iter().try_for_each(&mut remove)?;
    }
    Ok(removed)
}

/// The files [`write_workload`] wrote and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WrittenWorkload {
    /// `PREFIX.<rank>.et`, by rank.
    pub rank_files: Vec<PathBuf>,
    /// Rank files of an earlier workload under the same prefix (more ranks,
    /// or `.et.gz` twins of these), removed.
    pub stale_removed: Vec<PathBuf>,
}

/// Writes `traces[r]` to `PREFIX.<r>.et` for every rank, all or nothing: every
/// path is checked before the first is written, every file is written in
/// full under a temporary name before any is moved into place (so a failure
/// leaves the files an earlier workload had under the prefix as they were),
/// and once all are in place the rank files of an earlier workload under the
/// same prefix that would be read with it (more ranks, `.et.gz` twins) are
/// removed (see [`remove_stale_ranks`]) so that the prefix names exactly this
/// workload.
pub fn write_workload(prefix: &Path, traces: &[EtTrace]) -> Result<WrittenWorkload> {
    let ranks = u32::try_from(traces.len()).map_err(|_| {
        ChakraError::format(prefix, "workload", format!("{} ranks; at most 2^32 - 1 can be written", traces.len()))
    })?;
    let rank_files: Vec<PathBuf> = (0..ranks).map(|r| rank_file_path(prefix, r)).collect();
    check_output_paths(&rank_files)?;
    let staged =
        traces.iter().zip(&rank_files).map(|(trace, path)| stage_trace(path, trace)).collect::<Result<Vec<_>>>()?;
    commit_all(staged)?;
    let stale_removed = remove_stale_ranks(prefix, ranks)?;
    Ok(WrittenWorkload { rank_files, stale_removed })
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
/// Two names of one rank that are one file (`PREFIX.1.et` a link to
/// `PREFIX.1.et.gz`) count once, as the file linked to.
/// A path that names nothing is [`ChakraError::NotFound`], which mentions the
/// prefix reading only when the name could be a prefix (a name ending in `.et`,
/// `.gz` or `.json` is taken to mean a file).
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
    if stem_filter.is_some() && !dir.is_dir() {
        return Err(ChakraError::NotFound { path: arg.to_path_buf(), detail: String::new() });
    }
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
        let Some(stem) = &stem_filter else {
            let what = format!("no <name>.<rank>.et files in the folder {}", dir.display());
            return Err(ChakraError::format(arg, "workload", what));
        };
        let file_like = [".et", ".gz", ".json"].iter().any(|ext| stem.to_ascii_lowercase().ends_with(ext));
        let detail = if file_like {
            String::new()
        } else {
            format!(
                ", nor a workload prefix: no file named {stem}.<rank>.et or {stem}.<rank>.et.gz in {}",
                dir.display()
            )
        };
        return Err(ChakraError::NotFound { path: arg.to_path_buf(), detail });
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
    // Two names of one rank that are one file (a link to the other) are one
    // rank file: the one the link points to is kept.
    found.dedup_by(|later, earlier| {
        let same = same_file(&later.2, &earlier.2);
        if later.1 == earlier.1 && same && earlier.2.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
            std::mem::swap(later, earlier);
        }
        later.1 == earlier.1 && same
    });
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
    }

    #[test]
    fn a_path_naming_nothing_says_so_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        // A file name: it does not exist, and that is all.
        let err = expand_workload(&dir.path().join("nope.et")).unwrap_err().to_string();
        assert_eq!(err, format!("{d}/nope.et: no such file or folder"));
        let err = expand_workload(&dir.path().join("gone/w.0.et.gz")).unwrap_err().to_string();
        assert_eq!(err, format!("{d}/gone/w.0.et.gz: no such file or folder"));
        // A name that could be a prefix: which rank files were looked for, and where.
        let err = expand_workload(&dir.path().join("nope")).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{d}/nope: no such file or folder, nor a workload prefix: no file named nope.<rank>.et or nope.<rank>.et.gz in {d}")
        );
        // A prefix in a folder that does not exist.
        let err = expand_workload(&dir.path().join("gone/w")).unwrap_err().to_string();
        assert_eq!(err, format!("{d}/gone/w: no such file or folder"));
    }

    fn trace(ranks: u64) -> Vec<EtTrace> {
        let node = |id| crate::chakra::Node { id, name: format!("n{id}"), ..Default::default() };
        (0..ranks).map(|r| EtTrace { metadata: None, nodes: vec![node(r)] }).collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[cfg(unix)]
    #[test]
    fn workload_writes_are_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w");
        // A folder in the way of rank 2: nothing at all is written.
        std::fs::create_dir(dir.path().join("w.2.et")).unwrap();
        let err = write_workload(&p, &trace(4)).unwrap_err();
        assert!(matches!(&err, ChakraError::IsDirectory { path } if path.ends_with("w.2.et")), "{err}");
        assert_eq!(names(dir.path()), ["w.2.et"]);
        // A write that fails part-way leaves nothing: rank 1 is a link into a
        // folder that does not exist, so its file cannot be written.
        std::fs::remove_dir(dir.path().join("w.2.et")).unwrap();
        let blocker = dir.path().join("w.1.et");
        std::os::unix::fs::symlink(dir.path().join("gone/w.1.et"), &blocker).unwrap();
        let err = write_workload(&p, &trace(4)).unwrap_err().to_string();
        assert!(err.contains("w.1.et: cannot write"), "{err}");
        assert_eq!(names(dir.path()), ["w.1.et"], "only the link");
        std::fs::remove_file(&blocker).unwrap();
        // Over an earlier workload, a failure part-way leaves its files as
        // they were: nothing is moved into place before everything is written.
        write_workload(&p, &trace(3)).unwrap();
        let before: Vec<Vec<u8>> = (0..3).map(|r| std::fs::read(rank_file_path(&p, r)).unwrap()).collect();
        let blocker = dir.path().join("w.4.et");
        std::os::unix::fs::symlink(dir.path().join("gone/w.4.et"), &blocker).unwrap();
        let mut newer = trace(5);
        newer.iter_mut().for_each(|t| t.nodes[0].name.push_str(" (newer)"));
        let err = write_workload(&p, &newer).unwrap_err().to_string();
        assert!(err.contains("w.4.et: cannot write"), "{err}");
        std::fs::remove_file(&blocker).unwrap();
        assert_eq!(names(dir.path()), ["w.0.et", "w.1.et", "w.2.et"]);
        let after: Vec<Vec<u8>> = (0..3).map(|r| std::fs::read(rank_file_path(&p, r)).unwrap()).collect();
        assert_eq!(after, before, "the earlier workload's files changed");
        assert_eq!(write_workload(&p, &newer).unwrap().rank_files.len(), 5);
        assert_ne!(std::fs::read(rank_file_path(&p, 0)).unwrap(), before[0], "the new workload is in place");
    }

    #[test]
    fn a_smaller_workload_removes_the_larger_ones_extra_ranks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w");
        let eight = write_workload(&p, &trace(8)).unwrap();
        assert_eq!((eight.rank_files.len(), eight.stale_removed.len()), (8, 0));
        // A gzip rank file of an older run counts as a rank too.
        std::fs::write(dir.path().join("w.8.et.gz"), b"x").unwrap();
        std::fs::write(dir.path().join("other.9.et"), b"x").unwrap();
        let four = write_workload(&p, &trace(4)).unwrap();
        let removed: Vec<String> =
            four.stale_removed.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(removed, ["w.4.et", "w.5.et", "w.6.et", "w.7.et", "w.8.et.gz"]);
        assert_eq!(names(dir.path()), ["other.9.et", "w.0.et", "w.1.et", "w.2.et", "w.3.et"]);
        assert_eq!(expand_workload(&p).unwrap().len(), 4);
        assert!(remove_stale_ranks(&p, 4).unwrap().is_empty());
        // A compressed copy of one of the new ranks would be read as a second
        // file for that rank: it goes too.
        std::fs::write(dir.path().join("w.2.et.gz"), b"x").unwrap();
        let again = write_workload(&p, &trace(4)).unwrap();
        assert_eq!(again.stale_removed, [dir.path().join("w.2.et.gz")]);
        assert_eq!(expand_workload(&p).unwrap().len(), 4);
    }

    /// Links among the rank files: two ranks linked to one file both write
    /// it (the last wins, as with plain writes); a rank linked to its own
    /// `.et.gz` twin keeps it, and reading the prefix takes the two names as
    /// one rank file; a twin that links to its rank is removed.
    #[cfg(unix)]
    #[test]
    fn rank_files_that_are_links_are_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w");
        let shared = dir.path().join("shared.et");
        std::os::unix::fs::symlink(&shared, dir.path().join("w.0.et")).unwrap();
        std::os::unix::fs::symlink(&shared, dir.path().join("w.1.et")).unwrap();
        let traces = trace(2);
        write_workload(&p, &traces).unwrap();
        assert_eq!(read_trace(&shared).unwrap(), traces[1]);
        assert_eq!(names(dir.path()), ["shared.et", "w.0.et", "w.1.et"], "a temporary file was left");
        std::fs::remove_file(dir.path().join("w.1.et")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("w.1.et.gz"), dir.path().join("w.1.et")).unwrap();
        let written = write_workload(&p, &traces).unwrap();
        assert!(written.stale_removed.is_empty(), "{:?}", written.stale_removed);
        assert_eq!(read_trace(dir.path().join("w.1.et")).unwrap(), traces[1]);
        // The prefix reads as one workload: the link and its target are one rank file.
        let ranks = expand_workload(&p).unwrap();
        assert_eq!(ranks.len(), 2);
        assert_eq!(ranks[1].path, dir.path().join("w.1.et.gz"));
        // A twin that is a link to the rank file is only a name: removed.
        std::fs::remove_file(dir.path().join("w.1.et")).unwrap();
        std::fs::rename(dir.path().join("w.1.et.gz"), dir.path().join("w.1.et")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("w.1.et"), dir.path().join("w.1.et.gz")).unwrap();
        let written = write_workload(&p, &traces).unwrap();
        assert_eq!(written.stale_removed, [dir.path().join("w.1.et.gz")]);
        assert_eq!(read_trace(dir.path().join("w.1.et")).unwrap(), traces[1]);
        assert_eq!(expand_workload(&p).unwrap().len(), 2);
    }
}
