//! The CPU path: the reference maths every GPU kernel is checked against, and a fast baseline.

pub mod constraint;
mod first_layer;
pub mod kernels;
pub mod optim;
pub mod peak;
pub mod prune;
mod simd;
pub mod sparse;

use std::sync::Arc;

use crate::backend::{Backend, EpochStats, EvalStats, Setup, Split};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{LayerShape, Loss, ModelSpec};
use crate::optim::{OptimConfig, StepHyper};
use first_layer::{FirstGrad, Next, SparseFirst};
use kernels::*;
use rayon::prelude::*;
use sparse::SparseRows;

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
    /// `activations[l]`: [rows, `sizes[l]`]; `activations[0]` is the input batch, the last the logits.
    pub activations: Vec<Vec<f32>>,
    /// `dactivations[l]`: [rows, `sizes[l]`], the loss gradient w.r.t. `activations[l]` (l ≥ 1).
    pub dactivations: Vec<Vec<f32>>,
    /// probs: [rows, classes], softmax of the logits (cross-entropy only).
    pub probs: Vec<f32>,
    /// losses: `[rows]`, per-sample loss.
    pub losses: Vec<f32>,
    /// labels: `[rows]`
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

/// Where the first layer's input comes from.
#[derive(Clone, Copy)]
pub enum FirstInput {
    /// `ws.activations[0]`; the weight in the reference layout [out, in].
    Dense,
    /// Already multiplied: `ws.activations[1]` holds the first layer's pre-activation output
    /// (the sparse route's first phase); its weight is not read.
    Computed,
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
    forward_with(
        spec,
        &spec.layers(),
        params,
        ws,
        b,
        dropout,
        FirstInput::Dense,
    )
}

/// [`forward`] with the first layer's input taken from `first`; `layers` is
/// `spec.layers()`, computed once by the caller so that a training step does not allocate.
pub fn forward_with(
    spec: &ModelSpec,
    layers: &[LayerShape],
    params: &[f32],
    ws: &mut Workspace,
    b: usize,
    dropout: Option<&DropoutCtx>,
    first: FirstInput,
) -> f64 {
    let last = layers.len() - 1;
    for (l, s) in layers.iter().enumerate() {
        let (before, after) = ws.activations.split_at_mut(l + 1);
        let out = &mut after[0][..b * s.out];
        let weight = &params[s.w_off..s.w_off + s.inp * s.out];
        let bias = &params[s.b_off..s.b_off + s.out];
        match (l, first) {
            (0, FirstInput::Computed) => {}
            _ => matmul_forward(out, &before[l][..b * s.inp], weight, bias, b, s.inp, s.out),
        }
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
    backward_with(
        spec,
        &spec.layers(),
        params,
        grads,
        ws,
        b,
        scale,
        accumulate,
        dropout,
        FirstInput::Dense,
        true,
    )
}

/// [`backward`] after [`forward_with`] on the same `first`; without `first_weight_grad` the
/// first layer's weight gradient is left to the caller (the fused sparse SGD update).
#[allow(clippy::too_many_arguments)]
pub fn backward_with(
    spec: &ModelSpec,
    layers: &[LayerShape],
    params: &[f32],
    grads: &mut [f32],
    ws: &mut Workspace,
    b: usize,
    scale: f32,
    accumulate: bool,
    dropout: Option<&DropoutCtx>,
    first: FirstInput,
    first_weight_grad: bool,
) {
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
        match (l, first) {
            (0, _) if !first_weight_grad => {}
            // A precomputed product brings no input to form the weight gradient from.
            (0, FirstInput::Computed) => {}
            _ => matmul_backward_weight(gw, dout, inp, b, s.inp, s.out, accumulate),
        }
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

/// Mean loss and its gradient for one batch (x: `[B, inputs]`, labels: `[B]`); used by the gradient checks.
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
    /// grads: [num_params], this worker's partial sum (valid when `active`).
    grads: Vec<f32>,
    loss: f64,
    /// Its share of the batch (dense route) or of the current chunk (sparse), as positions.
    share: std::ops::Range<usize>,
    /// Whether it has written `grads` in this step.
    active: bool,
    /// The sparse route: its share's non-zeros by input (filled in parallel, per worker, so
    /// that the transpose costs no serial time).
    cols: sparse::BatchColumns,
}

impl Worker {
    /// Forward and backward over the `b` rows in the workspace: adds to the loss, and writes the
    /// gradient (adds to it after the step's first pass).
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &mut self,
        spec: &ModelSpec,
        layers: &[LayerShape],
        params: &[f32],
        b: usize,
        scale: f32,
        drop: Option<&DropoutCtx>,
        first: FirstInput,
    ) {
        let ws = &mut self.ws;
        self.loss += forward_with(spec, layers, params, ws, b, drop, first);
        // The sparse route forms the first weight's gradient itself.
        let first_weight_grad = matches!(first, FirstInput::Dense);
        backward_with(
            spec,
            layers,
            params,
            &mut self.grads,
            ws,
            b,
            scale,
            self.active,
            drop,
            first,
            first_weight_grad,
        );
        self.active = true;
    }
}

