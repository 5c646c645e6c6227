//! The CPU path: the reference maths every GPU kernel is checked against, and a fast baseline.

pub mod kernels;
pub mod optim;
pub mod prune;

use std::sync::Arc;

use crate::backend::{Backend, EpochStats, EvalStats, Setup, Split};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Loss, ModelSpec};
use crate::optim::{OptimConfig, StepHyper};
use kernels::*;
use rayon::prelude::*;

/// Dropout during one training step: the probability, the seed and the global step key the
/// masks; `row0` is the first row of the chunk within its batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutCtx {
    pub p: f32,
    pub seed: u32,
    pub step: u32,
    pub row0: usize,
}

impl DropoutCtx {
    fn key(&self, layer: usize) -> DropoutKey {
        DropoutKey::new(self.p, self.seed, self.step, layer)
    }
}

/// Buffers for one forward/backward pass over up to `rows` samples.
pub struct Workspace {
    pub rows: usize,
    /// activations[l]: [rows, sizes[l]]; activations[0] is the input batch, the last the logits.
    pub activations: Vec<Vec<f32>>,
    /// dactivations[l]: [rows, sizes[l]], the loss gradient w.r.t. activations[l] (l ≥ 1).
    pub dactivations: Vec<Vec<f32>>,
    /// probs: [rows, classes], softmax of the logits (cross-entropy only).
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
            probs: vec![0.0; rows * spec.classes()],
            losses: vec![0.0; rows],
            labels: vec![0; rows],
        }
    }
}

/// Forward pass over `b` rows already in `ws.activations[0]` and `ws.labels`; fills per-sample
/// losses and returns their sum. With `dropout` (training), every hidden layer's output is
/// dropped after its activation.
pub fn forward(
    spec: &ModelSpec,
    params: &[f32],
    ws: &mut Workspace,
    b: usize,
    dropout: Option<&DropoutCtx>,
) -> f64 {
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
            if let Some(d) = dropout {
                dropout_forward(out, &d.key(l), d.row0, s.out);
            }
        }
    }
    let c = spec.classes();
    let logits = &ws.activations[last + 1][..b * c];
    let labels = &ws.labels[..b];
    match spec.loss {
        Loss::Xent => softmax_xent_forward(&mut ws.losses, &mut ws.probs, logits, labels, b, c),
        Loss::Mse => mse_forward(&mut ws.losses, logits, labels, b, c),
    }
    ws.losses[..b].iter().map(|&l| l as f64).sum()
}

/// Backward pass after [`forward`] over `b` rows: writes d(loss)/d(params) into `grads` (same
/// layout), or adds to them with `accumulate`; each sample's loss is weighted by `scale`
/// (1/batch for the batch mean). `dropout` must be what the forward pass used.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    spec: &ModelSpec,
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    b: usize,
    scale: f32,
    accumulate: bool,
    dropout: Option<&DropoutCtx>,
) {
    let layers = spec.layers();
    let last = layers.len() - 1;
    {
        let c = spec.classes();
        let dlogits = &mut ws.dactivations[last + 1][..b * c];
        let labels = &ws.labels[..b];
        match spec.loss {
            Loss::Xent => softmax_xent_backward(dlogits, &ws.probs[..b * c], labels, b, c, scale),
            Loss::Mse => mse_backward(
                dlogits,
                &ws.activations[last + 1][..b * c],
                labels,
                b,
                c,
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
            match dropout {
                // Layer l − 1's output was dropped: through the mask and the activation at once.
                Some(d) => {
                    dropout_backward(dinp, inp, &d.key(l - 1), spec.activation, d.row0, s.inp)
                }
                None => activation_backward(spec.activation, dinp, inp),
            }
        }
    }
}

/// Mean loss and its gradient for one batch (x: [B, inputs], labels: [B]); used by the gradient checks.
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
    let loss = forward(spec, params, &mut ws, b, None) / b as f64;
    let mut grads = vec![0.0; params.len()];
    backward(
        spec,
        params,
        &mut grads,
        &mut ws,
        b,
        1.0 / b as f32,
        false,
        None,
    );
    (loss, grads)
}

