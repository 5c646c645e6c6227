//! `descent modes`: the same model from the same initial weights trained three ways (batch,
//! stochastic and mini-batch gradient descent), each with its mode's defaults, under one budget.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::args::{DataArgs, DeviceArgs, ModelArgs, check_output_file, load_data, make_backend};
use super::train::mode_defaults;
use descent::backend::{Backend, Setup};
use descent::data::Dataset;
use descent::error::{Error, Result};
use descent::optim::{OptimConfig, Schedule, ScheduleKind};
use descent::plot::modes::{ModeCurve, ModesFigure, StepPoint};
use descent::train::{
    self, BatchSize, EpochRecord, Mode, Observer, Outcome, Position, TrainConfig,
};

#[derive(Args, Debug, Clone)]
pub struct ModesArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Budget: this many epochs for every mode [default: 10].
    #[arg(long, conflicts_with = "seconds")]
    pub epochs: Option<usize>,
    /// Budget: this many seconds of training for every mode (the lr schedule is then constant:
    /// the number of steps is not known ahead).
    #[arg(long, allow_negative_numbers = true)]
    pub seconds: Option<f64>,
    /// The mini-batch mode's batch size.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Train on the first N training samples; `--limit 60000` for all of MNIST. The default keeps
    /// the three runs within about a minute on two cores.
    #[arg(long, default_value_t = 20_000)]
    pub limit: usize,
    /// Seed for the initial weights (shared by the three runs) and the shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Draw loss against updates, epochs and seconds to this .png or .svg.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// Write the comparison (one object per mode) to this JSON file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

const DEFAULT_EPOCHS: usize = 10;
/// With `--seconds`, the epoch cap (the clock stops the run long before).
const SECONDS_EPOCH_CAP: usize = 100_000;

/// One mode's run, as printed and written by `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct ModeRun {
    pub mode: String,
    pub batch: usize,
    pub optimizer: String,
    pub lr: f32,
    pub schedule: String,
    pub epochs: f64,
    pub updates: usize,
    /// Mean loss over the whole training set with the final weights.
    pub train_loss: f64,
    /// Mean loss of the first epoch's updates.
    pub first_epoch_loss: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
    pub samples_per_second: f64,
    /// FNV-1a of the weights the backend held before the first step: the same for every mode.
    pub initial_weights: String,
    #[serde(skip)]
    pub points: Vec<StepPoint>,
}

/// Collects every update's loss, read once per epoch (one readback on the GPU).
struct StepRecorder {
    n_train: usize,
    batch: usize,
    points: Vec<StepPoint>,
    records: Vec<EpochRecord>,
    /// `--seconds`: the budget and the deadline the timer watches.
    budget: Option<(f64, Arc<Mutex<Option<Instant>>>)>,
}

impl StepRecorder {
    /// Adds the loss of each step of `epoch` from the backend's per-step sums.
    fn add_epoch(
        &mut self,
        backend: &mut dyn Backend,
        epoch: usize,
        seconds_before: f64,
        seconds_after: f64,
    ) -> Result<()> {
        let steps = self.n_train.div_ceil(self.batch);
        let sums = backend.step_loss_sums()?;
        let done = sums.len();
        for (s, &sum) in sums.iter().enumerate() {
            let len = self.batch.min(self.n_train - s * self.batch);
            let frac = (s + 1) as f64 / done as f64;
            self.points.push(StepPoint {
                update: ((epoch - 1) * steps + s + 1) as f64,
                epoch: (epoch - 1) as f64 + (s + 1) as f64 / steps as f64,
                seconds: seconds_before + frac * (seconds_after - seconds_before),
                loss: sum as f64 / len as f64,
            });
        }
        Ok(())
    }
}

impl Observer for StepRecorder {
    fn on_epoch(
        &mut self,
        r: &EpochRecord,
        backend: &mut dyn Backend,
        _next: &Position,
    ) -> Result<()> {
        self.add_epoch(
            backend,
            r.epoch,
            r.elapsed_seconds - r.epoch_seconds,
            r.elapsed_seconds,
        )?;
        self.records.push(r.clone());
        if let Some((secs, deadline)) = &self.budget
            && let Ok(mut d) = deadline.lock()
        {
            let left = (secs - r.elapsed_seconds).max(0.0);
            *d = Some(Instant::now() + Duration::from_secs_f64(left));
        }
        Ok(())
    }
}