pub struct CpuBackend {
    spec: ModelSpec,
    /// spec.layers(), kept so that a step does not allocate.
    layers: Vec<LayerShape>,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    val: Option<Arc<Dataset>>,
    optim: OptimConfig,
    dropout: f32,
    /// Dropout on the input pixels (0 = off); on, the dense route runs.
    input_dropout: f32,
    seed: u32,
    /// params, state1, state2: [num_params], in ModelSpec::layers layout (but see `first`);
    /// state1 is the momentum buffer or Adam's exp_avg, state2 Adam's exp_avg_sq.
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
    /// The sparse route, when the training inputs are sparse enough to pay. Then the first
    /// layer's weight is stored banded (see [`first_layer`]) in the parameters, the optimizer
    /// state and the mask alike; the Backend methods convert at the boundary.
    first: Option<SparseFirst>,
    /// first_grads: [K·N], the first layer's weight gradient on the sparse route, banded.
    first_grads: Vec<f32>,
    /// reference: [num_params], the parameters in the reference layout, for evaluation.
    reference: Vec<f32>,
    /// Whether this epoch's order is a permutation of the training set, so that a step over all
    /// of it may run in sample order (the sparse route's [`first_layer::WholeBatch`]);
    /// `seen`: [n_train], the check's scratch, kept when there is such a route.
    whole_order: bool,
    seen: Vec<bool>,
}

impl CpuBackend {
    /// The fastest CPU path for the data: the first layer skips zero inputs when the training
    /// set is sparse enough ([`sparse::MAX_DENSITY`]; MNIST's pixels are 19% non-zero).
    pub fn new(setup: Setup) -> Self {
        Self::build(setup, true)
    }

    /// The dense path whatever the data: the reference the sparse path is checked against.
    pub fn new_dense(setup: Setup) -> Self {
        Self::build(setup, false)
    }

