//! descent: a small, fast multilayer-perceptron trainer with a CPU reference path and a WGSL GPU
//! path through wgpu. See README.md.

pub mod analysis;
pub mod backend;
pub mod cli;
pub mod cpu;
pub mod data;
pub mod download;
pub mod error;
pub mod explain;
pub mod files;
pub mod gpu;
pub mod landscape;
pub mod model;
pub mod optim;
pub mod overfit;
pub mod plot;
pub mod predict;
pub mod prune;
pub mod rng;
pub mod sources;
pub mod tensorboard;
pub mod train;

pub use error::{Error, Result};

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so readers
/// see the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut tmp = temp_file_in(dir, ".descent-").map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// A temp file in `dir` (so the final rename stays on one filesystem) that becomes an ordinary
/// 0644 file once persisted, not tempfile's private 0600.
pub fn temp_file_in(dir: &Path, prefix: &str) -> std::io::Result<tempfile::NamedTempFile> {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix).suffix(".partial");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(0o644));
    }
    b.tempfile_in(dir)
}
