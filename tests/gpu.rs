//! The GPU path on whatever adapter the machine has (lavapipe in CI): one parity test per
//! kernel entry point, whole-step parity, the scheduler's accounting, device selection, and an
//! end-to-end MNIST run. With no adapter these tests fail; they never skip.

mod common;

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use descent::backend::{Backend, Setup};
use descent::gpu::kernels::Lanes;
use descent::gpu::tune::Source;
use descent::gpu::verify::{self, CheckRow};
use descent::gpu::{
    Form, Gpu, GpuBackend, GpuOptions, Kernel, Kernels, MatmulVariant, STEPS_PER_SUBMIT,
};
use descent::model::{Activation, Init, Loss, ModelSpec};
use descent::optim::{OptimConfig, OptimizerKind, StepHyper};
use descent::rng;

/// lavapipe runs compute on the CPU: one GPU test at a time keeps them from starving each other.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn gpu(variant: MatmulVariant) -> Arc<Gpu> {
    gpu_with(variant, false)
}

/// A device per (variant, unfused), opened once, with validation on.
fn gpu_with(variant: MatmulVariant, unfused: bool) -> Arc<Gpu> {
    static BLOCKED: OnceLock<Arc<Gpu>> = OnceLock::new();
    static TILED: OnceLock<Arc<Gpu>> = OnceLock::new();
    static UNFUSED: OnceLock<Arc<Gpu>> = OnceLock::new();
    let cell = match (variant, unfused) {
        (_, true) => &UNFUSED,
        (MatmulVariant::Blocked, false) => &BLOCKED,
        (MatmulVariant::Tiled, false) => &TILED,
        (MatmulVariant::Auto, false) => panic!("these devices force a variant; see gpu_cached"),
    };
    cell.get_or_init(|| {
        let opts = GpuOptions {
            validation: true,
            unfused,
            ..Default::default()
        };
        Arc::new(Gpu::new(&opts, Some(variant)).unwrap_or_else(|e| {
            panic!("no usable GPU adapter (install mesa-vulkan-drivers for lavapipe): {e}")
        }))
    })
    .clone()
}

fn assert_rows(rows: &[CheckRow]) {
    for r in rows {
        assert!(
            r.pass(),
            "{} {}: first bad index {:?}, max abs diff {:.3e}, max rel diff {:.3e}",
            r.kernel,
            r.shape,
            r.first_bad,
            r.max_abs,
            r.max_rel
        );
    }
}

fn both_variants(f: impl Fn(&Gpu) -> Vec<CheckRow>) {
    let _g = serial();
    for v in [MatmulVariant::Blocked, MatmulVariant::Tiled] {
        let g = gpu(v);
        let rows = f(&g);
        assert!(!rows.is_empty());
        assert_rows(&rows);
        g.ctx.check_errors().expect("no validation errors");
    }
}

const SHAPES: [(usize, usize, usize); 10] = [
    (1, 784, 128),  // batch 1
    (7, 13, 10),    // everything odd and below the tile
    (100, 300, 33), // batch 100, off the tile
    (3, 1000, 5),   // K larger than M and N
    (64, 784, 128), // the default model
    (33, 17, 70),
    (129, 65, 31), // just past tile edges
    (2, 5, 1),
    (12, 64, 36), // vec4-aligned, but not a whole 8x8 block
    (5, 8, 4),    // vec4-aligned and tiny
];

/// Each shape through the scalar kernel, and through the vec4 and subgroup ones where their
/// alignment holds (and, for subgroups, where the kernel has that form).
fn matmul_cases(
    g: &Gpu,
    which: usize,
    f: impl Fn(&Gpu, (usize, usize, usize), Form, u32) -> CheckRow,
) -> Vec<CheckRow> {
    let mut rows = Vec::new();
    for (i, &s) in SHAPES.iter().enumerate() {
        for form in verify::forms(g, s)[which].clone() {
            rows.push(f(g, s, form, i as u32));
        }
    }
    if g.kernels.variant == MatmulVariant::Blocked {
        assert!(
            rows.iter().any(|r| r.kernel.contains("vec4")),
            "no vec4 case ran"
        );
        // lavapipe has 8-wide subgroups, so CI always runs the subgroup forms.
        if which != 1 {
            assert!(g.kernels.subgroup, "the adapter offers no 8-wide subgroups");
            assert!(
                rows.iter().any(|r| r.kernel.contains("subgroup")),
                "no subgroup case ran"
            );
        }
    }
    rows
}

#[test]
fn matmul_forward_matches_cpu() {
    both_variants(|g| {
        matmul_cases(g, 0, |g, s, v, seed| {
            verify::wait(verify::check_matmul_forward(g, s, v, seed)).unwrap()
        })
    });
}

#[test]
fn matmul_backward_input_matches_cpu() {
    both_variants(|g| {
        matmul_cases(g, 1, |g, s, v, seed| {
            verify::wait(verify::check_matmul_backward_input(g, s, v, seed)).unwrap()
        })
    });
}

#[test]
fn matmul_backward_weight_matches_cpu_overwriting_and_accumulating() {
    both_variants(|g| {
        let mut rows = matmul_cases(g, 2, |g, s, v, seed| {
            verify::wait(verify::check_matmul_backward_weight(g, s, false, v, seed)).unwrap()
        });
        rows.extend(matmul_cases(g, 2, |g, s, v, seed| {
            verify::wait(verify::check_matmul_backward_weight(g, s, true, v, seed)).unwrap()
        }));
        rows
    });
}

/// The activation (forward) and its derivative (backward) fused into the matmul epilogues, as the
/// training plans run them, against the CPU's separate twins.
#[test]
fn fused_matmul_epilogues_match_cpu() {
    both_variants(|g| {
        let mut rows = Vec::new();
        for (i, a) in [Activation::Relu, Activation::Sigmoid, Activation::Tanh]
            .into_iter()
            .enumerate()
        {
            for &s in &[(1, 784, 128), (7, 13, 10), (12, 64, 36), (100, 300, 33)] {
                let [ff, fi, _] = verify::forms(g, s);
                for form in ff {
                    rows.push(
                        verify::wait(verify::check_matmul_forward_fused(g, s, a, form, i as u32))
                            .unwrap(),
                    );
                }
                for form in fi {
                    rows.push(
                        verify::wait(verify::check_matmul_backward_input_fused(
                            g, s, a, form, i as u32,
                        ))
                        .unwrap(),
                    );
                }
            }
        }
        rows
    });
}