    fn build(setup: Setup, allow_sparse: bool) -> Self {
        let Setup {
            spec,
            params,
            train,
            test,
            val,
            batch,
            optim,
            dropout,
            input_dropout,
            seed,
        } = setup;
        let n = params.len();
        let threads = rayon::current_num_threads().max(1);
        let layers = spec.layers();
        // The sparse route's CSR holds each sample's non-zeros once; dropping pixels per step
        // would mean rebuilding it, so input dropout takes the dense route.
        let allow_sparse = allow_sparse && input_dropout == 0.0;
        let first = (allow_sparse && train.width == spec.inputs())
            .then(|| SparseRows::build(&train))
            .flatten()
            .map(|x| {
                // A chunk's share must fit a worker even when a small chunk goes to one worker.
                let rows = batch
                    .div_ceil(threads)
                    .max(batch.min(2 * MIN_ROWS_PER_WORKER))
                    .clamp(1, CHUNK_ROWS);
                // Dropout's masks are keyed by a sample's position in the batch, so only
                // without it may a full batch run in sample order.
                let whole = batch >= train.len() && dropout == 0.0;
                SparseFirst::new(x, layers[0].out, threads, rows * threads, whole)
            });
        let rows = match &first {
            Some(f) => f.rows.div_ceil(threads),
            None => batch.div_ceil(threads).clamp(1, CHUNK_ROWS),
        };
        let workers = (0..threads)
            .map(|_| Worker {
                ws: Workspace::new(&spec, rows),
                grads: vec![0.0; n],
                loss: 0.0,
                share: 0..0,
                active: false,
                cols: match &first {
                    Some(f) => sparse::BatchColumns::new(f.x.width(), rows),
                    None => sparse::BatchColumns::default(),
                },
            })
            .collect();
        let first_grads = match &first {
            Some(_) => vec![0.0; layers[0].inp * layers[0].out],
            None => Vec::new(),
        };
        let mut b = CpuBackend {
            layers,
            spec,
            train,
            test,
            val,
            optim,
            dropout,
            input_dropout,
            seed,
            params: vec![0.0; n],
            state1: vec![0.0; n],
            state2: vec![0.0; n],
            workers,
            eval_ws: None,
            order: Vec::new(),
            hyper: Vec::new(),
            stats: EpochStats::default(),
            step_sums: Vec::new(),
            mask: None,
            seen: match first.as_ref().and_then(|f| f.whole.as_ref()) {
                Some(w) => vec![false; w.samples.len()],
                None => Vec::new(),
            },
            first,
            first_grads,
            reference: Vec::new(),
            whole_order: false,
        };
        b.store(&params, Tensor::Params);
        b
    }

    /// Whether a step over this epoch's whole order runs the training set in sample order
    /// (the sparse route at full batch, without dropout; the order a permutation).
    pub fn full_batch_in_sample_order(&self) -> bool {
        self.whole_order
    }

    fn state_count(&self) -> usize {
        self.optim.kind.state_names().len()
    }

    /// Copies `src` (reference layout, [num_params]) into one of the backend's tensors.
    fn store(&mut self, src: &[f32], which: Tensor) {
        let dst = match which {
            Tensor::Params => &mut self.params,
            Tensor::State1 => &mut self.state1,
            Tensor::State2 => &mut self.state2,
        };
        copy_layout(dst, src, self.first.as_ref(), false);
    }

