//! The optimizer family and the learning-rate schedules, as configuration: which update rule
//! runs (its CPU twins are in `cpu/optim.rs`, its WGSL kernels in `shaders/optim.wgsl`) and the
//! per-step coefficients every backend is handed. The training loop sees only [`StepHyper`]s;
//! it never knows which rule runs.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with optional momentum (0 = plain), PyTorch's `torch.optim.SGD`.
    Sgd,
    /// SGD with Nesterov momentum (`SGD(nesterov=True)`).
    Nesterov,
    /// Adam with L2 weight decay added to the gradient (`torch.optim.Adam`).
    Adam,
    /// Adam with decoupled weight decay (`torch.optim.AdamW`).
    Adamw,
}

impl OptimizerKind {
    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::Nesterov => "nesterov",
            OptimizerKind::Adam => "adam",
            OptimizerKind::Adamw => "adamw",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Sgd, Self::Nesterov, Self::Adam, Self::Adamw]
            .into_iter()
            .find(|k| k.name() == s)
    }

    /// The optimizer's state tensors, by PyTorch's names: one for the SGD family
    /// (`momentum_buffer`), two for Adam (`exp_avg`, `exp_avg_sq`).
    pub fn state_names(self) -> &'static [&'static str] {
        match self {
            OptimizerKind::Sgd | OptimizerKind::Nesterov => &["momentum_buffer"],
            OptimizerKind::Adam | OptimizerKind::Adamw => &["exp_avg", "exp_avg_sq"],
        }
    }

    pub fn is_adam(self) -> bool {
        matches!(self, OptimizerKind::Adam | OptimizerKind::Adamw)
    }
}

/// An update rule with its constant hyperparameters (the learning rate varies per step and
/// comes in a [`StepHyper`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    /// SGD and Nesterov momentum μ.
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    /// L2 (sgd, nesterov, adam) or decoupled (adamw) weight decay λ.
    pub weight_decay: f32,
    /// Max-norm constraint c (0 = off): after every update, each unit's incoming weight vector
    /// (a row of every layer's `[out, in]` weight, the output layer's included) longer than c
    /// is scaled back to length c. Older checkpoints have no such field: off.
    #[serde(default)]
    pub max_norm: f32,
}

impl OptimConfig {
    pub fn sgd(momentum: f32) -> Self {
        OptimConfig {
            kind: OptimizerKind::Sgd,
            momentum,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_norm: 0.0,
        }
    }

    /// Checks every value against its flag's range.
    pub fn check(&self) -> Result<()> {
        let bad = |flag: &str, v: f32, range: &str| {
            Err(Error::InvalidArg(format!("{flag} {v}: must be {range}")))
        };
        if !(self.momentum.is_finite() && (0.0..1.0).contains(&self.momentum)) {
            return bad("--momentum", self.momentum, "at least 0 and below 1");
        }
        if self.kind == OptimizerKind::Nesterov && self.momentum == 0.0 {
            return Err(Error::InvalidArg(
                "--optimizer nesterov needs --momentum above 0 (0 would be plain sgd)".into(),
            ));
        }
        if !(self.beta1.is_finite() && (0.0..1.0).contains(&self.beta1)) {
            return bad("--beta1", self.beta1, "at least 0 and below 1");
        }
        if !(self.beta2.is_finite() && (0.0..1.0).contains(&self.beta2)) {
            return bad("--beta2", self.beta2, "at least 0 and below 1");
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad("--eps", self.eps, "a finite number above 0");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "--weight-decay",
                self.weight_decay,
                "a finite number, 0 or more",
            );
        }
        if !(self.max_norm.is_finite() && self.max_norm >= 0.0) {
            return bad(
                "--max-norm",
                self.max_norm,
                "a finite number, 0 (off) or more",
            );
        }
        Ok(())
    }

    /// One line for the run's header.
    pub fn describe(&self) -> String {
        let mut wd = if self.weight_decay > 0.0 {
            format!(", weight decay {}", self.weight_decay)
        } else {
            String::new()
        };
        if self.max_norm > 0.0 {
            wd.push_str(&format!(", max-norm {}", self.max_norm));
        }
        match self.kind {
            OptimizerKind::Sgd if self.momentum == 0.0 => format!("sgd{wd}"),
            OptimizerKind::Sgd | OptimizerKind::Nesterov => {
                format!("{} (momentum {}){wd}", self.kind.name(), self.momentum)
            }
            OptimizerKind::Adam | OptimizerKind::Adamw => format!(
                "{} (betas {}, {}, eps {:e}){wd}",
                self.kind.name(),
                self.beta1,
                self.beta2,
                self.eps
            ),
        }
    }

    /// The per-step coefficients for global step `t` (0-based) at learning rate `lr`: Adam's
    /// bias corrections 1 − β^(t+1), computed in f64 so both backends get the same f32s.
    pub fn step_hyper(&self, t: u64, lr: f32) -> StepHyper {
        let n = (t + 1) as f64;
        let (bc1, bc2) = if self.kind.is_adam() {
            (
                (1.0 - (self.beta1 as f64).powf(n)) as f32,
                (1.0 - (self.beta2 as f64).powf(n)) as f32,
            )
        } else {
            (1.0, 1.0)
        };
        StepHyper {
            lr,
            bc1,
            bc2,
            t: t as u32,
        }
    }
}

