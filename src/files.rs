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

/// Decompresses gzip (by magic bytes, not by name), or returns the bytes as they are. A gzip
/// stream is read only as far as the IDX header inside it says the file goes (plus one byte, to
/// notice trailing data), so a small damaged or hostile file cannot make us allocate gigabytes.
pub fn decompress(raw: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let damaged = |e: std::io::Error| Error::Corrupt {
        path: path.to_owned(),
        msg: format!("gzip stream is damaged or cut short ({e})"),
    };
    let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]);
    let mut out = Vec::new();
    (&mut dec).take(4).read_to_end(&mut out).map_err(damaged)?;
    // An IDX magic is 0, 0, type, number of dimensions; anything else is left for the IDX
    // parser to reject by its first four bytes.
    if out.len() < 4 || out[0] != 0 || out[1] != 0 {
        return Ok(out);
    }
    let ndim = out[3] as u64;
    (&mut dec)
        .take(4 * ndim)
        .read_to_end(&mut out)
        .map_err(damaged)?;
    if out.len() < 4 + 4 * ndim as usize {
        return Ok(out);
    }
    let payload = (0..ndim as usize)
        .map(|i| {
            u32::from_be_bytes([
                out[4 + 4 * i],
                out[5 + 4 * i],
                out[6 + 4 * i],
                out[7 + 4 * i],
            ])
        })
        .try_fold(idx_element_bytes(out[2]), |acc, d| {
            acc.checked_mul(d as u64)
        })
        .unwrap_or(u64::MAX);
    let rest = payload.saturating_add(1);
    out.reserve(rest.min(raw.len() as u64 * 16) as usize);
    (&mut dec)
        .take(rest)
        .read_to_end(&mut out)
        .map_err(damaged)?;
    Ok(out)
}

/// Bytes per element of an IDX type code (u8, i8, i16, i32, f32, f64); 1 for unknown codes,
/// which the IDX parser rejects.
pub fn idx_element_bytes(code: u8) -> u64 {
    match code {
        0x0b => 2,
        0x0c | 0x0d => 4,
        0x0e => 8,
        _ => 1,
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