/// FNV-1a over the bits of `params`.
pub fn fingerprint(params: &[f32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in params {
        for b in p.to_bits().to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The three modes in the order they are run and shown.
fn modes(batch_size: usize) -> [(Mode, BatchSize); 3] {
    [
        (Mode::Batch, BatchSize::Full),
        (Mode::Stochastic, BatchSize::Samples(1)),
        (Mode::MiniBatch, BatchSize::Samples(batch_size)),
    ]
}

fn short_name(mode: Mode, batch: usize) -> String {
    match mode {
        Mode::Batch => "batch".into(),
        Mode::Stochastic => "stochastic".into(),
        Mode::MiniBatch => format!("mini-batch {batch}"),
    }
}

pub fn run(args: ModesArgs) -> Result<()> {
    if args.batch_size < 2 {
        return Err(Error::InvalidArg(format!(
            "--batch-size {}: the mini-batch mode needs at least 2 (1 is the stochastic run)",
            args.batch_size
        )));
    }
    if args.limit < 2 {
        return Err(Error::InvalidArg(format!(
            "--limit {}: give at least 2 samples",
            args.limit
        )));
    }
    if args.epochs == Some(0) {
        return Err(Error::InvalidArg("--epochs 0: nothing to train".into()));
    }
    if let Some(s) = args.seconds
        && !(s.is_finite() && s > 0.0)
    {
        return Err(Error::InvalidArg(format!(
            "--seconds {s}: give a number of seconds above 0"
        )));
    }
    if let Some(p) = &args.plot {
        descent::plot::check_picture_path("--plot", p)?;
    }
    if let Some(p) = &args.json {
        check_output_file("--json", p)?;
    }
    let spec = args.model.spec()?;
    let splits = load_data(&args.data)?;
    let mut train_set = splits.train;
    let full = train_set.len();
    train_set.truncate(args.limit);
    let n = train_set.len();
    let train_set = Arc::new(train_set);
    let test_set = Arc::new(splits.test);
    let init = spec.init_params(args.model.init, args.seed);
    let budget = match args.seconds {
        Some(s) => format!("{s} s of training each"),
        None => format!("{} epochs each", args.epochs.unwrap_or(DEFAULT_EPOCHS)),
    };
    println!(
        "model {} | {} | {n} training samples{} | {budget} | same initial weights (seed {})",
        spec.describe(),
        args.data.dataset.name(),
        if n < full {
            format!(" (the first {n} of {full}: --limit)")
        } else {
            String::new()
        },
        args.seed
    );
    let mut runs = Vec::new();
    for (mode, bs) in modes(args.batch_size) {
        let batch = bs.resolve(n);
        let d = mode_defaults(mode, None);
        let optim = OptimConfig {
            kind: d.optimizer,
            momentum: if d.optimizer.is_adam() {
                0.0
            } else {
                d.momentum
            },
            ..OptimConfig::sgd(0.0)
        };
        let (epochs, kind) = match args.seconds {
            Some(_) => (SECONDS_EPOCH_CAP, ScheduleKind::Constant),
            None => (args.epochs.unwrap_or(DEFAULT_EPOCHS), d.schedule),
        };
        let steps = n.div_ceil(batch);
        let schedule = Schedule {
            kind,
            lr: d.lr,
            min_lr: 0.0,
            warmup_steps: 0,
            step_every: steps as u64,
            gamma: 0.1,
            total_steps: (epochs * steps) as u64,
        };
        schedule.check()?;
        println!(
            "{:<24} batch {batch:>6}: {}, {} (this mode's defaults)",
            mode.name(),
            optim.describe(),
            schedule.describe()
        );
        let run = run_mode(
            &args,
            mode,
            Setup {
                spec: spec.clone(),
                params: init.clone(),
                train: train_set.clone(),
                test: test_set.clone(),
                val: None,
                batch,
                optim,
                dropout: 0.0,
                input_dropout: 0.0,
                seed: args.seed,
            },
            epochs,
            schedule,
        )?;
        runs.push(run);
    }
    print_table(&runs);
    if let Some(path) = &args.json {
        let s = serde_json::to_string_pretty(&runs)
            .map_err(|e| Error::InvalidArg(format!("--json: {e}")))?;
        descent::write_atomic(path, s.as_bytes())?;
        println!("wrote {}", path.display());
    }
    if let Some(path) = &args.plot {
        let curves: Vec<ModeCurve> = runs
            .iter()
            .map(|r| ModeCurve {
                label: format!("{} ({} updates)", r.mode, r.updates),
                points: r.points.clone(),
            })
            .collect();
        let fig = ModesFigure {
            curves: &curves,
            title: vec![
                "Batch, stochastic and mini-batch gradient descent".into(),
                format!(
                    "{} · {} · {n} samples · {budget} · each mode with its own defaults · long curves are window means",
                    spec.describe(),
                    args.data.dataset.name()
                ),
            ],
        };
        descent::plot::render(&fig, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run_mode(
    args: &ModesArgs,
    mode: Mode,
    setup: Setup,
    epochs: usize,
    schedule: Schedule,
) -> Result<ModeRun> {
    let (batch, optim, seed) = (setup.batch, setup.optim, setup.seed);
    let n = setup.train.len();
    let train_set: Arc<Dataset> = setup.train.clone();
    let spec = setup.spec.clone();
    let mut backend = make_backend(&args.device, setup)?;
    let initial_weights = fingerprint(&backend.params()?);
    let interrupt = Arc::new(AtomicBool::new(false));
    // The loop checks the flag after every step; a timer sets it at the deadline, which each
    // epoch's end moves to "now + what is left of the budget", so evaluation is not counted.
    let deadline = Arc::new(Mutex::new(
        args.seconds
            .map(|s| Instant::now() + Duration::from_secs_f64(s)),
    ));
    let done = Arc::new(AtomicBool::new(false));
    if args.seconds.is_some() {
        let (flag, deadline, done) = (interrupt.clone(), deadline.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let due = deadline
                    .lock()
                    .map(|d| d.is_some_and(|d| Instant::now() >= d))
                    .unwrap_or(true);
                if due {
                    flag.store(true, Ordering::SeqCst);
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
    }
    let cfg = TrainConfig {
        classes: spec.classes(),
        epochs,
        batch,
        optim,
        schedule,
        seed,
        progress: !args.data.quiet,
        log_every: None,
        val: false,
        patience: None,
        target_accuracy: None,
        start: Position::default(),
        interrupt: Some(interrupt),
    };
    let mut rec = StepRecorder {
        n_train: n,
        batch,
        points: Vec::new(),
        records: Vec::new(),
        budget: args.seconds.map(|s| (s, deadline)),
    };
    let result = train::train(backend.as_mut(), &cfg, n, &mut rec);
    done.store(true, Ordering::SeqCst);
    let (_, outcome) = result.map_err(|e| match e {
        Error::Diverged { epoch, step, value } => Error::InvalidArg(format!(
            "{} diverged: the loss became {value} at epoch {epoch}, step {step}",
            mode.name()
        )),
        e => e,
    })?;
    let mut seconds = rec.records.last().map_or(0.0, |r| r.elapsed_seconds);
    if let Outcome::Interrupted { next } = outcome {
        // The epoch the clock cut short: its steps count too.
        if next.step > 0 {
            rec.add_epoch(backend.as_mut(), next.epoch, seconds, next.elapsed)?;
        }
        seconds = next.elapsed;
    }
    let test = backend.evaluate(descent::backend::Split::Test)?;
    let params = backend.params()?;
    let train_eval = descent::cpu::evaluate(&spec, &params, &train_set, &mut None);
    let updates = rec.points.len();
    let steps = n.div_ceil(batch);
    let first: Vec<f64> = rec.points.iter().take(steps).map(|p| p.loss).collect();
    let samples = rec
        .points
        .iter()
        .map(|p| {
            let s = (p.update as usize - 1) % steps;
            batch.min(n - s * batch)
        })
        .sum::<usize>();
    Ok(ModeRun {
        mode: short_name(mode, batch),
        batch,
        optimizer: optim.describe(),
        lr: schedule.lr,
        schedule: schedule.kind.name().into(),
        epochs: rec.points.last().map_or(0.0, |p| p.epoch),
        updates,
        train_loss: train_eval.loss,
        first_epoch_loss: first.iter().sum::<f64>() / first.len().max(1) as f64,
        test_accuracy: test.accuracy,
        seconds,
        samples_per_second: samples as f64 / seconds.max(1e-9),
        initial_weights,
        points: rec.points,
    })
}

fn print_table(runs: &[ModeRun]) {
    println!();
    println!(
        "{:<14} {:>6} {:>8} {:>9} {:>11} {:>11} {:>9} {:>8} {:>10}",
        "mode",
        "batch",
        "epochs",
        "updates",
        "1st-epoch",
        "train loss",
        "test acc",
        "train s",
        "samples/s"
    );
    for r in runs {
        println!(
            "{:<14} {:>6} {:>8.2} {:>9} {:>11.4} {:>11.4} {:>8.2}% {:>8.2} {:>10.0}",
            r.mode,
            r.batch,
            r.epochs,
            r.updates,
            r.first_epoch_loss,
            r.train_loss,
            100.0 * r.test_accuracy,
            r.seconds,
            r.samples_per_second
        );
    }
    println!(
        "1st-epoch: mean loss of the first epoch's updates (how quickly a mode starts); train loss: the whole training set with the final weights"
    );
}
