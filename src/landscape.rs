//! Two-dimensional test functions and optimizer paths on them: `descent landscape`. The steps
//! are the training code's own update rules ([`crate::cpu::optim::optimizer_update`]) on a
//! 2-element parameter slice, with the function's gradient as `grads`.

use crate::error::{Error, Result};
use crate::optim::{OptimConfig, OptimizerKind};

/// `--function`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Function {
    /// x^2 + y^2: round, every direction equally steep.
    Bowl,
    /// 0.1 x^2 + 10 y^2: a long, narrow valley (curvatures 100 times apart).
    Elongated,
    /// (1 - x)^2 + 100 (y - x^2)^2: a curved, flat-bottomed valley.
    Rosenbrock,
    /// x^2 + y^4/4 - y^2/2: a saddle at the origin between minima at (0, +-1).
    Saddle,
    /// (x^2 + y - 11)^2 + (x + y^2 - 7)^2: four minima.
    Himmelblau,
    /// 20 + x^2 + y^2 - 10 (cos 2 pi x + cos 2 pi y): a bowl covered in local minima.
    Rastrigin,
}

impl Function {
    pub fn name(self) -> &'static str {
        match self {
            Function::Bowl => "bowl",
            Function::Elongated => "elongated",
            Function::Rosenbrock => "rosenbrock",
            Function::Saddle => "saddle",
            Function::Himmelblau => "himmelblau",
            Function::Rastrigin => "rastrigin",
        }
    }

    /// The formula in ASCII (the pictures' font has no superscripts).
    pub fn formula(self) -> &'static str {
        match self {
            Function::Bowl => "f = x^2 + y^2",
            Function::Elongated => "f = 0.1 x^2 + 10 y^2",
            Function::Rosenbrock => "f = (1 - x)^2 + 100 (y - x^2)^2",
            Function::Saddle => "f = x^2 + y^4/4 - y^2/2",
            Function::Himmelblau => "f = (x^2 + y - 11)^2 + (x + y^2 - 7)^2",
            Function::Rastrigin => "f = 20 + x^2 + y^2 - 10 cos(2 pi x) - 10 cos(2 pi y)",
        }
    }

    pub fn value(self, x: f64, y: f64) -> f64 {
        use std::f64::consts::TAU;
        match self {
            Function::Bowl => x * x + y * y,
            Function::Elongated => 0.1 * x * x + 10.0 * y * y,
            Function::Rosenbrock => (1.0 - x).powi(2) + 100.0 * (y - x * x).powi(2),
            Function::Saddle => x * x + y.powi(4) / 4.0 - y * y / 2.0,
            Function::Himmelblau => (x * x + y - 11.0).powi(2) + (x + y * y - 7.0).powi(2),
            Function::Rastrigin => {
                20.0 + x * x + y * y - 10.0 * ((TAU * x).cos() + (TAU * y).cos())
            }
        }
    }

    pub fn gradient(self, x: f64, y: f64) -> [f64; 2] {
        use std::f64::consts::TAU;
        match self {
            Function::Bowl => [2.0 * x, 2.0 * y],
            Function::Elongated => [0.2 * x, 20.0 * y],
            Function::Rosenbrock => [
                -2.0 * (1.0 - x) - 400.0 * x * (y - x * x),
                200.0 * (y - x * x),
            ],
            Function::Saddle => [2.0 * x, y.powi(3) - y],
            Function::Himmelblau => {
                let (a, b) = (x * x + y - 11.0, x + y * y - 7.0);
                [4.0 * x * a + 2.0 * b, 2.0 * a + 4.0 * y * b]
            }
            Function::Rastrigin => [
                2.0 * x + 10.0 * TAU * (TAU * x).sin(),
                2.0 * y + 10.0 * TAU * (TAU * y).sin(),
            ],
        }
    }

    /// The global minima (the lowest value is at each).
    pub fn minima(self) -> Vec<[f64; 2]> {
        match self {
            Function::Bowl | Function::Elongated | Function::Rastrigin => vec![[0.0, 0.0]],
            Function::Rosenbrock => vec![[1.0, 1.0]],
            Function::Saddle => vec![[0.0, 1.0], [0.0, -1.0]],
            Function::Himmelblau => vec![
                [3.0, 2.0],
                [-2.805_118, 3.131_312],
                [-3.779_310, -3.283_186],
                [3.584_428, -1.848_126],
            ],
        }
    }

    pub fn min_value(self) -> f64 {
        let m = self.minima()[0];
        self.value(m[0], m[1])
    }

    /// Where to start when `--start` is not given.
    pub fn default_start(self) -> [f64; 2] {
        match self {
            Function::Bowl => [-4.0, 3.0],
            Function::Elongated => [-9.0, 0.8],
            Function::Rosenbrock => [-1.5, 2.0],
            Function::Saddle => [-1.8, 0.02],
            Function::Himmelblau => [-0.5, -0.5],
            Function::Rastrigin => [-4.3, 3.7],
        }
    }

    /// (x0, x1, y0, y1) of the picture.
    pub fn view(self) -> (f64, f64, f64, f64) {
        match self {
            Function::Bowl => (-5.0, 5.0, -5.0, 5.0),
            Function::Elongated => (-10.0, 10.0, -2.0, 2.0),
            Function::Rosenbrock => (-2.0, 2.0, -1.0, 3.0),
            Function::Saddle => (-2.0, 2.0, -2.0, 2.0),
            Function::Himmelblau => (-5.0, 5.0, -5.0, 5.0),
            Function::Rastrigin => (-5.12, 5.12, -5.12, 5.12),
        }
    }

    /// Whether the contour levels should be log-spaced: the value spans decades.
    pub fn log_levels(self) -> bool {
        // Rastrigin's bumps are all within a factor of a few of each other: even levels show them.
        !matches!(self, Function::Saddle | Function::Rastrigin)
    }

    /// The learning rate each optimizer gets when `--lr` does not say, chosen to converge from
    /// the default start in the default number of steps.
    pub fn default_lr(self, opt: Optimizer) -> f32 {
        let adam = matches!(opt, Optimizer::Adam);
        match self {
            Function::Bowl => {
                if adam {
                    0.5
                } else {
                    0.1
                }
            }
            Function::Elongated => {
                if adam {
                    0.5
                } else {
                    0.04
                }
            }
            Function::Rosenbrock => {
                if adam {
                    0.05
                } else {
                    0.001
                }
            }
            Function::Saddle => {
                if adam {
                    0.1
                } else {
                    0.05
                }
            }
            Function::Himmelblau => {
                if adam {
                    0.2
                } else {
                    0.01
                }
            }
            Function::Rastrigin => {
                if adam {
                    0.2
                } else {
                    0.002
                }
            }
        }
    }

    pub fn default_steps(self) -> usize {
        match self {
            Function::Rosenbrock => 1000,
            Function::Rastrigin | Function::Himmelblau => 300,
            _ => 200,
        }
    }
}

