//! `--data csv:PATH`: a table, one sample per row, plain or gzipped, read as a stream (the file
//! is never held in memory whole; the f32 matrix is the one big allocation).

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use super::{Header, Known, Missing, Raw, ReadOptions, check_class_count};
use crate::data::MAX_CLASSES;
use crate::error::{Error, Result};

/// Opens `path`, gunzipping by magic bytes.
/// How many values the matrix grows by between memory checks.
const CHECK_EVERY: usize = 16 << 20;

pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let buf = BufReader::with_capacity(1 << 20, f);
    Ok(if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(buf))
    } else {
        Box::new(buf)
    })
}

/// Whether a field is a missing value.
fn is_missing(f: &[u8]) -> bool {
    matches!(
        f.trim_ascii(),
        b"" | b"NA" | b"N/A" | b"NaN" | b"nan" | b"?" | b"null" | b"NULL"
    )
}

fn parse_num(f: &[u8]) -> Option<f32> {
    let t = f.trim_ascii();
    fast_float2::parse::<f32, _>(t)
        .ok()
        .filter(|v: &f32| v.is_finite())
}

/// Whether a header row is scikit-learn's count line: two integers (the second the number of
/// features), then the class names.
fn count_header(first: &csv::ByteRecord, data_fields: usize) -> bool {
    let int = |i: usize| {
        first
            .get(i)
            .and_then(|f| std::str::from_utf8(f.trim_ascii()).ok())
            .and_then(|s| s.parse::<usize>().ok())
    };
    first.len() > 2 && int(0).is_some() && int(1) == Some(data_fields.saturating_sub(1))
}