/// The bias gradient fused into matmul_backward_weight, against matmul_backward_weight then
/// bias_backward on the CPU.
#[test]
fn fused_bias_gradient_matches_cpu() {
    both_variants(|g| {
        let mut rows = matmul_cases(g, 2, |g, s, v, seed| {
            verify::wait(verify::check_matmul_backward_weight_bias(
                g, s, false, v, seed,
            ))
            .unwrap()
        });
        rows.extend(matmul_cases(g, 2, |g, s, v, seed| {
            verify::wait(verify::check_matmul_backward_weight_bias(
                g, s, true, v, seed,
            ))
            .unwrap()
        }));
        rows
    });
}

#[test]
fn bias_backward_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let mut rows = Vec::new();
    for (i, &(b, n)) in [(1, 10), (7, 128), (100, 33), (8192, 65)]
        .iter()
        .enumerate()
    {
        for acc in [false, true] {
            rows.push(verify::wait(verify::check_bias_backward(&g, b, n, acc, i as u32)).unwrap());
        }
    }
    assert_rows(&rows);
}

fn activation_case(a: Activation, backward: bool) {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let rows: Vec<CheckRow> = [1, 255, 257, 70_001]
        .into_iter()
        .enumerate()
        .map(|(i, n)| verify::wait(verify::check_activation(&g, a, backward, n, i as u32)).unwrap())
        .collect();
    assert_rows(&rows);
}

#[test]
fn relu_forward_matches_cpu() {
    activation_case(Activation::Relu, false);
}
#[test]
fn relu_backward_matches_cpu() {
    activation_case(Activation::Relu, true);
}
#[test]
fn sigmoid_forward_matches_cpu() {
    activation_case(Activation::Sigmoid, false);
}
#[test]
fn sigmoid_backward_matches_cpu() {
    activation_case(Activation::Sigmoid, true);
}
#[test]
fn tanh_forward_matches_cpu() {
    activation_case(Activation::Tanh, false);
}
#[test]
fn tanh_backward_matches_cpu() {
    activation_case(Activation::Tanh, true);
}

fn loss_case(loss: Loss, backward: bool) {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let rows: Vec<CheckRow> = [1, 7, 100, 1000]
        .into_iter()
        .enumerate()
        .map(|(i, b)| verify::wait(verify::check_loss(&g, loss, backward, b, i as u32)).unwrap())
        .collect();
    assert_rows(&rows);
}

/// The loss forward kernels writing the logits' gradient too, as the fused plans run them.
#[test]
fn fused_loss_gradient_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let mut rows = Vec::new();
    for loss in [Loss::Xent, Loss::Mse] {
        for (i, b) in [1, 7, 100, 1000].into_iter().enumerate() {
            rows.push(verify::wait(verify::check_loss_fused(&g, loss, b, i as u32)).unwrap());
        }
    }
    assert_rows(&rows);
}

#[test]
fn softmax_xent_forward_matches_cpu() {
    loss_case(Loss::Xent, false);
}
#[test]
fn softmax_xent_backward_matches_cpu() {
    loss_case(Loss::Xent, true);
}
#[test]
fn mse_forward_matches_cpu() {
    loss_case(Loss::Mse, false);
}
#[test]
fn mse_backward_matches_cpu() {
    loss_case(Loss::Mse, true);
}

#[test]
fn loss_reduce_matches_cpu_and_advances_the_step() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let rows: Vec<CheckRow> = [(1, false), (7, true), (1000, false), (8192, true)]
        .into_iter()
        .enumerate()
        .map(|(i, (r, acc))| verify::wait(verify::check_loss_reduce(&g, r, acc, i as u32)).unwrap())
        .collect();
    assert_rows(&rows);
}

#[test]
fn argmax_correct_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let rows: Vec<CheckRow> = [1, 7, 100, 2000]
        .into_iter()
        .enumerate()
        .map(|(i, b)| verify::wait(verify::check_argmax_correct(&g, b, i as u32)).unwrap())
        .collect();
    assert_rows(&rows);
}

#[test]
fn batch_gather_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let rows: Vec<CheckRow> = [1, 7, 100]
        .into_iter()
        .enumerate()
        .map(|(i, b)| verify::wait(verify::check_batch_gather(&g, b, i as u32)).unwrap())
        .collect();
    assert_rows(&rows);
}

/// Every optimizer's update kernel against its CPU twin, with and without weight decay, on sizes
/// off the vec4 and workgroup widths and one past the 65535-workgroup fold.
#[test]
fn optimizer_updates_match_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let mut rows = Vec::new();
    for (i, n) in [1, 255, 101_770, 16_777_217 / 64].into_iter().enumerate() {
        for (kind, mu) in verify::OPTIMIZER_CASES {
            let wd = if i % 2 == 1 { 0.01 } else { 0.0 };
            let check = verify::check_optimizer_update(&g, kind, mu, wd, n, i as u32);
            rows.push(verify::wait(check).unwrap());
        }
    }
    assert_rows(&rows);
}