/// What one step's update needs beyond the fixed configuration. The GPU keeps an epoch's worth
/// in a table (one write per epoch) and each step's kernels read their own row, so a schedule
/// costs no per-step write, submit or readback.
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct StepHyper {
    pub lr: f32,
    /// 1 − β1^t and 1 − β2^t (1 for the SGD family).
    pub bc1: f32,
    pub bc2: f32,
    /// The global step (0-based): keys the dropout masks.
    pub t: u32,
}

/// `--lr-schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    Constant,
    /// × gamma every `--lr-step` epochs (PyTorch's StepLR).
    Step,
    /// Cosine annealing from lr to `--min-lr` over the run, after the warm-up.
    Cosine,
    /// The one-cycle policy: warm-up from lr/25 to lr (30% of the run unless a warm-up is
    /// given), then cosine annealing down to `--min-lr`.
    Onecycle,
}

impl ScheduleKind {
    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Constant => "constant",
            ScheduleKind::Step => "step",
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Onecycle => "onecycle",
        }
    }
}

/// A learning rate as a function of the global step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub lr: f32,
    pub min_lr: f32,
    /// Linear warm-up steps (from lr/warmup_steps up to lr).
    pub warmup_steps: u64,
    /// Step schedule: decay every this many steps, by `gamma`.
    pub step_every: u64,
    pub gamma: f32,
    /// The run's total number of steps (cosine and one-cycle end there).
    pub total_steps: u64,
}

impl Schedule {
    pub fn constant(lr: f32) -> Self {
        Schedule {
            kind: ScheduleKind::Constant,
            lr,
            min_lr: 0.0,
            warmup_steps: 0,
            step_every: u64::MAX,
            gamma: 1.0,
            total_steps: 1,
        }
    }

    pub fn check(&self) -> Result<()> {
        self.check_rates()?;
        if self.warmup_steps >= self.total_steps && self.total_steps > 1 {
            return Err(Error::InvalidArg(format!(
                "the warm-up ({} steps) is as long as the whole run ({} steps)",
                self.warmup_steps, self.total_steps
            )));
        }
        Ok(())
    }