/// An entry of `--optimizers`: the training optimizers, with "momentum" meaning SGD with
/// momentum 0.9 and "sgd" plain SGD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Optimizer {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
}

impl Optimizer {
    pub const ALL: [Optimizer; 4] = [
        Optimizer::Sgd,
        Optimizer::Momentum,
        Optimizer::Nesterov,
        Optimizer::Adam,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Optimizer::Sgd => "sgd",
            Optimizer::Momentum => "momentum",
            Optimizer::Nesterov => "nesterov",
            Optimizer::Adam => "adam",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == s.trim())
            .ok_or_else(|| {
                Error::InvalidArg(format!(
                    "--optimizers: unknown optimizer `{}` (choose from sgd, momentum, nesterov, adam)",
                    s.trim()
                ))
            })
    }

    /// The training code's configuration for this rule.
    pub fn config(self) -> OptimConfig {
        let base = OptimConfig::sgd(0.0);
        match self {
            Optimizer::Sgd => base,
            Optimizer::Momentum => OptimConfig::sgd(0.9),
            Optimizer::Nesterov => OptimConfig {
                kind: OptimizerKind::Nesterov,
                momentum: 0.9,
                ..base
            },
            Optimizer::Adam => OptimConfig {
                kind: OptimizerKind::Adam,
                ..base
            },
        }
    }
}

