//! MNIST-style data: the IDX format, the two datasets' files and checksums, and loading them.
//!
//! The loader is our own (a page of code) rather than the `mnist` crate: that crate panics on bad
//! reads, cannot read `.gz`, and downloads from a host that is gone. Here every bad file becomes an
//! [`Error`] naming the file and what is wrong with it.

use std::path::{Path, PathBuf};

#[cfg(feature = "native")]
use crate::download::{self, Mirror};
use crate::error::{Error, Result};
use crate::files::{FileSpec, verify};
#[cfg(feature = "native")]
use crate::files::{find_local, read_maybe_gz};

pub const IMAGE_SIDE: usize = 28;
pub const PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
pub const CLASSES: usize = 10;

const IDX_LABELS_MAGIC: u32 = 0x0000_0801;
const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum DatasetKind {
    Mnist,
    Fashion,
}

pub struct DatasetSpec {
    pub train_images: FileSpec,
    pub train_labels: FileSpec,
    pub test_images: FileSpec,
    pub test_labels: FileSpec,
    /// Public mirrors, tried in order.
    pub mirrors: &'static [&'static str],
}

impl DatasetSpec {
    pub fn files(&self) -> [FileSpec; 4] {
        [
            self.train_images,
            self.train_labels,
            self.test_images,
            self.test_labels,
        ]
    }
}

const fn file(name: &'static str, sha256: &'static str) -> FileSpec {
    FileSpec { name, sha256 }
}

impl DatasetKind {
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::Fashion => "fashion",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mnist" => Some(DatasetKind::Mnist),
            "fashion" | "fashion-mnist" => Some(DatasetKind::Fashion),
            _ => None,
        }
    }

    pub fn spec(self) -> DatasetSpec {
        match self {
            DatasetKind::Mnist => DatasetSpec {
                train_images: file(
                    "train-images-idx3-ubyte",
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                ),
                train_labels: file(
                    "train-labels-idx1-ubyte",
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                ),
                test_images: file(
                    "t10k-images-idx3-ubyte",
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                ),
                test_labels: file(
                    "t10k-labels-idx1-ubyte",
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                ),
                mirrors: &[
                    "https://ossci-datasets.s3.amazonaws.com/mnist/",
                    "https://storage.googleapis.com/cvdf-datasets/mnist/",
                ],
            },
            DatasetKind::Fashion => DatasetSpec {
                train_images: file(
                    "train-images-idx3-ubyte",
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                ),
                train_labels: file(
                    "train-labels-idx1-ubyte",
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                ),
                test_images: file(
                    "t10k-images-idx3-ubyte",
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                ),
                test_labels: file(
                    "t10k-labels-idx1-ubyte",
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                ),
                mirrors: &[
                    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
                ],
            },
        }
    }
}

/// One split. MNIST's files keep their bytes (`images`, scaled by 1/255 when gathered, so the
/// GPU can hold them packed four to a word); a user's own data arrives as `features`, already
/// preprocessed. Exactly one of the two holds the samples.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// images: [n, width] u8 pixels; empty for feature data.
    pub images: Vec<u8>,
    /// features: [n, width] f32; empty for pixel data.
    pub features: Vec<f32>,
    /// labels: `[n]` class indices in 0..classes (u8: at most 256 classes).
    pub labels: Vec<u8>,
    /// Values per sample: the model's input width.
    pub width: usize,
    /// Classes: the model's output width.
    pub classes: usize,
}

/// The most classes a data set may have: labels are stored as bytes.
pub const MAX_CLASSES: usize = 256;

impl Default for Dataset {
    /// An empty MNIST-shaped split.
    fn default() -> Self {
        Dataset {
            images: Vec::new(),
            features: Vec::new(),
            labels: Vec::new(),
            width: PIXELS,
            classes: CLASSES,
        }
    }
}

impl Dataset {
    /// A split of MNIST-shaped pixels: images `[n, 784]` u8, labels `[n]` in 0..10.
    pub fn pixels(images: Vec<u8>, labels: Vec<u8>) -> Self {
        Dataset {
            images,
            labels,
            ..Dataset::default()
        }
    }

    /// A split of f32 features `[n, width]` with labels `[n]` in 0..classes.
    pub fn floats(features: Vec<f32>, labels: Vec<u8>, width: usize, classes: usize) -> Self {
        Dataset {
            images: Vec::new(),
            features,
            labels,
            width,
            classes,
        }
    }

    /// An empty split of the same shape and storage.
    pub fn empty_like(&self) -> Self {
        Dataset {
            images: Vec::new(),
            features: Vec::new(),
            labels: Vec::new(),
            ..*self
        }
    }

    /// Whether the samples are u8 pixels (else f32 features). An empty split counts as pixels
    /// only when it is MNIST-shaped.
    pub fn is_pixels(&self) -> bool {
        !self.images.is_empty() || (self.features.is_empty() && self.width == PIXELS)
    }

