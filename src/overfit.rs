//! The overfitting experiment behind `descent overfit`: one network trained on a small training
//! set long enough to overfit, from the same initial weights, once with no remedy and once with
//! each remedy, under the same epoch budget, recording train and test loss and accuracy per
//! epoch (both measured the same way: a clean forward pass, no dropout, after the epoch).
//! Label noise (`add_label_noise`) gives the network something it can only memorise, and
//! `RemedyRun::memorised` says how much of it each run did.

use std::sync::Arc;

use crate::backend::{Backend, EvalStats, Setup};
use crate::cpu::{self, CpuBackend};
use crate::data::Dataset;
use crate::error::Result;
use crate::gpu::{Gpu, GpuBackend};
use crate::model::{Init, ModelSpec};
use crate::optim::{OptimConfig, Schedule};
use crate::prune::{Gradual, GradualPruning};
use crate::rng;
use crate::train::{self, EpochRecord, Observer, Outcome, Position, TrainConfig};

/// One cure for overfitting, with its strength.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Remedy {
    None,
    /// Dropout probability on every hidden layer.
    Dropout(f32),
    /// L2 weight decay λ.
    WeightDecay(f32),
    /// Stop after this many epochs without a better validation loss, restoring the best weights.
    EarlyStopping(usize),
    /// Gradual magnitude pruning (Zhu & Gupta) to this sparsity over the first half of the run.
    Prune(f64),
    /// The same depth with this many units per hidden layer.
    Smaller(usize),
}

/// The remedies by name, as `--remedies` spells them.
pub const REMEDY_NAMES: [&str; 6] = [
    "none",
    "dropout",
    "weight-decay",
    "early-stopping",
    "prune",
    "smaller",
];

impl Remedy {
    pub fn name(&self) -> &'static str {
        match self {
            Remedy::None => "none",
            Remedy::Dropout(_) => "dropout",
            Remedy::WeightDecay(_) => "weight-decay",
            Remedy::EarlyStopping(_) => "early-stopping",
            Remedy::Prune(_) => "prune",
            Remedy::Smaller(_) => "smaller",
        }
    }

    /// The strength in words, as the table and the panels show it.
    pub fn strength(&self) -> String {
        match self {
            Remedy::None => "no remedy".into(),
            Remedy::Dropout(p) => format!("p = {p}"),
            Remedy::WeightDecay(l) => format!("L2 {l}"),
            Remedy::EarlyStopping(k) => format!("patience {k}"),
            Remedy::Prune(s) => format!("to {:.0}% sparsity", 100.0 * s),
            Remedy::Smaller(h) => format!("{h} units per hidden layer"),
        }
    }
}

/// What is shared by every run of the experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    pub spec: ModelSpec,
    pub epochs: usize,
    pub batch: usize,
    pub optim: OptimConfig,
    pub lr: f32,
    pub seed: u32,
    pub train: Arc<Dataset>,
    pub test: Arc<Dataset>,
    /// Held-out samples early stopping watches (not trained on by any run).
    pub val: Arc<Dataset>,
    /// The training samples given a wrong label, with that label (empty without label noise):
    /// how many of them a run predicts as labelled is how much noise it memorised.
    pub noisy: Arc<Dataset>,
}

/// The RNG stream of the label noise (beside those in `rng::stream`): which samples get a wrong
/// label, and which.
const LABEL_NOISE: u32 = 0x6000_0000;

/// Gives exactly `round(fraction · n)` samples of `d` a wrong label, each a uniformly drawn
/// other class, keyed by (seed, stream) so every run of the experiment sees the same noise.
/// Returns the indices of the samples it changed.
pub fn add_label_noise(d: &mut Dataset, fraction: f64, seed: u32, stream: u32) -> Vec<u32> {
    let n = d.len();
    let k = d.classes;
    let flips = ((fraction * n as f64).round() as usize).min(n);
    if k < 2 || flips == 0 {
        return Vec::new();
    }
    let stream = LABEL_NOISE ^ stream;
    let mut order = rng::permutation(n, seed, stream);
    for (j, &i) in order[..flips].iter().enumerate() {
        let h = rng::hash3(seed, stream ^ 1, j as u32) as u64;
        // One of the k − 1 other classes, unbiased (multiply-shift, as rng::permutation does).
        let shift = 1 + ((h * (k as u64 - 1)) >> 32) as usize;
        let l = &mut d.labels[i as usize];
        *l = ((*l as usize + shift) % k) as u8;
    }
    order.truncate(flips);
    order.sort_unstable();
    order
}

/// One epoch of one run: losses and accuracies measured after the epoch, without dropout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub epoch: usize,
    pub train: EvalStats,
    pub test: EvalStats,
}

/// One run of the experiment.
#[derive(Clone, Debug)]
pub struct RemedyRun {
    pub remedy: Remedy,
    pub spec: ModelSpec,
    /// The parameters it started from.
    pub initial: Vec<f32>,
    pub points: Vec<Point>,
    /// The weights it ended with (early stopping: the restored best ones), and their scores.
    pub final_params: Vec<f32>,
    pub final_train: EvalStats,
    pub final_test: EvalStats,
    /// The fraction of the wrongly labelled training samples its final weights predict as
    /// labelled: the noise it memorised (None without label noise).
    pub memorised: Option<f64>,
    pub stopped_at: Option<usize>,
}

