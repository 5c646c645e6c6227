//! The CPU path: the reference maths every GPU kernel is checked against, and a fast baseline.

pub mod kernels;

use std::sync::Arc;

use crate::backend::{Backend, EpochStats, EvalStats};
use crate::data::{CLASSES, Dataset};
use crate::error::Result;
use crate::model::{Loss, ModelSpec};
use kernels::*;
use rayon::prelude::*;

/// Buffers for one forward/backward pass over up to `rows` samples.
pub struct Workspace {
    pub rows: usize,
    /// activations[l]: [rows, sizes[l]]; activations[0] is the input batch, the last the logits.
    pub activations: Vec<Vec<f32>>,
    /// dactivations[l]: [rows, sizes[l]], the loss gradient w.r.t. activations[l] (l ≥ 1).
    pub dactivations: Vec<Vec<f32>>,
    /// probs: [rows, 10], softmax of the logits (cross-entropy only).
    pub probs: Vec<f32>,
    /// losses: [rows], per-sample loss.
    pub losses: Vec<f32>,
    /// labels: [rows]
    pub labels: Vec<u32>,
}

impl Workspace {
    pub fn new(spec: &ModelSpec, rows: usize) -> Self {
        Workspace {
            rows,
            activations: spec.sizes.iter().map(|&s| vec![0.0; rows * s]).collect(),
            dactivations: spec
                .sizes
                .iter()
                .enumerate()
                .map(|(l, &s)| {
                    if l == 0 {
                        Vec::new()
                    } else {
                        vec![0.0; rows * s]
                    }
                })
                .collect(),
            probs: vec![0.0; rows * CLASSES],
            losses: vec![0.0; rows],
            labels: vec![0; rows],
        }
    }
}

/// Forward pass over `b` rows already in `ws.activations[0]` and `ws.labels`; fills per-sample
/// losses and returns their sum.
pub fn forward(spec: &ModelSpec, params: &[f32], ws: &mut Workspace, b: usize) -> f64 {
    let layers = spec.layers();
    let last = layers.len() - 1;
    for (l, s) in layers.iter().enumerate() {
        let (before, after) = ws.activations.split_at_mut(l + 1);
        let inp = &before[l][..b * s.inp];
        let out = &mut after[0][..b * s.out];
        let weight = &params[s.w_off..s.w_off + s.inp * s.out];
        let bias = &params[s.b_off..s.b_off + s.out];
        matmul_forward(out, inp, weight, bias, b, s.inp, s.out);
        if l != last {
            activation_forward(spec.activation, out);
        }
    }
    let logits = &ws.activations[last + 1][..b * CLASSES];
    let labels = &ws.labels[..b];
    match spec.loss {
        Loss::Xent => {
            softmax_xent_forward(&mut ws.losses, &mut ws.probs, logits, labels, b, CLASSES)
        }
        Loss::Mse => mse_forward(&mut ws.losses, logits, labels, b, CLASSES),
    }
    ws.losses[..b].iter().map(|&l| l as f64).sum()
}

/// Backward pass after [`forward`] over `b` rows: writes d(loss)/d(params) into `grads` (same
/// layout), or adds to them with `accumulate`; each sample's loss is weighted by `scale`
/// (1/batch for the batch mean).
pub fn backward(
    spec: &ModelSpec,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    b: usize,
    scale: f32,
    accumulate: bool,
) {
    let layers = spec.layers();
    let last = layers.len() - 1;
    {
        let dlogits = &mut ws.dactivations[last + 1][..b * CLASSES];
        let labels = &ws.labels[..b];
        match spec.loss {
            Loss::Xent => {
                softmax_xent_backward(dlogits, &ws.probs[..b * CLASSES], labels, b, CLASSES, scale)
            }
            Loss::Mse => mse_backward(
                dlogits,
                &ws.activations[last + 1][..b * CLASSES],
                labels,
                b,
                CLASSES,
                scale,
            ),
        }
    }
    for (l, s) in layers.iter().enumerate().rev() {
        let (dbefore, dafter) = ws.dactivations.split_at_mut(l + 1);
        let dout = &dafter[0][..b * s.out];
        let inp = &ws.activations[l][..b * s.inp];
        let (gw, gb) = grads[s.w_off..s.b_off + s.out].split_at_mut(s.inp * s.out);
        matmul_backward_weight(gw, dout, inp, b, s.inp, s.out, accumulate);
        bias_backward(gb, dout, b, s.out, accumulate);
        if l > 0 {
            // The input layer needs no input gradient: that skip saves a third of its work.
            let weight = &params[s.w_off..s.w_off + s.inp * s.out];
            let dinp = &mut dbefore[l][..b * s.inp];
            matmul_backward_input(dinp, dout, weight, b, s.inp, s.out);
            activation_backward(spec.activation, dinp, inp);
        }
    }
}

