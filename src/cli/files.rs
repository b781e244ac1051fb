//! Writing manifests into the inventory.

use std::path::Path;

use super::CommandError;

/// Writes through a hidden temporary file (never read as a manifest) and a rename.
pub(super) fn write_atomically(path: &Path, text: &str) -> Result<(), CommandError> {
    let failed =
        |e: std::io::Error| CommandError::new(format!("cannot write {}: {e}", path.display()));
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(failed)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&temporary, text).map_err(failed)?;
    std::fs::rename(&temporary, path).map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        failed(e)
    })
}
