//! Each kernel of a training step run on its own, on the CPU through its twin in
//! `cpu::kernels` / `cpu::optim`, at the shapes the step uses: so a GPU dispatch and its twin
//! are timed the same way (back to back, median of three rounds) on the same work.

use std::time::Instant;

use rayon::prelude::*;

use crate::cpu::kernels as k;
use crate::cpu::optim::optimizer_update;
use crate::data::PIXELS;
use crate::gpu::Kernel;
use crate::model::{Activation, Loss, ModelSpec};
use crate::optim::{OptimConfig, StepHyper};
use crate::rng;

/// Rows below this per worker run on one thread (the CPU backend's MIN_ROWS_PER_WORKER).
const MIN_ROWS_PER_WORKER: usize = 16;
/// The CPU backend's smallest parameter slice worth a thread of its own in the update.
const UPDATE_MIN_SLICE: usize = 16 * 1024;

/// One kernel of the step, as the bench lists it: which entry point, on which layer, over how
/// many rows.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCall {
    pub kernel: Kernel,
    /// The layer the label names (`layers.N ...`), if any.
    pub layer: Option<usize>,
    pub rows: usize,
    pub label: String,
}

/// A twin ready to run: one closure per worker thread, each owning its share's buffers.
pub struct Twin {
    shares: Vec<Box<dyn FnMut() + Send>>,
    /// Bytes the kernel reads and writes, for GB/s.
    pub bytes: u64,
}

impl Twin {
    fn run(&mut self) {
        if self.shares.len() == 1 {
            (self.shares[0])();
        } else {
            self.shares.par_iter_mut().for_each(|f| f());
        }
    }

    /// Microseconds per call: `reps` calls back to back, one warm-up round, median of three.
    pub fn time_us(&mut self, reps: usize) -> f64 {
        let mut t = Vec::with_capacity(3);
        for round in 0..4 {
            let t0 = Instant::now();
            for _ in 0..reps.max(1) {
                self.run();
            }
            if round > 0 {
                t.push(t0.elapsed().as_secs_f64() * 1e6 / reps.max(1) as f64);
            }
        }
        t.sort_by(f64::total_cmp);
        t[1]
    }
}

/// The layer index a plan label starts with (`layers.3 ...`).
pub fn label_layer(label: &str) -> Option<usize> {
    let rest = label.strip_prefix("layers.")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Seeded values in [-1, 1): the twins' inputs.
fn values(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| (rng::hash3(seed, 77, i) >> 8) as f32 / 8_388_608.0 - 1.0)
        .collect()
}

fn labels(n: usize, classes: usize) -> Vec<u32> {
    (0..n as u32)
        .map(|i| rng::hash3(1, 78, i) % classes as u32)
        .collect()
}

/// How the CPU backend splits `rows` across `threads` workers: (workers, rows per worker).
fn split(rows: usize, threads: usize) -> (usize, usize) {
    let used = (rows / MIN_ROWS_PER_WORKER).clamp(1, threads.max(1));
    (used, rows.div_ceil(used))
}

