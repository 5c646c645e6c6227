//! The training loop: shuffles, hands each epoch its per-step learning rates, drives a
//! [`Backend`] step by step, evaluates, stops early or on request, reports. It knows neither the
//! device nor the optimizer: those live behind the backend and in the [`StepHyper`] table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Split};
use crate::error::{Error, Result};
use crate::optim::{OptimConfig, Schedule, StepHyper};
use crate::progress;
use crate::rng;
use web_time::Instant;

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
    /// A plain run: no progress bars, step logs, validation, early stopping or interruption,
    /// starting at the first epoch.
    pub fn new(
        classes: usize,
        epochs: usize,
        batch: usize,
        optim: OptimConfig,
        schedule: Schedule,
        seed: u32,
    ) -> Self {
        TrainConfig {
            classes,
            epochs,
            batch,
            optim,
            schedule,
            seed,
            progress: false,
            log_every: None,
            val: false,
            patience: None,
            target_accuracy: None,
            start: Position::default(),
            interrupt: None,
        }
    }

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

/// One epoch in progress, a step at a time: [`Run::begin_epoch`] starts it, [`Epoch::step`]
/// runs its next step until [`Epoch::done`], and [`Run::end_epoch`] evaluates it. A caller that
/// must give control back between steps (a browser page) drives these itself; [`train`] drives
/// them in one loop.
pub struct Epoch {
    /// 1-based.
    pub number: usize,
    /// Steps in a whole epoch.
    pub steps: usize,
    /// Where this epoch started (0 unless an interrupted epoch is resumed).
    pub first_step: usize,
    /// The step [`Epoch::step`] runs next.
    pub next: usize,
    /// hyper: [steps], each step's learning rate and bias corrections.
    hyper: Vec<StepHyper>,
    t0: Instant,
}

impl Epoch {
    /// Whether every step has run.
    pub fn done(&self) -> bool {
        self.next >= self.steps
    }

    /// Runs step `self.next` on its samples and returns its index.
    pub fn step(
        &mut self,
        backend: &mut dyn Backend,
        batch: usize,
        n_train: usize,
    ) -> Result<usize> {
        let step = self.next;
        let start = step * batch;
        let len = batch.min(n_train - start);
        backend.step(step, start, len)?;
        self.next += 1;
        Ok(step)
    }

    /// Step `step`'s coefficients.
    pub fn hyper(&self, step: usize) -> StepHyper {
        self.hyper[step.min(self.steps - 1)]
    }

    /// Training seconds since the epoch began.
    pub fn seconds(&self) -> f64 {
        self.t0.elapsed().as_secs_f64()
    }
}

/// What a run carries from epoch to epoch: the records so far, the training time and the best
/// validation loss (with its weights when `patience` may restore them).
pub struct Run {
    pub records: Vec<EpochRecord>,
    /// Training seconds of the run so far, before the epoch in progress.
    pub elapsed: f64,
    pub best: Option<(f64, usize)>,
    best_params: Option<Vec<f32>>,
    device: String,
}

impl Run {
    /// A run starting at `cfg.start`.
    pub fn new(backend: &dyn Backend, cfg: &TrainConfig) -> Self {
        Run {
            records: Vec::new(),
            elapsed: cfg.start.elapsed,
            best: cfg.start.best,
            best_params: None,
            device: backend.device(),
        }
    }

    /// Shuffles for epoch `number` and hands the backend its order and per-step coefficients.
    pub fn begin_epoch(
        &self,
        backend: &mut dyn Backend,
        cfg: &TrainConfig,
        n_train: usize,
        number: usize,
        first_step: usize,
    ) -> Result<Epoch> {
        let steps = cfg.steps_per_epoch(n_train);
        let first_step = first_step.min(steps);
        let order = epoch_order(n_train, cfg.seed, number);
        let hyper = epoch_hyper(cfg, steps, number);
        let t0 = Instant::now();
        backend.begin_epoch(&order, &hyper, first_step)?;
        Ok(Epoch {
            number,
            steps,
            first_step,
            next: first_step,
            hyper,
            t0,
        })
    }

    /// Where a run resumed now, in the middle of `epoch`, would start.
    pub fn position_in(&self, epoch: &Epoch) -> Position {
        Position {
            epoch: epoch.number,
            step: epoch.next,
            elapsed: self.elapsed + epoch.seconds(),
            best: self.best,
        }
    }