/// One optimizer's walk.
#[derive(Clone, Debug)]
pub struct Path {
    pub optimizer: Optimizer,
    pub lr: f32,
    /// `points[0]` is the start; one point per step after it (up to the last finite one).
    pub points: Vec<[f64; 2]>,
    /// The first step whose point was not finite or ran away (|x| or |y| above 1e6).
    pub diverged_at: Option<usize>,
    /// The first step after which f − f_min ≤ tol.
    pub reached_at: Option<usize>,
}

impl Path {
    pub fn end(&self) -> [f64; 2] {
        *self.points.last().unwrap_or(&[f64::NAN, f64::NAN])
    }
}

/// Beyond this the walk has run away: reported as divergence, not drawn further.
const RUNAWAY: f64 = 1e6;

/// Runs `opt` at `lr` for `steps` steps from `start`.
pub fn descend(
    f: Function,
    opt: Optimizer,
    lr: f32,
    start: [f64; 2],
    steps: usize,
    tol: f64,
) -> Path {
    let cfg = opt.config();
    let mut p = [start[0] as f32, start[1] as f32];
    let (mut s1, mut s2) = ([0.0f32; 2], [0.0f32; 2]);
    let fmin = f.min_value();
    let mut points = vec![start];
    let mut diverged_at = None;
    let gap = |q: [f64; 2]| f.value(q[0], q[1]) - fmin;
    let mut reached_at = (gap(start) <= tol).then_some(0);
    for t in 0..steps {
        let g = f.gradient(p[0] as f64, p[1] as f64);
        let g = [g[0] as f32, g[1] as f32];
        let h = cfg.step_hyper(t as u64, lr);
        crate::cpu::optim::optimizer_update(&mut p, &mut s1, &mut s2, &g, &cfg, &h);
        let q = [p[0] as f64, p[1] as f64];
        if !(q[0].is_finite() && q[1].is_finite()) || q[0].abs().max(q[1].abs()) > RUNAWAY {
            diverged_at = Some(t + 1);
            break;
        }
        points.push(q);
        if reached_at.is_none() && gap(q) <= tol {
            reached_at = Some(t + 1);
        }
    }
    Path {
        optimizer: opt,
        lr,
        points,
        diverged_at,
        reached_at,
    }
}

/// Parses `--start x,y`: two finite numbers.
pub fn parse_start(s: &str) -> Result<[f64; 2]> {
    let bad = || {
        Error::InvalidArg(format!(
            "--start `{s}`: expected two finite numbers x,y (e.g. --start -1.5,2)"
        ))
    };
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    if parts.len() != 2 {
        return Err(bad());
    }
    let x: f64 = parts[0].parse().map_err(|_| bad())?;
    let y: f64 = parts[1].parse().map_err(|_| bad())?;
    if !(x.is_finite() && y.is_finite()) {
        return Err(bad());
    }
    Ok([x, y])
}

/// Parses `--lr`: one number for every optimizer, a comma list in `--optimizers` order, or
/// `name=value` pairs (the others keep the function's default).
pub fn parse_lrs(s: &str, f: Function, opts: &[Optimizer]) -> Result<Vec<f32>> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let num = |v: &str| -> Result<f32> {
        match v.parse::<f32>() {
            Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
            _ => Err(Error::InvalidArg(format!(
                "--lr `{v}`: a learning rate must be a finite number above 0"
            ))),
        }
    };
    if parts.iter().any(|p| p.contains('=')) {
        let mut lrs: Vec<f32> = opts.iter().map(|&o| f.default_lr(o)).collect();
        for p in parts {
            let (name, v) = p.split_once('=').ok_or_else(|| {
                Error::InvalidArg(format!(
                    "--lr `{s}`: mix of plain numbers and name=value; use one form"
                ))
            })?;
            let o = Optimizer::parse(name)?;
            let i = opts.iter().position(|&x| x == o).ok_or_else(|| {
                Error::InvalidArg(format!("--lr {name}=...: {name} is not in --optimizers"))
            })?;
            lrs[i] = num(v)?;
        }
        return Ok(lrs);
    }
    match parts.len() {
        1 => Ok(vec![num(parts[0])?; opts.len()]),
        n if n == opts.len() => parts.iter().map(|p| num(p)).collect(),
        n => Err(Error::InvalidArg(format!(
            "--lr: {n} values for {} optimizers; give one shared value, one per optimizer, or name=value pairs",
            opts.len()
        ))),
    }
}
