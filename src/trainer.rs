//! The library's front door: a model, its data and how it trains go in; epochs, evaluations,
//! predictions and checkpoints come out. It builds the same [`Setup`], [`TrainConfig`] and
//! backend the command line builds and trains through the same loop ([`crate::train`]), either
//! whole epochs at a time ([`Trainer::fit`]) or a few steps at a time ([`Trainer::steps`]) for a
//! caller that must give control back in between, such as a browser page.

use std::path::Path;
use std::sync::Arc;

use crate::analysis;
use crate::backend::{Backend, EvalStats, Prefetch, Setup, Split};
use crate::cpu::CpuBackend;
use crate::data::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::model::{self, Init, ModelSpec};
use crate::optim::{OptimConfig, Schedule, ScheduleKind};
use crate::train::{self, BatchSize, Epoch, EpochRecord, Observer, Outcome, Position, Run};
use crate::train::{StepLog, TrainConfig};

/// How a [`Trainer`] trains. [`Default`] is the command line's mini-batch default: batch 64,
/// SGD with momentum 0.9, lr 0.05 on a cosine schedule, 10 epochs, seed 0.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerOptions {
    pub epochs: usize,
    pub batch: BatchSize,
    /// The update rule and its constants (momentum, betas, weight decay).
    pub optim: OptimConfig,
    /// Peak learning rate.
    pub lr: f32,
    pub schedule: ScheduleKind,
    /// Where cosine and one-cycle end; the step schedule's floor.
    pub min_lr: f32,
    pub warmup_steps: u64,
    /// The step schedule multiplies the rate by `lr_gamma` every `lr_step_epochs` epochs.
    pub lr_step_epochs: u64,
    pub lr_gamma: f32,
    pub init: Init,
    /// Seeds the initialisation, the per-epoch shuffle and the dropout masks.
    pub seed: u32,
    /// Inverted dropout on every hidden layer's output (0 = off).
    pub dropout: f32,
    /// Inverted dropout on the input features (0 = off).
    pub input_dropout: f32,
    /// What the checkpoint's metadata says the model was trained on.
    pub dataset: DatasetKind,
}

impl Default for TrainerOptions {
    fn default() -> Self {
        TrainerOptions {
            epochs: 10,
            batch: BatchSize::Samples(64),
            optim: OptimConfig::sgd(0.9),
            lr: 0.05,
            schedule: ScheduleKind::Cosine,
            min_lr: 0.0,
            warmup_steps: 0,
            lr_step_epochs: 10,
            lr_gamma: 0.1,
            init: Init::Auto,
            seed: 0,
            dropout: 0.0,
            input_dropout: 0.0,
            dataset: DatasetKind::Mnist,
        }
    }
}

/// Where a [`Trainer`] runs.
#[derive(Clone)]
pub enum Device {
    /// The CPU path: data-parallel on rayon's threads natively, one thread in a browser.
    Cpu,
    /// The GPU path on an opened adapter ([`Device::gpu`]; on the web,
    /// [`crate::gpu::Gpu::new_async`]).
    #[cfg(feature = "gpu")]
    Gpu(Arc<crate::gpu::Gpu>),
}

impl Device {
    /// The best GPU adapter (or the one `$WGPU_ADAPTER_NAME` names), with the default kernels.
    #[cfg(feature = "native")]
    pub fn gpu() -> Result<Device> {
        let gpu = crate::gpu::Gpu::new(&crate::gpu::GpuOptions::default(), None)?;
        Ok(Device::Gpu(Arc::new(gpu)))
    }
}

/// What [`Trainer::steps`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    /// Ran some steps; the epoch goes on. `step` of `steps` are done.
    Stepped {
        epoch: usize,
        step: usize,
        steps: usize,
    },
    /// Finished an epoch: its evaluation.
    Epoch(EpochRecord),
    /// The run is over (every epoch ran, or it stopped early); nothing more to do.
    Finished(Outcome),
}

