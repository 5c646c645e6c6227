//! The training loop: shuffles, hands each epoch its per-step learning rates, drives a
//! [`Backend`] step by step, evaluates, stops early or on request, reports. It knows neither the
//! device nor the optimizer: those live behind the backend and in the [`StepHyper`] table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Split};
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, Schedule, StepHyper};
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

/// The three kinds of gradient descent, by how many samples a step takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One sample per step.
    Stochastic,
    MiniBatch,
    /// The whole training set per step.
    Batch,
}

impl Mode {
    pub fn of(batch: BatchSize) -> Self {
        match batch {
            BatchSize::Full => Mode::Batch,
            BatchSize::Samples(1) => Mode::Stochastic,
            BatchSize::Samples(_) => Mode::MiniBatch,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Stochastic => "stochastic gradient descent",
            Mode::MiniBatch => "mini-batch gradient descent",
            Mode::Batch => "batch gradient descent",
        }
    }
}

/// Where a run starts: epoch `epoch` (1-based) at its step `step` (0 unless an interrupted
/// epoch is resumed), with `elapsed` seconds of training behind it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub epoch: usize,
    pub step: usize,
    pub elapsed: f64,
    /// The best validation loss so far and its epoch (early stopping carries on from it).
    pub best: Option<(f64, usize)>,
}

#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The model's output width, for the at-chance warning.
    pub classes: usize,
    pub epochs: usize,
    /// Samples per step, already resolved against the training set size.
    pub batch: usize,
    pub optim: OptimConfig,
    pub schedule: Schedule,
    pub seed: u32,
    pub progress: bool,
    /// Print the mean training loss every this many steps (`--log-every`).
    pub log_every: Option<usize>,
    /// Evaluate the validation split every epoch (`--val`).
    pub val: bool,
    /// Stop after this many epochs without a better validation loss, restoring the best weights.
    pub patience: Option<usize>,
    /// Stop once the test (or validation) accuracy reaches this.
    pub target_accuracy: Option<f64>,
    pub start: Position,
    /// Set by SIGINT/SIGTERM: finish the step, then stop.
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl TrainConfig {
    pub fn steps_per_epoch(&self, n_train: usize) -> usize {
        n_train.div_ceil(self.batch).max(1)
    }
}

/// One line of `--metrics`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    pub epoch: usize,
    pub train_loss: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_accuracy: Option<f64>,
    /// Training only: from the first step to the end of the epoch's work, without evaluation.
    pub epoch_seconds: f64,
    /// Training time of the whole run so far (epochs before a resume included).
    pub elapsed_seconds: f64,
    pub samples_per_second: f64,
    pub steps: usize,
    pub batch_size: usize,
    /// The learning rate of the epoch's first and last steps.
    pub lr: f32,
    pub lr_end: f32,
    pub device: String,
    /// Whether this epoch has the best validation loss so far.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub best: bool,
    /// What looks wrong with the run (accuracy at chance, a rising loss), in words.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub warning: Option<String>,
}

/// One `--log-every` line.
#[derive(Clone, Debug, PartialEq)]
pub struct StepLog {
    pub epoch: usize,
    /// 1-based step within the epoch, and the global step count.
    pub step: usize,
    pub global_step: u64,
    pub train_loss: f64,
    pub lr: f32,
}

/// Why a run ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Completed,
    /// `--patience` ran out; the weights of `best_epoch` were restored.
    EarlyStopped {
        best_epoch: usize,
    },
    /// `--target-accuracy` was reached at `epoch` after `seconds` of training.
    TargetReached {
        epoch: usize,
        seconds: f64,
    },
    /// SIGINT/SIGTERM: the run stopped before step `next.step` of epoch `next.epoch`.
    Interrupted {
        next: Position,
    },
}

/// What the caller hears while a run goes on.
pub trait Observer {
    /// After each epoch's evaluation; `next` is where a run resumed from here would start.
    fn on_epoch(
        &mut self,
        record: &EpochRecord,
        backend: &mut dyn Backend,
        next: &Position,
    ) -> Result<()>;
    fn on_step_log(&mut self, _log: &StepLog) -> Result<()> {
        Ok(())
    }
}