/// Mean loss and its gradient for one batch (x: [B, 784], labels: [B]); used by the gradient checks.
pub fn loss_and_grads(
    spec: &ModelSpec,
    params: &[f32],
    x: &[f32],
    labels: &[u32],
) -> (f64, Vec<f32>) {
    let b = labels.len();
    let mut ws = Workspace::new(spec, b);
    ws.activations[0].copy_from_slice(x);
    ws.labels.copy_from_slice(labels);
    let loss = forward(spec, params, &mut ws, b) / b as f64;
    let mut grads = vec![0.0; params.len()];
    backward(spec, params, &mut grads, &mut ws, b, 1.0 / b as f32, false);
    (loss, grads)
}

/// Evaluation runs in chunks this big, whatever the training batch.
const EVAL_ROWS: usize = 1000;
/// A worker takes its share of a batch in chunks of at most this many rows, so a full-batch step
/// streams through cache-sized pieces instead of a 188 MB activation matrix.
const CHUNK_ROWS: usize = 256;
/// Below this many rows per worker a second thread costs more than it saves.
const MIN_ROWS_PER_WORKER: usize = 16;

/// Parameter slices smaller than this are not worth a thread of their own in the update.
const UPDATE_MIN_SLICE: usize = 16 * 1024;
/// One thread's share of a step: its own buffers and gradient accumulator.
struct Worker {
    ws: Workspace,
    /// grads: [num_params], this worker's partial sum.
    grads: Vec<f32>,
    loss: f64,
}

pub struct CpuBackend {
    spec: ModelSpec,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    momentum: f32,
    /// params, velocity: [num_params], in ModelSpec::layers layout.
    params: Vec<f32>,
    velocity: Vec<f32>,
    workers: Vec<Worker>,
    eval_ws: Option<Workspace>,
    /// order: [n_train], this epoch's visiting order.
    order: Vec<u32>,
    stats: EpochStats,
    /// Σ loss of each step of the epoch so far.
    step_sums: Vec<f32>,
}