    /// One of the backend's tensors in the reference layout.
    fn to_reference(&self, src: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; src.len()];
        copy_layout(&mut out, src, self.first.as_ref(), true);
        out
    }

    /// The max-norm constraint after an update: every weight by rows of its `[out, in]`
    /// layout, except the sparse route's banded first weight, by columns band by band (each
    /// band is `[in, its outputs]`). Pruned weights stay zero: scaling keeps them so.
    fn apply_max_norm(&mut self) {
        let c = self.optim.max_norm;
        let mut layers = &self.layers[..];
        if let (Some(f), Some(l0)) = (&self.first, layers.first()) {
            let k = l0.inp;
            self.params[..k * l0.out]
                .par_chunks_mut(f.band_len())
                .for_each(|band| constraint::max_norm_columns(band, k, band.len() / k, c));
            layers = &layers[1..];
        }
        for s in layers {
            let w = &mut self.params[s.w_off..s.w_off + s.inp * s.out];
            // Whole rows per task, big enough to be worth a thread.
            let rows = (UPDATE_MIN_SLICE / s.inp.max(1)).max(1);
            w.par_chunks_mut(rows * s.inp.max(1))
                .for_each(|r| constraint::max_norm(r, r.len() / s.inp.max(1), s.inp, c));
        }
    }

    /// The dense route's passes: each worker takes a contiguous share of the batch and
    /// accumulates its own gradient.
    fn dense_passes(&mut self, h: &StepHyper, batch: &[u32]) {
        let len = batch.len();
        let used = (len / MIN_ROWS_PER_WORKER).clamp(1, self.workers.len());
        let per = len.div_ceil(used);
        let scale = 1.0 / len as f32;
        let (spec, layers, params, train) = (&self.spec, &self.layers, &self.params, &*self.train);
        let (p_drop, seed) = (self.dropout, self.seed);
        let input_drop = (self.input_dropout > 0.0)
            .then(|| DropoutKey::new(self.input_dropout, seed, h.t, INPUT_DROPOUT_LAYER));
        let inputs = self.spec.inputs();
        self.workers[..used]
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, w)| {
                let hi = len.min((i + 1) * per);
                let mut lo = hi.min(i * per);
                w.share = lo..hi;
                while lo < hi {
                    let b = (hi - lo).min(w.ws.rows);
                    let ws = &mut w.ws;
                    gather(ws, train, batch, lo, b);
                    if let Some(key) = &input_drop {
                        dropout_forward(&mut ws.activations[0][..b * inputs], key, lo, inputs);
                    }
                    let drop = dropout_ctx(p_drop, seed, h.t, lo);
                    w.pass(
                        spec,
                        layers,
                        params,
                        b,
                        scale,
                        drop.as_ref(),
                        FirstInput::Dense,
                    );
                    lo += b;
                }
            });
    }

    /// The sparse route's passes, chunk by chunk: the first layer's product by bands of
    /// outputs, the rest of the model by shares of samples, then the first layer's gradient (or,
    /// `fused`, its plain SGD update) by bands again. Returns whether it updated the weight.
    /// With `whole` (the batch is this epoch's whole order, a permutation of the training set),
    /// the samples run in their own order through the chunks prepared for it.
    fn sparse_passes(&mut self, h: &StepHyper, batch: &[u32], whole: bool) -> bool {
        let Some(first) = self.first.as_mut() else {
            return false;
        };
        // Moved out for the step, so that the chunks can borrow it beside `first`.
        let prepared = match whole {
            true => first.whole.take(),
            false => None,
        };
        let batch = match &prepared {
            Some(w) => &w.samples[..],
            None => batch,
        };
        let len = batch.len();
        let cfg = &self.optim;
        // Plain SGD needs no gradient of the first weight, only its update, when the whole
        // batch's output gradient is at hand at once (one chunk).
        let fused = cfg.kind == crate::optim::OptimizerKind::Sgd
            && cfg.momentum == 0.0
            && cfg.weight_decay == 0.0
            && self.mask.is_none()
            && len <= first.rows;
        let scale = 1.0 / len as f32;
        let (spec, layers, train) = (&self.spec, &self.layers, &*self.train);
        let (p_drop, seed) = (self.dropout, self.seed);
        let l0 = &layers[0];
        let threads = self.workers.len();
        let used_for = |bc: usize| (bc / MIN_ROWS_PER_WORKER).clamp(1, threads);
        let bias = &self.params[l0.b_off..l0.b_off + l0.out];
        // Phase one of the first chunk; each later chunk's runs in the phase three before it.
        let bc = len.min(first.rows);
        first.forward(&self.params, bias, &batch[..bc], used_for(bc) > 1);
        let mut c0 = 0;
        while c0 < len {
            let bc = (len - c0).min(first.rows);
            let samples = &batch[c0..c0 + bc];
            let used = used_for(bc);
            let parallel = used > 1;
            let per = bc.div_ceil(used);
            let n = l0.out;
            // Each worker's output gradient goes to its rows of the shared dh, for phase three.
            let mut dh = std::mem::take(&mut first.dh);
            let (first_ref, params) = (&*first, &self.params);
            self.workers.iter_mut().for_each(|w| w.share = 0..0);
            dh[..bc * n]
                .par_chunks_mut(per * n)
                .zip(self.workers[..used].par_iter_mut())
                .enumerate()
                .for_each(|(i, (dh, w))| {
                    let (lo, b) = (i * per, dh.len() / n);
                    w.share = lo..lo + b;
                    let ws = &mut w.ws;
                    first_ref.copy_rows(&mut ws.activations[1], lo, b);
                    let mine = &samples[lo..lo + b];
                    sparse::gather_labels(&mut ws.labels, &train.labels, mine);
                    if b > 1 && prepared.is_none() {
                        w.cols.fill(&first_ref.x, mine);
                    }
                    let drop = dropout_ctx(p_drop, seed, h.t, c0 + lo);
                    w.pass(
                        spec,
                        layers,
                        params,
                        b,
                        scale,
                        drop.as_ref(),
                        FirstInput::Computed,
                    );
                    dh.copy_from_slice(&w.ws.dactivations[1][..b * n]);
                });
            first.dh = dh;
            let workers = &self.workers[..used];
            let cols = prepared.as_ref().map(|w| &w.cols[c0 / first.rows][..]);
            let rest = &batch[c0 + bc..];
            if fused {
                // One chunk only: the weight it updates is read by no later phase one.
                let what = FirstGrad::Fused { lr: h.lr };
                first.backward(
                    &mut self.params,
                    workers,
                    samples,
                    what,
                    parallel,
                    cols,
                    None,
                );
            } else {
                let what = FirstGrad::Grad { accumulate: c0 > 0 };
                let next = (!rest.is_empty()).then(|| Next {
                    samples: &rest[..rest.len().min(first.rows)],
                    w1: &self.params,
                    bias: &self.params[l0.b_off..l0.b_off + l0.out],
                });
                first.backward(
                    &mut self.first_grads,
                    workers,
                    samples,
                    what,
                    parallel,
                    cols,
                    next,
                );
            }
            c0 += bc;
        }
        if prepared.is_some() {
            first.whole = prepared;
        }
        fused
    }
}

