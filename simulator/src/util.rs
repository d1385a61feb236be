//! Small file helpers shared by the library's writers.

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
    let target = link_target(path);
    match std::fs::metadata(&target) {
        Ok(m) if m.is_dir() => return Err(ChakraError::IsDirectory { path: path.to_path_buf() }),
        Ok(m) if !m.is_file() => {
            let result = (|| {
                let mut w = BufWriter::new(std::fs::OpenOptions::new().write(true).open(&target)?);
                fill(&mut w)?;
                w.flush()
            })();
            return result.map_err(|e| ChakraError::io(path, "cannot write", e));
        }
        _ => {}
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ChakraError::io(path, "cannot write", e));
    }
    Ok(())
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
}
