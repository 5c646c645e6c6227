//! A user's own classification data: where it comes from (`--data csv:PATH`, `idx:PREFIX`,
//! `images:DIR`), the train/test split, and the preprocessing fitted on the training split and
//! saved in the checkpoint so `eval`, `predict` and `prune` apply exactly the same.
//!
//! Each loader (csv.rs, idx.rs, images.rs) turns its files into a [`Raw`] table; [`load`]
//! splits, fits and applies the preprocessing, and returns the two [`Dataset`]s.

pub mod csv;
pub mod idx;
#[cfg(feature = "native")]
pub mod images;
pub mod inspect;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, MAX_CLASSES, Splits};
use crate::error::{Error, Result};
use crate::rng;

/// `--data` / `--test`: one of the three kinds of source.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A CSV table, plain or gzipped.
    Csv(PathBuf),
    /// IDX files: the training pair and, when known, the test pair.
    Idx {
        images: PathBuf,
        labels: PathBuf,
        test: Option<(PathBuf, PathBuf)>,
    },
    /// DIR/`<class>`/*.{png,jpg,bmp}.
    Images(PathBuf),
}

impl Source {
    /// Parses `csv:PATH`, `idx:PREFIX`, `idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS]` or
    /// `images:DIR`; `flag` names the flag in errors.
    pub fn parse(flag: &str, s: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidArg(format!("{flag} {s}: {why}"));
        let (kind, rest) = s.split_once(':').ok_or_else(|| {
            bad("give the kind and a path: csv:PATH, idx:PREFIX or images:DIR".into())
        })?;
        if rest.is_empty() {
            return Err(bad("the path is empty".into()));
        }
        match kind {
            "csv" => Ok(Source::Csv(rest.into())),
            "images" => Ok(Source::Images(rest.into())),
            "idx" => {
                let parts: Vec<&str> = rest.split(',').collect();
                match parts[..] {
                    [prefix] => idx::find_prefix(prefix).map_err(bad),
                    [i, l] => Ok(Source::Idx {
                        images: i.into(),
                        labels: l.into(),
                        test: None,
                    }),
                    [i, l, ti, tl] => Ok(Source::Idx {
                        images: i.into(),
                        labels: l.into(),
                        test: Some((ti.into(), tl.into())),
                    }),
                    _ => Err(bad(
                        "give a prefix, or 2 or 4 comma-separated paths (images, labels[, test images, test labels])"
                            .into(),
                    )),
                }
            }
            _ => Err(bad(format!(
                "unknown kind `{kind}`; expected csv:, idx: or images:"
            ))),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Csv(p) => format!("csv:{}", p.display()),
            Source::Idx { images, .. } => format!("idx:{}", images.display()),
            Source::Images(d) => format!("images:{}", d.display()),
        }
    }

    /// A short name for headers and titles: the file or folder name.
    pub fn short_name(&self) -> String {
        let p = match self {
            Source::Csv(p) => p,
            Source::Idx { images, .. } => images,
            Source::Images(d) => d,
        };
        p.file_name()
            .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
    }
}

/// `--header`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Header {
    /// A first row with a non-numeric feature is a header.
    Auto,
    Yes,
    No,
}

/// `--missing`: what to do with an empty, `NA`, `NaN` or `?` feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// Stop with the row and column.
    Error,
    /// Leave the row out.
    Drop,
    /// Fill with the column's mean over the training split.
    Mean,
}

/// `--normalize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Normalize {
    /// Tables: standard; images: scale.
    Auto,
    /// As they are.
    None,
    /// To [0, 1]: bytes divided by 255, other values by their training-split min and max.
    Scale,
    /// Mean 0 and standard deviation 1 per feature, over the training split.
    Standard,
}

impl Normalize {
    pub fn name(self) -> &'static str {
        match self {
            Normalize::Auto => "auto",
            Normalize::None => "none",
            Normalize::Scale => "scale",
            Normalize::Standard => "standard",
        }
    }
}

/// How a source is read: the flags of the `--data` family.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOptions {
    pub header: Header,
    /// `--label-column`: a name or a 0-based index; the last column when None.
    pub label_column: Option<String>,
    pub missing: Missing,
    /// `--channels` 1 or 3 (images).
    pub channels: usize,
    /// `--image-size` (height, width); the first image's size when None.
    pub image_size: Option<(usize, usize)>,
    pub skip_bad: bool,
    pub progress: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            header: Header::Auto,
            label_column: None,
            missing: Missing::Error,
            channels: 1,
            image_size: None,
            skip_bad: false,
            progress: false,
        }
    }
}

