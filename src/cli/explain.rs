//! `descent explain`: backprop through a tiny network by hand, with the numbers the training
//! code computes (see `descent::explain`).

use clap::Args;

use descent::error::{Error, Result};
use descent::explain::{ExplainConfig, Explanation, explain};
use descent::model::{self, Activation, Loss};

#[derive(Args, Debug, Clone)]
pub struct ExplainArgs {
    /// Hidden layer sizes: `2`, `3,2`, or `none`.
    #[arg(long, default_value = "2")]
    pub hidden: String,
    /// Input features.
    #[arg(long, default_value_t = 2)]
    pub inputs: usize,
    /// Output units (classes).
    #[arg(long, default_value_t = 2)]
    pub outputs: usize,
    #[arg(long, value_enum, default_value = "sigmoid")]
    pub activation: Activation,
    #[arg(long, value_enum, default_value = "xent")]
    pub loss: Loss,
    /// Random weights, input and class from this seed instead of the fixed textbook values.
    #[arg(long)]
    pub seed: Option<u32>,
    /// Learning rate of the one SGD step.
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    pub lr: f32,
    /// Print every stage as one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ExplainArgs) -> Result<()> {
    let cfg = ExplainConfig {
        hidden: model::parse_hidden(&args.hidden)?,
        inputs: args.inputs,
        outputs: args.outputs,
        activation: args.activation,
        loss: args.loss,
        seed: args.seed,
        lr: args.lr,
    };
    let e = explain(&cfg)?;
    if args.json {
        let s = serde_json::to_string_pretty(&e)
            .map_err(|err| Error::InvalidArg(format!("--json: {err}")))?;
        println!("{s}");
    } else {
        print!("{}", render(&e));
    }
    Ok(())
}

/// Expanding every multiply-add stops being readable beyond this fan-in.
const EXPAND_FAN_IN: usize = 4;

fn vec4(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:.4}")).collect();
    format!("[{}]", parts.join(", "))
}

fn mat4(m: &[Vec<f32>]) -> String {
    let rows: Vec<String> = m.iter().map(|r| vec4(r)).collect();
    format!("[{}]", rows.join(", "))
}

