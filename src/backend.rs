//! The interface the training loop drives. The CPU and GPU paths are two implementations of it;
//! the loop knows neither which device nor which optimizer it drives.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::data::Dataset;
use crate::error::Result;
use crate::model::ModelSpec;
use crate::optim::{OptimConfig, StepHyper};

/// What one epoch of steps produced, read once at the end of the epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochStats {
    /// Σ per-sample training loss over the epoch (each measured before its batch's update).
    pub loss_sum: f64,
    pub samples: usize,
    /// The first step (within the epoch) whose batch loss was NaN or infinite, with that loss.
    pub nonfinite: Option<(usize, f32)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EvalStats {
    /// Mean per-sample loss.
    pub loss: f64,
    pub accuracy: f64,
    pub samples: usize,
}

/// Which held-out set to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Test,
    /// The `--val` samples held out of the training set.
    Val,
}

/// Everything a backend is built from: the model, its starting parameters, the data, and how it
/// trains.
#[derive(Clone, Debug)]
pub struct Setup {
    pub spec: ModelSpec,
    /// params: `[num_params]`, in [`ModelSpec::layers`] layout.
    pub params: Vec<f32>,
    pub train: Arc<Dataset>,
    pub test: Arc<Dataset>,
    /// The validation split (`--val`), when there is one.
    pub val: Option<Arc<Dataset>>,
    /// Samples per step (already resolved against the training set).
    pub batch: usize,
    pub optim: OptimConfig,
    /// Dropout probability on every hidden layer's output (0 = off).
    pub dropout: f32,
    /// Dropout probability on the input features (0 = off), keyed like `dropout` with
    /// [`crate::cpu::kernels::INPUT_DROPOUT_LAYER`] as its layer.
    pub input_dropout: f32,
    /// Keys the dropout masks (with the step, layer and index).
    pub seed: u32,
}

/// What [`Backend::prefetch`] reads ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    /// The epoch's per-step loss sums ([`Backend::step_loss_sums`]).
    StepLosses,
    /// What the end of an epoch reads: the step losses, the test evaluation and, with `val`,
    /// the validation evaluation and the parameters (kept when the epoch is the best).
    EpochEnd { val: bool },
    /// The parameters ([`Backend::params`]).
    Params,
}

/// A backend's unfinished work, awaited by the caller. Not `Send`: the browser's GPU handles
/// are not.
pub type Pending<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

pub trait Backend {
    /// A one-line description of where the maths runs, as printed and recorded in `--metrics`.
    fn device(&self) -> String;
    /// Starts an epoch that visits the training set in `order` (`[n_train]` sample indices), with
    /// `hyper[s]` the learning rate and bias corrections of its step `s`, at step `first_step`
    /// (0, or where an interrupted epoch stopped).
    fn begin_epoch(&mut self, order: &[u32], hyper: &[StepHyper], first_step: usize) -> Result<()>;
    /// One forward/backward/update on samples `order[start..start + len]`.
    fn step(&mut self, step: usize, start: usize, len: usize) -> Result<()>;
    /// Σ per-sample loss of each step of this epoch so far (`--log-every`), from `first_step`
    /// on. On the GPU this waits for the queued steps and reads the per-step sums back: the one
    /// readback inside an epoch, and only when asked for.
    fn step_loss_sums(&mut self) -> Result<Vec<f32>>;
    /// Finishes the epoch's queued work and returns its statistics.
    fn end_epoch(&mut self) -> Result<EpochStats>;
    /// Loss and accuracy on a held-out split with the current parameters.
    fn evaluate(&mut self, split: Split) -> Result<EvalStats>;
    /// The parameters, flat, in [`ModelSpec::layers`] layout.
    fn params(&mut self) -> Result<Vec<f32>>;
    fn set_params(&mut self, params: &[f32]) -> Result<()>;
    /// The optimizer's state tensors, each `[num_params]`, in
    /// [`crate::optim::OptimizerKind::state_names`] order.
    fn optimizer_state(&mut self) -> Result<Vec<Vec<f32>>>;
    fn set_optimizer_state(&mut self, state: &[Vec<f32>]) -> Result<()>;
    /// Holds pruned weights at zero: `mask` `[num_params]` is 1 to keep and 0 to prune (biases
    /// 1). It multiplies the parameters and the optimizer state now and after every update
    /// from here on; `None` lifts it. See [`crate::prune`].
    fn set_mask(&mut self, mask: Option<&[f32]>) -> Result<()>;
    /// Reads `what` back without blocking, so that the synchronous calls that ask for it next
    /// return at once. A browser can't block on a GPU readback, so there this comes first; a
    /// backend whose reads never wait (the CPU) has nothing to do. What was read ahead holds
    /// until the next step or parameter change.
    fn prefetch(&mut self, _what: Prefetch) -> Pending<'_> {
        Box::pin(std::future::ready(Ok(())))
    }
}