/// A source as read, before splitting and preprocessing.
#[derive(Clone, Debug, Default)]
pub struct Raw {
    /// x: [n, width] f32 (NaN where a value is missing and `--missing mean`).
    pub x: Vec<f32>,
    /// labels: `[n]` class indices into `class_names`.
    pub labels: Vec<u8>,
    pub width: usize,
    /// `[width]` for tables, `[channels, height, width]` for images.
    pub shape: Vec<usize>,
    pub class_names: Vec<String>,
    /// The feature columns' names (tables), in order.
    pub columns: Vec<String>,
    /// The label column's name (tables).
    pub label_column: Option<String>,
    /// Every value is a byte 0..=255 (images, u8 IDX): `scale` divides by 255.
    pub bytes: bool,
    /// Rows left out by `--missing drop`, and missing values filled by `--missing mean`.
    pub dropped: usize,
    pub missing: usize,
    /// Files skipped by `--skip-bad`.
    pub skipped: Vec<String>,
    /// The file or folder the samples came from, for error messages.
    pub path: PathBuf,
}

impl Raw {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Everything but the samples.
    pub fn meta_only(&self) -> Raw {
        Raw {
            x: Vec::new(),
            labels: Vec::new(),
            shape: self.shape.clone(),
            class_names: self.class_names.clone(),
            columns: self.columns.clone(),
            label_column: self.label_column.clone(),
            skipped: Vec::new(),
            path: self.path.clone(),
            ..*self
        }
    }

    pub fn kind(&self) -> &'static str {
        if self.shape.len() == 3 {
            "images"
        } else {
            "table"
        }
    }
}

/// Class names from labels as read: integers sort numerically, anything else as text (as
/// torchvision's ImageFolder sorts its folders). Returns the sorted names and each label's index.
pub fn index_labels(raw: &[String], path: &Path) -> Result<(Vec<String>, Vec<u8>)> {
    let mut names: Vec<String> = raw.to_vec();
    names.sort_unstable();
    names.dedup();
    let numeric = names.iter().all(|n| n.parse::<i64>().is_ok());
    if numeric {
        names.sort_by_key(|n| n.parse::<i64>().unwrap_or(0));
    }
    check_class_count(names.len(), path)?;
    let map: std::collections::HashMap<&str, u8> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i as u8))
        .collect();
    let labels = raw.iter().map(|l| map[l.as_str()]).collect();
    Ok((names, labels))
}