/// Dropout's key for rows from `row0` of a batch, when dropout is on.
fn dropout_ctx(p: f32, seed: u32, step: u32, row0: usize) -> Option<DropoutCtx> {
    (p > 0.0).then_some(DropoutCtx {
        p,
        seed,
        step,
        row0,
    })
}

#[derive(Clone, Copy)]
enum Tensor {
    Params,
    State1,
    State2,
}

/// dst = src, [num_params] each, with the first layer's weight block (at offset 0) converted
/// between the reference layout and the sparse route's banded one, when there is a route.
fn copy_layout(dst: &mut [f32], src: &[f32], first: Option<&SparseFirst>, to_reference: bool) {
    dst.copy_from_slice(src);
    if let Some(f) = first {
        f.convert(dst, src, to_reference);
    }
}

impl Backend for CpuBackend {
    fn device(&self) -> String {
        let input = match &self.first {
            Some(f) => format!(", sparse input: {:.0}% non-zero", 100.0 * f.x.density()),
            None => String::new(),
        };
        let n = self.workers.len();
        let s = if n == 1 { "" } else { "s" };
        format!("cpu ({n} thread{s}{input})")
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
        // Only the sparse route keeps `seen`: a permutation of it may run in sample order.
        self.whole_order = !self.seen.is_empty() && order.len() == self.seen.len() && {
            self.seen.fill(false);
            order.iter().all(|&s| {
                let s = s as usize;
                s < self.seen.len() && !std::mem::replace(&mut self.seen[s], true)
            })
        };
        // Steps then push without allocating.
        self.step_sums.reserve(hyper.len());
        Ok(())
    }