/// The whole walk-through as text.
pub fn render(e: &Explanation) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let sizes: Vec<String> = e.sizes.iter().map(|s| s.to_string()).collect();
    let n_layers = e.forward.len();
    let act = e.activation.as_str();
    let f = match act {
        "sigmoid" => "σ",
        a => a,
    };
    let _ = writeln!(
        o,
        "Backprop through a {} network ({act}, {}), one sample, one SGD step at lr {}",
        sizes.join("-"),
        if e.loss_kind == "xent" {
            "softmax cross-entropy"
        } else {
            "mean squared error"
        },
        e.lr
    );
    let _ = writeln!(o, "\n0. The starting point");
    let _ = writeln!(
        o,
        "   input x = {}, class y = {}, target t = one-hot(y) = {}",
        vec4(&e.x),
        e.label,
        vec4(&e.loss.target)
    );
    for (l, p) in e.params.iter().enumerate() {
        let _ = writeln!(
            o,
            "   W{0} = {1}   b{0} = {2}",
            l + 1,
            mat4(&p.weight),
            vec4(&p.bias)
        );
    }

    let _ = writeln!(
        o,
        "\n1. Forward pass: each layer computes z = W·a + b, then a = f(z)"
    );
    for (l, s) in e.forward.iter().enumerate() {
        let prev = if l == 0 {
            "x".to_owned()
        } else {
            format!("a{l}")
        };
        let out = if s.activation.is_none() {
            " (output layer: z are the logits)"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "   layer {}{out}: z{} = W{} {prev} + b{}",
            s.layer, s.layer, s.layer, s.layer
        );
        let w = &e.params[l];
        if s.input.len() <= EXPAND_FAN_IN {
            for (j, z) in s.z.iter().enumerate() {
                let terms: Vec<String> = w.weight[j]
                    .iter()
                    .zip(&s.input)
                    .map(|(wi, xi)| format!("{wi:.4}·{xi:.4}"))
                    .collect();
                let _ = writeln!(
                    o,
                    "     z{}[{j}] = {} + {:.4} = {z:.4}",
                    s.layer,
                    terms.join(" + "),
                    w.bias[j]
                );
            }
        } else {
            let _ = writeln!(o, "     z{} = {}", s.layer, vec4(&s.z));
        }
        if s.activation.is_some() {
            let _ = writeln!(o, "     a{} = {f}(z{}) = {}", s.layer, s.layer, vec4(&s.a));
        }
    }

    let top = n_layers;
    let _ = writeln!(o, "\n2. Loss");
    if e.loss_kind == "xent" {
        let p = &e.loss.outputs;
        let _ = writeln!(
            o,
            "   p = softmax(z{top}) = exp(z{top}) / Σ exp(z{top}) = {}",
            vec4(p)
        );
        let _ = writeln!(
            o,
            "   L = −ln p[y] = −ln {:.4} = {:.4}",
            p.get(e.label as usize).copied().unwrap_or(f32::NAN),
            e.loss.value
        );
    } else {
        let _ = writeln!(
            o,
            "   L = mean over the {} outputs of (z{top} − t)² = {:.4}",
            e.loss.outputs.len(),
            e.loss.value
        );
    }

    let _ = writeln!(
        o,
        "\n3. Output error δ{top} = ∂L/∂z{top}: how much each logit should move"
    );
    let out_err = &e.errors[0];
    let why = if e.loss_kind == "xent" {
        format!(
            "p − t = {} − {}",
            vec4(&e.loss.outputs),
            vec4(&e.loss.target)
        )
    } else {
        format!(
            "2 (z{top} − t) / {} = 2 ({} − {}) / {}",
            e.loss.outputs.len(),
            vec4(&e.loss.outputs),
            vec4(&e.loss.target),
            e.loss.outputs.len()
        )
    };
    let _ = writeln!(o, "   δ{top} = {why} = {}", vec4(&out_err.delta));

    if e.errors.len() > 1 {
        let _ = writeln!(
            o,
            "\n4. Errors carried back by the chain rule: δ = (Wᵀ·δ of the layer above) ⊙ f'(z)"
        );
        let fprime = match act {
            "sigmoid" => "a (1 − a)",
            "tanh" => "1 − a²",
            _ => "1 where a > 0, else 0",
        };
        for s in &e.errors[1..] {
            let l = s.layer;
            let _ = writeln!(
                o,
                "   layer {l}: W{}ᵀ δ{} = {}",
                l + 1,
                l + 1,
                vec4(s.carried.as_deref().unwrap_or(&[]))
            );
            let _ = writeln!(
                o,
                "            f'(z{l}) = {fprime} = {}",
                vec4(s.derivative.as_deref().unwrap_or(&[]))
            );
            let _ = writeln!(
                o,
                "            δ{l} = W{}ᵀ δ{} ⊙ f'(z{l}) = {}",
                l + 1,
                l + 1,
                vec4(&s.delta)
            );
        }
    } else {
        let _ = writeln!(o, "\n4. No hidden layer: nothing to carry back");
    }

    let _ = writeln!(
        o,
        "\n5. Gradients: ∂L/∂W = δ · (the layer's input)ᵀ, ∂L/∂b = δ"
    );
    for g in &e.gradients {
        let l = g.layer;
        let input = if l == 1 {
            "x".to_owned()
        } else {
            format!("a{}", l - 1)
        };
        let delta = &e.errors[n_layers - l].delta;
        let inp = &e.forward[l - 1].input;
        let _ = writeln!(
            o,
            "   ∂L/∂W{l} = δ{l} {input}ᵀ = {}   ∂L/∂b{l} = {}",
            mat4(&g.weight),
            vec4(&g.bias)
        );
        if let (Some(d), Some(a)) = (delta.first(), inp.first()) {
            let _ = writeln!(
                o,
                "     e.g. ∂L/∂W{l}[0,0] = δ{l}[0]·{input}[0] = {d:.4}·{a:.4} = {:.4}",
                g.weight[0][0]
            );
        }
    }

    let _ = writeln!(
        o,
        "\n6. Update, plain SGD: p ← p − lr·∂L/∂p with lr = {}",
        e.lr
    );
    if let (Some(w), Some(g), Some(u)) = (e.params.first(), e.gradients.first(), e.updated.first())
    {
        let _ = writeln!(
            o,
            "   e.g. W1[0,0] ← {:.4} − {}·({:.4}) = {:.4}",
            w.weight[0][0], e.lr, g.weight[0][0], u.weight[0][0]
        );
    }
    for (l, p) in e.updated.iter().enumerate() {
        let _ = writeln!(
            o,
            "   W{0} = {1}   b{0} = {2}",
            l + 1,
            mat4(&p.weight),
            vec4(&p.bias)
        );
    }

    let _ = writeln!(o, "\n7. The same sample again");
    let verdict = if e.new_loss < e.loss.value {
        "lower: the step went downhill"
    } else {
        "not lower: the step overshot; try a smaller --lr"
    };
    let _ = writeln!(
        o,
        "   L = {:.4} → {:.4} ({verdict})",
        e.loss.value, e.new_loss
    );

    let _ = writeln!(
        o,
        "\n8. Check: every gradient against the finite difference (L(p + h) − L(p − h)) / 2h"
    );
    let _ = writeln!(
        o,
        "   {:<10} {:>12} {:>14} {:>11}",
        "parameter", "backprop", "finite diff", "|diff|"
    );
    for g in &e.gradient_check {
        let _ = writeln!(
            o,
            "   {:<10} {:>12.6} {:>14.6} {:>11.2e}",
            g.name, g.backprop, g.finite_difference, g.difference
        );
    }
    let _ = writeln!(
        o,
        "   largest difference: {:.2e} over {} parameters{}",
        e.max_difference,
        e.gradient_check.len(),
        if e.max_difference < 1e-4 {
            " (backprop agrees)"
        } else {
            " (larger than 1e-4: suspicious)"
        }
    );
    o
}
