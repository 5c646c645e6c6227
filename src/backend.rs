//! The interface the training loop drives. The CPU and GPU paths are two implementations of it.

use crate::error::Result;

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

pub trait Backend {
    /// A one-line description of where the maths runs, as printed and recorded in `--metrics`.
    fn device(&self) -> String;
    /// Starts an epoch that visits the training set in `order` ([n_train] sample indices).
    fn begin_epoch(&mut self, order: &[u32]) -> Result<()>;
    /// One forward/backward/update on samples `order[start..start + len]`.
    fn step(&mut self, step: usize, start: usize, len: usize, lr: f32) -> Result<()>;
    /// Σ per-sample loss of each step of this epoch so far (`--log-every`). On the GPU this waits
    /// for the queued steps and reads the per-step sums back: the one readback inside an epoch,
    /// and only when asked for.
    fn step_loss_sums(&mut self) -> Result<Vec<f32>>;
    /// Finishes the epoch's queued work and returns its statistics.
    fn end_epoch(&mut self) -> Result<EpochStats>;
    /// Loss and accuracy on the test set with the current parameters.
    fn evaluate(&mut self) -> Result<EvalStats>;
    /// The parameters, flat, in [`crate::model::ModelSpec::layers`] layout.
    fn params(&mut self) -> Result<Vec<f32>>;
}