/// [`loss_and_grads`] with dropout keyed by (seed, step): what one training step computes.
pub fn loss_and_grads_dropout(
    spec: &ModelSpec,
    params: &[f32],
    x: &[f32],
    labels: &[u32],
    p: f32,
    seed: u32,
    step: u32,
) -> (f64, Vec<f32>) {
    let b = labels.len();
    let mut ws = Workspace::new(spec, b);
    ws.activations[0].copy_from_slice(x);
    ws.labels.copy_from_slice(labels);
    let d = DropoutCtx {
        p,
        seed,
        step,
        row0: 0,
    };
    let loss = forward(spec, params, &mut ws, b, Some(&d)) / b as f64;
    let mut grads = vec![0.0; params.len()];
    backward(
        spec,
        params,
        &mut grads,
        &mut ws,
        b,
        1.0 / b as f32,
        false,
        Some(&d),
    );
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
    val: Option<Arc<Dataset>>,
    optim: OptimConfig,
    dropout: f32,
    seed: u32,
    /// params, state1, state2: [num_params], in ModelSpec::layers layout; state1 is the
    /// momentum buffer or Adam's exp_avg, state2 Adam's exp_avg_sq.
    params: Vec<f32>,
    state1: Vec<f32>,
    state2: Vec<f32>,
    workers: Vec<Worker>,
    eval_ws: Option<Workspace>,
    /// order: [n_train], this epoch's visiting order; hyper: [steps], its per-step coefficients.
    order: Vec<u32>,
    hyper: Vec<StepHyper>,
    stats: EpochStats,
    /// Σ loss of each step of the epoch so far.
    step_sums: Vec<f32>,
    /// mask: [num_params], applied after every update (`set_mask`).
    mask: Option<Vec<f32>>,
}

