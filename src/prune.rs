//! Pruning: removing what a network does not need. Two kinds:
//!
//! - **magnitude** (unstructured): the weights of smallest |w| are zeroed, per layer or across
//!   all layers at once (`global`), and a mask holds them at zero while the network fine-tunes
//!   (the backend's `set_mask`: the update kernel's result is masked, so pruned weights and their
//!   optimizer state stay exactly 0). Biases are never pruned. Han et al. 2015.
//! - **units** (structured): whole hidden units are removed, ranked by an importance score, and
//!   the network is rebuilt smaller ([`shrink`]): fewer rows in the layer's weight and bias, fewer
//!   columns in the next layer's weight. The result is an ordinary dense model, so it trains,
//!   evaluates and runs faster like any other.
//!
//! And the gradual schedule of Zhu & Gupta 2017 ([`Gradual`]), which raises the sparsity during
//! training along a cubic, fast at first and slowly at the end.

use crate::backend::{Backend, Split};
use crate::cpu::{Workspace, forward, kernels::batch_gather};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::ModelSpec;
use crate::train::{EpochRecord, Observer, Position, StepLog};

/// Checks a sparsity given to `flag`: a fraction of the weights in [0, 1).
pub fn check_sparsity(flag: &str, s: f64) -> Result<()> {
    if s.is_finite() && (0.0..1.0).contains(&s) {
        Ok(())
    } else {
        Err(Error::InvalidArg(format!(
            "{flag} {s}: a sparsity is the fraction of weights removed, at least 0 and below 1"
        )))
    }
}

/// The mask that keeps everything: `[num_params]` of 1.
pub fn ones_mask(spec: &ModelSpec) -> Vec<f32> {
    vec![1.0; spec.num_params()]
}

/// The indices of the `k` smallest |values[i]| (ties broken by index, so the count is exact).
fn smallest(values: &[(f32, usize)], k: usize) -> Vec<usize> {
    let mut v = values.to_vec();
    if k == 0 {
        return Vec::new();
    }
    if k < v.len() {
        v.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    }
    v[..k.min(v.len())].iter().map(|&(_, i)| i).collect()
}

/// How many of `n` weights a sparsity `s` removes: the nearest whole number.
pub fn pruned_count(n: usize, s: f64) -> usize {
    ((n as f64 * s).round() as usize).min(n)
}

/// The magnitude mask `[num_params]` at `sparsity`: in each layer (or, with `global`, across all
/// weights together) the round(sparsity·n) weights of smallest |w| are pruned; biases are kept.
/// Weights already zero are the smallest, so a pruned network pruned again keeps its zeros.
pub fn magnitude_mask(spec: &ModelSpec, params: &[f32], sparsity: f64, global: bool) -> Vec<f32> {
    let mut mask = ones_mask(spec);
    let groups: Vec<Vec<usize>> = if global {
        vec![spec.layers().iter().flat_map(weight_range).collect()]
    } else {
        spec.layers()
            .iter()
            .map(|l| weight_range(l).collect())
            .collect()
    };
    for idx in groups {
        let values: Vec<(f32, usize)> = idx.iter().map(|&i| (params[i].abs(), i)).collect();
        for i in smallest(&values, pruned_count(idx.len(), sparsity)) {
            mask[i] = 0.0;
        }
    }
    mask
}

fn weight_range(l: &crate::model::LayerShape) -> std::ops::Range<usize> {
    l.w_off..l.w_off + l.inp * l.out
}

/// Zeroes `params` wherever `mask` is 0.
pub fn apply(params: &mut [f32], mask: &[f32]) {
    for (p, &m) in params.iter_mut().zip(mask) {
        if m == 0.0 {
            *p = 0.0;
        }
    }
}

/// Per layer: (weights that are zero, weights).
pub fn layer_sparsity(spec: &ModelSpec, params: &[f32]) -> Vec<(usize, usize)> {
    spec.layers()
        .iter()
        .map(|l| {
            let w = &params[weight_range(l)];
            (w.iter().filter(|&&x| x == 0.0).count(), w.len())
        })
        .collect()
}

