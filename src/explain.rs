//! Backprop through a tiny network, one stage at a time, with the numbers: what `descent explain`
//! prints. Every value comes from the training code itself ([`cpu::forward`], [`cpu::backward`],
//! the kernels' CPU twins and [`crate::cpu::optim::sgd_update`]); this module only reads them out
//! and checks the gradient against finite differences.

use serde::Serialize;

use crate::cpu::{self, Workspace, kernels};
use crate::error::{Error, Result};
use crate::model::{Activation, Init, Loss, ModelSpec};
use crate::rng;

/// What to explain.
#[derive(Clone, Debug)]
pub struct ExplainConfig {
    /// Widths of the hidden layers (empty: softmax regression).
    pub hidden: Vec<usize>,
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
    pub loss: Loss,
    /// Random weights, input and label from this seed; `None`: the fixed textbook values.
    pub seed: Option<u32>,
    pub lr: f32,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        ExplainConfig {
            hidden: vec![2],
            inputs: 2,
            outputs: 2,
            activation: Activation::Sigmoid,
            loss: Loss::Xent,
            seed: None,
            lr: 0.5,
        }
    }
}

/// One linear layer's tensors: weight `[out, in]` row-major, bias `[out]`.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerTensors {
    pub weight: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
}

/// The forward pass through layer `layer` (1-based): z = W·a_prev + b, then a = f(z) (the
/// output layer has no activation: its a is z, the logits).
#[derive(Clone, Debug, Serialize)]
pub struct ForwardStage {
    pub layer: usize,
    pub input: Vec<f32>,
    pub z: Vec<f32>,
    /// `None` for the output layer.
    pub activation: Option<String>,
    pub a: Vec<f32>,
}

/// The loss of the sample: the outputs it is computed from and its value.
#[derive(Clone, Debug, Serialize)]
pub struct LossStage {
    pub kind: String,
    pub formula: String,
    /// softmax(z) for cross-entropy; the raw outputs for MSE.
    pub outputs: Vec<f32>,
    /// One-hot target.
    pub target: Vec<f32>,
    pub value: f32,
}

/// δ of one layer: ∂L/∂z. For the output layer it comes from the loss; for a hidden one it is
/// the next layer's δ carried back through Wᵀ (`carried` = ∂L/∂a) times f'(z).
#[derive(Clone, Debug, Serialize)]
pub struct ErrorStage {
    pub layer: usize,
    pub formula: String,
    /// Wᵀ·δ of the layer above (hidden layers only).
    pub carried: Option<Vec<f32>>,
    /// f'(z), written in terms of a (hidden layers only).
    pub derivative: Option<Vec<f32>>,
    pub delta: Vec<f32>,
}

/// ∂L/∂W = δ·a_prevᵀ and ∂L/∂b = δ of one layer.
#[derive(Clone, Debug, Serialize)]
pub struct GradientStage {
    pub layer: usize,
    pub weight: Vec<Vec<f32>>,
    pub bias: Vec<f32>,
}

/// One gradient entry against its central finite difference.
#[derive(Clone, Debug, Serialize)]
pub struct GradCheck {
    pub name: String,
    pub backprop: f32,
    pub finite_difference: f32,
    pub difference: f32,
}

#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub sizes: Vec<usize>,
    pub activation: String,
    pub loss_kind: String,
    pub x: Vec<f32>,
    pub label: u32,
    pub lr: f32,
    pub params: Vec<LayerTensors>,
    pub forward: Vec<ForwardStage>,
    pub loss: LossStage,
    pub errors: Vec<ErrorStage>,
    pub gradients: Vec<GradientStage>,
    /// The parameters after one plain SGD step, p − lr·∂L/∂p.
    pub updated: Vec<LayerTensors>,
    pub new_loss: f32,
    pub gradient_check: Vec<GradCheck>,
    pub max_difference: f32,
}

/// The finite-difference step. The loss is computed in f32, so h trades truncation error (h²)
/// against rounding (ε/h); Richardson's extrapolation of h and h/2 removes the h² term.
const FD_STEP: f32 = 1e-2;

/// Larger than this many parameters, explaining stops being readable.
const MAX_PARAMS: usize = 2_000;

impl ExplainConfig {
    pub fn spec(&self) -> ModelSpec {
        let mut sizes = vec![self.inputs];
        sizes.extend_from_slice(&self.hidden);
        sizes.push(self.outputs);
        ModelSpec {
            sizes,
            activation: self.activation,
            loss: self.loss,
        }
    }

