//! Files on disk: which file is which (name and checksum), finding it raw or gzipped, reading
//! it within a size bound, and checking its SHA-256. Both the loader (`data`) and the
//! downloader (`download`) use this; neither imports the other's internals.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// One of the four canonical files, with the SHA-256 of its decompressed bytes.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// `dir/name` (raw) or `dir/name.gz`, whichever exists; raw wins.
pub fn find_local(dir: &Path, name: &str) -> Option<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Some(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// Reads a file, gunzipping it if it is gzip (by magic bytes, not by name).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decompress(raw, path)
}

pub fn decompress(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::with_capacity(raw.len() * 4);
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                msg: format!("gzip stream is damaged or cut short ({e})"),
            })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks decompressed bytes against the expected SHA-256.
pub fn verify(bytes: &[u8], f: FileSpec) -> Result<()> {
    let found = sha256_hex(bytes);
    if found == f.sha256 {
        Ok(())
    } else {
        Err(Error::Checksum {
            file: f.name.to_owned(),
            expected: f.sha256.to_owned(),
            found,
        })
    }
}