/// The fraction of all weights (not biases) that are zero.
pub fn weight_sparsity(spec: &ModelSpec, params: &[f32]) -> f64 {
    let (z, n) = layer_sparsity(spec, params)
        .iter()
        .fold((0, 0), |(z, n), &(a, b)| (z + a, n + b));
    z as f64 / n.max(1) as f64
}

/// Parameters (weights and biases) that are not zero.
pub fn nonzero(params: &[f32]) -> usize {
    params.iter().filter(|&&x| x != 0.0).count()
}

/// How a hidden unit's importance is measured for `--method units`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Importance {
    /// ‖incoming weights‖₂ · ‖outgoing weights‖₂: how much the unit can pass on. The product is
    /// unchanged when a ReLU unit's incoming weights are scaled by c and its outgoing ones by 1/c,
    /// which leaves the network's function unchanged too.
    Norm,
    /// The unit's mean |activation| over calibration samples (`--calibration N`).
    Activation,
}

impl Importance {
    pub fn name(self) -> &'static str {
        match self {
            Importance::Norm => "‖incoming‖·‖outgoing‖",
            Importance::Activation => "mean |activation|",
        }
    }
}

/// Per hidden layer, each unit's ‖incoming‖₂·‖outgoing‖₂ (weights only).
pub fn norm_importance(spec: &ModelSpec, params: &[f32]) -> Vec<Vec<f32>> {
    let layers = spec.layers();
    (0..spec.hidden().len())
        .map(|h| {
            let (a, b) = (layers[h], layers[h + 1]);
            (0..a.out)
                .map(|j| {
                    let inc: f32 = params[a.w_off + j * a.inp..][..a.inp]
                        .iter()
                        .map(|w| w * w)
                        .sum();
                    let out: f32 = (0..b.out)
                        .map(|o| params[b.w_off + o * b.inp + j].powi(2))
                        .sum();
                    (inc * out).sqrt()
                })
                .collect()
        })
        .collect()
}

/// Per hidden layer, each unit's mean |activation| over the first `n` samples of `data`.
pub fn activation_importance(
    spec: &ModelSpec,
    params: &[f32],
    data: &Dataset,
    n: usize,
) -> Vec<Vec<f32>> {
    const ROWS: usize = 500;
    let n = n.min(data.len());
    let hidden = spec.hidden();
    let mut sums: Vec<Vec<f64>> = hidden.iter().map(|&w| vec![0.0; w]).collect();
    let mut ws = Workspace::new(spec, ROWS.min(n.max(1)));
    let order: Vec<u32> = (0..n as u32).collect();
    for start in (0..n).step_by(ws.rows) {
        let b = ws.rows.min(n - start);
        batch_gather(
            &mut ws.activations[0],
            &mut ws.labels,
            &data.images,
            &data.labels,
            &order,
            start,
            b,
        );
        forward(spec, params, &mut ws, b, None);
        for (h, s) in sums.iter_mut().enumerate() {
            let w = hidden[h];
            for row in ws.activations[h + 1][..b * w].chunks_exact(w) {
                s.iter_mut()
                    .zip(row)
                    .for_each(|(a, &x)| *a += x.abs() as f64);
            }
        }
    }
    sums.into_iter()
        .map(|s| s.iter().map(|&x| (x / n.max(1) as f64) as f32).collect())
        .collect()
}

/// The `keep` most important units, in their original order.
pub fn top_units(scores: &[f32], keep: usize) -> Vec<usize> {
    let neg: Vec<(f32, usize)> = scores.iter().enumerate().map(|(i, &s)| (-s, i)).collect();
    let mut idx = smallest(&neg, keep.min(scores.len()));
    idx.sort_unstable();
    idx
}