/// Reads the table. With `known` (a test file, or rows to predict), the columns and class
/// names must be the training file's.
pub fn read(path: &Path, opts: &ReadOptions, known: Option<&Known>) -> Result<Raw> {
    let err = |msg: String| Error::Data {
        path: path.to_owned(),
        msg,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(open(path)?);
    let csv_err = |e: csv::Error| {
        let line = e.position().map(|p| p.line()).unwrap_or(0);
        err(format!("line {line}: {e}"))
    };
    let mut rec = csv::ByteRecord::new();
    if !rdr.read_byte_record(&mut rec).map_err(csv_err)? {
        return Err(err("the file is empty".into()));
    }
    let first = rec.clone();
    let mut second = csv::ByteRecord::new();
    let has_second = rdr.read_byte_record(&mut second).map_err(csv_err)?;

    // The header: forced, implied by a label column given by name, or a first row whose
    // features are not all numbers.
    // (Rows to predict name the training label column, which they need not have.)
    let named_label = opts
        .label_column
        .as_deref()
        .filter(|l| l.parse::<usize>().is_err() && !known.is_some_and(|k| k.unlabelled));
    let guess_label = |n: usize| match opts.label_column.as_deref().map(str::parse::<usize>) {
        Some(Ok(i)) => i,
        _ => n.saturating_sub(1),
    };
    let header = match opts.header {
        Header::Yes => true,
        Header::No => false,
        Header::Auto if named_label.is_some() => true,
        Header::Auto => {
            let lab = guess_label(first.len());
            first
                .iter()
                .enumerate()
                .any(|(j, f)| j != lab && !is_missing(f) && parse_num(f).is_none())
        }
    };
    let data_fields = if header {
        if !has_second {
            return Err(err("holds a header row and no data".into()));
        }
        second.len()
    } else {
        first.len()
    };
    // scikit-learn's bundled tables open with `n_samples,n_features,class names...`.
    let count_line = header && count_header(&first, data_fields);
    let names: Vec<String> = if header && first.len() == data_fields && !count_line {
        first
            .iter()
            .map(|f| String::from_utf8_lossy(f).trim().to_owned())
            .collect()
    } else {
        // No header, or one that does not match the rows (scikit-learn's count lines).
        (0..data_fields).map(|j| format!("column {j}")).collect()
    };

    // Which column holds the label, if any.
    let label_col: Option<usize> = match known {
        Some(k) if k.unlabelled => {
            let w = k.columns.len();
            if data_fields == w {
                None
            } else if data_fields == w + 1 {
                let by_name = k
                    .label_column
                    .as_ref()
                    .and_then(|l| names.iter().position(|n| n == l));
                Some(by_name.unwrap_or(data_fields - 1))
            } else {
                return Err(err(format!(
                    "rows have {data_fields} fields; the model was trained on {w} feature columns ({}), with the label column `{}` optional",
                    k.columns.join(", "),
                    k.label_column.as_deref().unwrap_or("?")
                )));
            }
        }
        _ => Some(match opts.label_column.as_deref() {
            None => data_fields - 1,
            Some(l) => match l.parse::<usize>() {
                Ok(i) if i < data_fields => i,
                Ok(i) => {
                    return Err(err(format!(
                        "--label-column {i}: rows have {data_fields} fields (columns 0..{})",
                        data_fields - 1
                    )));
                }
                Err(_) => names.iter().position(|n| n == l).ok_or_else(|| {
                    err(format!(
                        "--label-column {l}: no such column; the header has {}",
                        names.join(", ")
                    ))
                })?,
            },
        }),
    };
    let columns: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|&(j, _)| Some(j) != label_col)
        .map(|(_, n)| n.clone())
        .collect();
    let width = columns.len();
    if let Some(k) = known {
        if width != k.width {
            return Err(err(format!(
                "{width} feature columns; the training data had {} ({})",
                k.width,
                k.columns.join(", ")
            )));
        }
        // Named columns must be the training ones, in order.
        let generic = |c: &[String]| c.iter().all(|n| n.starts_with("column "));
        if header && !generic(&columns) && !generic(&k.columns) && columns != k.columns {
            let diff = columns
                .iter()
                .zip(&k.columns)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(err(format!(
                "feature column {diff} is `{}`, the training data's is `{}`; give the same columns in the same order",
                columns[diff], k.columns[diff]
            )));
        }
    }

    let mut raw = Raw {
        width,
        shape: vec![width],
        columns,
        label_column: label_col.map(|c| names[c].clone()),
        path: path.to_owned(),
        ..Raw::default()
    };
    // Labels are interned as read (first seen, first id) and mapped to sorted classes at the end.
    let mut ids: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut seen: Vec<String> = Vec::new();
    let mut row_ids: Vec<u32> = Vec::new();
    let known_map: Option<HashMap<&str, u8>> = known
        .filter(|k| !k.unlabelled || label_col.is_some())
        .map(|k| {
            k.class_names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), i as u8))
                .collect()
        });
    let mut row_vals: Vec<f32> = Vec::with_capacity(width);
    let limit = super::memory_limit();
    let mut handle = |rec: &csv::ByteRecord, raw: &mut Raw| -> Result<()> {
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() != data_fields {
            return Err(err(format!(
                "row {line} has {} fields, the rows before it {data_fields}",
                rec.len()
            )));
        }
        row_vals.clear();
        let mut missing = 0;
        let mut label: Option<&[u8]> = None;
        for (j, f) in rec.iter().enumerate() {
            if Some(j) == label_col {
                label = Some(f);
                continue;
            }
            match parse_num(f) {
                Some(v) => row_vals.push(v),
                None if is_missing(f) => match opts.missing {
                    Missing::Error => {
                        return Err(err(format!(
                            "row {line}, column {}: missing value; --missing drop leaves such rows out, --missing mean fills them",
                            names[j]
                        )));
                    }
                    _ => {
                        missing += 1;
                        row_vals.push(f32::NAN);
                    }
                },
                None => {
                    return Err(err(format!(
                        "row {line}, column {}: `{}` is not a number",
                        names[j],
                        String::from_utf8_lossy(f).trim()
                    )));
                }
            }
        }
        if missing > 0 && opts.missing == Missing::Drop {
            raw.dropped += 1;
            return Ok(());
        }
        raw.missing += missing;
        if let Some(l) = label {
            let l = l.trim_ascii();
            if l.is_empty() {
                return Err(err(format!(
                    "row {line}, column {}: the label is empty",
                    names[label_col.unwrap_or(0)]
                )));
            }
            match &known_map {
                Some(m) => {
                    let s = String::from_utf8_lossy(l);
                    // Under a count line the labels are the classes' numbers.
                    let numbered = || {
                        s.parse::<usize>()
                            .ok()
                            .filter(|&i| count_line && i < m.len())
                            .map(|i| i as u8)
                    };
                    let c = m.get(&*s).copied().or_else(numbered).ok_or_else(|| {
                        err(format!(
                            "row {line}: class `{s}` is not one of the training data's ({})",
                            crate::sources::inspect::list(
                                known.map_or(&[][..], |k| &k.class_names[..]),
                                12
                            )
                        ))
                    })?;
                    raw.labels.push(c);
                }
                None => {
                    let id = match ids.get(l) {
                        Some(&id) => id,
                        None => {
                            if seen.len() >= MAX_CLASSES {
                                return Err(err(format!(
                                    "row {line}: the label column `{}` has more than {MAX_CLASSES} distinct values; is it the right --label-column?",
                                    names[label_col.unwrap_or(0)]
                                )));
                            }
                            let id = seen.len() as u32;
                            ids.insert(l.to_vec(), id);
                            seen.push(String::from_utf8_lossy(l).into_owned());
                            id
                        }
                    };
                    row_ids.push(id);
                }
            }
        } else {
            raw.labels.push(0);
        }
        raw.x.extend_from_slice(&row_vals);
        // A table's size shows only as it is read: check the matrix every 16M values.
        if raw.x.len() / CHECK_EVERY != (raw.x.len() - row_vals.len()) / CHECK_EVERY {
            super::check_memory(path, raw.x.capacity() as u64 * 4, limit)?;
        }
        Ok(())
    };
    if !header {
        handle(&first, &mut raw)?;
    }
    if has_second {
        handle(&second, &mut raw)?;
        while rdr.read_byte_record(&mut rec).map_err(csv_err)? {
            handle(&rec, &mut raw)?;
        }
    }
    if known_map.is_some() {
        raw.class_names = known.map(|k| k.class_names.clone()).unwrap_or_default();
    } else if !seen.is_empty() {
        let (mut names, order) = super::index_labels(&seen, path)?;
        check_class_count(names.len(), path)?;
        raw.labels = row_ids.iter().map(|&id| order[id as usize]).collect();
        // The count line names classes 0..k-1: keep its names.
        let numbered = names.iter().enumerate().all(|(i, n)| *n == i.to_string());
        if count_line && numbered && first.len() - 2 == names.len() {
            names = first
                .iter()
                .skip(2)
                .map(|f| String::from_utf8_lossy(f).trim().to_owned())
                .collect();
        }
        raw.class_names = names;
    } else if let Some(k) = known {
        raw.class_names = k.class_names.clone();
    }
    raw.x.shrink_to_fit();
    Ok(raw)
}
