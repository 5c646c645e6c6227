//! descent: a small, fast multilayer-perceptron trainer with a CPU reference path and a WGSL GPU
//! path through wgpu. See README.md.
//!
//! The `descent` command line is a thin layer over this library; a Rust program can use the same
//! parts without it:
//!
//! - describe a model: [`ModelSpec`] (layer widths, [`Activation`], [`Loss`]) and its seeded
//!   initial parameters ([`ModelSpec::init_params`]);
//! - load data: [`data::Dataset`]; MNIST's four files from their bytes with
//!   [`data::Splits::from_files`] (a web page hands over what it fetched), or natively from a
//!   directory (downloaded when missing) with `data::DataSource`;
//! - pick a backend: [`cpu::CpuBackend`], or natively `gpu::GpuBackend`, both behind the
//!   [`Backend`] trait;
//! - train: [`Trainer`] runs whole epochs with an [`Observer`] called after each epoch (and every
//!   `log_every` steps), or a few steps at a time ([`Trainer::steps`]) for a caller that must
//!   yield between them, such as a browser; underneath is [`train::train`];
//! - evaluate ([`Trainer::evaluate`]) and predict ([`Trainer::predict`],
//!   [`analysis::probabilities`], [`predict::prepare_digit`] for a drawn digit);
//! - save and load safetensors checkpoints ([`model::checkpoint_bytes`],
//!   [`model::checkpoint_from_bytes`], and natively `model::save_checkpoint`,
//!   `model::load_checkpoint`), the files `descent eval` and `descent predict` read.
//!
//! ```no_run
//! use descent::{Activation, Loss, ModelSpec, Trainer, TrainerOptions};
//! # fn main() -> descent::Result<()> {
//! use descent::data::{DataSource, DatasetKind};
//! let splits = DataSource::new(DatasetKind::Mnist, "data/mnist")?.load()?;
//! let spec = ModelSpec::new(&[128], Activation::Relu, Loss::Xent);
//! let mut trainer = Trainer::cpu(spec, splits.train, splits.test, TrainerOptions::default())?;
//! let records = trainer.fit(&mut |r: &descent::EpochRecord| {
//!     println!("epoch {}: {:.2}%", r.epoch, 100.0 * r.test_accuracy)
//! })?;
//! trainer.save("model.safetensors")?;
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! `cli` (default) builds the command line on `native`: files, downloads, the GPU path,
//! pictures and TensorBoard logs. With `--no-default-features` the library builds for
//! `wasm32-unknown-unknown`: no threads, files or blocking waits; the CPU path runs on one
//! thread there.

pub mod analysis;
pub mod backend;
#[cfg(feature = "native")]
pub mod bench;
pub mod cpu;
pub mod data;
#[cfg(feature = "native")]
pub mod download;
pub mod error;
#[cfg(feature = "native")]
pub mod explain;
pub mod files;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(feature = "native")]
pub mod landscape;
pub mod model;
pub mod optim;
#[cfg(feature = "native")]
pub mod overfit;
#[cfg(feature = "native")]
pub mod plot;
pub mod predict;
mod progress;
#[cfg(feature = "native")]
pub mod prune;
pub mod rng;
pub mod sources;
#[cfg(feature = "native")]
pub mod tensorboard;
pub mod train;
pub mod trainer;

pub use backend::{Backend, EvalStats, Setup, Split};
pub use data::Dataset;
pub use error::{Error, Result};
pub use model::{Activation, Checkpoint, Init, Loss, ModelSpec};
pub use optim::{OptimConfig, OptimizerKind, Schedule, ScheduleKind};
pub use train::{BatchSize, EpochRecord, Observer, Outcome, StepLog, TrainConfig};
pub use trainer::{Device, Progress, Trainer, TrainerOptions};

#[cfg(feature = "native")]
use std::io::Write;
#[cfg(feature = "native")]
use std::path::Path;

#[cfg(feature = "native")]
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

#[cfg(feature = "native")]
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

#[cfg(feature = "native")]
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

#[cfg(feature = "native")]
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

#[cfg(feature = "native")]
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