impl RemedyRun {
    pub fn best_test_accuracy(&self) -> f64 {
        self.points
            .iter()
            .map(|p| p.test.accuracy)
            .fold(self.final_test.accuracy, f64::max)
    }

    /// The epoch whose test loss was lowest.
    pub fn best_test_loss_epoch(&self) -> usize {
        self.points
            .iter()
            .min_by(|a, b| a.test.loss.total_cmp(&b.test.loss))
            .map_or(0, |p| p.epoch)
    }

    /// Final train accuracy minus final test accuracy.
    pub fn gap(&self) -> f64 {
        self.final_train.accuracy - self.final_test.accuracy
    }

    /// Final test loss minus final train loss: how far the curves have parted.
    pub fn loss_gap(&self) -> f64 {
        self.final_test.loss - self.final_train.loss
    }
}

/// Records each epoch's clean train and test scores.
struct Recorder<'a> {
    spec: ModelSpec,
    train: &'a Dataset,
    ws: Option<cpu::Workspace>,
    points: Vec<Point>,
}

impl Observer for Recorder<'_> {
    fn on_epoch(&mut self, r: &EpochRecord, backend: &mut dyn Backend, _: &Position) -> Result<()> {
        // The training subset is small: scoring it on the CPU costs little on either device.
        let params = backend.params()?;
        let train = cpu::evaluate(&self.spec, &params, self.train, &mut self.ws);
        self.points.push(Point {
            epoch: r.epoch,
            train,
            test: EvalStats {
                loss: r.test_loss,
                accuracy: r.test_accuracy,
                samples: 0,
            },
        });
        Ok(())
    }
}

impl Experiment {
    /// Runs one remedy on `gpu` (or the CPU).
    pub fn run(&self, remedy: Remedy, gpu: Option<&Arc<Gpu>>) -> Result<RemedyRun> {
        let spec = match remedy {
            Remedy::Smaller(h) => ModelSpec::new(
                &vec![h; self.spec.hidden().len()],
                self.spec.activation,
                self.spec.loss,
            ),
            _ => self.spec.clone(),
        };
        let mut optim = self.optim;
        if let Remedy::WeightDecay(l) = remedy {
            optim.weight_decay = l;
        }
        let early = matches!(remedy, Remedy::EarlyStopping(_));
        let initial = spec.init_params(Init::Auto, self.seed);
        let n = self.train.len();
        let batch = self.batch.min(n).max(1);
        let setup = Setup {
            spec: spec.clone(),
            params: initial.clone(),
            train: self.train.clone(),
            test: self.test.clone(),
            val: early.then(|| self.val.clone()),
            batch,
            optim,
            dropout: match remedy {
                Remedy::Dropout(p) => p,
                _ => 0.0,
            },
            input_dropout: 0.0,
            seed: self.seed,
        };
        let mut backend: Box<dyn Backend> = match gpu {
            Some(g) => Box::new(GpuBackend::new(g.clone(), &setup)?),
            None => Box::new(CpuBackend::new(setup)),
        };
        let cfg = TrainConfig {
            classes: spec.classes(),
            epochs: self.epochs,
            batch,
            optim,
            schedule: Schedule::constant(self.lr),
            seed: self.seed,
            progress: false,
            log_every: None,
            val: early,
            patience: match remedy {
                Remedy::EarlyStopping(k) => Some(k),
                _ => None,
            },
            target_accuracy: None,
            start: Position::default(),
            interrupt: None,
        };
        let mut rec = Recorder {
            spec: spec.clone(),
            train: &self.train,
            ws: None,
            points: Vec::new(),
        };
        let outcome = match remedy {
            Remedy::Prune(s) => {
                let mut obs = GradualPruning {
                    inner: &mut rec,
                    schedule: Some(Gradual {
                        sparsity: s,
                        start_epoch: 1,
                        end_epoch: (self.epochs / 2).max(1),
                    }),
                    spec: spec.clone(),
                    global: false,
                    mask: None,
                    quiet: true,
                };
                train::train(backend.as_mut(), &cfg, n, &mut obs)?.1
            }
            _ => train::train(backend.as_mut(), &cfg, n, &mut rec)?.1,
        };
        let final_params = backend.params()?;
        let mut ws = None;
        let final_train = cpu::evaluate(&spec, &final_params, &self.train, &mut ws);
        let final_test = cpu::evaluate(&spec, &final_params, &self.test, &mut ws);
        let memorised = (!self.noisy.is_empty())
            .then(|| cpu::evaluate(&spec, &final_params, &self.noisy, &mut ws).accuracy);
        let stopped_at = match outcome {
            Outcome::EarlyStopped { best_epoch } => Some(best_epoch),
            _ => None,
        };
        Ok(RemedyRun {
            remedy,
            spec,
            initial,
            points: rec.points,
            final_params,
            final_train,
            final_test,
            memorised,
            stopped_at,
        })
    }
}