    /// Finishes `epoch`'s work, evaluates, and returns its record (not yet in `records`) with
    /// where the next epoch starts. Fails when the loss diverged.
    pub fn end_epoch(
        &mut self,
        backend: &mut dyn Backend,
        cfg: &TrainConfig,
        n_train: usize,
        epoch: Epoch,
    ) -> Result<(EpochRecord, Position)> {
        let Epoch {
            number,
            steps,
            first_step,
            hyper,
            t0,
            ..
        } = epoch;
        let stats = backend.end_epoch()?;
        let secs = t0.elapsed().as_secs_f64();
        self.elapsed += secs;
        if let Some((step, value)) = stats.nonfinite {
            return Err(Error::Diverged {
                epoch: number,
                step,
                value,
            });
        }
        let eval = backend.evaluate(Split::Test)?;
        if !eval.loss.is_finite() {
            return Err(Error::Diverged {
                epoch: number,
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
        let is_best = match (val, self.best) {
            (Some(v), Some((b, _))) => v.loss < b,
            (Some(_), None) => true,
            _ => false,
        };
        if is_best && let Some(v) = val {
            self.best = Some((v.loss, number));
            if cfg.patience.is_some() {
                self.best_params = Some(backend.params()?);
            }
        }
        let mut record = EpochRecord {
            epoch: number,
            train_loss,
            test_loss: eval.loss,
            test_accuracy: eval.accuracy,
            val_loss: val.map(|v| v.loss),
            val_accuracy: val.map(|v| v.accuracy),
            epoch_seconds: secs,
            elapsed_seconds: self.elapsed,
            samples_per_second: stats.samples as f64 / secs.max(1e-9),
            steps: steps - first_step,
            batch_size: cfg.batch,
            lr: hyper[first_step.min(steps - 1)].lr,
            lr_end: hyper[steps - 1].lr,
            device: self.device.clone(),
            best: is_best,
            warning: None,
        };
        record.warning = diagnose(&self.records, &record, cfg, n_train);
        let next = Position {
            epoch: number + 1,
            step: 0,
            elapsed: self.elapsed,
            best: self.best,
        };
        Ok((record, next))
    }

    /// Keeps `record` and says whether the run stops here: the target accuracy reached, or
    /// `patience` run out (the best weights restored).
    pub fn keep(
        &mut self,
        backend: &mut dyn Backend,
        cfg: &TrainConfig,
        record: EpochRecord,
    ) -> Result<Option<Outcome>> {
        let epoch = record.epoch;
        let acc = record.val_accuracy.unwrap_or(record.test_accuracy);
        self.records.push(record);
        if let Some(target) = cfg.target_accuracy
            && acc >= target
        {
            return Ok(Some(Outcome::TargetReached {
                epoch,
                seconds: self.elapsed,
            }));
        }
        if let (Some(k), Some((_, best_epoch))) = (cfg.patience, self.best)
            && epoch - best_epoch >= k
        {
            if let Some(p) = &self.best_params {
                backend.set_params(p)?;
            }
            return Ok(Some(Outcome::EarlyStopped { best_epoch }));
        }
        Ok(None)
    }

    /// How a run that used every epoch ends: with `patience`, on the best weights.
    pub fn finish(&mut self, backend: &mut dyn Backend) -> Result<Outcome> {
        if let (Some(p), Some((_, best_epoch))) = (&self.best_params, self.best)
            && self.records.last().is_some_and(|r| r.epoch != best_epoch)
        {
            backend.set_params(p)?;
            return Ok(Outcome::EarlyStopped { best_epoch });
        }
        Ok(Outcome::Completed)
    }
}

/// Runs epochs `cfg.start.epoch..=cfg.epochs` over `n_train` samples, telling `obs` after each.
pub fn train(
    backend: &mut dyn Backend,
    cfg: &TrainConfig,
    n_train: usize,
    obs: &mut dyn Observer,
) -> Result<(Vec<EpochRecord>, Outcome)> {
    let mut run = Run::new(backend, cfg);
    let first_epoch = cfg.start.epoch.max(1);
    let interrupted = || {
        cfg.interrupt
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
    };
    for number in first_epoch..=cfg.epochs {
        let first_step = if number == first_epoch {
            cfg.start.step
        } else {
            0
        };
        let mut epoch = run.begin_epoch(backend, cfg, n_train, number, first_step)?;
        let steps = epoch.steps;
        let bar = progress::epoch_bar(cfg.progress, steps, number, cfg.epochs);
        bar.set_position(epoch.first_step as u64);
        while !epoch.done() {
            let step = epoch.step(backend, cfg.batch, n_train)?;
            bar.inc(1);
            if let Some(n) = cfg.log_every.filter(|&n| (step + 1) % n == 0) {
                let sums = backend.step_loss_sums()?;
                let from = sums.len().saturating_sub(n);
                let total: f64 = sums[from..].iter().map(|&l| l as f64).sum();
                let first = epoch.first_step + from;
                let end = (step * cfg.batch + cfg.batch).min(n_train);
                let samples = (first * cfg.batch..end).len();
                let hyper = epoch.hyper(step);
                let log = StepLog {
                    epoch: number,
                    step: step + 1,
                    global_step: hyper.t as u64 + 1,
                    train_loss: total / samples.max(1) as f64,
                    lr: hyper.lr,
                };
                let line = format!(
                    "epoch {number:>3}  step {:>6}/{steps}  train loss {:.4} (mean of the last {} steps)  lr {:.3e}",
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
            if interrupted() && !epoch.done() {
                bar.finish_and_clear();
                // The steps already queued must land before the caller reads the state.
                backend.end_epoch()?;
                let next = run.position_in(&epoch);
                return Ok((run.records, Outcome::Interrupted { next }));
            }
        }
        bar.finish_and_clear();
        let (record, next) = run.end_epoch(backend, cfg, n_train, epoch)?;
        obs.on_epoch(&record, backend, &next)?;
        if let Some(outcome) = run.keep(backend, cfg, record)? {
            return Ok((run.records, outcome));
        }
        if interrupted() && number < cfg.epochs {
            return Ok((run.records, Outcome::Interrupted { next }));
        }
    }
    let outcome = run.finish(backend)?;
    Ok((run.records, outcome))
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
