//! Fetching dataset files from a mirror: HTTP(S), `file://` or a plain directory.
//!
//! Bytes land in a temp file beside the destination and are renamed into place only after the
//! decompressed content matched its SHA-256, so an interrupted or corrupt download leaves nothing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::error::{Error, Result};
use crate::files::{FileSpec, decompress, find_local, verify};

/// Attempts per mirror: a second try covers a transient corrupt or cut-off transfer.
const ATTEMPTS: usize = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mirror {
    /// Base URL ending in `/`.
    Http(String),
    Dir(PathBuf),
}

impl Mirror {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::InvalidArg("the mirror is an empty string".into()));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            let base = if s.ends_with('/') {
                s.to_owned()
            } else {
                format!("{s}/")
            };
            Ok(Mirror::Http(base))
        } else if let Some(path) = s.strip_prefix("file://") {
            Ok(Mirror::Dir(PathBuf::from(path)))
        } else if s.contains("://") {
            Err(Error::InvalidArg(format!(
                "mirror {s}: only http://, https://, file:// or a directory are understood"
            )))
        } else {
            Ok(Mirror::Dir(PathBuf::from(s)))
        }
    }

    fn describe(&self, name: &str) -> String {
        match self {
            Mirror::Http(base) => format!("{base}{name}.gz"),
            Mirror::Dir(dir) => dir.join(name).display().to_string(),
        }
    }
}

/// Fetches `f` from the first mirror that yields verified bytes, stores it in `dest_dir`, and
/// returns its decompressed bytes.
pub fn fetch_verified(
    mirrors: &[Mirror],
    f: FileSpec,
    dest_dir: &Path,
    progress: bool,
) -> Result<Vec<u8>> {
    let mut tried = Vec::new();
    for mirror in mirrors {
        for _ in 0..ATTEMPTS {
            match fetch_once(mirror, f, dest_dir, progress) {
                Ok(bytes) => return Ok(bytes),
                Err(Attempt::Final(msg)) => {
                    tried.push(format!("  {}: {msg}", mirror.describe(f.name)));
                    break;
                }
                Err(Attempt::Retry(msg)) => {
                    tried.push(format!("  {}: {msg}", mirror.describe(f.name)));
                }
            }
        }
    }
    Err(Error::Download {
        file: f.name.to_owned(),
        tried: tried.join("\n"),
    })
}

enum Attempt {
    /// Trying this mirror again cannot help (404, file absent).
    Final(String),
    /// Might succeed on a second try (cut-off transfer, corrupt payload).
    Retry(String),
}

fn fetch_once(
    mirror: &Mirror,
    f: FileSpec,
    dest_dir: &Path,
    progress: bool,
) -> Result<Vec<u8>, Attempt> {
    let mut tmp = crate::temp_file_in(dest_dir, &format!(".{}.", f.name))
        .map_err(|e| Attempt::Final(format!("cannot create a temp file in {dest_dir:?}: {e}")))?;
    let dest_name = match mirror {
        Mirror::Http(base) => {
            let url = format!("{base}{}.gz", f.name);
            http_get(&url, tmp.as_file_mut(), f.name, progress)?;
            format!("{}.gz", f.name)
        }
        Mirror::Dir(dir) => {
            let Some(src) = find_local(dir, f.name) else {
                return Err(Attempt::Final("no such file (nor .gz)".into()));
            };
            let file_name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.name.to_owned());
            if dest_dir.join(&file_name) == src {
                // The mirror is the data dir itself: nothing to copy.
                let raw = std::fs::read(&src).map_err(|e| Attempt::Final(e.to_string()))?;
                return check(raw, &src, f).map_err(Attempt::Final);
            }
            let mut reader =
                std::fs::File::open(&src).map_err(|e| Attempt::Final(e.to_string()))?;
            std::io::copy(&mut reader, tmp.as_file_mut())
                .map_err(|e| Attempt::Retry(format!("copy failed: {e}")))?;
            file_name
        }
    };
    let raw = std::fs::read(tmp.path()).map_err(|e| Attempt::Retry(e.to_string()))?;
    let bytes = check(raw, tmp.path(), f).map_err(Attempt::Retry)?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Attempt::Final(e.to_string()))?;
    let dest = dest_dir.join(&dest_name);
    tmp.persist(&dest)
        .map_err(|e| Attempt::Final(format!("cannot move into {}: {}", dest.display(), e.error)))?;
    Ok(bytes)
}

fn check(raw: Vec<u8>, path: &Path, f: FileSpec) -> Result<Vec<u8>, String> {
    let bytes = decompress(raw, path).map_err(|e| e.to_string())?;
    verify(&bytes, f).map_err(|e| e.to_string())?;
    Ok(bytes)
}

fn http_get(url: &str, out: &mut std::fs::File, name: &str, progress: bool) -> Result<(), Attempt> {
    let config = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_recv_body(Some(Duration::from_secs(300)))
        .build();
    let agent = ureq::Agent::new_with_config(config);
    let mut resp = agent.get(url).call().map_err(|e| match e {
        ureq::Error::StatusCode(code) => Attempt::Final(format!("HTTP {code}")),
        other => Attempt::Retry(other.to_string()),
    })?;
    let len = resp.body().content_length();
    let bar = if progress {
        let bar = ProgressBar::new(len.unwrap_or(0));
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.to_owned());
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut reader = resp.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut got = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| Attempt::Retry(format!("transfer broke off after {got} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| Attempt::Final(format!("cannot write: {e}")))?;
        got += n as u64;
        bar.set_position(got);
    }
    bar.finish_and_clear();
    if let Some(len) = len
        && got != len
    {
        return Err(Attempt::Retry(format!(
            "transfer broke off: got {got} of {len} bytes"
        )));
    }
    Ok(())
}