/// Dropout masks and their backward pass: the same units dropped on both paths, chunks that
/// start mid-batch included.
#[test]
fn dropout_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let mut rows = Vec::new();
    for (i, (r, w, row0)) in [(1, 1, 0), (7, 13, 3), (100, 128, 8192)]
        .into_iter()
        .enumerate()
    {
        rows.push(verify::wait(verify::check_dropout(&g, None, r, w, row0, i as u32)).unwrap());
        for a in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
            rows.push(
                verify::wait(verify::check_dropout(&g, Some(a), r, w, row0, i as u32)).unwrap(),
            );
        }
    }
    // About p of the units are dropped, and not the same ones at another step.
    let key = descent::cpu::kernels::DropoutKey::new(0.3, 5, 1, 0);
    let other = descent::cpu::kernels::DropoutKey::new(0.3, 5, 2, 0);
    let dropped = (0..10_000).filter(|&i| !key.keep(i)).count();
    assert!(
        (2_800..3_200).contains(&dropped),
        "{dropped} of 10000 dropped"
    );
    let same = (0..10_000)
        .filter(|&i| key.keep(i) == other.keep(i))
        .count();
    assert!(same < 7_000, "masks of two steps agree on {same} of 10000");
    assert_rows(&rows);
}

/// The output layer's fused step against the CPU twins run in order: batch 1, 64, a batch off the
/// workgroup size, the largest (256), the widest W its uniform copy holds, softmax regression,
/// accumulation, both losses; act from storage and, where it fits, from a uniform array.
#[test]
fn output_layer_step_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    assert!(g.kernels.head, "output_layer_step was not built");
    let rows = verify::wait(verify::check_output_layer_steps(&g)).unwrap();
    let input = rows
        .iter()
        .filter(|r| r.kernel.contains("uniform act"))
        .count();
    assert!(input >= 5, "{input} cases ran in form Input: {rows:#?}");
    assert!(rows.len() > input, "no case ran in form Scalar");
    assert_rows(&rows);
}

/// The input layer's products reading the batch packed from a uniform buffer (lavapipe builds
/// that form), and the packed gather feeding them.
#[test]
fn packed_input_matmuls_and_gather_match_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    assert!(g.kernels.input, "the adapter lacks the packed-input form");
    let mut rows = Vec::new();
    for (i, &(b, n)) in verify::INPUT_SHAPES.iter().enumerate() {
        // Forward; the weight gradient (accumulated at odd i); plain SGD in its store.
        for (backward, sgd) in [(false, None), (true, None), (true, Some(0.1))] {
            let check = verify::check_matmul_input(&g, b, n, backward, i % 2 == 1, sgd, i as u32);
            rows.push(verify::wait(check).unwrap());
        }
    }
    for (i, b) in [1, 7, 83].into_iter().enumerate() {
        rows.push(verify::wait(verify::check_batch_gather_packed(&g, b, i as u32)).unwrap());
    }
    assert_rows(&rows);
}

#[test]
fn every_entry_point_has_a_parity_check_in_verify() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let rows = verify::wait(verify::kernel_checks(&g)).unwrap();
    for k in Kernel::ALL {
        assert!(
            rows.iter().any(|r| r.kernel == k.name()),
            "descent verify does not check {}",
            k.name()
        );
    }
    assert_rows(&rows);
}

/// One step gives the same gradient as the CPU, and ten steps the same losses and parameters.
#[test]
fn training_steps_match_the_cpu() {
    let _g = serial();
    for (variant, hidden, act, loss, batch) in [
        (
            MatmulVariant::Blocked,
            &[128][..],
            Activation::Relu,
            Loss::Xent,
            64,
        ),
        (
            MatmulVariant::Blocked,
            &[33, 17][..],
            Activation::Tanh,
            Loss::Mse,
            7,
        ),
        (
            MatmulVariant::Blocked,
            &[][..],
            Activation::Sigmoid,
            Loss::Xent,
            1,
        ),
        (
            MatmulVariant::Tiled,
            &[100][..],
            Activation::Sigmoid,
            Loss::Mse,
            100,
        ),
    ] {
        let spec = ModelSpec::new(hidden, act, loss);
        let rows = verify::step_checks(gpu(variant), &spec, batch, 10, OptimConfig::sgd(0.9), 0.0)
            .unwrap();
        assert_rows(&rows);
    }
    // Plain SGD: the input layer's update runs inside its weight-gradient product (SGD_STEP;
    // the packed batch at 64 and 16, the subgroup form at 128) and the last layer's inside
    // output_layer_step, each checked through its parameters after one step, the rest as usual.
    for (hidden, batch) in [(&[128][..], 64), (&[64, 20][..], 16), (&[128][..], 128)] {
        let spec = ModelSpec::new(hidden, Activation::Relu, Loss::Xent);
        let g = gpu(MatmulVariant::Blocked);
        let rows = verify::step_checks(g, &spec, batch, 10, OptimConfig::sgd(0.0), 0.0).unwrap();
        for place in ["in matmul_backward_weight", "in output_layer_step"] {
            assert!(
                rows.iter().any(|r| r.kernel.contains(place)),
                "{hidden:?} at batch {batch}: no layer was updated {place}"
            );
        }
        assert_rows(&rows);
    }
}

/// Whole steps with each optimizer, weight decay, a warm-up schedule and dropout: the same
/// losses, parameters and optimizer state on both paths (dropout included: the same masks).
#[test]
fn optimizer_and_dropout_steps_match_the_cpu() {
    let _g = serial();
    for (variant, hidden, kind, wd, dropout, batch) in [
        (
            MatmulVariant::Blocked,
            &[64][..],
            OptimizerKind::Nesterov,
            1e-3,
            0.0,
            16,
        ),
        (
            MatmulVariant::Blocked,
            &[64, 20][..],
            OptimizerKind::Adam,
            1e-3,
            0.0,
            16,
        ),
        (
            MatmulVariant::Blocked,
            &[64, 20][..],
            OptimizerKind::Adamw,
            1e-2,
            0.3,
            33,
        ),
        (
            MatmulVariant::Blocked,
            &[128][..],
            OptimizerKind::Sgd,
            0.0,
            0.5,
            64,
        ),
        (
            MatmulVariant::Tiled,
            &[36][..],
            OptimizerKind::Adam,
            0.0,
            0.2,
            7,
        ),
    ] {
        let spec = ModelSpec::new(hidden, Activation::Relu, Loss::Xent);
        let optim = OptimConfig {
            kind,
            weight_decay: wd,
            ..OptimConfig::sgd(0.9)
        };
        let rows = verify::step_checks(gpu(variant), &spec, batch, 6, optim, dropout).unwrap();
        assert_rows(&rows);
    }
    // Dropout through a sigmoid layer, unfused (separate activation kernels).
    let spec = ModelSpec::new(&[24], Activation::Sigmoid, Loss::Mse);
    let rows = verify::step_checks(
        gpu_with(MatmulVariant::Blocked, true),
        &spec,
        10,
        4,
        OptimConfig::sgd(0.5),
        0.4,
    )
    .unwrap();
    assert_rows(&rows);
}