    /// Sample `i` as floats, as the model sees it.
    pub fn row(&self, i: usize) -> Vec<f32> {
        let w = self.width;
        if self.is_pixels() {
            self.images[i * w..(i + 1) * w]
                .iter()
                .map(|&p| p as f32 / 255.0)
                .collect()
        } else {
            self.features[i * w..(i + 1) * w].to_vec()
        }
    }

    /// The samples at `idx`, in that order.
    pub fn select(&self, idx: &[u32]) -> Self {
        let w = self.width;
        let mut d = self.empty_like();
        d.labels = idx.iter().map(|&i| self.labels[i as usize]).collect();
        if self.is_pixels() {
            d.images.reserve(idx.len() * w);
            for &i in idx {
                let i = i as usize;
                d.images.extend_from_slice(&self.images[i * w..(i + 1) * w]);
            }
        } else {
            d.features.reserve(idx.len() * w);
            for &i in idx {
                let i = i as usize;
                d.features
                    .extend_from_slice(&self.features[i * w..(i + 1) * w]);
            }
        }
        d
    }

    /// Samples per class: `[classes]`.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.classes];
        for &l in &self.labels {
            if let Some(n) = c.get_mut(l as usize) {
                *n += 1;
            }
        }
        c
    }
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The first `n` samples (all of them if there are fewer).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.images.truncate(n * self.width);
        self.features.truncate(n * self.width);
    }
}

#[derive(Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
}

impl Splits {
    /// Both splits from the bytes of `kind`'s four files as served (gzipped or not), in
    /// [`DatasetSpec::files`] order: each gunzipped, its SHA-256 checked and parsed, as
    /// [`DataSource::load`] does with files on disk, for a caller that fetched them itself (a
    /// web page). `base` is where they came from (a directory or URL), to name them in messages.
    pub fn from_files(kind: DatasetKind, base: &str, files: [Vec<u8>; 4]) -> Result<Splits> {
        let spec = kind.spec();
        let base = base.trim_end_matches('/');
        let mut bytes = Vec::with_capacity(4);
        for (f, raw) in spec.files().into_iter().zip(files) {
            let gz = raw.starts_with(&[0x1f, 0x8b]);
            let path = PathBuf::from(format!("{base}/{}{}", f.name, if gz { ".gz" } else { "" }));
            let b = crate::files::decompress(raw, &path)?;
            verify(&b, f).map_err(|e| match e {
                Error::Checksum {
                    expected, found, ..
                } => Error::Checksum {
                    file: path.display().to_string(),
                    expected,
                    found,
                },
                e => e,
            })?;
            bytes.push((b, path));
        }
        let train = Dataset::from_idx(
            "training",
            &bytes[0].0,
            &bytes[0].1,
            &bytes[1].0,
            &bytes[1].1,
        )?;
        let test = Dataset::from_idx("test", &bytes[2].0, &bytes[2].1, &bytes[3].0, &bytes[3].1)?;
        Ok(Splits { train, test })
    }
}

/// Where the data lives and where to fetch it from when it is missing.
#[cfg(feature = "native")]
#[derive(Clone, Debug)]
pub struct DataSource {
    pub kind: DatasetKind,
    pub dir: PathBuf,
    /// Overrides the public mirrors (from `--mirror` or `MNIST_MIRROR`).
    pub mirror: Option<Mirror>,
    pub progress: bool,
}

#[cfg(feature = "native")]
impl DataSource {
    /// `kind`'s files in `dir`, fetched when missing from `$MNIST_MIRROR` (or
    /// `$FASHION_MNIST_MIRROR`) when set, else from the public mirrors; no progress bars.
    pub fn new(kind: DatasetKind, dir: impl Into<PathBuf>) -> Result<Self> {
        let var = match kind {
            DatasetKind::Mnist => "MNIST_MIRROR",
            DatasetKind::Fashion => "FASHION_MNIST_MIRROR",
        };
        let mirror = std::env::var(var)
            .ok()
            .filter(|m| !m.trim().is_empty())
            .map(|m| Mirror::parse(&m))
            .transpose()?;
        Ok(DataSource {
            kind,
            dir: dir.into(),
            mirror,
            progress: false,
        })
    }

    pub fn mirrors(&self) -> Result<Vec<Mirror>> {
        match &self.mirror {
            Some(m) => Ok(vec![m.clone()]),
            None => self
                .kind
                .spec()
                .mirrors
                .iter()
                .map(|m| Mirror::parse(m))
                .collect(),
        }
    }

    /// Makes sure all four files are present and verified, downloading what is missing or bad.
    /// Returns the decompressed bytes of each, in `DatasetSpec::files` order.
    pub fn fetch_all(&self) -> Result<Vec<Vec<u8>>> {
        let spec = self.kind.spec();
        let mut out = Vec::with_capacity(4);
        for f in spec.files() {
            out.push(self.fetch_one(f)?);
        }
        Ok(out)
    }