/// The twin of `call` for `spec` (None for a kernel the training step never runs, such as
/// argmax_correct or apply_mask). Row-wise kernels split their rows over the threads as the CPU
/// backend does; the update splits the parameters.
pub fn twin(
    call: &KernelCall,
    spec: &ModelSpec,
    optim: &OptimConfig,
    threads: usize,
) -> Option<Twin> {
    let layers = spec.layers();
    let (used, per) = split(call.rows, threads);
    let c = spec.classes();
    let act = spec.activation;
    let layer = |l: Option<usize>| l.and_then(|l| layers.get(l).copied());
    let f = 4u64;
    // One closure per worker, built by `make(rows_of_this_worker, worker)`.
    let shares = |make: &dyn Fn(usize, u32) -> Box<dyn FnMut() + Send>| {
        (0..used)
            .map(|w| {
                make(
                    per.min(call.rows - (w * per).min(call.rows)).max(1),
                    w as u32,
                )
            })
            .collect::<Vec<_>>()
    };
    let rows = call.rows as u64;
    let (shares, bytes): (Vec<Box<dyn FnMut() + Send>>, u64) = match call.kernel {
        Kernel::MatmulForward => {
            let s = layer(call.layer)?;
            let (i, o) = (s.inp, s.out);
            let v = shares(&|b, w| {
                let (x, wt, bias) = (values(b * i, w), values(i * o, 9), values(o, 10));
                let mut out = vec![0.0; b * o];
                Box::new(move || k::matmul_forward(&mut out, &x, &wt, &bias, b, i, o))
            });
            (v, f * (rows * (i + o) as u64 + (i * o + o) as u64))
        }
        Kernel::MatmulBackwardInput => {
            let s = layer(call.layer)?;
            let (i, o) = (s.inp, s.out);
            let v = shares(&|b, w| {
                let (dout, wt) = (values(b * o, w), values(i * o, 9));
                let mut dinp = vec![0.0; b * i];
                Box::new(move || k::matmul_backward_input(&mut dinp, &dout, &wt, b, i, o))
            });
            (v, f * (rows * (i + o) as u64 + (i * o) as u64))
        }
        Kernel::MatmulBackwardWeight => {
            let s = layer(call.layer)?;
            let (i, o) = (s.inp, s.out);
            let v = shares(&|b, w| {
                let (dout, x) = (values(b * o, w), values(b * i, w + 5));
                let mut gw = vec![0.0; i * o];
                Box::new(move || k::matmul_backward_weight(&mut gw, &dout, &x, b, i, o, false))
            });
            (v, f * (rows * (i + o) as u64 + (i * o) as u64))
        }
        Kernel::BiasBackward => {
            let o = layer(call.layer)?.out;
            let v = shares(&|b, w| {
                let dout = values(b * o, w);
                let mut gb = vec![0.0; o];
                Box::new(move || k::bias_backward(&mut gb, &dout, b, o, false))
            });
            (v, f * (rows * o as u64 + o as u64))
        }
        Kernel::ReluForward | Kernel::SigmoidForward | Kernel::TanhForward => {
            let o = layer(call.layer)?.out;
            let kind = activation_of(call.kernel);
            let v = shares(&|b, w| {
                let mut x = values(b * o, w);
                Box::new(move || k::activation_forward(kind, &mut x))
            });
            (v, 2 * f * rows * o as u64)
        }
        Kernel::ReluBackward | Kernel::SigmoidBackward | Kernel::TanhBackward => {
            let o = layer(call.layer)?.out;
            let kind = activation_of(call.kernel);
            let v = shares(&|b, w| {
                let (mut d, a) = (values(b * o, w), values(b * o, w + 3));
                Box::new(move || k::activation_backward(kind, &mut d, &a))
            });
            (v, 3 * f * rows * o as u64)
        }
        Kernel::DropoutForward | Kernel::DropoutBackward => {
            let o = layer(call.layer)?.out;
            let key = k::DropoutKey::new(0.5, 1, 0, call.layer.unwrap_or(0));
            let backward = call.kernel == Kernel::DropoutBackward;
            let v = shares(&|b, w| {
                let (mut d, a) = (values(b * o, w), values(b * o, w + 3));
                Box::new(move || {
                    if backward {
                        k::dropout_backward(&mut d, &a, &key, act, 0, o)
                    } else {
                        k::dropout_forward(&mut d, &key, 0, o)
                    }
                })
            });
            (v, if backward { 3 } else { 2 } * f * rows * o as u64)
        }
        Kernel::SoftmaxXentForward | Kernel::MseForward => {
            let xent = call.kernel == Kernel::SoftmaxXentForward;
            let v = shares(&|b, w| {
                let (z, y) = (values(b * c, w), labels(b, c));
                let (mut losses, mut probs) = (vec![0.0; b], vec![0.0; b * c]);
                Box::new(move || {
                    if xent {
                        k::softmax_xent_forward(&mut losses, &mut probs, &z, &y, b, c)
                    } else {
                        k::mse_forward(&mut losses, &z, &y, b, c)
                    }
                })
            });
            (v, f * rows * (2 * c as u64 + 2))
        }
        Kernel::SoftmaxXentBackward | Kernel::MseBackward => {
            let xent = call.kernel == Kernel::SoftmaxXentBackward;
            let v = shares(&|b, w| {
                let (p, y) = (values(b * c, w), labels(b, c));
                let mut d = vec![0.0; b * c];
                Box::new(move || {
                    if xent {
                        k::softmax_xent_backward(&mut d, &p, &y, b, c, 0.01)
                    } else {
                        k::mse_backward(&mut d, &p, &y, b, c, 0.01)
                    }
                })
            });
            (v, f * rows * (2 * c as u64 + 1))
        }
        Kernel::LossReduce => {
            let v = shares(&|b, w| {
                let l = values(b, w);
                let mut sum = 0.0;
                Box::new(move || k::loss_reduce(&mut sum, &l, b, false))
            });
            (v, f * rows)
        }
        Kernel::BatchGather => {
            let v = shares(&|b, w| {
                let images: Vec<u8> = values(b * PIXELS, w)
                    .iter()
                    .map(|v| (v.abs() * 255.0) as u8)
                    .collect();
                let lab: Vec<u8> = labels(b, 10).iter().map(|&l| l as u8).collect();
                let order: Vec<u32> = (0..b as u32).rev().collect();
                let (mut x, mut y) = (vec![0.0; b * PIXELS], vec![0; b]);
                Box::new(move || k::batch_gather(&mut x, &mut y, &images, &lab, &order, 0, b))
            });
            (v, rows * (PIXELS as u64 * 5 + 13))
        }
        Kernel::BatchGatherFeatures => {
            let width = spec.inputs();
            let v = shares(&|b, w| {
                let feats = values(b * width, w);
                let lab: Vec<u8> = labels(b, c.min(256)).iter().map(|&l| l as u8).collect();
                let order: Vec<u32> = (0..b as u32).rev().collect();
                let (mut x, mut y) = (vec![0.0; b * width], vec![0; b]);
                Box::new(move || {
                    k::batch_gather_features(&mut x, &mut y, &feats, &lab, &order, 0, b, width)
                })
            });
            (v, rows * (width as u64 * 8 + 13))
        }
        Kernel::OutputLayerStep => {
            let s = *layers.last()?;
            let (h, o) = (s.inp, s.out);
            let loss: Loss = spec.loss;
            let hidden: Option<Activation> = (layers.len() > 1).then_some(act);
            let v = shares(&|b, w| {
                let (a, wt, bias, y) = (
                    values(b * h, w),
                    values(h * o, 9),
                    values(o, 10),
                    labels(b, o),
                );
                let (mut gw, mut gb, mut da) = (vec![0.0; h * o], vec![0.0; o], vec![0.0; b * h]);
                Box::new(move || {
                    k::output_layer_step(
                        &mut gw, &mut gb, &mut da, &a, &wt, &bias, &y, b, h, loss, hidden, 0.01,
                        false,
                    );
                })
            });
            (v, f * (2 * rows * h as u64 + 2 * (h * o) as u64))
        }
        Kernel::SgdUpdate | Kernel::NesterovUpdate | Kernel::AdamUpdate | Kernel::AdamwUpdate => {
            let np = spec.num_params();
            let slice = np.div_ceil(used).max(UPDATE_MIN_SLICE);
            let cfg = *optim;
            let hyper = StepHyper {
                lr: 0.01,
                bc1: 1.0,
                bc2: 1.0,
                t: 0,
            };
            let states = if cfg.kind.is_adam() { 2 } else { 1 };
            let v = (0..np.div_ceil(slice))
                .map(|i| {
                    let len = slice.min(np - i * slice);
                    let (mut p, g) = (values(len, 20 + i as u32), values(len, 40 + i as u32));
                    let (mut s1, mut s2) =
                        (vec![0.0; len], vec![0.0; if states == 2 { len } else { 0 }]);
                    Box::new(move || optimizer_update(&mut p, &mut s1, &mut s2, &g, &cfg, &hyper))
                        as Box<dyn FnMut() + Send>
                })
                .collect();
            // params and state read and written, grads read.
            (v, f * np as u64 * (2 + 2 * states + 1))
        }
        Kernel::ArgmaxCorrect | Kernel::ApplyMask | Kernel::MaxNorm => return None,
    };
    Some(Twin { shares, bytes })
}

