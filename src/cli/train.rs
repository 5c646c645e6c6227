//! `descent train`: train a model, report each epoch, checkpoint, stop early or on Ctrl-C, resume.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::args::{
    DataArgs, DeviceArgs, DeviceChoice, ModelArgs, check_output_dir, check_output_file, load,
    make_backend, open_gpu, resident_bytes,
};
use descent::backend::{Backend, Setup};
use descent::data::{Dataset, Splits};
use descent::error::{Error, Result};
use descent::gpu::GpuBackend;
use descent::model::{self, ModelSpec, ResumeState, TrainedOn};
use descent::optim::{OptimConfig, OptimizerKind, Schedule, ScheduleKind};
use descent::plot::curves::CurvePoint;
use descent::plot::train::TrainPlot;
use descent::rng;
use descent::tensorboard::TensorBoard;
use descent::train::{
    self, BatchSize, EpochRecord, Mode, Observer, Outcome, Position, StepLog, TrainConfig,
};

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Passes over the training set [default: by mode: stochastic 1, mini-batch 10, batch 100].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Samples per step: a number (64 = mini-batch, 1 = stochastic) or `full` (batch descent).
    #[arg(long, default_value = "64")]
    pub batch_size: String,
    /// sgd, nesterov, adam or adamw [default: by mode, printed in the header].
    #[arg(long, value_enum)]
    pub optimizer: Option<OptimizerKind>,
    /// Peak learning rate [default: by mode and optimizer, printed in the header].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    /// SGD/Nesterov momentum in [0, 1); 0 is plain SGD [default: by mode].
    #[arg(long, allow_negative_numbers = true)]
    pub momentum: Option<f32>,
    /// Adam's β1.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub beta1: f32,
    /// Adam's β2.
    #[arg(long, default_value_t = 0.999, allow_negative_numbers = true)]
    pub beta2: f32,
    /// Adam's ε.
    #[arg(long, default_value_t = 1e-8, allow_negative_numbers = true)]
    pub eps: f32,
    /// Weight decay λ: L2 added to the gradient (sgd, nesterov, adam), decoupled (adamw).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f32,
    /// constant, step, cosine or onecycle, per step [default: by mode].
    #[arg(long, value_enum)]
    pub lr_schedule: Option<ScheduleKind>,
    /// Linear warm-up over this many steps.
    #[arg(long, conflicts_with = "warmup_epochs")]
    pub warmup_steps: Option<u64>,
    /// Linear warm-up over this many epochs.
    #[arg(long)]
    pub warmup_epochs: Option<f64>,
    /// `--lr-schedule step`: multiply the lr by --lr-gamma every this many epochs.
    #[arg(long, default_value_t = 10)]
    pub lr_step: u64,
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub lr_gamma: f32,
    /// The lr that cosine and one-cycle anneal to, and the step schedule's floor.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub min_lr: f32,
    /// Dropout probability on every hidden layer's output, training only (inverted scaling).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub dropout: f32,
    /// Dropout probability on the input features (pixels), training only, inverted scaling.
    /// On the CPU the run then takes the dense first layer, not the sparse one.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        value_name = "P"
    )]
    pub input_dropout: f32,
    /// Max-norm constraint: after every update, each unit's incoming weight vector (a row of
    /// every layer's [out, in] weight, the output layer's included) longer than C is scaled
    /// back to length C. 0 = off.
    #[arg(
        long,
        default_value_t = 0.0,
        allow_negative_numbers = true,
        value_name = "C"
    )]
    pub max_norm: f32,
    /// Hold out N training samples (chosen with the seed) as a validation set.
    #[arg(long, value_name = "N")]
    pub val: Option<usize>,
    /// Stop after K epochs without a better validation loss and restore the best weights
    /// (needs --val).
    #[arg(long, value_name = "K")]
    pub patience: Option<usize>,
    /// Stop as soon as the test (or, with --val, validation) accuracy reaches A (0..1 or a
    /// percentage), and report the training time it took.
    #[arg(long, value_name = "A")]
    pub target_accuracy: Option<f64>,
    /// Seed for initialisation, shuffling, dropout and the validation split.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Train on the first N training samples only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// (Re)write this file with one JSON object per epoch.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Save the trained model as a safetensors checkpoint.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Write DIR/last.safetensors every epoch (and DIR/best.safetensors with --val): weights,
    /// optimizer state and position, so `--resume` can continue the run.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Draw loss and accuracy per epoch (two panels) to this .png or .svg, redrawn after every
    /// epoch so a long run can be watched.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// Write TensorBoard event files to DIR: losses, accuracies, lr and samples/s per epoch, and
    /// per step with --log-every.
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// Continue the run saved in this checkpoint (from --checkpoint-dir or Ctrl-C); give the
    /// same model, data and batch flags as the run that wrote it.
    #[arg(long, value_name = "PATH")]
    pub resume: Option<PathBuf>,
    /// Also print the mean training loss every N steps. The loss is summed on the device, so on
    /// the GPU this reads it back every N steps instead of once per epoch.
    #[arg(long, value_name = "N")]
    pub log_every: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print the GPU step plan (every dispatch of a step, in order) and exit.
    #[arg(long)]
    pub print_plan: bool,
    #[command(flatten)]
    pub prune: crate::cli::prune::GradualArgs,
}