/// max_norm against its twin (rows of awkward widths, a weight mid-buffer, more rows than one
/// dispatch dimension holds) and dropout_forward as `--input-dropout` keys it.
#[test]
fn max_norm_and_input_dropout_match_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let mut rows = Vec::new();
    for (i, (out, inp, w_off)) in [(1, 1, 0), (7, 13, 5), (300, 784, 1001), (65_537, 2, 3)]
        .into_iter()
        .enumerate()
    {
        rows.push(verify::wait(verify::check_max_norm(&g, out, inp, w_off, i as u32)).unwrap());
    }
    for (i, (r, w, row0)) in [(1, 784, 0), (7, 784, 9), (64, 784, 8192), (5, 13, 3)]
        .into_iter()
        .enumerate()
    {
        rows.push(verify::wait(verify::check_input_dropout(&g, r, w, row0, i as u32)).unwrap());
    }
    assert_rows(&rows);
}

/// Whole steps with max-norm on and the inputs dropped: MNIST-shaped (pixels, so the batch is
/// left unpacked for the drop) and a feature table through Adam on the tiled kernels.
#[test]
fn steps_with_max_norm_and_input_dropout_match_the_cpu() {
    let _g = serial();
    let spec = ModelSpec::new(&[128], Activation::Relu, Loss::Xent);
    let optim = OptimConfig {
        max_norm: 1.0,
        ..OptimConfig::sgd(0.9)
    };
    for (input_dropout, dropout) in [(0.0, 0.0), (0.2, 0.3)] {
        let rows = verify::step_checks_with(
            gpu(MatmulVariant::Blocked),
            &spec,
            64,
            4,
            optim,
            dropout,
            input_dropout,
        )
        .unwrap();
        assert_rows(&rows);
    }
    let spec = ModelSpec::with_io(30, &[24], 5, Activation::Relu, Loss::Xent);
    let optim = OptimConfig {
        kind: OptimizerKind::Adam,
        max_norm: 0.8,
        ..OptimConfig::sgd(0.0)
    };
    let rows =
        verify::step_checks_with(gpu(MatmulVariant::Tiled), &spec, 7, 4, optim, 0.0, 0.25).unwrap();
    assert_rows(&rows);
}

/// A batch larger than one chunk (full-batch descent) accumulates its gradient across chunks.
#[test]
fn chunked_batch_steps_match_the_cpu() {
    let _g = serial();
    let spec = ModelSpec::new(&[16], Activation::Relu, Loss::Xent);
    let rows = verify::step_checks(
        gpu(MatmulVariant::Blocked),
        &spec,
        9000,
        2,
        OptimConfig::sgd(0.9),
        0.1,
    )
    .unwrap();
    assert_rows(&rows);
}

/// The scheduler's promise: a step is a fixed list of dispatches, many steps share a submit,
/// and an epoch reads back once.
#[test]
fn an_epoch_submits_in_batches_and_reads_back_once() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let spec = ModelSpec::new(&[32], Activation::Relu, Loss::Xent);
    for (n, batch) in [(640usize, 64usize), (130, 1), (100, 30)] {
        let train = verify::synthetic(n, 1);
        let test = verify::synthetic(10, 2);
        let setup = Setup {
            spec: spec.clone(),
            params: spec.init_params(Init::Auto, 1),
            train: Arc::new(train),
            test: Arc::new(test),
            val: None,
            batch,
            optim: OptimConfig::sgd(0.9),
            dropout: 0.0,
            input_dropout: 0.0,
            seed: 0,
        };
        let mut b = GpuBackend::new(g.clone(), &setup).unwrap();
        let per_step = b.plans()[0].dispatches.len();
        let order = rng::permutation(n, 1, 2);
        let steps = n.div_ceil(batch);
        // A schedule that changes every step costs no write, submit or readback of its own.
        let hyper: Vec<StepHyper> = (0..steps as u64)
            .map(|t| setup.optim.step_hyper(t, 0.01 / (t + 1) as f32))
            .collect();
        b.begin_epoch(&order, &hyper, 0).unwrap();
        for s in 0..steps {
            let len = batch.min(n - s * batch);
            b.step(s, s * batch, len).unwrap();
        }
        assert_eq!(b.counters.readbacks, 0, "no readback inside the epoch");
        let stats = b.end_epoch().unwrap();
        assert_eq!(stats.samples, n);
        assert!(stats.loss_sum.is_finite() && stats.loss_sum > 0.0);
        let c = b.counters;
        assert_eq!(c.steps, steps);
        assert_eq!(c.dispatches, steps * per_step, "{n}/{batch}: {c:?}");
        assert_eq!(
            c.submits,
            steps.div_ceil(STEPS_PER_SUBMIT),
            "{n}/{batch}: {c:?}"
        );
        assert_eq!(c.readbacks, 1, "one readback per epoch: {c:?}");
    }
}

