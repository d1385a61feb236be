//! Small file helpers shared by the library's writers.

use std::io::{BufWriter, Write};
use std::path::Path;

use crate::chakra::ChakraError;

/// Writes a file so that it is never seen half-written: the content goes to a
/// temporary file in the same folder, which is renamed over `path` only after
/// `fill` succeeded and the data was flushed. On error nothing is left behind.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> Result<(), ChakraError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if path.is_dir() {
        return Err(ChakraError::IsDirectory { path: path.to_path_buf() });
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(ChakraError::io(path, "cannot write", e));
    }
    Ok(())
}
