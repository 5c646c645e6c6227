//! TensorBoard event files: scalars a running training can be watched through.
//!
//! A file is a sequence of TFRecords, each `u64 length (LE) · masked CRC-32C of the length ·
//! data · masked CRC-32C of the data`, and each record's data is an `Event` protobuf. We write
//! only three of its fields, by hand (`prost` would bring a build step for a dozen bytes):
//!
//! ```text
//! Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//! Summary { repeated Value value = 1; }
//! Value   { string tag = 1; float simple_value = 2; }
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// Writes scalars to `DIR/events.out.tfevents.<secs>.<host>.<pid>`. Use the global step (steps
/// since the start of training) for every scalar, so per-step and per-epoch tags share an axis.
pub struct TensorBoard {
    path: PathBuf,
    out: BufWriter<File>,
}

impl TensorBoard {
    /// Creates `dir` if needed and a new event file in it, starting with the `file_version`
    /// record that readers expect first.
    pub fn new(dir: &Path) -> Result<Self> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidArg(format!(
                "--tensorboard {}: exists and is not a directory",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let base = format!(
            "events.out.tfevents.{secs}.{}.{}",
            hostname(),
            std::process::id()
        );
        // Two writers in one process and second would collide; a counter keeps them apart.
        let mut n = 0;
        let (path, file) = loop {
            let name = if n == 0 {
                base.clone()
            } else {
                format!("{base}.{n}")
            };
            let path = dir.join(name);
            match File::options().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(Error::io(&path, e)),
            }
        };
        let mut tb = TensorBoard {
            path,
            out: BufWriter::new(file),
        };
        let mut event = event_header(wall_time(), 0);
        put_bytes(&mut event, 3, b"brain.Event:2");
        tb.record(&event)?;
        tb.flush()?;
        Ok(tb)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one scalar. Buffered: call [`flush`](Self::flush) (after each epoch, say) for a
    /// live view.
    pub fn scalar(&mut self, tag: &str, step: u64, value: f32) -> Result<()> {
        self.record(&scalar_event(wall_time(), tag, step, value))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(&self.path, e))
    }

    fn record(&mut self, data: &[u8]) -> Result<()> {
        let framed = frame_record(data);
        self.out
            .write_all(&framed)
            .map_err(|e| Error::io(&self.path, e))
    }
}

impl Drop for TensorBoard {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// The Event bytes of one scalar summary.
pub fn scalar_event(wall_time: f64, tag: &str, step: u64, value: f32) -> Vec<u8> {
    let mut v = Vec::new();
    put_bytes(&mut v, 1, tag.as_bytes());
    put_key(&mut v, 2, 5);
    v.extend_from_slice(&value.to_le_bytes());
    let mut summary = Vec::new();
    put_bytes(&mut summary, 1, &v);
    let mut event = event_header(wall_time, step);
    put_bytes(&mut event, 5, &summary);
    event
}

/// `data` framed as a TFRecord.
pub fn frame_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// TFRecord's CRC: CRC-32C rotated right by 15 bits plus a constant, so that a CRC of data that
/// itself holds CRCs stays well mixed.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

fn event_header(wall_time: f64, step: u64) -> Vec<u8> {
    let mut e = Vec::new();
    put_key(&mut e, 1, 1);
    e.extend_from_slice(&wall_time.to_le_bytes());
    if step != 0 {
        put_key(&mut e, 2, 0);
        put_varint(&mut e, step);
    }
    e
}

fn put_key(buf: &mut Vec<u8>, field: u64, wire_type: u64) {
    put_varint(buf, (field << 3) | wire_type);
}

fn put_bytes(buf: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_key(buf, field, 2);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's name for the file name, as TensorBoard's own writer uses it; `localhost`
/// when it cannot be read.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into a buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(&buf[..end])
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if rc != 0 || name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_matches_tensorflow() {
        // CRC-32C("123456789") is the standard check value 0xE3069283.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // Masked by hand: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn varints() {
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }
}