/// `--log-every` on the GPU reads the per-step losses back mid-epoch; they match the CPU's.
#[test]
fn log_every_on_the_gpu_matches_the_cpu() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let mirror = common::mnist_mirror();
    let run = |device: &str| {
        let (ok, out, err) = common::descent(&[
            "train",
            "--quiet",
            "--device",
            device,
            "--limit",
            "1280",
            "--epochs",
            "1",
            "--log-every",
            "5",
            "--data-dir",
            data.to_str().unwrap(),
            "--mirror",
            &mirror,
        ]);
        assert!(ok, "{device}: {out}\n{err}");
        let losses: Vec<f64> = out
            .lines()
            .filter(|l| l.contains("mean of the last"))
            .map(|l| {
                let after = l.split("train loss ").nth(1).unwrap();
                after.split_whitespace().next().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(losses.len(), 4, "{device}: {out}");
        losses
    };
    let (gpu, cpu) = (run("gpu"), run("cpu"));
    for (g, c) in gpu.iter().zip(&cpu) {
        assert!((g - c).abs() <= 2e-4, "gpu {gpu:?} vs cpu {cpu:?}");
    }
}

#[test]
fn device_gpu_with_a_missing_adapter_fails_clearly() {
    let _g = serial();
    let (ok, out, err) = common::descent(&[
        "train",
        "--device",
        "gpu",
        "--adapter",
        "nonexistent",
        "--quiet",
        "--epochs",
        "1",
        "--mirror",
        &common::mnist_mirror(),
        "--data-dir",
        tempfile::tempdir().unwrap().path().to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("no GPU adapter") && err.contains("nonexistent"),
        "{err}"
    );
    assert!(err.contains("mesa-vulkan-drivers"), "{err}");
}

#[test]
fn print_plan_lists_the_step() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mirror = common::mnist_mirror();
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--print-plan",
            "--device",
            "gpu",
            "--limit",
            "1000",
            "--mirror",
            &mirror,
            "--data-dir",
            dir.path().to_str().unwrap(),
        ];
        args.extend(extra);
        let (ok, out, err) = common::descent(&args);
        assert!(ok, "{err}");
        out
    };
    let out = plan(&[]);
    for k in [
        "batch_gather",
        "matmul_forward",
        "output_layer_step",
        "matmul_backward_weight",
        "sgd_update",
    ] {
        assert!(out.contains(k), "plan lacks {k}:\n{out}");
    }
    // gather, layer 0 forward, the output layer's whole step, layer 0's weight gradient, update
    // (mini-batch's default SGD has momentum).
    assert!(
        out.contains("plan train step, 64 samples (5 dispatches)"),
        "{out}"
    );
    assert!(
        out.contains("relu(activations[0]·Wᵀ + b)") || out.contains("relu(xb (packed)·Wᵀ + b)"),
        "activation not fused:\n{out}"
    );
    // Plain SGD runs in both layers' products, so no update kernel is left.
    let out = plan(&["--momentum", "0"]);
    assert!(
        out.contains("plan train step, 64 samples (4 dispatches)"),
        "{out}"
    );
    assert!(!out.contains("sgd_update"), "{out}");
    for fused in [
        "layers.1 logits, losses, weight, bias −= lr[step]·grads",
        "layers.0 weight, bias −= lr[step]·",
    ] {
        assert!(out.contains(fused), "plan lacks {fused}:\n{out}");
    }
}

/// The GPU smoke test: `train --device gpu` on MNIST reaches 97%, and `eval --device gpu` of its
/// checkpoint agrees with the CPU's evaluation.
#[test]
fn gpu_trains_mnist_to_97_percent() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let m = dir.path().join("m.jsonl");
    let ck = dir.path().join("gpu.safetensors");
    let mirror = common::mnist_mirror();
    let (ok, out, err) = common::descent_env(
        &[
            "train",
            "--device",
            "gpu",
            "--quiet",
            "--epochs",
            "4",
            "--batch-size",
            "128",
            "--lr",
            "0.05",
            "--data-dir",
            data.to_str().unwrap(),
            "--metrics",
            m.to_str().unwrap(),
            "--save",
            ck.to_str().unwrap(),
        ],
        &[("MNIST_MIRROR", &mirror), ("DESCENT_VALIDATION", "1")],
    );
    assert!(ok, "{out}\n{err}");
    let last: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&m).unwrap().lines().last().unwrap()).unwrap();
    let acc = last["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.97, "GPU test accuracy {acc}\n{out}");
    assert!(
        last["device"].as_str().unwrap().starts_with("gpu: "),
        "{last}"
    );
    let eval = |device: &str| {
        let (ok, out, err) = common::descent(&[
            "eval",
            "--json",
            "--device",
            device,
            "--checkpoint",
            ck.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
            "--mirror",
            &mirror,
        ]);
        assert!(ok, "{err}");
        serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()
    };
    let (g, c) = (eval("gpu"), eval("cpu"));
    assert_eq!(g["test_accuracy"], c["test_accuracy"]);
    let (gl, cl) = (
        g["test_loss"].as_f64().unwrap(),
        c["test_loss"].as_f64().unwrap(),
    );
    assert!((gl - cl).abs() < 1e-4, "{gl} vs {cl}");
}

/// With no adapter (WGPU_BACKEND names a backend Linux lacks), `auto` falls back to the CPU with
/// a one-line notice and `gpu` is an error that says how to get an adapter.
#[test]
fn auto_falls_back_to_the_cpu_and_gpu_refuses_without_an_adapter() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let mirror = common::mnist_mirror();
    let args = |device: &'static str| {
        vec![
            "train".to_owned(),
            "--device".into(),
            device.into(),
            "--quiet".into(),
            "--epochs".into(),
            "1".into(),
            "--limit".into(),
            "300".into(),
            "--data-dir".into(),
            dir.path().to_str().unwrap().into(),
            "--mirror".into(),
            mirror.clone(),
        ]
    };
    let run = |device| {
        let a = args(device);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        common::descent_env(&a, &[("WGPU_BACKEND", "dx12")])
    };
    let (ok, out, err) = run("auto");
    assert!(ok, "{err}");
    assert!(out.contains("on cpu"), "{out}");
    let notes: Vec<&str> = err.lines().filter(|l| l.starts_with("note:")).collect();
    assert_eq!(notes.len(), 1, "one notice: {err}");
    assert!(notes[0].contains("no GPU adapter"), "{err}");
    let (ok, _, err) = run("gpu");
    assert!(!ok);
    assert!(
        err.contains("no GPU adapter") && err.contains("mesa-vulkan-drivers"),
        "{err}"
    );
}