/// The memory a loaded data set may take: what the system reports available now (Linux's
/// MemAvailable), or `DESCENT_MEMORY_LIMIT` (bytes) where that is smaller; None where neither
/// is known.
pub fn memory_limit() -> Option<u64> {
    let env = std::env::var("DESCENT_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok());
    let avail = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    match (env, avail) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Refuses a data set whose f32 matrix needs `bytes` when that is more than `limit` (from
/// [`memory_limit`]), before the allocation is attempted.
pub fn check_memory(path: &Path, bytes: u64, limit: Option<u64>) -> Result<()> {
    match limit {
        Some(l) if bytes > l => Err(Error::Data {
            path: path.to_owned(),
            msg: format!(
                "the data needs {} MB as f32, more than the {} MB of memory available; use a subset (--limit, or a smaller file)",
                bytes.div_ceil(1 << 20),
                l >> 20
            ),
        }),
        _ => Ok(()),
    }
}

pub fn check_class_count(n: usize, path: &Path) -> Result<()> {
    if n > MAX_CLASSES {
        return Err(Error::Data {
            path: path.to_owned(),
            msg: format!("{n} classes; descent handles at most {MAX_CLASSES}"),
        });
    }
    Ok(())
}

/// Reads any source.
pub fn read(src: &Source, opts: &ReadOptions, known: Option<&Known>) -> Result<Raw> {
    match src {
        Source::Csv(p) => csv::read(p, opts, known),
        Source::Idx { images, labels, .. } => idx::read(images, labels, known),
        #[cfg(feature = "native")]
        Source::Images(d) => images::read(d, opts, known),
        // Folders of image files are read on threads, with a progress bar: natively only.
        #[cfg(not(feature = "native"))]
        Source::Images(d) => Err(Error::Data {
            path: d.clone(),
            msg: "image folders are read by the native build only".into(),
        }),
    }
}

/// What a second file of the same data (the test set, or rows to predict) must agree with.
#[derive(Clone, Debug, Default)]
pub struct Known {
    pub class_names: Vec<String>,
    pub columns: Vec<String>,
    pub label_column: Option<String>,
    pub width: usize,
    pub shape: Vec<usize>,
    /// Rows without a label are allowed (predict --csv).
    pub unlabelled: bool,
}

impl Known {
    pub fn of(p: &Preprocess) -> Self {
        Known {
            class_names: p.class_names.clone(),
            columns: p.columns.clone(),
            label_column: p.label_column.clone(),
            width: p.width(),
            shape: p.input_shape.clone(),
            unlabelled: false,
        }
    }
}

/// The preprocessing of a model's inputs: x' = (x − shift)·mult per feature, with missing
/// values filled first. Saved in the checkpoint (metadata `descent.data`, JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Preprocess {
    /// `--data` as given.
    pub source: String,
    pub normalize: Normalize,
    /// `[width]` each; empty for `none`.
    pub shift: Vec<f32>,
    pub mult: Vec<f32>,
    /// `[width]` fill values for missing features (`--missing mean`); empty otherwise.
    pub fill: Vec<f32>,
    pub class_names: Vec<String>,
    /// `[features]` or `[channels, height, width]`.
    pub input_shape: Vec<usize>,
    /// The feature columns of a table, in order, and the label column's name.
    pub columns: Vec<String>,
    pub label_column: Option<String>,
    /// How the test set was made: `--test-split` fraction and seed, or None for `--test`.
    pub test_split: Option<(f64, u32)>,
}

impl Preprocess {
    pub fn width(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Applies the preprocessing to rows [n, width] in place.
    pub fn apply(&self, x: &mut [f32]) {
        let w = self.width().max(1);
        for row in x.chunks_exact_mut(w) {
            if !self.fill.is_empty() {
                for (v, &f) in row.iter_mut().zip(&self.fill) {
                    if v.is_nan() {
                        *v = f;
                    }
                }
            }
            if !self.shift.is_empty() {
                for ((v, &s), &m) in row.iter_mut().zip(&self.shift).zip(&self.mult) {
                    *v = (*v - s) * m;
                }
            }
        }
    }

    /// Fits `normalize` (and the fill values for missing ones) on the training rows.
    pub fn fit(raw: &Raw, normalize: Normalize, source: String, split: Option<(f64, u32)>) -> Self {
        let w = raw.width;
        let n = raw.len();
        let normalize = match normalize {
            Normalize::Auto if raw.kind() == "images" || raw.bytes => Normalize::Scale,
            Normalize::Auto => Normalize::Standard,
            other => other,
        };
        // Per column: count, sum, sum of squares (f64: a million rows must not lose digits), min, max.
        let mut count = vec![0u64; w];
        let mut sum = vec![0f64; w];
        let mut sq = vec![0f64; w];
        let mut lo = vec![f32::INFINITY; w];
        let mut hi = vec![f32::NEG_INFINITY; w];
        for row in raw.x.chunks_exact(w.max(1)).take(n) {
            for (j, &v) in row.iter().enumerate() {
                if v.is_nan() {
                    continue;
                }
                count[j] += 1;
                sum[j] += v as f64;
                sq[j] += v as f64 * v as f64;
                lo[j] = lo[j].min(v);
                hi[j] = hi[j].max(v);
            }
        }
        let mean: Vec<f64> = (0..w).map(|j| sum[j] / count[j].max(1) as f64).collect();
        let fill = if raw.missing > 0 {
            mean.iter().map(|&m| m as f32).collect()
        } else {
            Vec::new()
        };
        let (shift, mult) = match normalize {
            Normalize::None | Normalize::Auto => (Vec::new(), Vec::new()),
            Normalize::Scale if raw.bytes => (vec![0.0; w], vec![1.0 / 255.0; w]),
            Normalize::Scale => (0..w)
                .map(|j| {
                    let range = hi[j] - lo[j];
                    // A constant column maps to 0, not to a division by zero.
                    let lo = if lo[j].is_finite() { lo[j] } else { 0.0 };
                    (lo, if range > 0.0 { 1.0 / range } else { 1.0 })
                })
                .unzip(),
            Normalize::Standard => (0..w)
                .map(|j| {
                    let c = count[j].max(1) as f64;
                    let var = (sq[j] / c - mean[j] * mean[j]).max(0.0);
                    let sd = var.sqrt();
                    (
                        mean[j] as f32,
                        if sd > 1e-12 { (1.0 / sd) as f32 } else { 1.0 },
                    )
                })
                .unzip(),
        };
        Preprocess {
            source,
            normalize,
            shift,
            mult,
            fill,
            class_names: raw.class_names.clone(),
            input_shape: raw.shape.clone(),
            columns: raw.columns.clone(),
            label_column: raw.label_column.clone(),
            test_split: split,
        }
    }

    /// A one-line summary for headers.
    pub fn describe(&self) -> String {
        let shape: Vec<String> = self.input_shape.iter().map(|d| d.to_string()).collect();
        format!(
            "{} ({} inputs as {}, {} classes, normalize {})",
            self.source,
            self.width(),
            shape.join("×"),
            self.class_names.len(),
            self.normalize.name()
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The test rows of a stratified split: per class, `round(count · fraction)` of its samples
/// chosen by the seed, so every class keeps its proportion to within one sample. Returns a
/// `[n]` mask, true for test. Fails when a class would get no test samples or no training ones.
pub fn stratified_split(
    labels: &[u8],
    names: &[String],
    fraction: f64,
    seed: u32,
    path: &Path,
) -> Result<Vec<bool>> {
    let classes = names.len();
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i as u32);
    }
    let mut test = vec![false; labels.len()];
    for (c, idx) in by_class.iter().enumerate() {
        let k = (idx.len() as f64 * fraction).round() as usize;
        if k == 0 || k == idx.len() {
            return Err(Error::Data {
                path: path.to_owned(),
                msg: format!(
                    "class `{}` has {} sample{}: --test-split {fraction} leaves it {}; give more samples of it, another --test-split, or --test SOURCE",
                    names[c],
                    idx.len(),
                    if idx.len() == 1 { "" } else { "s" },
                    if k == 0 {
                        "no test samples"
                    } else {
                        "no training samples"
                    }
                ),
            });
        }
        let perm = rng::permutation(
            idx.len(),
            seed ^ (c as u32).wrapping_mul(0x9e37_79b9),
            rng::stream::VALIDATION,
        );
        for &p in &perm[..k] {
            test[idx[p as usize] as usize] = true;
        }
    }
    Ok(test)
}

/// Splits `raw` in place into (train, test) by `mask` (true = test), keeping the order of each:
/// the training rows are compacted to the front, so the peak is the table plus the test rows.
pub fn split_raw(mut raw: Raw, mask: &[bool]) -> (Raw, Raw) {
    let w = raw.width;
    let n_test = mask.iter().filter(|&&t| t).count();
    let mut test = Raw {
        x: Vec::with_capacity(n_test * w),
        labels: Vec::with_capacity(n_test),
        ..raw.meta_only()
    };
    let mut keep = 0;
    for (i, &t) in mask.iter().enumerate() {
        if t {
            test.x.extend_from_slice(&raw.x[i * w..(i + 1) * w]);
            test.labels.push(raw.labels[i]);
        } else {
            if keep != i {
                raw.x.copy_within(i * w..(i + 1) * w, keep * w);
                raw.labels[keep] = raw.labels[i];
            }
            keep += 1;
        }
    }
    raw.x.truncate(keep * w);
    raw.labels.truncate(keep);
    (raw, test)
}

/// What `--data` and its flags ask for.
#[derive(Clone, Debug)]
pub struct Request {
    pub data: Source,
    pub test: Option<Source>,
    /// `--test-split`: the fraction held out when there is no test source.
    pub test_split: f64,
    pub seed: u32,
    pub normalize: Normalize,
    pub read: ReadOptions,
}

/// The two splits, ready to train on, and the preprocessing that made them.
pub struct Prepared {
    pub splits: Splits,
    pub prep: Preprocess,
    /// Notes for the user (rows dropped, files skipped, values filled).
    pub notes: Vec<String>,
}

/// Reads, splits and preprocesses. With `fitted` (eval, a checkpoint's preprocessing), the
/// same test split and statistics are used instead of fitting new ones.
pub fn load(req: &Request, fitted: Option<&Preprocess>) -> Result<Prepared> {
    let known = fitted.map(Known::of);
    let raw = read(&req.data, &req.read, known.as_ref())?;
    check_usable(&raw)?;
    let mut notes = notes_of(&raw);
    let split = fitted.map_or(Some((req.test_split, req.seed)), |p| p.test_split);
    let builtin_test = match (&req.data, &req.test) {
        (Source::Idx { test: Some(t), .. }, None) => Some(t.clone()),
        _ => None,
    };
    let (train, test, split) = match (&req.test, builtin_test) {
        (Some(t), _) => {
            let k = Known {
                class_names: raw.class_names.clone(),
                columns: raw.columns.clone(),
                label_column: raw.label_column.clone(),
                width: raw.width,
                shape: raw.shape.clone(),
                unlabelled: false,
            };
            let test = read(t, &req.read, Some(&k))?;
            notes.extend(notes_of(&test));
            (raw, test, None)
        }
        // A checkpoint trained with --test, evaluated on one file: all of it is the test set.
        (None, _) if fitted.is_some_and(|p| p.test_split.is_none()) => {
            let train = raw.meta_only();
            (train, raw, None)
        }
        (None, Some((ti, tl))) if fitted.is_none_or(|p| p.test_split.is_none()) => {
            let k = Known {
                class_names: raw.class_names.clone(),
                width: raw.width,
                shape: raw.shape.clone(),
                ..Known::default()
            };
            let test = idx::read(&ti, &tl, Some(&k))?;
            (raw, test, None)
        }
        _ => {
            let (f, seed) = split.unwrap_or((req.test_split, req.seed));
            if !(f > 0.0 && f < 1.0) {
                return Err(Error::InvalidArg(format!(
                    "--test-split {f}: give a fraction between 0 and 1 (or --test SOURCE)"
                )));
            }
            let mask = stratified_split(&raw.labels, &raw.class_names, f, seed, &raw.path)?;
            let (tr, te) = split_raw(raw, &mask);
            (tr, te, Some((f, seed)))
        }
    };
    if test.is_empty() {
        return Err(Error::Data {
            path: test.path.clone(),
            msg: "the test set holds no samples".into(),
        });
    }
    let prep = match fitted {
        Some(p) => p.clone(),
        None => Preprocess::fit(&train, req.normalize, req.data.describe(), split),
    };
    let to_dataset = |mut r: Raw| {
        prep.apply(&mut r.x);
        Dataset::floats(r.x, r.labels, r.width, r.class_names.len())
    };
    Ok(Prepared {
        splits: Splits {
            train: to_dataset(train),
            test: to_dataset(test),
        },
        prep,
        notes,
    })
}

fn notes_of(raw: &Raw) -> Vec<String> {
    let mut notes = Vec::new();
    let p = raw.path.display();
    if raw.dropped > 0 {
        notes.push(format!(
            "{p}: left out {} rows with missing values (--missing drop)",
            raw.dropped
        ));
    }
    if raw.missing > 0 {
        notes.push(format!(
            "{p}: {} missing values filled with the training split's column means (--missing mean)",
            raw.missing
        ));
    }
    if !raw.skipped.is_empty() {
        notes.push(format!(
            "{p}: skipped {} unreadable files (--skip-bad): {}",
            raw.skipped.len(),
            raw.skipped.join("; ")
        ));
    }
    notes
}

/// A data set descent can learn from: samples, at least two classes, at least one feature.
pub fn check_usable(raw: &Raw) -> Result<()> {
    let bad = |msg: String| {
        Err(Error::Data {
            path: raw.path.clone(),
            msg,
        })
    };
    if raw.is_empty() {
        return bad("holds no samples".into());
    }
    if raw.width == 0 {
        return bad("has no feature columns, only the label".into());
    }
    match raw.class_names.len() {
        0 | 1 => bad(format!(
            "every sample has the same class ({}); a classifier needs at least two",
            raw.class_names.first().map_or("none", String::as_str)
        )),
        _ => Ok(()),
    }
}
