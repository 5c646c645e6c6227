//! `--data idx:PREFIX` or `idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS]`: IDX files of any sample
//! shape (EMNIST, KMNIST, QMNIST), bytes or floats, rank 2 ([n, features]) or 3 ([n, h, w]).

use std::path::{Path, PathBuf};

use super::{Known, Raw, Source};
use crate::error::{Error, Result};
use crate::files::read_maybe_gz;

/// The files a prefix names: `{PREFIX}train-images-idx3-ubyte` (or `-idx2-`), its labels, and
/// `t10k-` or `test-` for the test pair, each possibly `.gz`. A prefix that is a directory looks
/// inside it.
pub fn find_prefix(prefix: &str) -> std::result::Result<Source, String> {
    let base = if Path::new(prefix).is_dir() {
        format!("{}/", prefix.trim_end_matches('/'))
    } else {
        prefix.to_owned()
    };
    let find = |split: &str, what: &str| -> Option<PathBuf> {
        let ranks: &[&str] = if what == "labels" {
            &["1"]
        } else {
            &["3", "2"]
        };
        for r in ranks {
            for ext in ["", ".gz"] {
                let p = PathBuf::from(format!("{base}{split}-{what}-idx{r}-ubyte{ext}"));
                if p.is_file() {
                    return Some(p);
                }
            }
        }
        None
    };
    let train = (find("train", "images"), find("train", "labels"));
    let test = ["t10k", "test"]
        .iter()
        .find_map(|s| Some((find(s, "images")?, find(s, "labels")?)));
    match train {
        (Some(images), Some(labels)) => Ok(Source::Idx {
            images,
            labels,
            test,
        }),
        _ => Err(format!(
            "no {base}train-images-idx3-ubyte[.gz] with its train-labels-idx1-ubyte; name the files: idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS]"
        )),
    }
}

/// An IDX file's dimensions and its values as f32; `bytes` when the type is unsigned bytes.
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub values: Vec<f32>,
    pub bytes: bool,
}

/// Parses an IDX file of any element type (u8, i8, i16, i32, f32, f64: magic 0, 0, type, rank).
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    let corrupt = |msg: String| Error::Corrupt {
        path: path.to_owned(),
        msg,
    };
    if bytes.is_empty() {
        return Err(corrupt("the file is empty".into()));
    }
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(corrupt(
            "not an IDX file (it must start with two zero bytes, the type and the rank)".into(),
        ));
    }
    let (ty, rank) = (bytes[2], bytes[3] as usize);
    let size = match ty {
        0x08 | 0x09 => 1,
        0x0b => 2,
        0x0c | 0x0d => 4,
        0x0e => 8,
        _ => return Err(corrupt(format!("unknown IDX element type {ty:#04x}"))),
    };
    if rank == 0 {
        return Err(corrupt("rank 0: no samples dimension".into()));
    }
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(Error::Truncated {
            path: path.to_owned(),
            expected: header,
            found: bytes.len(),
        });
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|c| c.checked_mul(size))
        .ok_or_else(|| corrupt(format!("dimensions {dims:?} overflow")))?;
    let expected = header + count;
    // The values become f32: refuse what cannot fit before allocating it.
    super::check_memory(path, (count / size) as u64 * 4, super::memory_limit())?;
    if bytes.len() < expected {
        return Err(Error::Truncated {
            path: path.to_owned(),
            expected,
            found: bytes.len(),
        });
    }
    if bytes.len() > expected {
        return Err(corrupt(format!(
            "data after the {expected} bytes the header accounts for"
        )));
    }
    let p = &bytes[header..];
    let values: Vec<f32> = match ty {
        0x08 => p.iter().map(|&b| b as f32).collect(),
        0x09 => p.iter().map(|&b| b as i8 as f32).collect(),
        0x0b => p
            .chunks_exact(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]) as f32)
            .collect(),
        0x0c => p
            .chunks_exact(4)
            .map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        0x0d => p
            .chunks_exact(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        _ => p
            .chunks_exact(8)
            .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
            .collect(),
    };
    Ok(IdxArray {
        dims,
        values,
        bytes: ty == 0x08,
    })
}

/// Reads an images/labels pair.
pub fn read(images: &Path, labels: &Path, known: Option<&Known>) -> Result<Raw> {
    let img = parse(&read_maybe_gz(images)?, images)?;
    let lab = parse(&read_maybe_gz(labels)?, labels)?;
    let n = img.dims[0];
    let shape: Vec<usize> = match img.dims[1..] {
        [f] => vec![f],
        [h, w] => vec![1, h, w],
        _ => {
            return Err(Error::Corrupt {
                path: images.to_owned(),
                msg: format!(
                    "rank {} ({:?}); descent reads rank 2 [n, features] or 3 [n, height, width]",
                    img.dims.len(),
                    img.dims
                ),
            });
        }
    };
    if lab.dims.len() != 1 {
        return Err(Error::Corrupt {
            path: labels.to_owned(),
            msg: format!("labels must be rank 1 [n], this is {:?}", lab.dims),
        });
    }
    if lab.dims[0] != n {
        return Err(Error::Data {
            path: labels.to_owned(),
            msg: format!(
                "{} labels for the {n} samples of {}",
                lab.dims[0],
                images.display()
            ),
        });
    }
    let mut ints = Vec::with_capacity(n);
    for (i, &v) in lab.values.iter().enumerate() {
        if v < 0.0 || v.fract() != 0.0 {
            return Err(Error::Corrupt {
                path: labels.to_owned(),
                msg: format!("label {v} at index {i} is not a class number"),
            });
        }
        ints.push(v as i64);
    }
    let (class_names, labels_idx) = match known {
        Some(k) => {
            let mut out = Vec::with_capacity(n);
            for (i, v) in ints.iter().enumerate() {
                let s = v.to_string();
                let c = k
                    .class_names
                    .iter()
                    .position(|n| *n == s)
                    .ok_or_else(|| Error::Data {
                        path: labels.to_owned(),
                        msg: format!("label {v} at index {i} is not a class of the training set"),
                    })?;
                out.push(c as u8);
            }
            (k.class_names.clone(), out)
        }
        None => {
            // Classes are the label values present, in numeric order (EMNIST letters number
            // theirs from 1), named by their values.
            let strings: Vec<String> = ints.iter().map(|v| v.to_string()).collect();
            super::index_labels(&strings, labels)?
        }
    };
    if let Some(k) = known
        && k.shape != shape
    {
        return Err(Error::Data {
            path: images.to_owned(),
            msg: format!("samples are {shape:?}, the training set's {:?}", k.shape),
        });
    }
    let width = shape.iter().product();
    Ok(Raw {
        x: img.values,
        labels: labels_idx,
        width,
        shape,
        class_names,
        bytes: img.bytes,
        path: images.to_owned(),
        ..Raw::default()
    })
}
