//! descent: a small, fast multilayer-perceptron trainer with a CPU reference path and a WGSL GPU
//! path through wgpu. See README.md.

pub mod analysis;
pub mod backend;
pub mod bench;
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

/// Fails before any work when the file `path` cannot be written: its directory must exist and
/// be writable, and the path itself must not be a directory.
pub fn check_output_file(flag: &str, path: &Path) -> Result<()> {
    let bad = |why: String| {
        Err(Error::InvalidArg(format!(
            "{flag} {}: {why}",
            path.display()
        )))
    };
    if path.is_dir() {
        return bad("is a directory; give a file name".into());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return bad(format!("directory {} does not exist", dir.display()));
    }
    check_writable(flag, path, dir)
}

/// Fails before any work unless `dir` is a directory we can write in, or can be created (its
/// parent exists). Creates it.
pub fn check_output_dir(flag: &str, dir: &Path) -> Result<()> {
    let bad = |why: String| {
        Err(Error::InvalidArg(format!(
            "{flag} {}: {why}",
            dir.display()
        )))
    };
    if dir.exists() && !dir.is_dir() {
        return bad("exists and is not a directory".into());
    }
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(|e| {
            Error::InvalidArg(format!("{flag} {}: cannot create it ({e})", dir.display()))
        })?;
    }
    check_writable(flag, dir, dir)
}

/// Creates and removes a temp file in `dir`: the only sure test that a later write will work.
fn check_writable(flag: &str, path: &Path, dir: &Path) -> Result<()> {
    temp_file_in(dir, ".descent-check-").map(drop).map_err(|e| {
        Error::InvalidArg(format!(
            "{flag} {}: cannot write in {} ({e})",
            path.display(),
            dir.display()
        ))
    })
}
