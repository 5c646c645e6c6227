//! The CPU twins of shaders/optim.wgsl: one update rule each, as PyTorch defines it, over a flat
//! slice of parameters. Arguments go outputs (the parameters and the optimizer state, updated in
//! place), then inputs (the gradient), then the hyperparameters. `lr`, `bc1` and `bc2` come from
//! the step's [`crate::optim::StepHyper`].

use crate::optim::{OptimConfig, OptimizerKind, StepHyper};

/// torch.optim.SGD: g += λ·p; v = μ·v + g; p −= lr·v. At μ = 0 (plain SGD) v is g and, as
/// PyTorch keeps no momentum buffer then, `velocity` is neither read nor written.
pub fn sgd_update(
    params: &mut [f32],
    velocity: &mut [f32],
    grads: &[f32],
    lr: f32,
    momentum: f32,
    weight_decay: f32,
) {
    momentum_step(params, velocity, grads, lr, momentum, weight_decay, false);
}

/// torch.optim.SGD(nesterov=True): g += λ·p; v = μ·v + g; p −= lr·(g + μ·v).
pub fn nesterov_update(
    params: &mut [f32],
    velocity: &mut [f32],
    grads: &[f32],
    lr: f32,
    momentum: f32,
    weight_decay: f32,
) {
    momentum_step(params, velocity, grads, lr, momentum, weight_decay, true);
}

/// The SGD family's step; Nesterov steps along g + μ·v instead of v.
fn momentum_step(
    params: &mut [f32],
    velocity: &mut [f32],
    grads: &[f32],
    lr: f32,
    momentum: f32,
    weight_decay: f32,
    nesterov: bool,
) {
    if momentum == 0.0 {
        // Nesterov's g + μ·v is g too.
        for (p, &g) in params.iter_mut().zip(grads) {
            *p -= lr * (g + weight_decay * *p);
        }
        return;
    }
    for ((p, v), &g) in params.iter_mut().zip(velocity.iter_mut()).zip(grads) {
        let g = g + weight_decay * *p;
        *v = momentum * *v + g;
        let dir = if nesterov { g + momentum * *v } else { *v };
        *p -= lr * dir;
    }
}

