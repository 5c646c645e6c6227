//! Parity of whole training steps: the CPU and GPU backends trained side by side.

use std::sync::Arc;

use crate::backend::{Backend, Setup, Split};
use crate::cpu::{self, CpuBackend};
use crate::data::{CLASSES, Dataset, PIXELS};
use crate::error::Result;
use crate::gpu::{Gpu, GpuBackend};
use crate::model::{Init, ModelSpec};
use crate::optim::{OptimConfig, StepHyper};
use crate::rng;

use super::{CheckRow, compare};

/// A small synthetic data set (random pixels, labels from a fixed rule) for step parity.
pub fn synthetic(n: usize, seed: u32) -> Dataset {
    Dataset::pixels(
        (0..n * PIXELS)
            .map(|i| (rng::hash3(seed, 21, i as u32) & 255) as u8)
            .collect(),
        (0..n)
            .map(|i| (rng::hash3(seed, 22, i as u32) % 10) as u8)
            .collect(),
    )
}

/// A small synthetic table of f32 features [n, width] in classes 0..classes whose label
/// follows the features (the class whose feature block has the largest sum), so a model can
/// learn it: for parity tests and the shape tests of `--data`.
pub fn synthetic_features(n: usize, width: usize, classes: usize, seed: u32) -> Dataset {
    let features: Vec<f32> = (0..n * width)
        .map(|i| rng::uniform(seed, 23, i as u32) * 2.0 - 1.0)
        .collect();
    let labels = features
        .chunks_exact(width)
        .map(|row| {
            let score = |c: usize| -> f32 {
                row.iter()
                    .enumerate()
                    .filter(|(j, _)| j % classes == c)
                    .map(|(_, v)| v)
                    .sum()
            };
            (0..classes)
                .max_by(|&a, &b| score(a).total_cmp(&score(b)))
                .unwrap_or(0) as u8
        })
        .collect();
    Dataset::floats(features, labels, width, classes)
}

/// Trains `steps` steps on the CPU and GPU from the same seed and compares: the first step's
/// gradient, the per-step losses, and the final parameters and optimizer state. The learning
/// rate follows a warm-up, so the per-step table is exercised; with `dropout`, both paths must
/// drop the same units.
pub fn step_checks(
    gpu: Arc<Gpu>,
    spec: &ModelSpec,
    batch: usize,
    steps: usize,
    optim: OptimConfig,
    dropout: f32,
) -> Result<Vec<CheckRow>> {
    step_checks_with(gpu, spec, batch, steps, optim, dropout, 0.0)
}

