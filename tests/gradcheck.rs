//! The CPU backprop against central finite differences: every activation, both losses, several
//! layer shapes, batch 1 and odd batches.

use descent::cpu;
use descent::model::{Activation, Init, Loss, ModelSpec};
use descent::rng;

fn check(sizes: &[usize], activation: Activation, loss: Loss, batch: usize, seed: u32) {
    let spec = ModelSpec {
        sizes: sizes.to_vec(),
        activation,
        loss,
    };
    let mut params = spec.init_params(Init::Auto, seed);
    // Non-zero biases, so their gradients are exercised away from the trivial point.
    for l in spec.layers() {
        for (j, b) in params[l.b_off..l.b_off + l.out].iter_mut().enumerate() {
            *b = 0.1 * (rng::uniform(seed, 99, (l.b_off + j) as u32) - 0.5);
        }
    }
    let x: Vec<f32> = (0..batch * sizes[0])
        .map(|i| rng::uniform(seed, rng::stream::TEST_DATA, i as u32))
        .collect();
    let labels: Vec<u32> = (0..batch)
        .map(|i| rng::hash3(seed, 7, i as u32) % 10)
        .collect();
    let (_, grads) = cpu::loss_and_grads(&spec, &params, &x, &labels);

    // Small enough that a relu rarely changes side between the two probes, large enough for f32.
    let eps = 2e-3f32;
    let mut worst = (0usize, 0.0f64);
    // Every parameter for small models; a strided sample for larger ones.
    let stride = (params.len() / 400).max(1);
    for i in (0..params.len()).step_by(stride) {
        let orig = params[i];
        params[i] = orig + eps;
        let (lp, _) = cpu::loss_and_grads(&spec, &params, &x, &labels);
        params[i] = orig - eps;
        let (lm, _) = cpu::loss_and_grads(&spec, &params, &x, &labels);
        params[i] = orig;
        let numeric = (lp - lm) / (2.0 * eps as f64);
        let analytic = grads[i] as f64;
        let diff = (numeric - analytic).abs();
        let tol = 2e-4 + 2e-2 * analytic.abs();
        assert!(
            diff <= tol,
            "{sizes:?} {activation:?} {loss:?} batch {batch}: param {i}: analytic {analytic:.6e}, \
             numeric {numeric:.6e}, |diff| {diff:.3e} > {tol:.3e}"
        );
        if diff > worst.1 {
            worst = (i, diff);
        }
    }
    eprintln!(
        "{sizes:?} {activation:?} {loss:?} batch {batch}: worst |diff| {:.2e} at param {}",
        worst.1, worst.0
    );
}

const ACTIVATIONS: [Activation; 3] = [Activation::Relu, Activation::Sigmoid, Activation::Tanh];
const LOSSES: [Loss; 2] = [Loss::Xent, Loss::Mse];

#[test]
fn gradients_match_finite_differences_every_activation_and_loss() {
    for (k, &a) in ACTIVATIONS.iter().enumerate() {
        for (m, &l) in LOSSES.iter().enumerate() {
            let seed = (10 * k + m) as u32;
            check(&[13, 9, 10], a, l, 7, seed);
            check(&[13, 9, 10], a, l, 1, seed + 100);
        }
    }
}

#[test]
fn gradients_match_finite_differences_other_shapes() {
    // Softmax regression (no hidden layer), two hidden layers, and a wide first layer.
    check(&[20, 10], Activation::Relu, Loss::Xent, 5, 1);
    check(&[20, 10], Activation::Relu, Loss::Mse, 1, 2);
    check(&[11, 17, 6, 10], Activation::Tanh, Loss::Xent, 3, 3);
    check(&[11, 17, 6, 10], Activation::Sigmoid, Loss::Mse, 9, 4);
    check(&[784, 33, 10], Activation::Relu, Loss::Xent, 4, 5);
}

#[test]
fn gradient_of_a_batch_is_the_mean_of_per_sample_gradients() {
    let spec = ModelSpec {
        sizes: vec![8, 6, 10],
        activation: Activation::Tanh,
        loss: Loss::Xent,
    };
    let params = spec.init_params(Init::Auto, 3);
    let b = 5;
    let x: Vec<f32> = (0..b * 8).map(|i| rng::uniform(3, 1, i as u32)).collect();
    let labels: Vec<u32> = (0..b).map(|i| i as u32 % 10).collect();
    let (_, whole) = cpu::loss_and_grads(&spec, &params, &x, &labels);
    let mut mean = vec![0.0f32; params.len()];
    for i in 0..b {
        let (_, g) = cpu::loss_and_grads(&spec, &params, &x[i * 8..(i + 1) * 8], &labels[i..i + 1]);
        mean.iter_mut()
            .zip(&g)
            .for_each(|(m, g)| *m += g / b as f32);
    }
    for (i, (w, m)) in whole.iter().zip(&mean).enumerate() {
        assert!((w - m).abs() < 1e-5, "param {i}: {w} vs {m}");
    }
}