/// torch.optim.Adam: g += λ·p; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
/// p −= (lr / bc1) · m / (√v / √bc2 + ε), with bc = 1 − β^t.
#[allow(clippy::too_many_arguments)]
pub fn adam_update(
    params: &mut [f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    grads: &[f32],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
) {
    let c = AdamStep {
        lr,
        beta1,
        beta2,
        eps,
        bc1,
        bc2,
    };
    c.run(params, exp_avg, exp_avg_sq, grads, weight_decay, 1.0);
}

/// torch.optim.AdamW: p *= 1 − lr·λ (decoupled decay), then Adam's step without L2.
#[allow(clippy::too_many_arguments)]
pub fn adamw_update(
    params: &mut [f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    grads: &[f32],
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    bc1: f32,
    bc2: f32,
) {
    let c = AdamStep {
        lr,
        beta1,
        beta2,
        eps,
        bc1,
        bc2,
    };
    c.run(
        params,
        exp_avg,
        exp_avg_sq,
        grads,
        0.0,
        1.0 - lr * weight_decay,
    );
}

/// Adam's step, shared by Adam (L2 in the gradient) and AdamW (a decay of the weight first).
struct AdamStep {
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    bc1: f32,
    bc2: f32,
}

impl AdamStep {
    fn run(
        &self,
        params: &mut [f32],
        exp_avg: &mut [f32],
        exp_avg_sq: &mut [f32],
        grads: &[f32],
        l2: f32,
        decay: f32,
    ) {
        let step = self.lr / self.bc1;
        let sqrt_bc2 = self.bc2.sqrt();
        let (b1, b2) = (self.beta1, self.beta2);
        for (((p, m), v), &g) in params
            .iter_mut()
            .zip(exp_avg.iter_mut())
            .zip(exp_avg_sq.iter_mut())
            .zip(grads)
        {
            *p *= decay;
            let g = g + l2 * *p;
            *m = b1 * *m + (1.0 - b1) * g;
            *v = b2 * *v + (1.0 - b2) * g * g;
            *p -= step * *m / (v.sqrt() / sqrt_bc2 + self.eps);
        }
    }
}

/// Runs the configured rule over one slice. `state1` is the momentum buffer or exp_avg,
/// `state2` exp_avg_sq (empty for the SGD family).
pub fn optimizer_update(
    params: &mut [f32],
    state1: &mut [f32],
    state2: &mut [f32],
    grads: &[f32],
    cfg: &OptimConfig,
    h: &StepHyper,
) {
    let (wd, lr) = (cfg.weight_decay, h.lr);
    match cfg.kind {
        OptimizerKind::Sgd => sgd_update(params, state1, grads, lr, cfg.momentum, wd),
        OptimizerKind::Nesterov => nesterov_update(params, state1, grads, lr, cfg.momentum, wd),
        OptimizerKind::Adam => adam_update(
            params, state1, state2, grads, lr, cfg.beta1, cfg.beta2, cfg.eps, wd, h.bc1, h.bc2,
        ),
        OptimizerKind::Adamw => adamw_update(
            params, state1, state2, grads, lr, cfg.beta1, cfg.beta2, cfg.eps, wd, h.bc1, h.bc2,
        ),
    }
}

#[cfg(test)]
mod tests {
    //! Each rule against values worked out by hand from PyTorch's documented formulas.
    use super::*;

    #[test]
    fn sgd_with_momentum_and_weight_decay() {
        // p = 1, g = 0.5, λ = 0.1 → g' = 0.6; v = 0.9·0.2 + 0.6 = 0.78; p = 1 − 0.1·0.78.
        let (mut p, mut v) = ([1.0f32], [0.2f32]);
        sgd_update(&mut p, &mut v, &[0.5], 0.1, 0.9, 0.1);
        assert!((v[0] - 0.78).abs() < 1e-7);
        assert!((p[0] - 0.922).abs() < 1e-7);
        // Plain SGD: p −= lr·g.
        let (mut p, mut v) = ([1.0f32], [0.0f32]);
        sgd_update(&mut p, &mut v, &[0.5], 0.1, 0.0, 0.0);
        assert!((p[0] - 0.95).abs() < 1e-7);
    }

    #[test]
    fn nesterov_looks_ahead() {
        // g = 0.5, v0 = 0.2, μ = 0.9: v = 0.68; p = 1 − 0.1·(0.5 + 0.9·0.68) = 0.8888.
        let (mut p, mut v) = ([1.0f32], [0.2f32]);
        nesterov_update(&mut p, &mut v, &[0.5], 0.1, 0.9, 0.0);
        assert!((v[0] - 0.68).abs() < 1e-7);
        assert!((p[0] - 0.8888).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // At t = 1 the bias-corrected m̂ = g and v̂ = g², so the step is lr·g/(|g| + ε) ≈ lr.
        let (mut p, mut m, mut v) = ([1.0f32], [0.0f32], [0.0f32]);
        let (b1, b2) = (0.9f32, 0.999f32);
        adam_update(
            &mut p,
            &mut m,
            &mut v,
            &[0.5],
            0.01,
            b1,
            b2,
            1e-8,
            0.0,
            1.0 - b1,
            1.0 - b2,
        );
        assert!((m[0] - 0.05).abs() < 1e-7);
        // (1 − β2 in f32) · g²: within f32 rounding of 0.00025.
        assert!((v[0] - 0.00025).abs() < 1e-7 * 0.25);
        assert!((p[0] - 0.99).abs() < 1e-6, "{}", p[0]);
    }

    #[test]
    fn adam_second_step_by_hand() {
        // Step 2 with g = 0.5 then g = −0.25, β = (0.9, 0.999), ε = 1e-8, lr = 0.01:
        // m = 0.9·0.05 + 0.1·(−0.25) = 0.02; v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225;
        // m̂ = 0.02/0.19; v̂ = 0.00031225/0.001999; p = 0.99 − 0.01·m̂/(√v̂ + ε).
        let (mut p, mut m, mut v) = ([0.99f32], [0.05f32], [0.00025f32]);
        let (b1, b2) = (0.9f32, 0.999f32);
        let bc1 = 1.0 - b1 * b1;
        let bc2 = 1.0 - b2 * b2;
        adam_update(
            &mut p,
            &mut m,
            &mut v,
            &[-0.25],
            0.01,
            b1,
            b2,
            1e-8,
            0.0,
            bc1,
            bc2,
        );
        let mhat = 0.02f64 / 0.19;
        let vhat = 0.00031225f64 / (1.0 - 0.999f64 * 0.999);
        let want = 0.99 - 0.01 * mhat / (vhat.sqrt() + 1e-8);
        assert!((p[0] as f64 - want).abs() < 1e-6, "{} vs {want}", p[0]);
    }

    #[test]
    fn adam_adds_l2_to_the_gradient_adamw_decays_the_weight() {
        let (b1, b2) = (0.9f32, 0.999f32);
        // Adam with λ = 0.1 on p = 1, g = 0: the gradient becomes 0.1 and the first step is ≈ lr.
        let (mut p, mut m, mut v) = ([1.0f32], [0.0f32], [0.0f32]);
        adam_update(
            &mut p,
            &mut m,
            &mut v,
            &[0.0],
            0.01,
            b1,
            b2,
            1e-8,
            0.1,
            1.0 - b1,
            1.0 - b2,
        );
        assert!((p[0] - 0.99).abs() < 1e-6);
        // AdamW with λ = 0.1, g = 0: p = 1·(1 − 0.01·0.1) and no Adam step (m = 0).
        let (mut p, mut m, mut v) = ([1.0f32], [0.0f32], [0.0f32]);
        adamw_update(
            &mut p,
            &mut m,
            &mut v,
            &[0.0],
            0.01,
            b1,
            b2,
            1e-8,
            0.1,
            1.0 - b1,
            1.0 - b2,
        );
        assert!((p[0] - 0.999).abs() < 1e-7);
        assert_eq!(m[0], 0.0);
    }
}