    pub fn check(&self) -> Result<()> {
        if self.inputs == 0 || self.outputs < 2 {
            return Err(Error::InvalidArg(format!(
                "--inputs {} --outputs {}: need at least 1 input and 2 outputs (classes)",
                self.inputs, self.outputs
            )));
        }
        let n = self.spec().num_params();
        if n > MAX_PARAMS {
            return Err(Error::InvalidArg(format!(
                "a {} network has {n} parameters: too many to explain one by one (at most {MAX_PARAMS}); give smaller --hidden",
                self.spec()
                    .sizes
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            )));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::InvalidArg(format!(
                "--lr {}: must be a finite number above 0",
                self.lr
            )));
        }
        Ok(())
    }

    /// The starting point: the textbook's numbers (weights 0.15, 0.20, … counting up, biases
    /// 0.35 then 0.60 for 2-2-2, input (0.05, 0.10), class 1, as in Matt Mazur's worked example), or
    /// seeded random ones.
    pub fn start(&self) -> (Vec<f32>, Vec<f32>, u32) {
        let spec = self.spec();
        match self.seed {
            Some(seed) => {
                let params = spec.init_params(Init::Auto, seed);
                let x = (0..self.inputs as u32)
                    .map(|i| rng::uniform(seed, rng::stream::TEST_DATA, i))
                    .collect();
                let label =
                    rng::hash3(seed, rng::stream::TEST_DATA, u32::MAX) % self.outputs as u32;
                (params, x, label)
            }
            None => {
                let mut params = vec![0.0; spec.num_params()];
                let mut k = 0;
                // Counting up in 0.05s, each layer's shared bias taking the next value after its
                // weights; cycling keeps wide layers' weights small, as an initialisation would.
                let mut next = || {
                    let v = 0.15 + 0.05 * (k % 12) as f32;
                    k += 1;
                    v
                };
                for s in spec.layers() {
                    for w in &mut params[s.w_off..s.w_off + s.inp * s.out] {
                        *w = next();
                    }
                    params[s.b_off..s.b_off + s.out].fill(next());
                }
                let x = (0..self.inputs).map(|i| 0.05 * (i + 1) as f32).collect();
                (params, x, 1)
            }
        }
    }
}

/// Mean loss of one sample through the training code's forward pass.
fn loss_of(spec: &ModelSpec, params: &[f32], x: &[f32], label: u32) -> f32 {
    let mut ws = Workspace::new(spec, 1);
    ws.activations[0].copy_from_slice(x);
    ws.labels[0] = label;
    cpu::forward(spec, params, &mut ws, 1, None) as f32
}

fn tensors(spec: &ModelSpec, params: &[f32]) -> Vec<LayerTensors> {
    spec.layers()
        .iter()
        .map(|s| LayerTensors {
            weight: params[s.w_off..s.w_off + s.inp * s.out]
                .chunks(s.inp)
                .map(<[f32]>::to_vec)
                .collect(),
            bias: params[s.b_off..s.b_off + s.out].to_vec(),
        })
        .collect()
}