/// [`step_checks`] with `input_dropout` on the input features too.
pub fn step_checks_with(
    gpu: Arc<Gpu>,
    spec: &ModelSpec,
    batch: usize,
    steps: usize,
    optim: OptimConfig,
    dropout: f32,
    input_dropout: f32,
) -> Result<Vec<CheckRow>> {
    let n = batch * steps;
    // MNIST-shaped models train on pixels (the packed path), any other on f32 features.
    let mnist = spec.inputs() == PIXELS && spec.classes() == CLASSES;
    let data = |n: usize, seed: u32| {
        if mnist {
            synthetic(n, seed)
        } else {
            synthetic_features(n, spec.inputs(), spec.classes(), seed)
        }
    };
    let train = Arc::new(data(n, 3));
    let test = Arc::new(data(50, 4));
    let params = spec.init_params(Init::Auto, 11);
    let order = rng::permutation(n, 5, rng::stream::SHUFFLE);
    let lr = if optim.kind.is_adam() { 0.003 } else { 0.05 };
    let hyper: Vec<StepHyper> = (0..steps)
        .map(|t| optim.step_hyper(t as u64 + 100, lr * (t + 1) as f32 / steps as f32))
        .collect();
    let setup = Setup {
        spec: spec.clone(),
        params: params.clone(),
        train: train.clone(),
        test: test.clone(),
        val: None,
        batch,
        optim,
        dropout,
        input_dropout,
        seed: 9,
    };
    let mut cpu = CpuBackend::new(setup.clone());
    let mut gpu_b = GpuBackend::new(gpu, &setup)?;
    let mut shape = format!("{} B={batch} {}", spec.describe(), optim.kind.name());
    if !optim.kind.is_adam() {
        shape.push_str(&format!(" μ={}", optim.momentum));
    }
    for (what, v) in [
        ("dropout", dropout),
        ("input dropout", input_dropout),
        ("max-norm", optim.max_norm),
    ] {
        if v > 0.0 {
            shape.push_str(&format!(" {what} {v}"));
        }
    }
    let mut rows = Vec::new();

    // One step's gradient against the CPU reference on the same batch.
    let mut ws = cpu::Workspace::new(spec, batch);
    cpu::gather(&mut ws, &train, &order, 0, batch);
    let mut x = ws.activations[0][..batch * spec.inputs()].to_vec();
    if input_dropout > 0.0 {
        let key = cpu::kernels::DropoutKey::new(
            input_dropout,
            9,
            hyper[0].t,
            cpu::kernels::INPUT_DROPOUT_LAYER,
        );
        cpu::kernels::dropout_forward(&mut x, &key, 0, spec.inputs());
    }
    let y = ws.labels[..batch].to_vec();
    let (_, want_grads) = match dropout {
        0.0 => cpu::loss_and_grads(spec, &params, &x, &y),
        _ => cpu::loss_and_grads_dropout(spec, &params, &x, &y, dropout, 9, hyper[0].t),
    };
    cpu.begin_epoch(&order, &hyper, 0)?;
    gpu_b.begin_epoch(&order, &hyper, 0)?;
    let mut cpu_losses = Vec::new();
    let mut before = 0.0;
    for s in 0..steps {
        cpu.step(s, s * batch, batch)?;
        gpu_b.step(s, s * batch, batch)?;
        if s == 0 {
            // Where plain SGD ran inside the input layer's product or output_layer_step, that
            // layer's gradient is checked through its update (p − lr·g), the rest as formed.
            let held = gpu_b.grads_held();
            let n = spec.num_params();
            let g = gpu_b.grads()?;
            if !held.is_empty() {
                rows.push(compare(
                    "step: grads",
                    match held.len() == n {
                        true => shape.clone(),
                        false => format!("{shape}, params[{}..{}]", held.start, held.end),
                    },
                    &g[held.clone()],
                    &want_grads[held.clone()],
                    1e-5,
                    1e-3,
                ));
            }
            let p = gpu_b.params()?;
            let last = spec.layers().len() - 1;
            for (range, what) in [
                (
                    0..held.start,
                    "layers.0 −= lr·grads, in matmul_backward_weight".to_owned(),
                ),
                (
                    held.end..n,
                    format!("layers.{last} −= lr·grads, in output_layer_step"),
                ),
            ] {
                if range.is_empty() {
                    continue;
                }
                let mut want = params[range.clone()].to_vec();
                let lr = hyper[0].lr;
                cpu::optim::sgd_update(
                    &mut want,
                    &mut [],
                    &want_grads[range.clone()],
                    lr,
                    0.0,
                    0.0,
                );
                rows.push(compare(
                    &format!("step: {what}"),
                    shape.clone(),
                    &p[range],
                    &want,
                    1e-5,
                    1e-3,
                ));
            }
        }
        let total = cpu.end_epoch()?.loss_sum;
        cpu_losses.push(((total - before) / batch as f64) as f32);
        before = total;
    }
    let gpu_losses: Vec<f32> = gpu_b
        .step_loss_sums()?
        .iter()
        .map(|&l| l / batch as f32)
        .collect();
    rows.push(compare(
        "steps: loss trajectory",
        format!("{shape}, {steps} steps"),
        &gpu_losses,
        &cpu_losses,
        1e-4,
        1e-4,
    ));
    let p_cpu = cpu.params()?;
    let p_gpu = gpu_b.params()?;
    rows.push(compare(
        "steps: final params",
        format!("{shape}, {steps} steps"),
        &p_gpu,
        &p_cpu,
        1e-4,
        1e-3,
    ));
    for (name, (g, c)) in optim
        .kind
        .state_names()
        .iter()
        .zip(gpu_b.optimizer_state()?.iter().zip(cpu.optimizer_state()?))
    {
        rows.push(compare(
            &format!("steps: final {name}"),
            format!("{shape}, {steps} steps"),
            g,
            &c,
            1e-4,
            1e-3,
        ));
    }
    let e_cpu = cpu.evaluate(Split::Test)?;
    let e_gpu = gpu_b.evaluate(Split::Test)?;
    rows.push(compare(
        "evaluate: loss, accuracy",
        format!("{shape}, 50 samples"),
        &[e_gpu.loss as f32, e_gpu.accuracy as f32],
        &[e_cpu.loss as f32, e_cpu.accuracy as f32],
        1e-4,
        1e-3,
    ));
    Ok(rows)
}