    fn step(&mut self, step: usize, start: usize, len: usize) -> Result<()> {
        let h = *self.hyper.get(step).ok_or_else(|| {
            Error::InvalidArg(format!(
                "step {step}: begin_epoch gave coefficients for {} steps",
                self.hyper.len()
            ))
        })?;
        if start + len > self.order.len() || len == 0 {
            return Err(Error::InvalidArg(format!(
                "step {step}: samples {start}..{} of an order of {}",
                start + len,
                self.order.len()
            )));
        }
        // The order moves out for the step so the passes can borrow the rest of self.
        let order = std::mem::take(&mut self.order);
        let batch = &order[start..start + len];
        for w in &mut self.workers {
            w.loss = 0.0;
            w.active = false;
        }
        let whole = self.whole_order && len == order.len();
        let (skip, fused) = match self.first.is_some() {
            true => (
                self.layers[0].inp * self.layers[0].out,
                self.sparse_passes(&h, batch, whole),
            ),
            false => {
                self.dense_passes(&h, batch);
                (0, false)
            }
        };
        self.order = order;
        let loss: f64 = self.workers.iter().map(|w| w.loss).sum();
        if !loss.is_finite() && self.stats.nonfinite.is_none() {
            self.stats.nonfinite = Some((step, (loss / len as f64) as f32));
        }
        self.stats.loss_sum += loss;
        self.stats.samples += len;
        self.step_sums.push(loss as f32);
        let cfg = self.optim;
        let mask = self.mask.as_deref();
        // The sparse route's first weight, unless fused: by bands, on the threads that formed
        // its gradient.
        if let (Some(f), false) = (&self.first, fused) {
            let band = f.band_len();
            self.params[..skip]
                .par_chunks_mut(band)
                .zip(self.state1[..skip].par_chunks_mut(band))
                .zip(self.state2[..skip].par_chunks_mut(band))
                .zip(self.first_grads.par_chunks(band))
                .enumerate()
                .for_each(|(i, (((p, s1), s2), g))| {
                    optim::optimizer_update(p, s1, s2, g, &cfg, &h);
                    if let Some(m) = mask {
                        prune::apply_mask(p, s1, s2, &m[i * band..][..p.len()]);
                    }
                });
        }
        // The rest: sum the workers' gradients and update, each thread on its own slice of
        // the parameters (the update is memory-bound: at batch 1 on the dense route it is most
        // of the step).
        let active = self.workers.iter().filter(|w| w.active).count();
        let (first, rest) = self.workers.split_at_mut(1);
        let others = &rest[..active.saturating_sub(1)];
        // With one worker (tiny batches) a second thread's wake-up costs more than it saves.
        let slice = (self.params.len() - skip)
            .div_ceil(active.max(1))
            .max(UPDATE_MIN_SLICE);
        self.params[skip..]
            .par_chunks_mut(slice)
            .zip(self.state1[skip..].par_chunks_mut(slice))
            .zip(self.state2[skip..].par_chunks_mut(slice))
            .zip(first[0].grads[skip..].par_chunks_mut(slice))
            .enumerate()
            .for_each(|(i, (((p, s1), s2), g))| {
                let off = skip + i * slice;
                for o in others {
                    g.iter_mut().zip(&o.grads[off..]).for_each(|(a, b)| *a += b);
                }
                optim::optimizer_update(p, s1, s2, g, &cfg, &h);
                if let Some(m) = mask {
                    prune::apply_mask(p, s1, s2, &m[off..][..p.len()]);
                }
            });
        if cfg.max_norm > 0.0 {
            self.apply_max_norm();
        }
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
        let params = match &self.first {
            Some(f) => {
                self.reference.resize(self.params.len(), 0.0);
                copy_layout(&mut self.reference, &self.params, Some(f), true);
                &self.reference
            }
            None => &self.params,
        };
        Ok(evaluate(&self.spec, params, data, &mut self.eval_ws))
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.to_reference(&self.params))
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        check_len("parameters", params.len(), self.params.len())?;
        self.store(params, Tensor::Params);
        Ok(())
    }

    fn optimizer_state(&mut self) -> Result<Vec<Vec<f32>>> {
        let all = [&self.state1, &self.state2];
        Ok(all[..self.state_count()]
            .iter()
            .map(|s| self.to_reference(s))
            .collect())
    }

    fn set_optimizer_state(&mut self, state: &[Vec<f32>]) -> Result<()> {
        check_len("optimizer state tensors", state.len(), self.state_count())?;
        for (which, src) in [Tensor::State1, Tensor::State2].into_iter().zip(state) {
            check_len("optimizer state", src.len(), self.params.len())?;
            self.store(src, which);
        }
        Ok(())
    }

    fn set_mask(&mut self, mask: Option<&[f32]>) -> Result<()> {
        self.mask = match mask {
            Some(m) => {
                check_len("mask entries", m.len(), self.params.len())?;
                let mut internal = vec![0.0; m.len()];
                copy_layout(&mut internal, m, self.first.as_ref(), false);
                prune::apply_mask(
                    &mut self.params,
                    &mut self.state1,
                    &mut self.state2,
                    &internal,
                );
                Some(internal)
            }
            None => None,
        };
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