/// A model being trained on a backend: see the [crate documentation](crate) for an example.
pub struct Trainer {
    spec: ModelSpec,
    backend: Box<dyn Backend>,
    cfg: TrainConfig,
    n_train: usize,
    dataset: DatasetKind,
    run: Run,
    /// The epoch [`Trainer::steps`] is in the middle of.
    epoch: Option<Epoch>,
    /// The next epoch to begin (1-based).
    next_epoch: usize,
    outcome: Option<Outcome>,
}

impl Trainer {
    /// A model with seeded initial weights, trained on `train` and evaluated on `test`.
    /// Fails, before any work, on options out of range or data of another shape than `spec`.
    pub fn new(
        spec: ModelSpec,
        train: Dataset,
        test: Dataset,
        opts: TrainerOptions,
        device: Device,
    ) -> Result<Self> {
        let params = spec.init_params(opts.init, opts.seed);
        Self::with_params(spec, params, train, test, opts, device)
    }

    /// [`Trainer::new`] on the CPU.
    pub fn cpu(
        spec: ModelSpec,
        train: Dataset,
        test: Dataset,
        opts: TrainerOptions,
    ) -> Result<Self> {
        Self::new(spec, train, test, opts, Device::Cpu)
    }

    /// [`Trainer::new`] starting from `params` (e.g. a loaded checkpoint's), not seeded ones.
    pub fn with_params(
        spec: ModelSpec,
        params: Vec<f32>,
        train: Dataset,
        test: Dataset,
        opts: TrainerOptions,
        device: Device,
    ) -> Result<Self> {
        if params.len() != spec.num_params() {
            return Err(Error::InvalidArg(format!(
                "{} parameters given for {}",
                params.len(),
                spec.describe()
            )));
        }
        for (what, d) in [("training", &train), ("test", &test)] {
            if d.width != spec.inputs() || d.classes != spec.classes() {
                return Err(Error::InvalidArg(format!(
                    "the {what} set has {} features and {} classes; the model {} takes {} and gives {}",
                    d.width,
                    d.classes,
                    spec.describe(),
                    spec.inputs(),
                    spec.classes()
                )));
            }
        }
        if train.is_empty() {
            return Err(Error::InvalidArg("the training set is empty".into()));
        }
        if opts.epochs == 0 {
            return Err(Error::InvalidArg("--epochs 0: nothing to train".into()));
        }
        for (flag, p) in [
            ("--dropout", opts.dropout),
            ("--input-dropout", opts.input_dropout),
        ] {
            if !(p.is_finite() && (0.0..1.0).contains(&p)) {
                return Err(Error::InvalidArg(format!(
                    "{flag} {p}: must be at least 0 and below 1"
                )));
            }
        }
        opts.optim.check()?;
        let n_train = train.len();
        let batch = opts.batch.resolve(n_train);
        let steps = n_train.div_ceil(batch) as u64;
        let schedule = Schedule {
            kind: opts.schedule,
            lr: opts.lr,
            min_lr: opts.min_lr,
            warmup_steps: opts.warmup_steps,
            step_every: opts.lr_step_epochs.saturating_mul(steps),
            gamma: opts.lr_gamma,
            total_steps: opts.epochs as u64 * steps,
        };
        schedule.check()?;
        let setup = Setup {
            spec: spec.clone(),
            params,
            train: Arc::new(train),
            test: Arc::new(test),
            val: None,
            batch,
            optim: opts.optim,
            dropout: opts.dropout,
            input_dropout: opts.input_dropout,
            seed: opts.seed,
        };
        let backend: Box<dyn Backend> = match device {
            Device::Cpu => Box::new(CpuBackend::new(setup)),
            #[cfg(feature = "gpu")]
            Device::Gpu(gpu) => Box::new(crate::gpu::GpuBackend::new(gpu, &setup)?),
        };
        let cfg = TrainConfig::new(
            spec.classes(),
            opts.epochs,
            batch,
            opts.optim,
            schedule,
            opts.seed,
        );
        let run = Run::new(backend.as_ref(), &cfg);
        Ok(Trainer {
            spec,
            backend,
            cfg,
            n_train,
            dataset: opts.dataset,
            run,
            epoch: None,
            next_epoch: 1,
            outcome: None,
        })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Where the maths runs, in words.
    pub fn device(&self) -> String {
        self.backend.device()
    }

    /// Samples per step and steps per epoch.
    pub fn batch(&self) -> (usize, usize) {
        (self.cfg.batch, self.cfg.steps_per_epoch(self.n_train))
    }

    /// The evaluations of the epochs finished so far.
    pub fn records(&self) -> &[EpochRecord] {
        &self.run.records
    }

    /// The backend, for what the facade does not cover (optimizer state, masks).
    pub fn backend(&mut self) -> &mut dyn Backend {
        self.backend.as_mut()
    }

    /// Why the run ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    /// Trains the remaining epochs, calling `obs` after each, and returns their records
    /// ([`Trainer::outcome`] says why the run ended). A closure `|r: &EpochRecord| ...` is an
    /// [`Observer`].
    pub fn fit(&mut self, obs: &mut dyn Observer) -> Result<Vec<EpochRecord>> {
        if self.epoch.is_some() {
            // An epoch `steps` left half done: finish it the same way first.
            while let Progress::Stepped { .. } = self.steps(usize::MAX)? {}
        }
        if self.outcome.is_some() {
            return Ok(Vec::new());
        }
        let cfg = TrainConfig {
            start: Position {
                epoch: self.next_epoch,
                step: 0,
                elapsed: self.run.elapsed,
                best: self.run.best,
            },
            ..self.cfg.clone()
        };
        let (records, outcome) = train::train(self.backend.as_mut(), &cfg, self.n_train, obs)?;
        self.next_epoch = records.last().map_or(self.next_epoch, |r| r.epoch + 1);
        if let Some(r) = records.last() {
            self.run.elapsed = r.elapsed_seconds;
        }
        self.run.records.extend(records.iter().cloned());
        self.outcome = Some(outcome);
        Ok(records)
    }

    /// Runs at most `max_steps` steps (at least one when any remain), never past the end of an
    /// epoch; at an epoch's end evaluates it and returns its record. Call it until
    /// [`Progress::Finished`]; between calls the caller is free (to draw, to yield). In a
    /// browser on the GPU, use [`Trainer::steps_async`].
    pub fn steps(&mut self, max_steps: usize) -> Result<Progress> {
        match self.run_steps(max_steps)? {
            Some(p) => Ok(p),
            None => self.close_epoch(),
        }
    }

    /// [`Trainer::steps`] without blocking: at an epoch's end the backend's readbacks are
    /// awaited ([`Backend::prefetch`]) before the evaluation reads them.
    pub async fn steps_async(&mut self, max_steps: usize) -> Result<Progress> {
        if let Some(p) = self.run_steps(max_steps)? {
            return Ok(p);
        }
        let val = self.cfg.val;
        self.backend.prefetch(Prefetch::EpochEnd { val }).await?;
        self.close_epoch()
    }

    /// Runs the steps of [`Trainer::steps`]; `None` when the epoch in progress has run its last
    /// step and waits to be closed.
    fn run_steps(&mut self, max_steps: usize) -> Result<Option<Progress>> {
        if let Some(outcome) = &self.outcome {
            return Ok(Some(Progress::Finished(outcome.clone())));
        }
        let mut epoch = match self.epoch.take() {
            Some(e) => e,
            None if self.next_epoch > self.cfg.epochs => {
                let outcome = self.run.finish(self.backend.as_mut())?;
                self.outcome = Some(outcome.clone());
                return Ok(Some(Progress::Finished(outcome)));
            }
            None => self.run.begin_epoch(
                self.backend.as_mut(),
                &self.cfg,
                self.n_train,
                self.next_epoch,
                0,
            )?,
        };
        for _ in 0..max_steps.max(1) {
            if epoch.done() {
                break;
            }
            epoch.step(self.backend.as_mut(), self.cfg.batch, self.n_train)?;
        }
        let p = Progress::Stepped {
            epoch: epoch.number,
            step: epoch.next,
            steps: epoch.steps,
        };
        let done = epoch.done();
        self.epoch = Some(epoch);
        Ok((!done).then_some(p))
    }

    /// Evaluates the finished epoch in progress and records it.
    fn close_epoch(&mut self) -> Result<Progress> {
        let epoch = self
            .epoch
            .take()
            .ok_or_else(|| Error::InvalidArg("no epoch to close".into()))?;
        let (record, _) =
            self.run
                .end_epoch(self.backend.as_mut(), &self.cfg, self.n_train, epoch)?;
        self.next_epoch = record.epoch + 1;
        if let Some(outcome) = self
            .run
            .keep(self.backend.as_mut(), &self.cfg, record.clone())?
        {
            self.outcome = Some(outcome);
        }
        Ok(Progress::Epoch(record))
    }

    /// The mean per-sample training loss of the last `n` steps of the epoch in progress (each
    /// measured before its update), for a live curve; `None` between epochs. On the GPU this
    /// waits for the queued steps and reads their losses back.
    pub fn recent_loss(&mut self, n: usize) -> Result<Option<f64>> {
        let Some(epoch) = &self.epoch else {
            return Ok(None);
        };
        let sums = self.backend.step_loss_sums()?;
        let from = sums.len().saturating_sub(n.max(1));
        if from == sums.len() {
            return Ok(None);
        }
        let first = epoch.first_step + from;
        let end = (epoch.next * self.cfg.batch).min(self.n_train);
        let samples = end.saturating_sub(first * self.cfg.batch).max(1);
        let total: f64 = sums[from..].iter().map(|&l| l as f64).sum();
        Ok(Some(total / samples as f64))
    }

    /// [`Trainer::recent_loss`] without blocking on the GPU's readback.
    pub async fn recent_loss_async(&mut self, n: usize) -> Result<Option<f64>> {
        if self.epoch.is_some() {
            self.backend.prefetch(Prefetch::StepLosses).await?;
        }
        self.recent_loss(n)
    }

    /// Loss and accuracy on the test set with the current weights.
    pub fn evaluate(&mut self) -> Result<EvalStats> {
        self.backend.evaluate(Split::Test)
    }

    /// The current weights, flat, in [`ModelSpec::layers`] layout.
    pub fn params(&mut self) -> Result<Vec<f32>> {
        self.backend.params()
    }

    /// [`Trainer::params`] without blocking on the GPU's readback.
    pub async fn params_async(&mut self) -> Result<Vec<f32>> {
        self.backend.prefetch(Prefetch::Params).await?;
        self.backend.params()
    }

    /// Class probabilities (`[classes]` each) for rows `x` (`[n, inputs]`, as the model sees them:
    /// MNIST pixels in 0..1, e.g. from [`crate::predict::prepare_digit`]).
    pub fn predict(&mut self, x: &[f32]) -> Result<Vec<Vec<f32>>> {
        let w = self.spec.inputs();
        if !x.len().is_multiple_of(w) {
            return Err(Error::InvalidArg(format!(
                "predict: {} values are not whole rows of the model's {w} inputs",
                x.len()
            )));
        }
        let params = self.backend.params()?;
        Ok(analysis::probabilities(&self.spec, &params, x))
    }

    /// The model as a safetensors checkpoint (weights only), the bytes [`Trainer::save`]
    /// writes; `name` labels it in messages.
    pub fn checkpoint_bytes(&mut self, name: &str) -> Result<Vec<u8>> {
        let params = self.backend.params()?;
        model::checkpoint_bytes(
            Path::new(name),
            &self.spec,
            &params,
            None,
            self.dataset,
            None,
        )
    }

    /// Writes the model to `path` as a safetensors checkpoint (weights only), atomically: the
    /// file `descent eval` and `descent predict` read.
    #[cfg(feature = "native")]
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let params = self.backend.params()?;
        model::save_checkpoint(path.as_ref(), &self.spec, &params, self.dataset, None)
    }
}

/// A closure over each epoch's record is an observer.
impl<F: FnMut(&EpochRecord)> Observer for F {
    fn on_epoch(
        &mut self,
        record: &EpochRecord,
        _backend: &mut dyn Backend,
        _next: &Position,
    ) -> Result<()> {
        self(record);
        Ok(())
    }

    fn on_step_log(&mut self, _log: &StepLog) -> Result<()> {
        Ok(())
    }
}