/// Divergence on the GPU is caught from the per-step losses read at the end of the epoch.
#[test]
fn gpu_divergence_stops_with_epoch_and_step() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = common::descent(&[
        "train",
        "--device",
        "gpu",
        "--quiet",
        "--limit",
        "2000",
        "--epochs",
        "2",
        "--lr",
        "1e6",
        "--loss",
        "mse",
        "--mirror",
        &common::mnist_mirror(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("diverged") && err.contains("epoch 1, step"),
        "{err}"
    );
}

/// `auto` takes a hardware adapter when there is one; a software one (lavapipe) is slower than
/// the CPU path, so then it trains on the CPU with a notice.
#[test]
fn auto_prefers_the_cpu_path_over_a_software_adapter() {
    let _g = serial();
    let software = gpu(MatmulVariant::Blocked).ctx.is_cpu_adapter();
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = common::descent(&[
        "train",
        "--quiet",
        "--epochs",
        "1",
        "--limit",
        "300",
        "--mirror",
        &common::mnist_mirror(),
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    if software {
        assert!(out.contains("on cpu"), "{out}");
        assert!(err.contains("software"), "{err}");
    } else {
        assert!(out.contains("on gpu: "), "{out}");
    }
}

/// Resume on the GPU: a run stopped after epoch 2, saved, loaded into a fresh backend and
/// finished ends where the uninterrupted run ends, within parity tolerance (the same steps on
/// the same adapter; only the round trip of the state through the checkpoint differs).
#[test]
fn resume_on_the_gpu_matches_an_uninterrupted_run() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let make = |setup: Setup| -> Box<dyn Backend> {
        Box::new(GpuBackend::new(g.clone(), &setup).unwrap())
    };
    for (kind, dropout, max_norm) in [
        (OptimizerKind::Sgd, (0.0, 0.0), 0.0),
        (OptimizerKind::Adam, (0.2, 0.1), 1.0),
    ] {
        let optim = OptimConfig {
            kind,
            weight_decay: 1e-3,
            max_norm,
            ..OptimConfig::sgd(0.9)
        };
        let (straight, resumed) = common::straight_and_resumed(&make, optim, dropout, 4, 2);
        let rows = [
            verify::compare(
                "resume: params",
                format!("{kind:?}"),
                &resumed.0,
                &straight.0,
                1e-5,
                1e-4,
            ),
            verify::compare(
                "resume: state",
                format!("{kind:?}"),
                &resumed.1.concat(),
                &straight.1.concat(),
                1e-5,
                1e-4,
            ),
        ];
        assert_rows(&rows);
    }
}

/// batch_gather_features against its twin: widths off the vec4 and workgroup sizes, and a
/// table held in parts of a few rows (as a split bigger than one binding is).
#[test]
fn batch_gather_features_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let rows: Vec<CheckRow> = [(1, 4, 300), (7, 30, 100), (33, 3, 120), (100, 3072, 128)]
        .into_iter()
        .enumerate()
        .map(|(i, (b, w, parts))| {
            verify::wait(verify::check_batch_gather_features(
                &g, b, w, parts, i as u32,
            ))
            .unwrap()
        })
        .collect();
    assert_rows(&rows);
}

/// Whole steps and evaluation on models of any input width and class count, trained from f32
/// features: the same gradients, losses, parameters and test accuracy on both paths.
#[test]
fn any_shape_steps_match_the_cpu() {
    let _g = serial();
    for (variant, inputs, hidden, classes, act, loss, batch) in [
        (
            MatmulVariant::Blocked,
            4,
            &[16][..],
            3,
            Activation::Relu,
            Loss::Xent,
            16,
        ),
        (
            MatmulVariant::Blocked,
            30,
            &[8][..],
            2,
            Activation::Tanh,
            Loss::Mse,
            7,
        ),
        // Ten classes from 64 features: output_layer_step runs the head.
        (
            MatmulVariant::Blocked,
            64,
            &[32][..],
            10,
            Activation::Relu,
            Loss::Xent,
            33,
        ),
        (
            MatmulVariant::Blocked,
            3072,
            &[20][..],
            100,
            Activation::Relu,
            Loss::Xent,
            9,
        ),
        (
            MatmulVariant::Tiled,
            13,
            &[5, 7][..],
            3,
            Activation::Sigmoid,
            Loss::Xent,
            5,
        ),
        (
            MatmulVariant::Blocked,
            5,
            &[][..],
            2,
            Activation::Relu,
            Loss::Xent,
            4,
        ),
    ] {
        let spec = ModelSpec::with_io(inputs, hidden, classes, act, loss);
        let rows =
            verify::step_checks(gpu(variant), &spec, batch, 4, OptimConfig::sgd(0.9), 0.0).unwrap();
        assert_rows(&rows);
    }
}

/// apply_mask against its twin: pruned weights and their optimizer state come out +0 (NaN
/// inputs included), kept ones untouched, SGD's placeholder state2 left alone.
#[test]
fn apply_mask_matches_cpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    let mut rows = Vec::new();
    for (i, (n, states, sparsity)) in [
        (1, 1, 0.5),
        (255, 2, 0.9),
        (101_770, 2, 0.98),
        (266_610, 1, 0.92),
    ]
    .into_iter()
    .enumerate()
    {
        rows.push(
            verify::wait(verify::check_apply_mask(&g, n, states, sparsity, i as u32)).unwrap(),
        );
    }
    assert_rows(&rows);
}

/// Fine-tuning with a mask on the GPU: every pruned weight and its momentum or Adam moments stay
/// exactly zero through whole epochs of steps, and the result matches the CPU's.
#[test]
fn masked_training_holds_pruned_weights_at_zero_on_the_gpu() {
    let _g = serial();
    let g = gpu(MatmulVariant::Blocked);
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let make =
            |s: Setup| -> Box<dyn Backend> { Box::new(GpuBackend::new(g.clone(), &s).unwrap()) };
        let (p, st, mask, start) = common::masked_finetune(&make, kind);
        common::assert_mask_held(&p, &st, &mask, &start);
        let cpu = |s: Setup| -> Box<dyn Backend> { Box::new(descent::cpu::CpuBackend::new(s)) };
        let (cp, _, _, _) = common::masked_finetune(&cpu, kind);
        let row = verify::compare("masked training", format!("{kind:?}"), &p, &cp, 1e-4, 1e-3);
        assert_rows(&[row]);
    }
    g.ctx.check_errors().expect("no validation errors");
}