impl CpuBackend {
    pub fn new(setup: Setup) -> Self {
        let Setup {
            spec,
            params,
            train,
            test,
            val,
            batch,
            optim,
            dropout,
            seed,
        } = setup;
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
            val,
            optim,
            dropout,
            seed,
            params,
            state1: vec![0.0; n],
            state2: vec![0.0; n],
            workers,
            eval_ws: None,
            order: Vec::new(),
            hyper: Vec::new(),
            stats: EpochStats::default(),
            step_sums: Vec::new(),
            mask: None,
        }
    }

    fn state_count(&self) -> usize {
        self.optim.kind.state_names().len()
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> String {
        format!("cpu ({} threads)", self.workers.len())
    }

    fn begin_epoch(
        &mut self,
        order: &[u32],
        hyper: &[StepHyper],
        _first_step: usize,
    ) -> Result<()> {
        self.order.clear();
        self.order.extend_from_slice(order);
        self.hyper.clear();
        self.hyper.extend_from_slice(hyper);
        self.stats = EpochStats::default();
        self.step_sums.clear();
        Ok(())
    }

    fn step(&mut self, step: usize, start: usize, len: usize) -> Result<()> {
        let h = *self.hyper.get(step).ok_or_else(|| {
            Error::InvalidArg(format!(
                "step {step}: begin_epoch gave coefficients for {} steps",
                self.hyper.len()
            ))
        })?;
        // Data parallel: each worker takes a contiguous share of the batch, accumulates its own
        // gradient, and the shares are summed before the update.
        let used = (len / MIN_ROWS_PER_WORKER).clamp(1, self.workers.len());
        let per = len.div_ceil(used);
        let scale = 1.0 / len as f32;
        let (spec, params, train, order) = (&self.spec, &self.params, &*self.train, &self.order);
        let (p_drop, seed) = (self.dropout, self.seed);
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
                    gather(ws, train, order, start + lo, b);
                    let drop = (p_drop > 0.0).then_some(DropoutCtx {
                        p: p_drop,
                        seed,
                        step: h.t,
                        row0: lo,
                    });
                    w.loss += forward(spec, params, ws, b, drop.as_ref());
                    // The first chunk overwrites the gradient, later ones add to it.
                    backward(
                        spec,
                        params,
                        &mut w.grads,
                        ws,
                        b,
                        scale,
                        lo != i * per,
                        drop.as_ref(),
                    );
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
        let cfg = self.optim;
        let mask = self.mask.as_deref();
        self.params
            .par_chunks_mut(slice)
            .zip(self.state1.par_chunks_mut(slice))
            .zip(self.state2.par_chunks_mut(slice))
            .zip(first[0].grads.par_chunks_mut(slice))
            .enumerate()
            .for_each(|(i, (((p, s1), s2), g))| {
                for o in &others {
                    g.iter_mut().zip(&o[i * slice..]).for_each(|(a, b)| *a += b);
                }
                optim::optimizer_update(p, s1, s2, g, &cfg, &h);
                if let Some(m) = mask {
                    prune::apply_mask(p, s1, s2, &m[i * slice..][..p.len()]);
                }
            });
        Ok(())
    }

    fn step_loss_sums(&mut self) -> Result<Vec<f32>> {
        Ok(self.step_sums.clone())
    }

    fn end_epoch(&mut self) -> Result<EpochStats> {
        Ok(self.stats)
    }

    fn evaluate(&mut self, split: Split) -> Result<EvalStats> {
        let data = match (split, &self.val) {
            (Split::Test, _) => &self.test,
            (Split::Val, Some(v)) => v,
            (Split::Val, None) => {
                return Err(Error::InvalidArg("no validation split (--val)".into()));
            }
        };
        Ok(evaluate(&self.spec, &self.params, data, &mut self.eval_ws))
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_len("parameters", params.len(), self.params.len())?;
        self.params.copy_from_slice(params);
        Ok(())
    }

    fn optimizer_state(&mut self) -> Result<Vec<Vec<f32>>> {
        let all = [&self.state1, &self.state2];
        Ok(all[..self.state_count()]
            .iter()
            .map(|s| s.to_vec())
            .collect())
    }

    fn set_optimizer_state(&mut self, state: &[Vec<f32>]) -> Result<()> {
        check_len("optimizer state tensors", state.len(), self.state_count())?;
        for (dst, src) in [&mut self.state1, &mut self.state2].into_iter().zip(state) {
            check_len("optimizer state", src.len(), dst.len())?;
            dst.copy_from_slice(src);
        }
        Ok(())
    }

    fn set_mask(&mut self, mask: Option<&[f32]>) -> Result<()> {
        if let Some(m) = mask {
            check_len("mask entries", m.len(), self.params.len())?;
            prune::apply_mask(&mut self.params, &mut self.state1, &mut self.state2, m);
        }
        self.mask = mask.map(<[f32]>::to_vec);
        Ok(())
    }
}

/// An error unless a tensor handed to a backend has the length the model needs.
pub fn check_len(what: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::InvalidArg(format!(
            "{got} {what} given, the model needs {want}"
        )))
    }
}

/// The batch `order[start..start + b]` of `data` into the workspace's input rows and labels,
/// through the twin of the split's storage (u8 pixels or f32 features).
pub fn gather(ws: &mut Workspace, data: &Dataset, order: &[u32], start: usize, b: usize) {
    if data.is_pixels() {
        batch_gather(
            &mut ws.activations[0],
            &mut ws.labels,
            &data.images,
            &data.labels,
            order,
            start,
            b,
        );
    } else {
        batch_gather_features(
            &mut ws.activations[0],
            &mut ws.labels,
            &data.features,
            &data.labels,
            order,
            start,
            b,
            data.width,
        );
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
        gather(ws, data, &order, start, b);
        loss += forward(spec, params, ws, b, None);
        let c = spec.classes();
        let logits = &ws.activations[spec.sizes.len() - 1][..b * c];
        argmax_correct(&mut correct, logits, &ws.labels[..b], b, c);
    }
    EvalStats {
        loss: loss / n.max(1) as f64,
        accuracy: correct as f64 / n.max(1) as f64,
        samples: n,
    }
}
