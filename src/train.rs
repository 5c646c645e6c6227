//! The training loop: shuffles, drives a [`Backend`] step by step, evaluates, reports.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::rng;

/// `--batch-size`: a number of samples per step, or `full` (the whole training set per step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchSize {
    Full,
    Samples(usize),
}

impl BatchSize {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("full") {
            return Ok(BatchSize::Full);
        }
        match s.parse::<usize>() {
            Ok(0) => Err(Error::InvalidArg(
                "--batch-size 0: a step needs at least one sample (1 = stochastic, full = batch)"
                    .into(),
            )),
            Ok(n) => Ok(BatchSize::Samples(n)),
            Err(_) => Err(Error::InvalidArg(format!(
                "--batch-size `{s}`: expected a positive number or `full`"
            ))),
        }
    }

    /// Samples per step for a training set of `n`.
    pub fn resolve(self, n: usize) -> usize {
        match self {
            BatchSize::Full => n,
            BatchSize::Samples(b) => b.min(n),
        }
        .max(1)
    }
}

/// A finite learning rate above zero.
pub fn check_lr(lr: f32) -> Result<f32> {
    if lr.is_finite() && lr > 0.0 {
        Ok(lr)
    } else {
        Err(Error::InvalidArg(format!(
            "--lr {lr}: the learning rate must be a finite number above 0"
        )))
    }
}

/// A momentum in [0, 1).
pub fn check_momentum(m: f32) -> Result<f32> {
    if m.is_finite() && (0.0..1.0).contains(&m) {
        Ok(m)
    } else {
        Err(Error::InvalidArg(format!(
            "--momentum {m}: must be at least 0 and below 1"
        )))
    }
}

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    /// Samples per step, already resolved against the training set size.
    pub batch: usize,
    pub lr: f32,
    pub seed: u32,
    pub progress: bool,
    /// Print the mean training loss every this many steps (`--log-every`).
    pub log_every: Option<usize>,
}

/// One line of `--metrics`.
#[derive(Clone, Debug, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    /// Training only: from the first step to the end of the epoch's work, without evaluation.
    pub epoch_seconds: f64,
    pub samples_per_second: f64,
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub device: String,
}

/// This epoch's visiting order of the training set.
pub fn epoch_order(n: usize, seed: u32, epoch: usize) -> Vec<u32> {
    rng::permutation(n, seed, rng::stream::SHUFFLE.wrapping_add(epoch as u32))
}

/// Runs `cfg.epochs` epochs over `n_train` samples, calling `on_epoch` after each.
pub fn train(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    n_train: usize,
    mut on_epoch: impl FnMut(&EpochRecord) -> Result<()>,
) -> Result<Vec<EpochRecord>> {
    let steps = n_train.div_ceil(cfg.batch);
    let device = backend.device();
    let mut records = Vec::with_capacity(cfg.epochs);
    for epoch in 1..=cfg.epochs {
        let order = epoch_order(n_train, cfg.seed, epoch);
        let bar = progress_bar(cfg.progress, steps, epoch, cfg.epochs);
        let t0 = Instant::now();
        backend.begin_epoch(&order)?;
        for step in 0..steps {
            let start = step * cfg.batch;
            let len = cfg.batch.min(n_train - start);
            backend.step(step, start, len, cfg.lr)?;
            bar.inc(1);
            if let Some(n) = cfg.log_every.filter(|&n| (step + 1) % n == 0) {
                let sums = backend.step_loss_sums()?;
                let from = sums.len().saturating_sub(n);
                let total: f64 = sums[from..].iter().map(|&l| l as f64).sum();
                let samples = (from * cfg.batch..(step * cfg.batch + len)).len();
                let line = format!(
                    "epoch {epoch:>3}  step {:>6}/{steps}  train loss {:.4} (mean of the last {} steps)",
                    step + 1,
                    total / samples.max(1) as f64,
                    sums.len() - from,
                );
                // A hidden bar (--quiet) prints nothing through println.
                if bar.is_hidden() {
                    println!("{line}");
                } else {
                    bar.println(line);
                }
            }
        }
        let stats = backend.end_epoch()?;
        let secs = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if let Some((step, value)) = stats.nonfinite {
            return Err(Error::Diverged { epoch, step, value });
        }
        let eval = backend.evaluate()?;
        if !eval.loss.is_finite() {
            return Err(Error::Diverged {
                epoch,
                step: steps.saturating_sub(1),
                value: eval.loss as f32,
            });
        }
        let record = EpochRecord {
            epoch,
            train_loss: stats.loss_sum / stats.samples.max(1) as f64,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            epoch_seconds: secs,
            samples_per_second: stats.samples as f64 / secs.max(1e-9),
            steps,
            batch_size: cfg.batch,
            lr: cfg.lr,
            device: device.clone(),
        };
        on_epoch(&record)?;
        records.push(record);
    }
    Ok(records)
}

fn progress_bar(show: bool, steps: usize, epoch: usize, epochs: usize) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) =
        ProgressStyle::with_template("epoch {msg} [{bar:40}] {pos}/{len} steps {per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("{epoch}/{epochs}"));
    bar
}