/// A training table larger than one storage binding (forced small with
/// DESCENT_MAX_STORAGE_BINDING) is held in several bindings: training on the GPU gives the same
/// losses as with the table in one binding, and as the CPU within tolerance.
#[test]
fn a_table_bigger_than_one_binding_trains_the_same() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let mut s = String::new();
    for i in 0..6000u32 {
        let c = i % 3;
        let row: Vec<String> = (0..16u32)
            .map(|j| {
                let v =
                    (rng::hash3(1, j, i) % 1000) as f32 / 1000.0 + if j == c { 2.0 } else { 0.0 };
                format!("{v:.3}")
            })
            .collect();
        s.push_str(&format!("{},c{c}\n", row.join(",")));
    }
    std::fs::write(&csv, s).unwrap();
    let src = format!("csv:{}", csv.display());
    let run = |device: &str, cap: Option<&str>, name: &str| -> Vec<f64> {
        let m = dir.path().join(name);
        let args = [
            "train",
            "--quiet",
            "--device",
            device,
            "--data",
            &src,
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--metrics",
            m.to_str().unwrap(),
        ];
        let env: Vec<(&str, &str)> = cap
            .map(|c| ("DESCENT_MAX_STORAGE_BINDING", c))
            .into_iter()
            .collect();
        let (ok, out, err) = common::descent_env(&args, &env);
        assert!(ok, "{device} {cap:?}: {out}\n{err}");
        std::fs::read_to_string(&m)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };
    // 4800 training rows of 16 f32: 307 KB, three parts of 2343 rows under a 150 KB cap (one
    // 2000-row evaluation chunk of 16 activations, 128 KB, still fits).
    let split = run("gpu", Some("150000"), "split.jsonl");
    let whole = run("gpu", None, "whole.jsonl");
    let cpu = run("cpu", None, "cpu.jsonl");
    assert_eq!(split, whole, "the split table trains differently");
    for (g, c) in split.iter().zip(&cpu) {
        assert!(
            (g - c).abs() <= 1e-4 + 1e-3 * c.abs(),
            "gpu {split:?} vs cpu {cpu:?}"
        );
    }
}

/// A device with `--kernel` `variant` (None: auto) whose tuning cache lives in `dir`.
fn gpu_cached(dir: &std::path::Path, variant: Option<MatmulVariant>) -> Arc<Gpu> {
    let opts = GpuOptions {
        validation: true,
        cache_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    Arc::new(Gpu::new(&opts, variant).unwrap())
}

/// A small model's backend on `g`: 784-32-10 at batch 16 (its input layer may read the batch
/// packed), so tuning stays cheap.
fn small_backend(g: Arc<Gpu>) -> GpuBackend {
    let spec = ModelSpec::new(&[32], Activation::Relu, Loss::Xent);
    let setup = Setup {
        spec: spec.clone(),
        params: spec.init_params(Init::Auto, 1),
        train: Arc::new(verify::synthetic(64, 1)),
        test: Arc::new(verify::synthetic(8, 2)),
        val: None,
        batch: 16,
        optim: OptimConfig::sgd(0.9),
        dropout: 0.0,
        input_dropout: 0.0,
        seed: 0,
    };
    GpuBackend::new(g, &setup).unwrap()
}

/// The forms of the training step's matrix products, in plan order.
fn step_forms(b: &GpuBackend) -> Vec<Form> {
    b.plans()[0]
        .dispatches
        .iter()
        .filter(|d| d.kernel.is_matmul())
        .map(|d| d.form)
        .collect()
}

fn cache_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join(descent::gpu::tune::CACHE_FILE)
}

/// `--kernel auto` times the forms and takes the fastest that passes parity; the plan runs
/// what it chose; a second device on the same cache reads the choices without measuring.
#[test]
fn auto_tuning_chooses_forms_that_pass_parity_and_a_second_open_reads_the_cache() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    let b = small_backend(gpu_cached(dir.path(), None));
    let r = b.tuning().clone();
    assert!(r.measured() > 0 && r.from_cache() == 0, "{r}");
    for e in &r.entries {
        let chosen = e.candidates.iter().find(|c| match e.pair {
            true => c.form == e.chosen.name() || e.chosen != Form::Input,
            false => c.form == e.chosen.name(),
        });
        let c = chosen.unwrap_or_else(|| panic!("{} chose a form it did not time:\n{r}", e.what));
        assert_eq!(
            c.parity,
            Some(true),
            "{}: chosen form unchecked\n{r}",
            e.what
        );
        // Every candidate that was checked and failed is not the one chosen.
        assert!(e.candidates.iter().all(|c| c.micros.is_some()), "{r}");
        // A form left untimed (only probed) was estimated slower than the fastest one timed
        // for the same product (a pair lists each product after its packed form).
        let products: Vec<&[_]> = match e.pair {
            true => e.candidates.split(|c| c.form == "input").skip(1).collect(),
            false => vec![&e.candidates[..]],
        };
        for cands in products {
            let timed = cands.iter().filter(|c| !c.estimate);
            let best = timed.filter_map(|c| c.micros).fold(f64::INFINITY, f64::min);
            assert!(best.is_finite(), "{}: nothing timed\n{r}", e.what);
            for c in cands.iter().filter(|c| c.estimate) {
                assert!(c.micros.unwrap_or(0.0) >= best, "{}: {c:?}\n{r}", e.what);
            }
        }
    }
    // The first runs (shader compiles on lavapipe) are a part of the tuning time.
    assert!(
        r.compile > std::time::Duration::ZERO && r.compile <= r.elapsed,
        "{r}"
    );
    let forms = step_forms(&b);
    for e in r.entries.iter().filter(|e| !e.pair) {
        assert!(
            forms.contains(&e.chosen),
            "plan {forms:?} lacks {:?}\n{r}",
            e.chosen
        );
    }
    assert!(cache_file(dir.path()).exists(), "no cache written\n{r}");
    // A new device: the memory is empty, the file answers.
    let b2 = small_backend(gpu_cached(dir.path(), None));
    let r2 = b2.tuning();
    assert_eq!(r2.measured(), 0, "{r2}");
    assert_eq!(r2.from_cache(), r.entries.len(), "{r2}");
    assert_eq!(r2.elapsed, std::time::Duration::ZERO);
    assert_eq!(step_forms(&b2), forms);
    assert_eq!(
        b2.plans()[0].dispatches.len(),
        b.plans()[0].dispatches.len()
    );
}

