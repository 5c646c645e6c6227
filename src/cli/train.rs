//! `descent train`: train a model, report each epoch, save it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use super::args::{
    DataArgs, DeviceArgs, DeviceChoice, ModelArgs, load_data, make_backend, open_gpu,
    resident_bytes,
};
use crate::backend::Backend;
use crate::data::Splits;
use crate::error::{Error, Result};
use crate::gpu::GpuBackend;
use crate::model;
use crate::train::{self, BatchSize, EpochRecord, TrainConfig};

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Samples per step: a number (64 = mini-batch, 1 = stochastic) or `full` (batch descent).
    #[arg(long, default_value = "64")]
    pub batch_size: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.03, allow_negative_numbers = true)]
    pub lr: f32,
    /// SGD momentum (0 = plain SGD).
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f32,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Train on the first N training samples only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Append nothing; (re)write this file with one JSON object per epoch.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Save the trained model as a safetensors checkpoint.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also print the mean training loss every N steps. The loss is summed on the device, so on
    /// the GPU this reads it back every N steps instead of once per epoch.
    #[arg(long, value_name = "N")]
    pub log_every: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print the GPU step plan (every dispatch of a step, in order) and exit.
    #[arg(long)]
    pub print_plan: bool,
}

pub fn run(args: TrainArgs) -> Result<()> {
    // Check every flag before touching the data, so a typo costs nothing.
    let spec = args.model.spec()?;
    let batch = BatchSize::parse(&args.batch_size)?;
    let lr = train::check_lr(args.lr)?;
    let momentum = train::check_momentum(args.momentum)?;
    if args.epochs == 0 {
        return Err(Error::InvalidArg("--epochs 0: nothing to train".into()));
    }
    if args.log_every == Some(0) {
        return Err(Error::InvalidArg(
            "--log-every 0: give a number of steps, at least 1".into(),
        ));
    }
    if args.limit == Some(0) {
        return Err(Error::InvalidArg(
            "--limit 0: no samples to train on".into(),
        ));
    }
    for (flag, path) in [("--metrics", &args.metrics), ("--save", &args.save)] {
        if let Some(p) = path {
            check_output_dir(flag, p)?;
        }
    }

    let Splits { mut train, test } = load_data(&args.data)?;
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let n_train = train.len();
    let batch = batch.resolve(n_train);
    let params = spec.init_params(args.model.init, args.seed);
    if args.print_plan {
        let dev = DeviceArgs {
            device: DeviceChoice::Gpu,
            ..args.device.clone()
        };
        let gpu = open_gpu(&dev, resident_bytes(&train, &test))?
            .ok_or_else(|| Error::InvalidArg("--print-plan needs a GPU adapter".into()))?;
        let b = GpuBackend::new(gpu, spec.clone(), &params, &train, &test, batch, momentum)?;
        println!("{}", b.device());
        for p in b.plans() {
            println!("{p}");
        }
        return Ok(());
    }
    let mut backend = make_backend(
        &args.device,
        &spec,
        params,
        Arc::new(train),
        Arc::new(test),
        batch,
        momentum,
    )?;
    let quiet = args.data.quiet;
    println!(
        "model {} | {} on {} | {} samples, batch {}, lr {}, momentum {} | {}",
        spec.describe(),
        args.data.dataset.name(),
        backend.device(),
        n_train,
        batch,
        lr,
        momentum,
        if batch == n_train {
            "batch gradient descent"
        } else if batch == 1 {
            "stochastic gradient descent"
        } else {
            "mini-batch gradient descent"
        }
    );
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch,
        lr,
        seed: args.seed,
        progress: !quiet,
        log_every: args.log_every,
    };
    let mut lines = String::new();
    let metrics = args.metrics.clone();
    train::train(backend.as_mut(), &cfg, n_train, |r: &EpochRecord| {
        println!(
            "epoch {:>3}  train loss {:.4}  test loss {:.4}  test acc {:.2}%  {:.2}s  {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.test_loss,
            100.0 * r.test_accuracy,
            r.epoch_seconds,
            r.samples_per_second
        );
        if let Some(path) = &metrics {
            let line = serde_json::to_string(r).map_err(|e| {
                Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })?;
            lines.push_str(&line);
            lines.push('\n');
            crate::write_atomic(path, lines.as_bytes())?;
        }
        Ok(())
    })?;
    if let Some(path) = &args.save {
        let params = backend.params()?;
        model::save_checkpoint(path, &spec, &params, args.data.dataset)?;
        println!("saved {}", path.display());
    }
    Ok(())
}

/// Fails before any training when an output file's directory does not exist.
fn check_output_dir(flag: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::InvalidArg(format!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        )))
    }
}