impl CpuBackend {
    pub fn new(
        spec: ModelSpec,
        params: Vec<f32>,
        train: Arc<Dataset>,
        test: Arc<Dataset>,
        batch: usize,
        momentum: f32,
    ) -> Self {
        let n = params.len();
        let threads = rayon::current_num_threads().max(1);
        let rows = batch.div_ceil(threads).clamp(1, CHUNK_ROWS);
        let workers = (0..threads)
            .map(|_| Worker {
                ws: Workspace::new(&spec, rows),
                grads: vec![0.0; n],
                loss: 0.0,
            })
            .collect();
        CpuBackend {
            spec,
            train,
            test,
            momentum,
            params,
            velocity: vec![0.0; n],
            workers,
            eval_ws: None,
            order: Vec::new(),
            stats: EpochStats::default(),
            step_sums: Vec::new(),
        }
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> String {
        format!("cpu ({} threads)", self.workers.len())
    }

    fn begin_epoch(&mut self, order: &[u32]) -> Result<()> {
        self.order.clear();
        self.order.extend_from_slice(order);
        self.stats = EpochStats::default();
        self.step_sums.clear();
        Ok(())
    }

    fn step(&mut self, step: usize, start: usize, len: usize, lr: f32) -> Result<()> {
        // Data parallel: each worker takes a contiguous share of the batch, accumulates its own
        // gradient, and the shares are summed before the update.
        let used = (len / MIN_ROWS_PER_WORKER).clamp(1, self.workers.len());
        let per = len.div_ceil(used);
        let scale = 1.0 / len as f32;
        let (spec, params, train, order) = (&self.spec, &self.params, &*self.train, &self.order);
        self.workers[..used]
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, w)| {
                w.loss = 0.0;
                let hi = len.min((i + 1) * per);
                let mut lo = i * per;
                while lo < hi {
                    let b = (hi - lo).min(w.ws.rows);
                    let ws = &mut w.ws;
                    batch_gather(
                        &mut ws.activations[0],
                        &mut ws.labels,
                        &train.images,
                        &train.labels,
                        order,
                        start + lo,
                        b,
                    );
                    w.loss += forward(spec, params, ws, b);
                    // The first chunk overwrites the gradient, later ones add to it.
                    backward(spec, params, &mut w.grads, ws, b, scale, lo != i * per);
                    lo += b;
                }
            });
        let loss: f64 = self.workers[..used].iter().map(|w| w.loss).sum();
        if !loss.is_finite() && self.stats.nonfinite.is_none() {
            self.stats.nonfinite = Some((step, (loss / len as f64) as f32));
        }
        self.stats.loss_sum += loss;
        self.stats.samples += len;
        self.step_sums.push(loss as f32);
        // Sum the workers' gradients and update, each thread on its own slice of the parameters
        // (the update is memory-bound: at batch 1 it is most of the step).
        let (first, rest) = self.workers.split_at_mut(1);
        let others: Vec<&[f32]> = rest[..used - 1].iter().map(|w| &w.grads[..]).collect();
        // With one worker (tiny batches) a second thread's wake-up costs more than it saves.
        let slice = self.params.len().div_ceil(used).max(UPDATE_MIN_SLICE);
        let momentum = self.momentum;
        self.params
            .par_chunks_mut(slice)
            .zip(self.velocity.par_chunks_mut(slice))
            .zip(first[0].grads.par_chunks_mut(slice))
            .enumerate()
            .for_each(|(i, ((p, v), g))| {
                for o in &others {
                    g.iter_mut().zip(&o[i * slice..]).for_each(|(a, b)| *a += b);
                }
                sgd_update(p, v, g, lr, momentum);
            });
        Ok(())
    }

    fn step_loss_sums(&mut self) -> Result<Vec<f32>> {
        Ok(self.step_sums.clone())
    }

    fn end_epoch(&mut self) -> Result<EpochStats> {
        Ok(self.stats)
    }

    fn evaluate(&mut self) -> Result<EvalStats> {
        Ok(evaluate(
            &self.spec,
            &self.params,
            &self.test,
            &mut self.eval_ws,
        ))
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }
}

/// Test-set loss and accuracy, in chunks; `ws` is kept between calls.
pub fn evaluate(
    spec: &ModelSpec,
    params: &[f32],
    data: &Dataset,
    ws: &mut Option<Workspace>,
) -> EvalStats {
    let ws = ws.get_or_insert_with(|| Workspace::new(spec, EVAL_ROWS));
    let n = data.len();
    let order: Vec<u32> = (0..n as u32).collect();
    let mut loss = 0.0;
    let mut correct = 0u32;
    for start in (0..n).step_by(EVAL_ROWS) {
        let b = EVAL_ROWS.min(n - start);
        batch_gather(
            &mut ws.activations[0],
            &mut ws.labels,
            &data.images,
            &data.labels,
            &order,
            start,
            b,
        );
        loss += forward(spec, params, ws, b);
        let logits = &ws.activations[spec.sizes.len() - 1][..b * CLASSES];
        argmax_correct(&mut correct, logits, &ws.labels[..b], b, CLASSES);
    }
    EvalStats {
        loss: loss / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        samples: n,
    }
}