/// A corrupt cache file is reported, ignored, and rewritten with the new measurements.
#[test]
fn a_corrupt_tuning_cache_is_ignored_and_rewritten() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(cache_file(dir.path()), "{\"format\": 1, \"entries\": [tru").unwrap();
    let b = small_backend(gpu_cached(dir.path(), None));
    let r = b.tuning();
    assert!(r.measured() > 0, "{r}");
    assert!(
        r.cache_notes.iter().any(|n| n.contains("corrupt")),
        "no note of the corrupt file:\n{r}"
    );
    let text = std::fs::read_to_string(cache_file(dir.path())).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).expect("the cache was rewritten");
    let entries = v["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), r.measured(), "{text}");
    assert!(
        entries
            .iter()
            .all(|e| e["form"].is_string() && e["key"].is_string())
    );
}

/// `--kernel tiled` and `--kernel blocked` force their forms whatever the cache says.
#[test]
fn kernel_flag_overrides_the_tuning_cache() {
    let _g = serial();
    let dir = tempfile::tempdir().unwrap();
    // Fill the cache, then make every cached choice the scalar form.
    drop(small_backend(gpu_cached(dir.path(), None)));
    let path = cache_file(dir.path());
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for e in v["entries"].as_array_mut().unwrap() {
        e["form"] = "scalar".into();
    }
    std::fs::write(&path, v.to_string()).unwrap();
    // Auto follows the file: unpacked, and scalar wherever the file answers (the products
    // the packed pair had covered are timed now).
    let auto = small_backend(gpu_cached(dir.path(), None));
    let r = auto.tuning();
    assert!(r.from_cache() > 0, "{r}");
    for e in r.entries.iter().filter(|e| e.source == Source::Cache) {
        assert_eq!(e.chosen, Form::Scalar, "{r}");
    }
    assert!(!step_forms(&auto).contains(&Form::Input), "{r}");
    let tiled = small_backend(gpu_cached(dir.path(), Some(MatmulVariant::Tiled)));
    assert!(tiled.tuning().entries.is_empty());
    assert_eq!(tiled.tuning().policy, MatmulVariant::Tiled);
    assert!(step_forms(&tiled).iter().all(|&f| f == Form::Tiled));
    let blocked = small_backend(gpu_cached(dir.path(), Some(MatmulVariant::Blocked)));
    assert!(blocked.tuning().entries.is_empty());
    // lavapipe: the packed batch, read by the Input form, as without a cache.
    assert_eq!(step_forms(&blocked), vec![Form::Input, Form::Input]);
}

/// The subgroup kernels for 8, 16, 32 and 64 lanes, run through workgroup memory (the same lane
/// arithmetic as with shuffles), match the CPU at awkward shapes and through whole steps.
#[test]
fn subgroup_forms_for_every_lane_width_match_cpu() {
    let _g = serial();
    for lanes in [8, 16, 32, 64] {
        let opts = GpuOptions {
            validation: true,
            emulate_lanes: Some(lanes),
            no_tune_cache: true,
            ..Default::default()
        };
        let g = Arc::new(Gpu::new(&opts, Some(MatmulVariant::Blocked)).unwrap());
        assert_eq!(g.kernels.lanes.map(|l| l.lanes), Some(lanes));
        let mut rows = Vec::new();
        for (i, &s) in SHAPES.iter().enumerate() {
            let [fwd, _, bwd] = verify::forms(&g, s);
            if fwd.contains(&Form::Subgroup) {
                rows.push(
                    verify::wait(verify::check_matmul_forward(
                        &g,
                        s,
                        Form::Subgroup,
                        i as u32,
                    ))
                    .unwrap(),
                );
            }
            if bwd.contains(&Form::Subgroup) {
                rows.push(
                    verify::wait(verify::check_matmul_backward_weight_bias(
                        &g,
                        s,
                        i % 2 == 0,
                        Form::Subgroup,
                        i as u32,
                    ))
                    .unwrap(),
                );
            }
        }
        for (i, &(b, n)) in verify::INPUT_SHAPES.iter().enumerate() {
            rows.push(
                verify::wait(verify::check_matmul_input(
                    &g,
                    b,
                    n,
                    i % 2 == 1,
                    false,
                    (i % 4 == 3).then_some(0.1),
                    i as u32,
                ))
                .unwrap(),
            );
        }
        assert!(rows.len() >= 10, "{lanes} lanes: only {} cases", rows.len());
        assert_rows(&rows);
        // The default model's step reads its batch packed through the Input form.
        let spec = ModelSpec::new(&[128], Activation::Relu, Loss::Xent);
        assert_rows(
            &verify::step_checks(g.clone(), &spec, 64, 2, OptimConfig::sgd(0.9), 0.0).unwrap(),
        );
        g.ctx.check_errors().expect("no validation errors");
        // The shuffle versions of this width cannot run correctly here (8-wide subgroups), but
        // they must compile and validate: what a GPU of that width will build.
        if lanes != 8 {
            let shuffles = Lanes {
                lanes,
                shared: false,
            };
            let k = Kernels::with_lanes(&g.ctx, MatmulVariant::Blocked, Some(shuffles)).unwrap();
            assert!(k.has_matmul_form(Form::Subgroup) && k.has_matmul_form(Form::Input));
        }
    }
}