/// What a run was, as resolved from the flags and the mode's defaults: stored in resumable
/// checkpoints, compared on `--resume`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub dataset: String,
    pub model: String,
    pub init: String,
    pub seed: u32,
    pub epochs: usize,
    pub batch: usize,
    pub limit: Option<usize>,
    pub val: Option<usize>,
    pub optim: OptimConfig,
    pub schedule: Schedule,
    pub dropout: f32,
    /// Older checkpoints have none: off.
    #[serde(default)]
    pub input_dropout: f32,
    pub patience: Option<usize>,
    pub target_accuracy: Option<f64>,
}

/// The defaults of one kind of descent, for what the user left unset.
pub struct ModeDefaults {
    pub optimizer: OptimizerKind,
    pub lr: f32,
    pub momentum: f32,
    pub epochs: usize,
    pub schedule: ScheduleKind,
}

/// Per-mode defaults, chosen by measurement on MNIST (README, "Defaults"): one sample per step
/// needs a small, decaying rate; a full batch takes few, large steps, which Adam handles best.
pub fn mode_defaults(mode: Mode, optimizer: Option<OptimizerKind>) -> ModeDefaults {
    let (opt, epochs, schedule) = match mode {
        Mode::Stochastic => (OptimizerKind::Sgd, 1, ScheduleKind::Cosine),
        Mode::MiniBatch => (OptimizerKind::Sgd, 10, ScheduleKind::Cosine),
        Mode::Batch => (OptimizerKind::Adam, 100, ScheduleKind::Constant),
    };
    let optimizer = optimizer.unwrap_or(opt);
    let (lr, momentum) = match (mode, optimizer) {
        (Mode::Stochastic, OptimizerKind::Sgd) => (0.02, 0.0),
        (Mode::Stochastic, OptimizerKind::Nesterov) => (0.002, 0.9),
        (Mode::Stochastic, _) => (2e-4, 0.9),
        (Mode::MiniBatch, OptimizerKind::Sgd | OptimizerKind::Nesterov) => (0.05, 0.9),
        (Mode::MiniBatch, _) => (1e-3, 0.9),
        (Mode::Batch, OptimizerKind::Sgd | OptimizerKind::Nesterov) => (0.5, 0.9),
        (Mode::Batch, _) => (0.01, 0.9),
    };
    ModeDefaults {
        optimizer,
        lr,
        momentum,
        epochs,
        schedule,
    }
}

/// Everything `run` resolved from the flags before touching the data.
struct Resolved {
    spec: ModelSpec,
    batch: BatchSize,
    mode: Mode,
    optim: OptimConfig,
    lr: f32,
    schedule: ScheduleKind,
    epochs: usize,
    /// Which settings came from the mode's defaults, for the header.
    defaulted: Vec<String>,
    target: Option<f64>,
}