/// Runs one forward pass, one backward pass and one SGD step on the configured network and
/// records every stage.
pub fn explain(cfg: &ExplainConfig) -> Result<Explanation> {
    cfg.check()?;
    let spec = cfg.spec();
    let (params, x, label) = cfg.start();
    let layers = spec.layers();
    let last = layers.len() - 1;

    // Forward, as training runs it; then z of each layer again through the same matmul twin,
    // since the forward pass overwrites z with f(z) in place.
    let mut ws = Workspace::new(&spec, 1);
    ws.activations[0].copy_from_slice(&x);
    ws.labels[0] = label;
    let loss = cpu::forward(&spec, &params, &mut ws, 1, None) as f32;
    let mut forward = Vec::new();
    for (l, s) in layers.iter().enumerate() {
        let mut z = vec![0.0; s.out];
        kernels::matmul_forward(
            &mut z,
            &ws.activations[l],
            &params[s.w_off..s.w_off + s.inp * s.out],
            &params[s.b_off..s.b_off + s.out],
            1,
            s.inp,
            s.out,
        );
        forward.push(ForwardStage {
            layer: l + 1,
            input: ws.activations[l].clone(),
            z,
            activation: (l != last).then(|| spec.activation.name().to_owned()),
            a: ws.activations[l + 1].clone(),
        });
    }
    let c = cfg.outputs;
    let target: Vec<f32> = (0..c).map(|j| (j == label as usize) as u8 as f32).collect();
    let loss_stage = match spec.loss {
        Loss::Xent => LossStage {
            kind: "xent".into(),
            formula: format!("L = -ln softmax(z{})[y]", last + 1),
            outputs: ws.probs[..c].to_vec(),
            target: target.clone(),
            value: loss,
        },
        Loss::Mse => LossStage {
            kind: "mse".into(),
            formula: format!("L = mean_j (z{}_j - t_j)^2", last + 1),
            outputs: ws.activations[last + 1].clone(),
            target: target.clone(),
            value: loss,
        },
    };

    // Backward, as training runs it: δ of every layer lands in ws.dactivations.
    let mut grads = vec![0.0; params.len()];
    cpu::backward(&spec, &params, &mut grads, &mut ws, 1, 1.0, false, None);
    let mut errors = Vec::new();
    for l in (0..=last).rev() {
        let delta = ws.dactivations[l + 1].clone();
        if l == last {
            let formula = match spec.loss {
                Loss::Xent => format!("delta{0} = dL/dz{0} = softmax(z{0}) - t", l + 1),
                Loss::Mse => format!("delta{0} = dL/dz{0} = 2 (z{0} - t) / {c}", l + 1),
            };
            errors.push(ErrorStage {
                layer: l + 1,
                formula,
                carried: None,
                derivative: None,
                delta,
            });
        } else {
            // The chain rule's two factors, through the same twins backward() used.
            let above = &layers[l + 1];
            let mut carried = vec![0.0; above.inp];
            kernels::matmul_backward_input(
                &mut carried,
                &ws.dactivations[l + 2],
                &params[above.w_off..above.w_off + above.inp * above.out],
                1,
                above.inp,
                above.out,
            );
            let mut derivative = vec![1.0; above.inp];
            kernels::activation_backward(spec.activation, &mut derivative, &ws.activations[l + 1]);
            let fprime = match spec.activation {
                Activation::Sigmoid => format!("a{0} (1 - a{0})", l + 1),
                Activation::Tanh => format!("1 - a{}^2", l + 1),
                Activation::Relu => format!("[a{} > 0]", l + 1),
            };
            errors.push(ErrorStage {
                layer: l + 1,
                formula: format!(
                    "delta{} = (W{}^T delta{}) * f'(z{}), f'(z{}) = {fprime}",
                    l + 1,
                    l + 2,
                    l + 2,
                    l + 1,
                    l + 1
                ),
                carried: Some(carried),
                derivative: Some(derivative),
                delta,
            });
        }
    }
    let gradients = tensors(&spec, &grads)
        .into_iter()
        .enumerate()
        .map(|(l, t)| GradientStage {
            layer: l + 1,
            weight: t.weight,
            bias: t.bias,
        })
        .collect();

    // One plain SGD step through the optimizer's own twin.
    let mut updated = params.clone();
    let mut velocity = vec![0.0; params.len()];
    crate::cpu::optim::sgd_update(&mut updated, &mut velocity, &grads, cfg.lr, 0.0, 0.0);
    let new_loss = loss_of(&spec, &updated, &x, label);

    let gradient_check = finite_differences(&spec, &params, &grads, &x, label);
    let max_difference = gradient_check
        .iter()
        .map(|g| g.difference)
        .fold(0.0, f32::max);
    Ok(Explanation {
        sizes: spec.sizes.clone(),
        activation: spec.activation.name().into(),
        loss_kind: spec.loss.name().into(),
        x,
        label,
        lr: cfg.lr,
        params: tensors(&spec, &params),
        forward,
        loss: loss_stage,
        errors,
        gradients,
        updated: tensors(&spec, &updated),
        new_loss,
        gradient_check,
        max_difference,
    })
}

/// Every entry of `grads` against (L(p + h) − L(p − h)) / 2h, extrapolated from h and h/2.
fn finite_differences(
    spec: &ModelSpec,
    params: &[f32],
    grads: &[f32],
    x: &[f32],
    label: u32,
) -> Vec<GradCheck> {
    let mut names = vec![String::new(); params.len()];
    for (l, s) in spec.layers().iter().enumerate() {
        for o in 0..s.out {
            for i in 0..s.inp {
                names[s.w_off + o * s.inp + i] = format!("W{}[{o},{i}]", l + 1);
            }
            names[s.b_off + o] = format!("b{}[{o}]", l + 1);
        }
    }
    let mut p = params.to_vec();
    let mut central = |i: usize, h: f32| {
        let orig = p[i];
        p[i] = orig + h;
        let up = loss_of(spec, &p, x, label) as f64;
        p[i] = orig - h;
        let down = loss_of(spec, &p, x, label) as f64;
        p[i] = orig;
        (up - down) / (2.0 * h as f64)
    };
    (0..params.len())
        .map(|i| {
            let (d1, d2) = (central(i, FD_STEP), central(i, FD_STEP / 2.0));
            let fd = ((4.0 * d2 - d1) / 3.0) as f32;
            GradCheck {
                name: names[i].clone(),
                backprop: grads[i],
                finite_difference: fd,
                difference: (grads[i] - fd).abs(),
            }
        })
        .collect()
}