fn activation_of(kernel: Kernel) -> Activation {
    match kernel {
        Kernel::SigmoidForward | Kernel::SigmoidBackward => Activation::Sigmoid,
        Kernel::TanhForward | Kernel::TanhBackward => Activation::Tanh,
        _ => Activation::Relu,
    }
}

/// The CPU backend's own step as a list of kernels, in the order it runs them (used when no GPU
/// plan is there to list the step).
pub fn cpu_step(
    spec: &ModelSpec,
    optim: &OptimConfig,
    rows: usize,
    pixels: bool,
) -> Vec<KernelCall> {
    let layers = spec.layers();
    let last = layers.len() - 1;
    let (fwd, bwd) = match spec.activation {
        Activation::Relu => (Kernel::ReluForward, Kernel::ReluBackward),
        Activation::Sigmoid => (Kernel::SigmoidForward, Kernel::SigmoidBackward),
        Activation::Tanh => (Kernel::TanhForward, Kernel::TanhBackward),
    };
    let call = |kernel: Kernel, layer: Option<usize>, label: String| KernelCall {
        kernel,
        layer,
        rows,
        label,
    };
    let mut v = vec![call(
        if pixels {
            Kernel::BatchGather
        } else {
            Kernel::BatchGatherFeatures
        },
        None,
        "activations[0], labels = train[order[..]]".into(),
    )];
    for l in 0..=last {
        v.push(call(
            Kernel::MatmulForward,
            Some(l),
            format!(
                "layers.{l} activations[{}] = activations[{l}]·Wᵀ + b",
                l + 1
            ),
        ));
        if l != last {
            v.push(call(
                fwd,
                Some(l),
                format!("layers.{l} activations[{}]", l + 1),
            ));
        }
    }
    let (lf, lb) = match spec.loss {
        Loss::Xent => (Kernel::SoftmaxXentForward, Kernel::SoftmaxXentBackward),
        Loss::Mse => (Kernel::MseForward, Kernel::MseBackward),
    };
    v.push(call(lf, None, "losses = loss(logits)".into()));
    v.push(call(lb, None, "dactivations[out] = dloss/dlogits".into()));
    for l in (0..=last).rev() {
        v.push(call(
            Kernel::MatmulBackwardWeight,
            Some(l),
            format!(
                "layers.{l} grads.weight = dactivations[{}]ᵀ·activations[{l}]",
                l + 1
            ),
        ));
        v.push(call(
            Kernel::BiasBackward,
            Some(l),
            format!("layers.{l} grads.bias = Σ dactivations[{}]", l + 1),
        ));
        if l > 0 {
            v.push(call(
                Kernel::MatmulBackwardInput,
                Some(l),
                format!("layers.{l} dactivations[{l}] = dactivations[{}]·W", l + 1),
            ));
            v.push(call(
                bwd,
                Some(l - 1),
                format!("layers.{} dactivations[{l}]", l - 1),
            ));
        }
    }
    let (kernel, label) = crate::gpu::update_kernel(optim);
    v.push(KernelCall {
        kernel,
        layer: None,
        rows,
        label: label.into(),
    });
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_layer_reads_the_leading_layer_index() {
        assert_eq!(label_layer("layers.12 grads.weight = ..."), Some(12));
        assert_eq!(label_layer("layers.0 activations[1]"), Some(0));
        assert_eq!(label_layer("losses = softmax_xent(logits)"), None);
    }

    #[test]
    fn cpu_step_lists_every_kernel_the_cpu_backend_runs() {
        let spec = ModelSpec::new(&[32, 16], Activation::Relu, Loss::Xent);
        let calls = cpu_step(&spec, &OptimConfig::sgd(0.0), 8, true);
        let count = |k: Kernel| calls.iter().filter(|c| c.kernel == k).count();
        assert_eq!(count(Kernel::MatmulForward), 3);
        assert_eq!(count(Kernel::MatmulBackwardWeight), 3);
        // The input layer needs no input gradient.
        assert_eq!(count(Kernel::MatmulBackwardInput), 2);
        assert_eq!(count(Kernel::ReluForward), 2);
        assert_eq!(count(Kernel::ReluBackward), 2);
        assert_eq!(count(Kernel::SgdUpdate), 1);
        // Every one of them has a twin to time, and a timing is a positive number.
        for c in &calls {
            let mut t = twin(c, &spec, &OptimConfig::sgd(0.0), 2).expect(&c.label);
            assert!(t.bytes > 0, "{}", c.label);
            assert!(t.time_us(1) > 0.0, "{}", c.label);
        }
    }
}