    fn fetch_one(&self, f: FileSpec) -> Result<Vec<u8>> {
        if let Some(path) = find_local(&self.dir, f.name) {
            match read_verified(&path, f) {
                Ok(bytes) => return Ok(bytes),
                Err(e) => {
                    eprintln!("{e}; downloading it again");
                }
            }
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        download::fetch_verified(&self.mirrors()?, f, &self.dir, self.progress)
    }

    pub fn load(&self) -> Result<Splits> {
        let bytes = self.fetch_all()?;
        let spec = self.kind.spec();
        let path = |f: FileSpec| self.dir.join(f.name);
        let train = Dataset::from_idx(
            "training",
            &bytes[0],
            &path(spec.train_images),
            &bytes[1],
            &path(spec.train_labels),
        )?;
        let test = Dataset::from_idx(
            "test",
            &bytes[2],
            &path(spec.test_images),
            &bytes[3],
            &path(spec.test_labels),
        )?;
        Ok(Splits { train, test })
    }
}

#[cfg(feature = "native")]
fn read_verified(path: &Path, f: FileSpec) -> Result<Vec<u8>> {
    let bytes = read_maybe_gz(path)?;
    verify(&bytes, f)?;
    Ok(bytes)
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Parses an IDX file of unsigned bytes. Returns (dims, payload).
pub fn parse_idx<'a>(
    bytes: &'a [u8],
    path: &Path,
    what: &'static str,
    expected_magic: u32,
) -> Result<(Vec<usize>, &'a [u8])> {
    if bytes.len() < 4 {
        return Err(Error::Truncated {
            path: path.to_owned(),
            expected: 4,
            found: bytes.len(),
        });
    }
    let magic = be_u32(bytes, 0);
    if magic != expected_magic {
        return Err(Error::BadMagic {
            path: path.to_owned(),
            what,
            found: magic,
            expected: expected_magic,
        });
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(Error::Truncated {
            path: path.to_owned(),
            expected: header,
            found: bytes.len(),
        });
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| be_u32(bytes, 4 + 4 * i) as usize)
        .collect();
    let payload = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Corrupt {
            path: path.to_owned(),
            msg: format!("dimensions {dims:?} overflow"),
        })?;
    let expected = header + payload;
    if bytes.len() < expected {
        return Err(Error::Truncated {
            path: path.to_owned(),
            expected,
            found: bytes.len(),
        });
    }
    if bytes.len() > expected {
        return Err(Error::Corrupt {
            path: path.to_owned(),
            msg: format!(
                "data after the {expected} bytes the header accounts for ({} more at least)",
                bytes.len() - expected
            ),
        });
    }
    Ok((dims, &bytes[header..]))
}

impl Dataset {
    /// Builds a split from decompressed IDX image and label files.
    pub fn from_idx(
        split: &'static str,
        image_bytes: &[u8],
        image_path: &Path,
        label_bytes: &[u8],
        label_path: &Path,
    ) -> Result<Self> {
        let (idims, images) = parse_idx(image_bytes, image_path, "images", IDX_IMAGES_MAGIC)?;
        if idims[1..] != [IMAGE_SIDE, IMAGE_SIDE] {
            return Err(Error::Corrupt {
                path: image_path.to_owned(),
                msg: format!(
                    "images are {}x{}, expected {IMAGE_SIDE}x{IMAGE_SIDE}",
                    idims[1], idims[2]
                ),
            });
        }
        let (ldims, labels) = parse_idx(label_bytes, label_path, "labels", IDX_LABELS_MAGIC)?;
        if idims[0] != ldims[0] {
            return Err(Error::CountMismatch {
                split,
                images: idims[0],
                labels: ldims[0],
            });
        }
        if let Some(i) = labels.iter().position(|&l| l as usize >= CLASSES) {
            return Err(Error::Corrupt {
                path: label_path.to_owned(),
                msg: format!("label {} at index {i} is not a class 0..9", labels[i]),
            });
        }
        Ok(Dataset::pixels(images.to_vec(), labels.to_vec()))
    }

    /// Encodes as IDX (images, labels); the inverse of [`Dataset::from_idx`], used by tests.
    pub fn to_idx(&self) -> (Vec<u8>, Vec<u8>) {
        let n = self.len() as u32;
        let mut images = Vec::with_capacity(16 + self.images.len());
        for v in [IDX_IMAGES_MAGIC, n, IMAGE_SIDE as u32, IMAGE_SIDE as u32] {
            images.extend(v.to_be_bytes());
        }
        images.extend(&self.images);
        let mut labels = Vec::with_capacity(8 + self.labels.len());
        for v in [IDX_LABELS_MAGIC, n] {
            labels.extend(v.to_be_bytes());
        }
        labels.extend(&self.labels);
        (images, labels)
    }
}