/// The network with only the hidden units `keep[h]` (indices, ascending) of each hidden layer
/// h: the smaller spec, its parameters, and the matching part of `mask` if there is one.
pub fn shrink(
    spec: &ModelSpec,
    params: &[f32],
    mask: Option<&[f32]>,
    keep: &[Vec<usize>],
) -> (ModelSpec, Vec<f32>, Option<Vec<f32>>) {
    let layers = spec.layers();
    let last = layers.len() - 1;
    let mut sizes = vec![spec.sizes[0]];
    sizes.extend(keep.iter().map(Vec::len));
    sizes.push(spec.sizes[spec.sizes.len() - 1]);
    let small = ModelSpec {
        sizes,
        activation: spec.activation,
        loss: spec.loss,
    };
    let all = |n: usize| (0..n).collect::<Vec<_>>();
    let pick = |src: &[f32]| {
        let mut out = Vec::with_capacity(small.num_params());
        for (l, s) in layers.iter().enumerate() {
            let rows = if l == last {
                all(s.out)
            } else {
                keep[l].clone()
            };
            let cols = if l == 0 {
                all(s.inp)
            } else {
                keep[l - 1].clone()
            };
            for &r in &rows {
                let row = &src[s.w_off + r * s.inp..][..s.inp];
                out.extend(cols.iter().map(|&c| row[c]));
            }
            out.extend(rows.iter().map(|&r| src[s.b_off + r]));
        }
        out
    };
    let p = pick(params);
    let m = mask.map(pick);
    (small, p, m)
}

/// The gradual pruning schedule of Zhu & Gupta 2017, advanced once per epoch: at the end of
/// epoch e in start..=end the sparsity becomes s_f·(1 − (1 − (e − start + 1)/(end − start + 1))³),
/// reaching s_f at the end of epoch `end`; later epochs fine-tune at s_f.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gradual {
    pub sparsity: f64,
    pub start_epoch: usize,
    pub end_epoch: usize,
}

impl Gradual {
    /// The sparsity to prune to at the end of `epoch`, if that epoch is in the schedule.
    pub fn sparsity_after(&self, epoch: usize) -> Option<f64> {
        if epoch < self.start_epoch || epoch > self.end_epoch {
            return None;
        }
        let span = (self.end_epoch - self.start_epoch + 1) as f64;
        let p = (epoch - self.start_epoch + 1) as f64 / span;
        Some(self.sparsity * (1.0 - (1.0 - p).powi(3)))
    }
}

/// An observer that prunes along a [`Gradual`] schedule after each epoch (once the observer it
/// wraps has seen the epoch) and holds the mask in the backend; with no schedule it only passes
/// the epochs on.
pub struct GradualPruning<'a> {
    pub inner: &'a mut dyn Observer,
    pub schedule: Option<Gradual>,
    pub spec: ModelSpec,
    pub global: bool,
    /// The mask now held, once pruning has started.
    pub mask: Option<Vec<f32>>,
    /// Prune without printing a line per step of the schedule.
    pub quiet: bool,
}

impl Observer for GradualPruning<'_> {
    fn on_epoch(
        &mut self,
        record: &EpochRecord,
        backend: &mut dyn Backend,
        next: &Position,
    ) -> Result<()> {
        self.inner.on_epoch(record, backend, next)?;
        let Some(g) = self.schedule else {
            return Ok(());
        };
        let Some(s) = g.sparsity_after(record.epoch) else {
            return Ok(());
        };
        let params = backend.params()?;
        let mask = magnitude_mask(&self.spec, &params, s, self.global);
        backend.set_mask(Some(&mask))?;
        self.mask = Some(mask);
        if self.quiet {
            return Ok(());
        }
        let after = backend.evaluate(Split::Test)?;
        println!(
            "          pruned to sparsity {:.1}% (cubic schedule, target {:.1}% after epoch {}): test acc {:.2}%",
            100.0 * s,
            100.0 * g.sparsity,
            g.end_epoch,
            100.0 * after.accuracy
        );
        Ok(())
    }

    fn on_step_log(&mut self, log: &StepLog) -> Result<()> {
        self.inner.on_step_log(log)
    }
}