    /// The checks that need no knowledge of the run's length.
    pub fn check_rates(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidArg(format!(
                "--lr {}: the learning rate must be a finite number above 0",
                self.lr
            )));
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return Err(Error::InvalidArg(format!(
                "--min-lr {}: must be at least 0 and at most --lr {}",
                self.min_lr, self.lr
            )));
        }
        if !(self.gamma.is_finite() && self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Error::InvalidArg(format!(
                "--lr-gamma {}: must be above 0 and at most 1",
                self.gamma
            )));
        }
        if self.step_every == 0 {
            return Err(Error::InvalidArg(
                "--lr-step 0: give a number of epochs, at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The learning rate of global step `t` (0-based).
    pub fn lr_at(&self, t: u64) -> f32 {
        let (lr, min) = (self.lr as f64, self.min_lr as f64);
        let total = self.total_steps.max(1);
        let warm = match self.kind {
            ScheduleKind::Onecycle if self.warmup_steps == 0 => (total as f64 * 0.3) as u64,
            _ => self.warmup_steps,
        };
        if t < warm {
            let frac = (t + 1) as f64 / warm as f64;
            let start = if self.kind == ScheduleKind::Onecycle {
                lr / 25.0
            } else {
                0.0
            };
            return (start + (lr - start) * frac) as f32;
        }
        let cosine = |t: u64| {
            let span = total.saturating_sub(warm).max(1) as f64;
            let p = ((t - warm) as f64 / span).min(1.0);
            min + (lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
        };
        let v = match self.kind {
            ScheduleKind::Constant => lr,
            ScheduleKind::Step => {
                let k = (t - warm) / self.step_every;
                (lr * (self.gamma as f64).powi(k.min(i32::MAX as u64) as i32)).max(min)
            }
            ScheduleKind::Cosine | ScheduleKind::Onecycle => cosine(t),
        };
        v as f32
    }

    pub fn describe(&self) -> String {
        let warm = if self.warmup_steps > 0 {
            format!(", warm-up {} steps", self.warmup_steps)
        } else {
            String::new()
        };
        match self.kind {
            ScheduleKind::Constant => format!("lr {}{warm}", self.lr),
            ScheduleKind::Step => format!(
                "lr {} × {} every {} steps{warm}",
                self.lr, self.gamma, self.step_every
            ),
            ScheduleKind::Cosine | ScheduleKind::Onecycle => format!(
                "lr {} {} to {}{warm}",
                self.lr,
                self.kind.name(),
                self.min_lr
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(kind: ScheduleKind) -> Schedule {
        Schedule {
            kind,
            lr: 0.1,
            min_lr: 0.0,
            warmup_steps: 0,
            step_every: 10,
            gamma: 0.5,
            total_steps: 100,
        }
    }

    #[test]
    fn step_schedule_halves_every_ten_steps() {
        let s = sched(ScheduleKind::Step);
        assert_eq!(s.lr_at(0), 0.1);
        assert_eq!(s.lr_at(9), 0.1);
        assert_eq!(s.lr_at(10), 0.05);
        assert_eq!(s.lr_at(25), 0.025);
    }

    #[test]
    fn cosine_runs_from_lr_to_min_lr() {
        let s = Schedule {
            min_lr: 0.01,
            ..sched(ScheduleKind::Cosine)
        };
        assert_eq!(s.lr_at(0), 0.1);
        // Halfway, the cosine is at the midpoint of lr and min_lr.
        assert!((s.lr_at(50) - 0.055).abs() < 1e-6, "{}", s.lr_at(50));
        assert!((s.lr_at(100) - 0.01).abs() < 1e-6);
    }

    #[test]
    fn warmup_rises_linearly_then_the_schedule_starts() {
        let s = Schedule {
            warmup_steps: 4,
            ..sched(ScheduleKind::Constant)
        };
        let lrs: Vec<f32> = (0..6).map(|t| s.lr_at(t)).collect();
        assert_eq!(lrs, vec![0.025, 0.05, 0.075, 0.1, 0.1, 0.1]);
    }

    #[test]
    fn onecycle_rises_from_lr_over_25_then_anneals() {
        let s = sched(ScheduleKind::Onecycle);
        // 30 warm-up steps from 0.004 up to 0.1, then cosine down to 0.
        assert!((s.lr_at(0) - (0.004 + 0.096 / 30.0)).abs() < 1e-7);
        assert!((s.lr_at(29) - 0.1).abs() < 1e-7);
        assert!((s.lr_at(30) - 0.1).abs() < 1e-7);
        assert!(s.lr_at(99) < 0.001);
    }

    #[test]
    fn adam_bias_corrections() {
        let c = OptimConfig {
            kind: OptimizerKind::Adam,
            ..OptimConfig::sgd(0.0)
        };
        let h = c.step_hyper(1, 0.001);
        assert!((h.bc1 - (1.0 - 0.81)).abs() < 1e-7);
        // β2 is the f32 nearest 0.999, raised in f64.
        let b2 = 0.999f32 as f64;
        assert_eq!(h.bc2, (1.0 - b2 * b2) as f32);
        assert_eq!(h.t, 1);
        let s = OptimConfig::sgd(0.9).step_hyper(5, 0.1);
        assert_eq!((s.bc1, s.bc2), (1.0, 1.0));
    }
}