fn resolve(args: &TrainArgs) -> Result<Resolved> {
    let spec = args.model.spec()?;
    let batch = BatchSize::parse(&args.batch_size)?;
    let mode = Mode::of(batch);
    let d = mode_defaults(mode, args.optimizer);
    let mut defaulted = Vec::new();
    let mut pick = |name: &str, given: bool, shown: String| {
        if !given {
            defaulted.push(format!("{name} {shown}"));
        }
    };
    pick(
        "--optimizer",
        args.optimizer.is_some(),
        d.optimizer.name().into(),
    );
    let lr = args.lr.unwrap_or(d.lr);
    pick("--lr", args.lr.is_some(), lr.to_string());
    let momentum = args.momentum.unwrap_or(d.momentum);
    if matches!(d.optimizer, OptimizerKind::Sgd | OptimizerKind::Nesterov) {
        pick("--momentum", args.momentum.is_some(), momentum.to_string());
    }
    let epochs = args.epochs.unwrap_or(d.epochs);
    pick("--epochs", args.epochs.is_some(), epochs.to_string());
    let schedule = args.lr_schedule.unwrap_or(d.schedule);
    pick(
        "--lr-schedule",
        args.lr_schedule.is_some(),
        schedule.name().into(),
    );
    let optim = OptimConfig {
        kind: d.optimizer,
        momentum,
        beta1: args.beta1,
        beta2: args.beta2,
        eps: args.eps,
        weight_decay: args.weight_decay,
        max_norm: args.max_norm,
    };
    optim.check()?;
    Schedule {
        kind: schedule,
        lr,
        min_lr: args.min_lr,
        warmup_steps: 0,
        step_every: args.lr_step,
        gamma: args.lr_gamma,
        total_steps: 1,
    }
    .check_rates()?;
    if epochs == 0 {
        return Err(Error::InvalidArg("--epochs 0: nothing to train".into()));
    }
    if !(args.dropout.is_finite() && (0.0..1.0).contains(&args.dropout)) {
        return Err(Error::InvalidArg(format!(
            "--dropout {}: must be at least 0 and below 1",
            args.dropout
        )));
    }
    if args.dropout > 0.0 && spec.hidden().is_empty() {
        return Err(Error::InvalidArg(
            "--dropout needs a hidden layer to drop units from (--hidden none has none)".into(),
        ));
    }
    if !(args.input_dropout.is_finite() && (0.0..1.0).contains(&args.input_dropout)) {
        return Err(Error::InvalidArg(format!(
            "--input-dropout {}: must be at least 0 and below 1",
            args.input_dropout
        )));
    }
    if args.patience.is_some() && args.val.is_none() {
        return Err(Error::InvalidArg(
            "--patience needs --val N: early stopping watches the validation loss".into(),
        ));
    }
    if args.patience == Some(0) {
        return Err(Error::InvalidArg(
            "--patience 0: give at least 1 epoch".into(),
        ));
    }
    if args.val == Some(0) {
        return Err(Error::InvalidArg(
            "--val 0: hold out at least one sample".into(),
        ));
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
    let target = args
        .target_accuracy
        .map(|a| {
            let a = if a > 1.0 && a <= 100.0 { a / 100.0 } else { a };
            if a.is_finite() && a > 0.0 && a <= 1.0 {
                Ok(a)
            } else {
                Err(Error::InvalidArg(format!(
                    "--target-accuracy {a}: give a fraction in (0, 1] or a percentage"
                )))
            }
        })
        .transpose()?;
    if let Some(w) = args.warmup_epochs
        && !(w.is_finite() && w >= 0.0)
    {
        return Err(Error::InvalidArg(format!(
            "--warmup-epochs {w}: must be a number, 0 or more"
        )));
    }
    Ok(Resolved {
        spec,
        batch,
        mode,
        optim,
        lr,
        schedule,
        epochs,
        defaulted,
        target,
    })
}

pub fn run(args: TrainArgs) -> Result<()> {
    // Check every flag and output path before touching the data, so a typo costs nothing.
    let mut r = resolve(&args)?;
    args.prune.schedule(r.epochs)?;
    if args.prune.prune_sparsity.is_some() && args.resume.is_some() {
        return Err(Error::InvalidArg(
            "--prune-sparsity with --resume: a gradually pruned run cannot be resumed yet".into(),
        ));
    }
    for (flag, path) in [("--metrics", &args.metrics), ("--save", &args.save)] {
        if let Some(p) = path {
            check_output_file(flag, p)?;
        }
    }
    if let Some(dir) = &args.checkpoint_dir {
        check_output_dir("--checkpoint-dir", dir)?;
    }
    if let Some(p) = &args.plot {
        descent::plot::check_picture_path("--plot", p)?;
    }
    if let Some(dir) = &args.tensorboard {
        check_output_dir("--tensorboard", dir)?;
    }
    let (Splits { mut train, test }, trained_on) = load(&args.data, None)?;
    let n_test = test.len();
    // The input width and class count come from the data.
    r.spec = ModelSpec::with_io(
        train.width,
        r.spec.hidden(),
        train.classes,
        r.spec.activation,
        r.spec.loss,
    );
    let resume = args
        .resume
        .as_ref()
        .map(|p| load_resume(p, &r.spec, &trained_on))
        .transpose()?;
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let val = match args.val {
        Some(n) if n >= train.len() => {
            return Err(Error::InvalidArg(format!(
                "--val {n}: the training set has only {} samples; hold out fewer",
                train.len()
            )));
        }
        Some(n) => {
            let (t, v) = split_validation(&train, n, args.seed);
            train = t;
            Some(v)
        }
        None => None,
    };
    let n_train = train.len();
    let batch = r.batch.resolve(n_train);
    let steps = n_train.div_ceil(batch);
    let warmup_steps = match (args.warmup_steps, args.warmup_epochs) {
        (Some(s), _) => s,
        (None, Some(e)) => (e * steps as f64).round() as u64,
        (None, None) => 0,
    };
    let schedule = Schedule {
        kind: r.schedule,
        lr: r.lr,
        min_lr: args.min_lr,
        warmup_steps,
        step_every: args.lr_step.saturating_mul(steps as u64),
        gamma: args.lr_gamma,
        total_steps: (r.epochs * steps) as u64,
    };
    schedule.check()?;
    let config = RunConfig {
        dataset: trained_on.name(),
        model: r.spec.describe(),
        init: format!("{:?}", args.model.init).to_lowercase(),
        seed: args.seed,
        epochs: r.epochs,
        batch,
        limit: args.limit,
        val: args.val,
        optim: r.optim,
        schedule,
        dropout: args.dropout,
        input_dropout: args.input_dropout,
        patience: args.patience,
        target_accuracy: r.target,
    };
    let (params, start, state) = match resume {
        Some((ck, rs)) => {
            check_resume_config(
                &rs,
                &config,
                args.resume.as_deref().unwrap_or(Path::new("")),
            )?;
            (ck.params, rs.position, Some(rs.state))
        }
        None => (
            r.spec.init_params(args.model.init, args.seed),
            Position::default(),
            None,
        ),
    };
    let setup = Setup {
        spec: r.spec.clone(),
        params,
        train: Arc::new(train),
        test: Arc::new(test),
        val: val.map(Arc::new),
        batch,
        optim: r.optim,
        dropout: args.dropout,
        input_dropout: args.input_dropout,
        seed: args.seed,
    };
    if args.print_plan {
        let dev = DeviceArgs {
            device: DeviceChoice::Gpu,
            ..args.device.clone()
        };
        let gpu = open_gpu(&dev, resident_bytes(&setup.train, &setup.test))?
            .ok_or_else(|| Error::InvalidArg("--print-plan needs a GPU adapter".into()))?;
        let b = GpuBackend::new(gpu, &setup)?;
        println!("{}", b.device());
        print!("{}", b.tuning());
        for p in b.plans() {
            println!("{p}");
        }
        return Ok(());
    }
    let mut backend = make_backend(&args.device, setup)?;
    if let Some(s) = &state {
        backend.set_optimizer_state(s)?;
    }
    let quiet = args.data.quiet;
    if let TrainedOn::Own(p) = &trained_on {
        println!("data {} | {} test samples", p.describe(), n_test);
    }
    println!(
        "model {} | {} on {} | {} samples{}, batch {} | {}, {} | {} epochs | {}",
        r.spec.describe(),
        trained_on.name(),
        backend.device(),
        n_train,
        args.val
            .map(|v| format!(" (+{v} validation)"))
            .unwrap_or_default(),
        batch,
        r.optim.describe(),
        schedule.describe(),
        r.epochs,
        r.mode.name(),
    );
    if !r.defaulted.is_empty() {
        println!("defaults for {}: {}", r.mode.name(), r.defaulted.join(", "));
    }
    if start.epoch > 0 {
        println!(
            "resuming at epoch {}, step {} ({:.1}s of training done)",
            start.epoch, start.step, start.elapsed
        );
    }
    let interrupt = interrupt_flag();
    let cfg = TrainConfig {
        classes: r.spec.classes(),
        epochs: r.epochs,
        batch,
        optim: r.optim,
        schedule,
        seed: args.seed,
        progress: !quiet,
        log_every: args.log_every,
        val: args.val.is_some(),
        patience: args.patience,
        target_accuracy: r.target,
        start,
        interrupt: Some(interrupt),
    };
    let config_json = serde_json::to_string(&config)
        .map_err(|e| Error::InvalidArg(format!("configuration: {e}")))?;
    let title = format!(
        "{} · {} · {} · {}",
        r.spec.describe(),
        trained_on.name(),
        backend.device(),
        r.optim.describe()
    );
    let mut obs = CliObserver {
        metrics: args.metrics.clone(),
        lines: String::new(),
        plot: args
            .plot
            .as_deref()
            .map(|p| TrainPlot::new(p, title))
            .transpose()?,
        points: Vec::new(),
        tensorboard: args
            .tensorboard
            .as_deref()
            .map(TensorBoard::new)
            .transpose()?,
        steps_per_epoch: steps as u64,
        checkpoint_dir: args.checkpoint_dir.clone(),
        spec: r.spec.clone(),
        dataset: trained_on.clone(),
        optim: r.optim.kind,
        config: config_json.clone(),
    };
    // Passes every epoch on to `obs`, pruning after it when --prune-sparsity asks.
    let mut pruning = descent::prune::GradualPruning {
        inner: &mut obs,
        schedule: args.prune.schedule(r.epochs)?,
        spec: r.spec.clone(),
        global: args.prune.prune_global,
        mask: None,
        quiet: false,
    };
    let (_records, outcome) = train::train(backend.as_mut(), &cfg, n_train, &mut pruning)?;
    let mask = pruning.mask;
    match &outcome {
        Outcome::Completed => {}
        Outcome::EarlyStopped { best_epoch } => println!(
            "early stopping: no better validation loss for {} epochs; restored the weights of epoch {best_epoch}",
            args.patience.unwrap_or(0)
        ),
        Outcome::TargetReached { epoch, seconds } => println!(
            "target accuracy {:.2}% reached after epoch {epoch}: {seconds:.2}s of training",
            100.0 * r.target.unwrap_or(0.0)
        ),
        Outcome::Interrupted { next } => {
            let path = match &args.checkpoint_dir {
                Some(d) => d.join("last.safetensors"),
                None => PathBuf::from("descent-interrupted.safetensors"),
            };
            if mask.is_some() {
                return Err(Error::InvalidArg(
                    "interrupted: a run with --prune-sparsity cannot be resumed yet".into(),
                ));
            }
            obs.save_resumable(backend.as_mut(), &path, next)?;
            return Err(Error::Interrupted { path });
        }
    }
    if let Some(path) = &args.save {
        let params = backend.params()?;
        model::save_checkpoint_masked(path, &r.spec, &params, mask.as_deref(), trained_on, None)?;
        println!("saved {}", path.display());
    }
    Ok(())
}

/// Prints each epoch and writes the metrics file, the plot, the TensorBoard events and the
/// checkpoints.
struct CliObserver {
    metrics: Option<PathBuf>,
    lines: String,
    plot: Option<TrainPlot>,
    points: Vec<CurvePoint>,
    tensorboard: Option<TensorBoard>,
    steps_per_epoch: u64,
    checkpoint_dir: Option<PathBuf>,
    spec: ModelSpec,
    dataset: TrainedOn,
    optim: OptimizerKind,
    config: String,
}

impl CliObserver {
    fn save_resumable(
        &self,
        backend: &mut dyn Backend,
        path: &Path,
        next: &Position,
    ) -> Result<()> {
        let params = backend.params()?;
        let resume = ResumeState {
            optimizer: self.optim,
            state: backend.optimizer_state()?,
            position: *next,
            config: self.config.clone(),
        };
        model::save_checkpoint(
            path,
            &self.spec,
            &params,
            self.dataset.clone(),
            Some(&resume),
        )
    }
}

impl Observer for CliObserver {
    fn on_epoch(
        &mut self,
        r: &EpochRecord,
        backend: &mut dyn Backend,
        next: &Position,
    ) -> Result<()> {
        let val = match (r.val_loss, r.val_accuracy) {
            (Some(l), Some(a)) => format!("  val loss {l:.4}  val acc {:.2}%", 100.0 * a),
            _ => String::new(),
        };
        println!(
            "epoch {:>3}  train loss {:.4}{val}  test loss {:.4}  test acc {:.2}%  lr {:.3e}  {:.2}s  {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.test_loss,
            100.0 * r.test_accuracy,
            r.lr_end,
            r.epoch_seconds,
            r.samples_per_second
        );
        if let Some(w) = &r.warning {
            eprintln!("warning: {w}");
        }
        if let Some(path) = &self.metrics {
            // The record, and what the run is, so `descent plot` can title it.
            let mut v = serde_json::to_value(r).map_err(|e| {
                Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })?;
            if let Some(o) = v.as_object_mut() {
                o.insert("model".into(), self.spec.describe().into());
                o.insert("dataset".into(), self.dataset.name().into());
                if let TrainedOn::Own(p) = &self.dataset {
                    o.insert("classes".into(), p.class_names.clone().into());
                }
                o.insert("optimizer".into(), self.optim.name().into());
            }
            self.lines.push_str(&v.to_string());
            self.lines.push('\n');
            descent::write_atomic(path, self.lines.as_bytes())?;
        }
        let samples = self.points.last().map_or(0.0, |p| p.samples)
            + (r.samples_per_second * r.epoch_seconds).round();
        self.points.push(CurvePoint {
            epoch: r.epoch,
            seconds: r.elapsed_seconds,
            samples,
            train_loss: r.train_loss,
            test_loss: Some(r.test_loss),
            test_accuracy: Some(r.test_accuracy),
            val_loss: r.val_loss,
            val_accuracy: r.val_accuracy,
            train_accuracy: None,
            lr: Some(r.lr_end as f64),
            samples_per_second: Some(r.samples_per_second),
        });
        if let Some(p) = &mut self.plot {
            p.update(&self.points)?;
        }
        if let Some(tb) = &mut self.tensorboard {
            // Every scalar at the global step, so per-epoch and per-step ones share an axis.
            let step = r.epoch as u64 * self.steps_per_epoch;
            let mut scalars = vec![
                ("train/loss", r.train_loss as f32),
                ("test/loss", r.test_loss as f32),
                ("test/accuracy", r.test_accuracy as f32),
                ("lr", r.lr_end),
                ("samples_per_second", r.samples_per_second as f32),
            ];
            if let (Some(l), Some(a)) = (r.val_loss, r.val_accuracy) {
                scalars.push(("val/loss", l as f32));
                scalars.push(("val/accuracy", a as f32));
            }
            for (tag, v) in scalars {
                tb.scalar(tag, step, v)?;
            }
            tb.flush()?;
        }
        if let Some(dir) = self.checkpoint_dir.clone() {
            self.save_resumable(backend, &dir.join("last.safetensors"), next)?;
            if r.best {
                self.save_resumable(backend, &dir.join("best.safetensors"), next)?;
            }
        }
        Ok(())
    }

    fn on_step_log(&mut self, log: &StepLog) -> Result<()> {
        if let Some(tb) = &mut self.tensorboard {
            tb.scalar("train/step_loss", log.global_step, log.train_loss as f32)?;
            tb.scalar("lr", log.global_step, log.lr)?;
            tb.flush()?;
        }
        Ok(())
    }
}

/// Splits `n` samples, chosen by the seed, off the training set: (train, validation).
pub fn split_validation(train: &Dataset, n: usize, seed: u32) -> (Dataset, Dataset) {
    let order = rng::permutation(train.len(), seed, rng::stream::VALIDATION);
    let (v_idx, t_idx) = order.split_at(n);
    let pick = |idx: &[u32]| {
        // Kept in the original order, so --val changes only which samples are held out.
        let mut idx = idx.to_vec();
        idx.sort_unstable();
        train.select(&idx)
    };
    (pick(t_idx), pick(v_idx))
}

/// Loads a checkpoint for `--resume` and checks it is one, of this model and data set.
fn load_resume(
    path: &Path,
    spec: &ModelSpec,
    data: &TrainedOn,
) -> Result<(model::Checkpoint, ResumeState)> {
    let ck = model::load_checkpoint(path, None, None)?;
    let bad = |msg: String| Error::Checkpoint {
        path: path.to_owned(),
        msg,
    };
    let rs = ck.resume.clone().ok_or_else(|| {
        bad("holds weights only (from --save), not a resumable run: use a checkpoint from --checkpoint-dir or from Ctrl-C".into())
    })?;
    if ck.spec != *spec {
        return Err(bad(format!(
            "--resume: the checkpoint is {}, these flags describe {}; give the same --hidden, --activation and --loss",
            ck.spec.describe(),
            spec.describe()
        )));
    }
    let was = match (&ck.preprocess, ck.dataset) {
        (Some(p), _) => Some(p.source.clone()),
        (None, Some(ds)) => Some(ds.name().to_owned()),
        (None, None) => None,
    };
    if let Some(was) = was
        && was != data.name()
    {
        return Err(bad(format!(
            "--resume: the run trained on {was}, these flags say {}",
            data.name()
        )));
    }
    Ok((ck, rs))
}

/// On `--resume`, the settings that decide what each step does must be the run's own.
fn check_resume_config(rs: &ResumeState, now: &RunConfig, path: &Path) -> Result<()> {
    let was: RunConfig = serde_json::from_str(&rs.config).map_err(|e| Error::Checkpoint {
        path: path.to_owned(),
        msg: format!("its run configuration does not parse ({e})"),
    })?;
    let mut diffs = Vec::new();
    let mut cmp = |flag: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{flag} was {a}, now {b}"));
        }
    };
    cmp("--batch-size", was.batch.to_string(), now.batch.to_string());
    cmp("--seed", was.seed.to_string(), now.seed.to_string());
    cmp(
        "--limit",
        format!("{:?}", was.limit),
        format!("{:?}", now.limit),
    );
    cmp("--val", format!("{:?}", was.val), format!("{:?}", now.val));
    cmp(
        "--optimizer",
        was.optim.kind.name().into(),
        now.optim.kind.name().into(),
    );
    // Regularization changes the weights a resumed run would reach.
    cmp(
        "--dropout",
        was.dropout.to_string(),
        now.dropout.to_string(),
    );
    cmp(
        "--input-dropout",
        was.input_dropout.to_string(),
        now.input_dropout.to_string(),
    );
    cmp(
        "--max-norm",
        was.optim.max_norm.to_string(),
        now.optim.max_norm.to_string(),
    );
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(Error::Checkpoint {
            path: path.to_owned(),
            msg: format!(
                "--resume with other settings than the run that wrote it: {}",
                diffs.join("; ")
            ),
        })
    }
}

/// The flag SIGINT/SIGTERM set: the loop finishes its step and writes a resumable checkpoint. A
/// second signal exits at once. One handler per process, installed on first use.
fn interrupt_flag() -> Arc<AtomicBool> {
    static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        let f = flag.clone();
        let installed = ctrlc::set_handler(move || {
            if f.swap(true, Ordering::SeqCst) {
                // SAFETY: _exit ends the process at once, as the user asked twice.
                unsafe { libc::_exit(130) }
            }
            eprintln!(
                "\ninterrupted: finishing this step and writing a checkpoint (again to quit now)"
            );
        });
        if let Err(e) = installed {
            eprintln!("note: Ctrl-C will not save a checkpoint ({e})");
        }
        flag
    })
    .clone()
}