/// This epoch's visiting order of the training set.
pub fn epoch_order(n: usize, seed: u32, epoch: usize) -> Vec<u32> {
    rng::permutation(n, seed, rng::stream::SHUFFLE.wrapping_add(epoch as u32))
}

/// The per-step coefficients of epoch `epoch` (1-based).
pub fn epoch_hyper(cfg: &TrainConfig, steps: usize, epoch: usize) -> Vec<StepHyper> {
    let t0 = ((epoch - 1) * steps) as u64;
    (0..steps as u64)
        .map(|s| cfg.optim.step_hyper(t0 + s, cfg.schedule.lr_at(t0 + s)))
        .collect()
}

/// How many epochs in a row the training loss must rise before the run is flagged.
const RISING_EPOCHS: usize = 3;

/// Runs epochs `cfg.start.epoch..=cfg.epochs` over `n_train` samples, telling `obs` after each.
pub fn train(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    n_train: usize,
    obs: &mut dyn Observer,
) -> Result<(Vec<EpochRecord>, Outcome)> {
    let steps = cfg.steps_per_epoch(n_train);
    let device = backend.device();
    let mut records: Vec<EpochRecord> = Vec::new();
    let mut elapsed = cfg.start.elapsed;
    let mut best = cfg.start.best;
    let mut best_params: Option<Vec<f32>> = None;
    let first_epoch = cfg.start.epoch.max(1);
    for epoch in first_epoch..=cfg.epochs {
        let first_step = if epoch == first_epoch {
            cfg.start.step.min(steps)
        } else {
            0
        };
        let order = epoch_order(n_train, cfg.seed, epoch);
        let hyper = epoch_hyper(cfg, steps, epoch);
        let bar = progress_bar(cfg.progress, steps, epoch, cfg.epochs);
        bar.set_position(first_step as u64);
        let t0 = Instant::now();
        backend.begin_epoch(&order, &hyper, first_step)?;
        #[allow(clippy::needless_range_loop)] // `step` is also the sample offset and the log's
        for step in first_step..steps {
            let start = step * cfg.batch;
            let len = cfg.batch.min(n_train - start);
            backend.step(step, start, len)?;
            bar.inc(1);
            if let Some(n) = cfg.log_every.filter(|&n| (step + 1) % n == 0) {
                let sums = backend.step_loss_sums()?;
                let from = sums.len().saturating_sub(n);
                let total: f64 = sums[from..].iter().map(|&l| l as f64).sum();
                let first = first_step + from;
                let samples = (first * cfg.batch..(step * cfg.batch + len)).len();
                let log = StepLog {
                    epoch,
                    step: step + 1,
                    global_step: hyper[step].t as u64 + 1,
                    train_loss: total / samples.max(1) as f64,
                    lr: hyper[step].lr,
                };
                let line = format!(
                    "epoch {epoch:>3}  step {:>6}/{steps}  train loss {:.4} (mean of the last {} steps)  lr {:.3e}",
                    log.step,
                    log.train_loss,
                    sums.len() - from,
                    log.lr,
                );
                // A hidden bar (--quiet) prints nothing through println.
                if bar.is_hidden() {
                    println!("{line}");
                } else {
                    bar.println(line);
                }
                obs.on_step_log(&log)?;
            }
            let stop = cfg
                .interrupt
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst));
            if stop && step + 1 < steps {
                bar.finish_and_clear();
                // The steps already queued must land before the caller reads the state.
                backend.end_epoch()?;
                let next = Position {
                    epoch,
                    step: step + 1,
                    elapsed: elapsed + t0.elapsed().as_secs_f64(),
                    best,
                };
                return Ok((records, Outcome::Interrupted { next }));
            }
        }
        let stats = backend.end_epoch()?;
        let secs = t0.elapsed().as_secs_f64();
        elapsed += secs;
        bar.finish_and_clear();
        if let Some((step, value)) = stats.nonfinite {
            return Err(Error::Diverged { epoch, step, value });
        }
        let eval = backend.evaluate(Split::Test)?;
        if !eval.loss.is_finite() {
            return Err(Error::Diverged {
                epoch,
                step: steps.saturating_sub(1),
                value: eval.loss as f32,
            });
        }
        let val = if cfg.val {
            Some(backend.evaluate(Split::Val)?)
        } else {
            None
        };
        let train_loss = stats.loss_sum / stats.samples.max(1) as f64;
        let is_best = match (val, best) {
            (Some(v), Some((b, _))) => v.loss < b,
            (Some(_), None) => true,
            _ => false,
        };
        if is_best && let Some(v) = val {
            best = Some((v.loss, epoch));
            if cfg.patience.is_some() {
                best_params = Some(backend.params()?);
            }
        }
        let mut record = EpochRecord {
            epoch,
            train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            val_loss: val.map(|v| v.loss),
            val_accuracy: val.map(|v| v.accuracy),
            epoch_seconds: secs,
            elapsed_seconds: elapsed,
            samples_per_second: stats.samples as f64 / secs.max(1e-9),
            steps: steps - first_step,
            batch_size: cfg.batch,
            lr: hyper[first_step.min(steps - 1)].lr,
            lr_end: hyper[steps - 1].lr,
            device: device.clone(),
            best: is_best,
            warning: None,
        };
        record.warning = diagnose(&records, &record, cfg, n_train);
        let next = Position {
            epoch: epoch + 1,
            step: 0,
            elapsed,
            best,
        };
        obs.on_epoch(&record, backend, &next)?;
        records.push(record);
        let last = records
            .last()
            .map(|r| val.map_or(r.test_accuracy, |v| v.accuracy));
        if let (Some(target), Some(acc)) = (cfg.target_accuracy, last)
            && acc >= target
        {
            return Ok((
                records,
                Outcome::TargetReached {
                    epoch,
                    seconds: elapsed,
                },
            ));
        }
        if let (Some(k), Some((_, best_epoch))) = (cfg.patience, best)
            && epoch - best_epoch >= k
        {
            if let Some(p) = &best_params {
                backend.set_params(p)?;
            }
            return Ok((records, Outcome::EarlyStopped { best_epoch }));
        }
        if cfg
            .interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
            && epoch < cfg.epochs
        {
            return Ok((records, Outcome::Interrupted { next }));
        }
    }
    // With --patience, the run ends on the best weights even when it used every epoch.
    if let (Some(p), Some((_, best_epoch))) = (&best_params, best)
        && records.last().is_some_and(|r| r.epoch != best_epoch)
    {
        backend.set_params(p)?;
        return Ok((records, Outcome::EarlyStopped { best_epoch }));
    }
    Ok((records, Outcome::Completed))
}

