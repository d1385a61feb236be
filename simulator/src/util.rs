//! Output files shared by the library's writers: each written in full under a
//! temporary name and renamed into place (staged, then committed together for
//! multi-file outputs such as a workload's rank files).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::chakra::ChakraError;

/// Writes a file so that it is never seen half-written: the content goes to a
/// temporary file in the same folder, which is renamed over `path` only after
/// `fill` succeeded and the data was flushed. On error nothing is left behind.
///
/// A symbolic link is followed: its target is replaced, the link stays. An
/// existing file that is not a regular file (a FIFO, a device such as
/// `/dev/stdout` or `/dev/null`) is written through, as a stream; renaming
/// over it would replace the device node itself.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), ChakraError> {
    stage_file(path, fill)?.commit()
}

/// A file written in full under a temporary name beside its target and not
/// yet in place ([`stage_file`]): [`StagedFile::commit`] renames it over the
/// target; dropped uncommitted, the temporary file is removed and the target
/// stays as it was. Staging every file of a set before committing any is how
/// a multi-file output (a workload's rank files) is written all or nothing.
#[derive(Debug)]
#[must_use = "a staged file appears only when committed; dropped, it is removed"]
pub struct StagedFile {
    /// The path as the caller named it (for messages).
    path: PathBuf,
    /// `(temporary file, where it goes)`; `None` once committed, or for a
    /// stream target, which was written through already.
    pending: Option<(PathBuf, PathBuf)>,
}

impl StagedFile {
    /// The path the caller named.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the file into place (one rename in the target's folder).
    pub fn commit(mut self) -> Result<(), ChakraError> {
        match self.pending.take() {
            Some((tmp, target)) => std::fs::rename(&tmp, &target).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                ChakraError::io(&self.path, "cannot write", e)
            }),
            None => Ok(()),
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if let Some((tmp, _)) = self.pending.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Writes what [`write_atomic`] writes to `path`, but leaves it staged: the
/// content is complete and synced under a temporary name, and appears at
/// `path` on [`StagedFile::commit`]. Targets that are streams (not regular
/// files) are written through at once; there is nothing to stage.
pub fn stage_file(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<StagedFile, ChakraError> {
    let target = link_target(path);
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => return Err(ChakraError::IsDirectory { path: path.to_path_buf() }),
        Ok(m) if !m.is_file() => {
            let result = (|| {
                let mut w = BufWriter::new(std::fs::OpenOptions::new().write(true).open(&target)?);
                fill(&mut w)?;
                w.flush()
            })();
            result.map_err(|e| ChakraError::io(path, "cannot write", e))?;
            return Ok(StagedFile { path: path.to_path_buf(), pending: None });
        }
        _ => {}
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // One name per staged file, so that two staged files with one target
    // (two links to a file) do not share a temporary file.
    static STAGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = STAGED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ChakraError::io(path, "cannot write", e));
    }
    Ok(StagedFile { path: path.to_path_buf(), pending: Some((tmp, target)) })
}

/// Commits staged files in order ([`StagedFile::commit`]); the first failure
/// stops it, and the files not yet committed are removed from their
/// temporary names. Renames within a folder are what file systems make
/// atomic, so a failure here (after every file was written) is rare, but it
/// leaves the files committed before it in place: a set is all or nothing
/// against failures while staging, not against a failed rename.
pub fn commit_all(files: impl IntoIterator<Item = StagedFile>) -> Result<(), ChakraError> {
    files.into_iter().try_for_each(StagedFile::commit)
}

/// Whether `a` and `b` name one existing file (through links); false where
/// either cannot be resolved.
pub fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// Where writing `path` goes ([`write_atomic`]): `path` itself, or, for a
/// symbolic link, the file it points to (which may not exist yet).
pub fn link_target(path: &Path) -> PathBuf {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return path.to_path_buf();
    }
    if let Ok(resolved) = std::fs::canonicalize(path) {
        return resolved;
    }
    // A dangling link: its target, relative to the link's folder.
    match std::fs::read_link(path) {
        Ok(t) if t.is_relative() => path.parent().map_or(t.clone(), |d| d.join(&t)),
        Ok(t) => t,
        Err(_) => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) -> Result<(), ChakraError> {
        write_atomic(path, |w| w.write_all(text.as_bytes()))
    }

    /// A symbolic link keeps pointing where it did and its target gets the
    /// content, also when the target does not exist yet; nothing else is left.
    #[cfg(unix)]
    #[test]
    fn a_symbolic_link_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let (target, link) = (dir.path().join("target.json"), dir.path().join("link.json"));
        std::fs::write(&target, "old").unwrap();
        std::os::unix::fs::symlink("target.json", &link).unwrap();
        write(&link, "new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("later.json", &dangling).unwrap();
        write(&dangling, "made").unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("later.json")).unwrap(), "made");
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
        names.sort();
        assert_eq!(names, ["dangling.json", "later.json", "link.json", "target.json"]);
    }

    /// A device is written as a stream, never replaced by a regular file
    /// (reached through a link here, so that a regression replaces the link,
    /// not the machine's /dev/null).
    #[cfg(unix)]
    #[test]
    fn a_device_is_written_as_a_stream() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null.json");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        write(&link, "discarded").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary file was left");
        // A folder is still refused.
        assert!(matches!(write(dir.path(), "x"), Err(ChakraError::IsDirectory { .. })));
    }

    /// A staged file is invisible until committed; dropped, it leaves the
    /// target as it was and no temporary file; `commit_all` stops at the
    /// first failure and drops the rest.
    #[test]
    fn staged_files_appear_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
        std::fs::write(&a, "old a").unwrap();
        let stage = |p: &Path, text: &'static str| stage_file(p, |w| w.write_all(text.as_bytes())).unwrap();
        let staged = stage(&a, "new a");
        assert_eq!(staged.path(), a.as_path());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "the temporary file sits beside it");
        drop(staged);
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "a temporary file was left");
        commit_all([stage(&a, "new a"), stage(&b, "new b")]).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new b");
        // b's rename fails (a folder took its place after staging): a is in
        // place, b is not, c is never committed, and no temporary file stays.
        let staged = [stage(&a, "newer a"), stage(&b, "newer b"), stage(&c, "new c")];
        std::fs::remove_file(&b).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("keep"), "x").unwrap();
        let err = commit_all(staged).unwrap_err().to_string();
        assert!(err.contains("b: cannot write"), "{err}");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "newer a");
        assert!(!c.exists());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["a", "b"]);
    }
}