/// A warning when the run does not look like learning: test accuracy at chance after an epoch,
/// or a training loss that has risen for several epochs in a row.
fn diagnose(
    before: &[EpochRecord],
    now: &EpochRecord,
    cfg: &TrainConfig,
    n_train: usize,
) -> Option<String> {
    let classes = cfg.classes.max(1) as f64;
    let hint = |what: String| {
        let mode = Mode::of(if cfg.batch >= n_train {
            BatchSize::Full
        } else {
            BatchSize::Samples(cfg.batch)
        });
        format!(
            "{what}: the learning rate {} is probably too high for {} (batch {}); try a smaller --lr, or leave --lr and --optimizer unset for this mode's defaults",
            cfg.schedule.lr,
            mode.name(),
            cfg.batch
        )
    };
    // 15% for MNIST's ten classes; with two, 55% (1.5/2 would call a hard problem chance).
    if now.test_accuracy < (1.5 / classes).min(1.0 / classes + 0.05) {
        return Some(hint(format!(
            "test accuracy {:.1}% after epoch {} is at chance ({:.0}% for {} classes): the network is not learning",
            100.0 * now.test_accuracy,
            now.epoch,
            100.0 / classes,
            classes
        )));
    }
    let mut losses: Vec<f64> = before.iter().map(|r| r.train_loss).collect();
    losses.push(now.train_loss);
    if losses.len() > RISING_EPOCHS
        && losses[losses.len() - RISING_EPOCHS - 1..]
            .windows(2)
            .all(|w| w[1] > w[0])
    {
        return Some(hint(format!(
            "the training loss has risen for {RISING_EPOCHS} epochs in a row"
        )));
    }
    None
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
