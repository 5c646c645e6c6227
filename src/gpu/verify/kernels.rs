//! Parity of each kernel entry point (and each form of the matmuls) with its CPU twin, on
//! seeded inputs of awkward shapes.

use crate::cpu::{self, kernels as twin};
use crate::data::{CLASSES, Dataset, PIXELS};
use crate::error::Result;
use crate::gpu::kernels::Form;
use crate::gpu::plan::groups_1d;
use crate::gpu::{Gpu, Kernel, act_flags};
use crate::model::{Activation, Loss};
use crate::optim::{OptimConfig, OptimizerKind, StepHyper};
use crate::rng;

use super::steps::{synthetic, synthetic_features};
use super::{CheckRow, bytes, compare, f32s, rand_labels, rand_vec, run_one};

/// The Input form of matmul_forward (`backward` false: out = relu(x·Wᵀ + b)) or of
/// matmul_backward_weight (`backward` true: dW, db (+)= doutᵀ·[x, 1]), where x [B, 784] arrives
/// packed (u8 pixels, 4 per u32) in a uniform buffer, against the CPU's batch_gather then the
/// float twins. B ≤ 83 (the packed batch fits 64 KiB). With `sgd` (a learning rate; backward
/// only, not with `accumulate`), the product applies plain SGD to the weight and bias it is
/// given (SGD_STEP), against the twins' gradient then `sgd_update`.
pub async fn check_matmul_input(
    gpu: &Gpu,
    b: usize,
    n: usize,
    backward: bool,
    accumulate: bool,
    sgd: Option<f32>,
    seed: u32,
) -> Result<CheckRow> {
    let k = PIXELS;
    let pixels: Vec<u8> = (0..b * k)
        .map(|i| (rng::hash3(seed, 50, i as u32) & 255) as u8)
        .collect();
    let mut packed = pixels.clone();
    packed.resize(NO_UNIFORM.len(), 0);
    let labels = vec![0u8; b];
    let order: Vec<u32> = (0..b as u32).collect();
    let mut x = vec![0.0; b * k];
    let mut y = vec![0u32; b];
    twin::batch_gather(&mut x, &mut y, &pixels, &labels, &order, 0, b);
    let (w_off, b_off) = (4, 4 + n * k);
    let form = Form::Input;
    if !backward {
        let params = rand_vec(b_off + n, seed, 51, -0.1, 0.1);
        let mut want = vec![0.0; b * n];
        twin::matmul_forward(
            &mut want,
            &x,
            &params[w_off..b_off],
            &params[b_off..],
            b,
            k,
            n,
        );
        twin::activation_forward(Activation::Relu, &mut want);
        let out = run_one(
            gpu,
            Kernel::MatmulForward,
            form,
            &[
                bytes(&vec![0f32; b * n]),
                &NO_UNIFORM[..16],
                bytes(&params),
                bytes(&params),
                &packed,
                &NO_UNIFORM,
            ],
            &forward_words(b, k, n, 1 | act_flags(Activation::Relu).0, w_off, b_off),
            gpu.kernels.groups(form, b, n),
        )
        .await?;
        return Ok(compare(
            "matmul_forward + relu_forward (subgroup, packed input)",
            format!("B={b} K={k} N={n}"),
            &f32s(&out[0]),
            &want,
            1e-5,
            1e-4,
        ));
    }
    let mut dout = rand_vec(b * n, seed, 52, -1.0, 1.0);
    let grads = rand_vec(b_off + n, seed, 53, -1.0, 1.0);
    let mut want = grads.clone();
    let (dw, db) = want[w_off..].split_at_mut(n * k);
    // With SGD, `grads` is the parameters and `want` first their gradient.
    let acc = accumulate && sgd.is_none();
    twin::matmul_backward_weight(dw, &dout, &x, b, k, n, acc);
    twin::bias_backward(db, &dout, b, n, acc);
    let mut flags = crate::gpu::BIAS_GRAD | if acc { 2 } else { 0 };
    let mut hyper = [0f32; 4];
    if let Some(lr) = sgd {
        let mut p = grads.clone();
        crate::cpu::optim::sgd_update(&mut p[w_off..], &mut [], &want[w_off..], lr, 0.0, 0.0);
        want = p;
        flags |= crate::gpu::SGD_STEP;
        hyper[0] = lr;
    }
    dout.resize(NO_UNIFORM.len() / 4, 0.0);
    let out = run_one(
        gpu,
        Kernel::MatmulBackwardWeight,
        form,
        &[
            bytes(&grads),
            bytes(&dout),
            &NO_UNIFORM[..16],
            &NO_UNIFORM[..16],
            &packed,
            bytes(&dout),
            bytes(&hyper),
        ],
        &weight_words(b, k, n, flags, w_off, b_off),
        gpu.kernels.groups(form, n, k),
    )
    .await?;
    Ok(compare(
        match sgd {
            None => "matmul_backward_weight + bias_backward (subgroup, packed input)",
            Some(_) => "matmul_backward_weight + sgd_update (subgroup, packed input)",
        },
        format!(
            "B={b} K={k} N={n}{}",
            match (acc, sgd) {
                (_, Some(lr)) => format!(" lr={lr}"),
                (true, None) => " +=".into(),
                (false, None) => String::new(),
            }
        ),
        &f32s(&out[0]),
        &want,
        1e-5,
        1e-4,
    ))
}

/// Shapes for [`check_matmul_input`]: (batch, out): batch 1, a batch off the tile, the default
/// model, the largest packed batch, an output off the tile.
pub const INPUT_SHAPES: [(usize, usize); 5] = [(1, 128), (7, 36), (64, 128), (83, 64), (20, 100)];

/// matmul_forward's uniform block for out[B,N] = inp[B,K]·W[N,K]ᵀ + bias, W and bias at offsets.
fn forward_words(
    b: usize,
    k: usize,
    n: usize,
    flags: u32,
    w_off: usize,
    b_off: usize,
) -> [u32; 12] {
    let [b, k, n, w_off, b_off] = [b, k, n, w_off, b_off].map(|x| x as u32);
    [b, n, k, flags, 0, k, 1, w_off, 1, k, 0, b_off]
}

/// matmul_backward_weight's uniform block for dW[N,K] (+)= dout[B,N]ᵀ·inp[B,K] at `off`.
fn weight_words(
    b: usize,
    k: usize,
    n: usize,
    flags: u32,
    off: usize,
    bias_off: usize,
) -> [u32; 12] {
    let [b, k, n, off, bias_off] = [b, k, n, off, bias_off].map(|x| x as u32);
    [n, k, b, flags, 0, 1, n, 0, k, 1, off, bias_off]
}

/// What the products that do not read the Input form's uniform arrays bind there (64 KiB).
static NO_UNIFORM: [u8; crate::gpu::kernels::UNIFORM_ARRAY as usize] =
    [0; crate::gpu::kernels::UNIFORM_ARRAY as usize];

/// Matrix-product shapes (batch, in, out): batch 1, odd sizes, sizes off the tile, K > M, N.
pub const MATMUL_SHAPES: [(usize, usize, usize); 6] = [
    (1, 784, 128),
    (7, 13, 10),
    (100, 300, 33),
    (3, 1000, 5),
    (64, 784, 128),
    (33, 17, 70),
];

/// matmul_forward: `out[B,N]` = `inp[B,K]`·`W[N,K]`ᵀ + bias, with W and bias at offsets in one buffer.
pub async fn check_matmul_forward(
    gpu: &Gpu,
    shape: (usize, usize, usize),
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    matmul_forward_case(gpu, shape, None, form, seed).await
}

/// matmul_forward with the activation fused into its epilogue, against the CPU's
/// matmul_forward then `<act>_forward`.
pub async fn check_matmul_forward_fused(
    gpu: &Gpu,
    shape: (usize, usize, usize),
    act: Activation,
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    matmul_forward_case(gpu, shape, Some(act), form, seed).await
}

fn fused_name(base: &str, act: Option<Activation>, backward: bool, form: Form) -> String {
    let mut s = base.to_owned();
    if let Some(a) = act {
        let dir = if backward { "backward" } else { "forward" };
        s = format!("{s} + {}_{dir}", a.name());
    }
    s.push_str(form.suffix());
    s
}

async fn matmul_forward_case(
    gpu: &Gpu,
    (b, k, n): (usize, usize, usize),
    act: Option<Activation>,
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    let inp = rand_vec(b * k, seed, 1, -1.0, 1.0);
    // params: [junk, W [N,K], bias [N]]; an offset of 4 keeps vec4 rows aligned.
    let w_off = if form.aligned() { 4 } else { 3 };
    let mut params = rand_vec(w_off + n * k + n, seed, 2, -0.5, 0.5);
    params[..w_off].fill(f32::NAN);
    let b_off = w_off + n * k;
    let mut want = vec![0.0; b * n];
    twin::matmul_forward(
        &mut want,
        &inp,
        &params[w_off..b_off],
        &params[b_off..],
        b,
        k,
        n,
    );
    if let Some(a) = act {
        twin::activation_forward(a, &mut want);
    }
    let flags = 1 | act.map_or(0, |a| act_flags(a).0);
    let out = run_one(
        gpu,
        Kernel::MatmulForward,
        form,
        &[
            bytes(&vec![0f32; b * n]),
            bytes(&inp),
            bytes(&params),
            bytes(&params),
            &NO_UNIFORM,
            &NO_UNIFORM,
        ],
        &forward_words(b, k, n, flags, w_off, b_off),
        gpu.kernels.groups(form, b, n),
    )
    .await?;
    Ok(compare(
        &fused_name("matmul_forward", act, false, form),
        format!("B={b} K={k} N={n}"),
        &f32s(&out[0]),
        &want,
        1e-5,
        1e-4,
    ))
}

/// matmul_backward_input: `dinp[B,K]` = `dout[B,N]`·`W[N,K]`.
pub async fn check_matmul_backward_input(
    gpu: &Gpu,
    shape: (usize, usize, usize),
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    matmul_backward_input_case(gpu, shape, None, form, seed).await
}

/// matmul_backward_input with the activation's derivative fused into its epilogue, against the
/// CPU's matmul_backward_input then `<act>_backward`.
pub async fn check_matmul_backward_input_fused(
    gpu: &Gpu,
    shape: (usize, usize, usize),
    act: Activation,
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    matmul_backward_input_case(gpu, shape, Some(act), form, seed).await
}

async fn matmul_backward_input_case(
    gpu: &Gpu,
    (b, k, n): (usize, usize, usize),
    act: Option<Activation>,
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    let dout = rand_vec(b * n, seed, 3, -1.0, 1.0);
    let w_off = if form.aligned() { 8 } else { 5 };
    let params = rand_vec(w_off + n * k, seed, 4, -0.5, 0.5);
    let mut want = vec![0.0; b * k];
    twin::matmul_backward_input(&mut want, &dout, &params[w_off..], b, k, n);
    // The activation's output at the layer input: [B, K].
    let mut act_out = rand_vec(b * k, seed, 30, -3.0, 3.0);
    let mut flags = 0;
    if let Some(a) = act {
        twin::activation_forward(a, &mut act_out);
        twin::activation_backward(a, &mut want, &act_out);
        flags = act_flags(a).1;
    }
    let out = run_one(
        gpu,
        Kernel::MatmulBackwardInput,
        form,
        &[
            bytes(&vec![7f32; b * k]),
            bytes(&dout),
            bytes(&params),
            bytes(&act_out),
            &NO_UNIFORM,
            &NO_UNIFORM,
        ],
        &[
            b as u32,
            k as u32,
            n as u32,
            flags,
            0,
            n as u32,
            1,
            w_off as u32,
            k as u32,
            1,
            0,
            0,
        ],
        gpu.kernels.groups(form, b, k),
    )
    .await?;
    Ok(compare(
        &fused_name("matmul_backward_input", act, true, form),
        format!("B={b} K={k} N={n}"),
        &f32s(&out[0]),
        &want,
        1e-5,
        1e-4,
    ))
}

/// matmul_backward_weight: `dW[N,K]` (+)= `dout[B,N]`ᵀ·`inp[B,K]`, into a grads buffer at an offset.
pub async fn check_matmul_backward_weight(
    gpu: &Gpu,
    shape: (usize, usize, usize),
    accumulate: bool,
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    matmul_backward_weight_case(gpu, shape, accumulate, false, form, seed).await
}

/// matmul_backward_weight with the bias gradient fused in (BIAS_GRAD), against the CPU's
/// matmul_backward_weight then bias_backward; the bias sits right after the weight, as in the
/// parameter layout.
pub async fn check_matmul_backward_weight_bias(
    gpu: &Gpu,
    shape: (usize, usize, usize),
    accumulate: bool,
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    matmul_backward_weight_case(gpu, shape, accumulate, true, form, seed).await
}

async fn matmul_backward_weight_case(
    gpu: &Gpu,
    (b, k, n): (usize, usize, usize),
    accumulate: bool,
    with_bias: bool,
    form: Form,
    seed: u32,
) -> Result<CheckRow> {
    let dout = rand_vec(b * n, seed, 5, -1.0, 1.0);
    let inp = rand_vec(b * k, seed, 6, 0.0, 1.0);
    // grads: [junk, dW [N,K], dbias [N]]
    let off = if form.aligned() { 4 } else { 2 };
    let bias_off = off + n * k;
    let grads = rand_vec(bias_off + n, seed, 7, -1.0, 1.0);
    let mut want = grads.clone();
    let (dw, db) = want[off..].split_at_mut(n * k);
    twin::matmul_backward_weight(dw, &dout, &inp, b, k, n, accumulate);
    let mut flags = if accumulate { 2 } else { 0 };
    if with_bias {
        twin::bias_backward(db, &dout, b, n, accumulate);
        flags |= crate::gpu::BIAS_GRAD;
    }
    let out = run_one(
        gpu,
        Kernel::MatmulBackwardWeight,
        form,
        &[
            bytes(&grads),
            bytes(&dout),
            bytes(&inp),
            bytes(&inp),
            &NO_UNIFORM,
            &NO_UNIFORM,
        ],
        &weight_words(b, k, n, flags, off, bias_off),
        gpu.kernels.groups(form, n, k),
    )
    .await?;
    let mut name = fused_name("matmul_backward_weight", None, true, Form::Scalar);
    if with_bias {
        name.push_str(" + bias_backward");
    }
    name.push_str(form.suffix());
    Ok(compare(
        &name,
        format!("B={b} K={k} N={n}{}", if accumulate { " +=" } else { "" }),
        &f32s(&out[0]),
        &want,
        1e-5,
        1e-4,
    ))
}

/// bias_backward: `dbias[N]` (+)= Σ_b `dout[b, N]`.
pub async fn check_bias_backward(
    gpu: &Gpu,
    b: usize,
    n: usize,
    accumulate: bool,
    seed: u32,
) -> Result<CheckRow> {
    let dout = rand_vec(b * n, seed, 8, -1.0, 1.0);
    let off = 3;
    let grads = rand_vec(off + n, seed, 9, -1.0, 1.0);
    let mut want = grads.clone();
    twin::bias_backward(&mut want[off..], &dout, b, n, accumulate);
    let out = run_one(
        gpu,
        Kernel::BiasBackward,
        Form::Scalar,
        &[bytes(&grads), bytes(&dout)],
        &[
            b as u32,
            n as u32,
            off as u32,
            if accumulate { 2 } else { 0 },
        ],
        [(n as u32).div_ceil(64), 1, 1],
    )
    .await?;
    Ok(compare(
        "bias_backward",
        format!("B={b} N={n}"),
        &f32s(&out[0]),
        &want,
        1e-5,
        1e-5,
    ))
}

/// An activation's forward (in place) and backward (scales dact by f'(act)).
pub async fn check_activation(
    gpu: &Gpu,
    a: Activation,
    backward: bool,
    n: usize,
    seed: u32,
) -> Result<CheckRow> {
    let x = rand_vec(n, seed, 10, -4.0, 4.0);
    let (kernel, name) = match (a, backward) {
        (Activation::Relu, false) => (Kernel::ReluForward, "relu_forward"),
        (Activation::Relu, true) => (Kernel::ReluBackward, "relu_backward"),
        (Activation::Sigmoid, false) => (Kernel::SigmoidForward, "sigmoid_forward"),
        (Activation::Sigmoid, true) => (Kernel::SigmoidBackward, "sigmoid_backward"),
        (Activation::Tanh, false) => (Kernel::TanhForward, "tanh_forward"),
        (Activation::Tanh, true) => (Kernel::TanhBackward, "tanh_backward"),
    };
    let (got, want) = if backward {
        let mut act = x.clone();
        twin::activation_forward(a, &mut act);
        let dact = rand_vec(n, seed, 11, -1.0, 1.0);
        let mut want = dact.clone();
        twin::activation_backward(a, &mut want, &act);
        let out = run_one(
            gpu,
            kernel,
            Form::Scalar,
            &[bytes(&dact), bytes(&act)],
            &[n as u32],
            groups_1d(n, 256),
        )
        .await?;
        (f32s(&out[0]), want)
    } else {
        let mut want = x.clone();
        twin::activation_forward(a, &mut want);
        let out = run_one(
            gpu,
            kernel,
            Form::Scalar,
            &[bytes(&x)],
            &[n as u32],
            groups_1d(n, 256),
        )
        .await?;
        (f32s(&out[0]), want)
    };
    Ok(compare(name, format!("n={n}"), &got, &want, 1e-6, 1e-5))
}

/// The loss kernels: forward (per-sample loss, and probs for cross-entropy) and backward.
pub async fn check_loss(
    gpu: &Gpu,
    loss: Loss,
    backward: bool,
    b: usize,
    seed: u32,
) -> Result<CheckRow> {
    let c = CLASSES;
    let logits = rand_vec(b * c, seed, 12, -6.0, 6.0);
    let labels = rand_labels(b, seed);
    let scale = 1.0 / b as f32;
    let shape = format!("B={b}");
    let lw = |flags: u32| [b as u32, c as u32, flags, 0, scale.to_bits()];
    let mut losses = vec![0.0; b];
    let mut probs = vec![0.0; b * c];
    match (loss, backward) {
        (_, false) => loss_forward_case(gpu, loss, b, seed, false).await,
        (Loss::Xent, true) => {
            twin::softmax_xent_forward(&mut losses, &mut probs, &logits, &labels, b, c);
            let mut want = vec![0.0; b * c];
            twin::softmax_xent_backward(&mut want, &probs, &labels, b, c, scale);
            let out = run_one(
                gpu,
                Kernel::SoftmaxXentBackward,
                Form::Scalar,
                &[bytes(&vec![0f32; b * c]), bytes(&probs), bytes(&labels)],
                &lw(0),
                groups_1d(b * c, 256),
            )
            .await?;
            Ok(compare(
                "softmax_xent_backward",
                shape,
                &f32s(&out[0]),
                &want,
                1e-6,
                1e-5,
            ))
        }
        (Loss::Mse, true) => {
            let mut want = vec![0.0; b * c];
            twin::mse_backward(&mut want, &logits, &labels, b, c, scale);
            let out = run_one(
                gpu,
                Kernel::MseBackward,
                Form::Scalar,
                &[bytes(&vec![0f32; b * c]), bytes(&logits), bytes(&labels)],
                &lw(0),
                groups_1d(b * c, 256),
            )
            .await?;
            Ok(compare(
                "mse_backward",
                shape,
                &f32s(&out[0]),
                &want,
                1e-6,
                1e-5,
            ))
        }
    }
}

/// The loss forward kernel writing the logits' gradient too (WITH_GRAD), against the CPU's
/// forward then backward.
pub async fn check_loss_fused(gpu: &Gpu, loss: Loss, b: usize, seed: u32) -> Result<CheckRow> {
    loss_forward_case(gpu, loss, b, seed, true).await
}

async fn loss_forward_case(
    gpu: &Gpu,
    loss: Loss,
    b: usize,
    seed: u32,
    with_grad: bool,
) -> Result<CheckRow> {
    let c = CLASSES;
    let logits = rand_vec(b * c, seed, 12, -6.0, 6.0);
    let labels = rand_labels(b, seed);
    let scale = 1.0 / b as f32;
    let mut losses = vec![0.0; b];
    let mut probs = vec![0.0; b * c];
    let mut dlogits = vec![0.0; b * c];
    let u = [
        b as u32,
        c as u32,
        if with_grad { 16 } else { 0 },
        0,
        scale.to_bits(),
    ];
    let groups = [(b as u32).div_ceil(64), 1, 1];
    let zeros_bc = vec![0f32; b * c];
    let (name, mut got, mut want) = match loss {
        Loss::Xent => {
            twin::softmax_xent_forward(&mut losses, &mut probs, &logits, &labels, b, c);
            twin::softmax_xent_backward(&mut dlogits, &probs, &labels, b, c, scale);
            let out = run_one(
                gpu,
                Kernel::SoftmaxXentForward,
                Form::Scalar,
                &[
                    bytes(&vec![0f32; b]),
                    bytes(&zeros_bc),
                    bytes(&logits),
                    bytes(&labels),
                    bytes(&zeros_bc),
                ],
                &u,
                groups,
            )
            .await?;
            let mut got = f32s(&out[0]);
            got.extend(f32s(&out[1]));
            losses.extend(&probs);
            let grad = f32s(&out[4]);
            ("softmax_xent_forward", (got, grad), losses)
        }
        Loss::Mse => {
            twin::mse_forward(&mut losses, &logits, &labels, b, c);
            twin::mse_backward(&mut dlogits, &logits, &labels, b, c, scale);
            let out = run_one(
                gpu,
                Kernel::MseForward,
                Form::Scalar,
                &[
                    bytes(&vec![0f32; b]),
                    bytes(&logits),
                    bytes(&labels),
                    bytes(&zeros_bc),
                ],
                &u,
                groups,
            )
            .await?;
            ("mse_forward", (f32s(&out[0]), f32s(&out[3])), losses)
        }
    };
    let mut name = name.to_owned();
    if with_grad {
        // The fused kernel must also produce the backward kernel's output.
        got.0.extend(got.1);
        want.extend(dlogits);
        name.push_str(&format!(
            " + {}",
            match loss {
                Loss::Xent => "softmax_xent_backward",
                Loss::Mse => "mse_backward",
            }
        ));
    } else if got.1.iter().any(|&g| g != 0.0) {
        // Without the flag the gradient buffer must stay untouched.
        got.0.push(f32::NAN);
        want.push(0.0);
    }
    Ok(compare(&name, format!("B={b}"), &got.0, &want, 1e-5, 1e-5))
}

/// loss_reduce: `sums[slot]` (+)= Σ losses, with the slot taken from the step counter, which
/// advances.
pub async fn check_loss_reduce(
    gpu: &Gpu,
    rows: usize,
    accumulate: bool,
    seed: u32,
) -> Result<CheckRow> {
    let losses = rand_vec(rows, seed, 13, 0.0, 3.0);
    let sums = rand_vec(4, seed, 14, 0.0, 1.0);
    let state = [2u32, 0, 0, 0];
    let mut want = sums.clone();
    twin::loss_reduce(&mut want[2], &losses, rows, accumulate);
    let flags = 4 | 8 | if accumulate { 2 } else { 0 };
    let out = run_one(
        gpu,
        Kernel::LossReduce,
        Form::Scalar,
        &[bytes(&sums), bytes(&state), bytes(&losses)],
        &[rows as u32, CLASSES as u32, flags, 0],
        [1, 1, 1],
    )
    .await?;
    let mut got = f32s(&out[0]);
    let step: Vec<u32> = bytemuck::pod_collect_to_vec(&out[1]);
    // The step counter must have advanced: fold that into the comparison as one more element.
    got.push(step[0] as f32);
    want.push(3.0);
    Ok(compare(
        "loss_reduce",
        format!("rows={rows}"),
        &got,
        &want,
        1e-5,
        1e-5,
    ))
}

/// argmax_correct: correct += #(argmax(logits) == label), ties to the first maximum.
pub async fn check_argmax_correct(gpu: &Gpu, b: usize, seed: u32) -> Result<CheckRow> {
    let mut logits = rand_vec(b * CLASSES, seed, 15, -2.0, 2.0);
    // Quantise so ties happen.
    logits.iter_mut().for_each(|x| *x = (*x * 2.0).round());
    let labels = rand_labels(b, seed);
    let mut want = 5u32;
    twin::argmax_correct(&mut want, &logits, &labels, b, CLASSES);
    let out = run_one(
        gpu,
        Kernel::ArgmaxCorrect,
        Form::Scalar,
        &[bytes(&[5u32]), bytes(&logits), bytes(&labels)],
        &[b as u32, CLASSES as u32, 0, 0],
        [(b as u32).div_ceil(64), 1, 1],
    )
    .await?;
    let got: Vec<u32> = bytemuck::pod_collect_to_vec(&out[0]);
    Ok(compare(
        "argmax_correct",
        format!("B={b}"),
        &[got[0] as f32],
        &[want as f32],
        0.0,
        0.0,
    ))
}

/// batch_gather: rows of a shuffled, packed-u8 data set, from the step counter's position.
pub async fn check_batch_gather(gpu: &Gpu, rows: usize, seed: u32) -> Result<CheckRow> {
    let n = 300;
    let Dataset {
        images,
        labels: labels8,
        ..
    } = synthetic(n, seed);
    let labels: Vec<u32> = labels8.iter().map(|&l| l as u32).collect();
    let order = rng::permutation(n, seed, rng::stream::SHUFFLE);
    let (batch, step, base) = (rows, 1usize, 3usize);
    let start = step * batch + base;
    let mut x = vec![0.0; rows * PIXELS];
    let mut y = vec![0u32; rows];
    twin::batch_gather(&mut x, &mut y, &images, &labels8, &order, start, rows);
    let out = run_one(
        gpu,
        Kernel::BatchGather,
        Form::Scalar,
        &[
            bytes(&vec![0f32; rows * PIXELS]),
            bytes(&vec![0u32; rows]),
            &images,
            bytes(&labels),
            bytes(&order),
            bytes(&[step as u32, 0, 0, 0]),
            &[0u8; 16],
        ],
        &[rows as u32, batch as u32, base as u32, 1],
        groups_1d(rows * PIXELS / 16, 256),
    )
    .await?;
    let mut got = f32s(&out[0]);
    let gy: Vec<u32> = bytemuck::pod_collect_to_vec(&out[1]);
    got.extend(gy.iter().map(|&v| v as f32));
    x.extend(y.iter().map(|&v| v as f32));
    Ok(compare(
        "batch_gather",
        format!("rows={rows}"),
        &got,
        &x,
        1e-7,
        1e-6,
    ))
}

/// batch_gather_features: rows of a shuffled f32 table of `width` features, from the step
/// counter's position, with the table in parts of `part_rows` rows (as a split bigger than one
/// binding is held).
pub async fn check_batch_gather_features(
    gpu: &Gpu,
    rows: usize,
    width: usize,
    part_rows: usize,
    seed: u32,
) -> Result<CheckRow> {
    let n = 300;
    let d = synthetic_features(n, width, 3, seed);
    let labels: Vec<u32> = d.labels.iter().map(|&l| l as u32).collect();
    let order = rng::permutation(n, seed, rng::stream::SHUFFLE);
    let (batch, step, base) = (rows, 1usize, 3usize);
    let start = step * batch + base;
    let mut x = vec![0.0; rows * width];
    let mut y = vec![0u32; rows];
    twin::batch_gather_features(
        &mut x,
        &mut y,
        &d.features,
        &d.labels,
        &order,
        start,
        rows,
        width,
    );
    let part = |i: usize| {
        let lo = (i * part_rows * width).min(d.features.len());
        let hi = ((i + 1) * part_rows * width).min(d.features.len());
        let mut v = d.features[lo..hi].to_vec();
        // An empty part is still bound: a placeholder.
        if v.is_empty() {
            v.push(0.0);
        }
        v
    };
    let (p0, p1, p2) = (part(0), part(1), part(2));
    let out = run_one(
        gpu,
        Kernel::BatchGatherFeatures,
        Form::Scalar,
        &[
            bytes(&vec![0f32; rows * width]),
            bytes(&vec![0u32; rows]),
            bytes(&p0),
            bytes(&labels),
            bytes(&order),
            bytes(&[step as u32, 0, 0, 0]),
            bytes(&p1),
            bytes(&p2),
        ],
        &[
            rows as u32,
            batch as u32,
            base as u32,
            1,
            width as u32,
            part_rows as u32,
        ],
        groups_1d(rows * width, 256),
    )
    .await?;
    let mut got = f32s(&out[0]);
    let gy: Vec<u32> = bytemuck::pod_collect_to_vec(&out[1]);
    got.extend(gy.iter().map(|&v| v as f32));
    x.extend(y.iter().map(|&v| v as f32));
    Ok(compare(
        "batch_gather_features",
        format!("rows={rows} width={width} parts of {part_rows}"),
        &got,
        &x,
        0.0,
        0.0,
    ))
}

/// batch_gather with PACKED: the rows' pixels copied still packed to xb, and the labels.
pub async fn check_batch_gather_packed(gpu: &Gpu, rows: usize, seed: u32) -> Result<CheckRow> {
    let n = 300;
    let Dataset { images, labels, .. } = synthetic(n, seed);
    let labels: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let order = rng::permutation(n, seed, rng::stream::SHUFFLE);
    let (batch, step) = (rows, 2usize);
    let mut want: Vec<f32> = Vec::new();
    for r in 0..rows {
        let s = order[step * batch + r] as usize;
        want.extend(
            images[s * PIXELS..(s + 1) * PIXELS]
                .iter()
                .map(|&p| p as f32),
        );
    }
    want.extend((0..rows).map(|r| labels[order[step * batch + r] as usize] as f32));
    let out = run_one(
        gpu,
        Kernel::BatchGather,
        Form::Scalar,
        &[
            &[0u8; 16],
            bytes(&vec![0u32; rows]),
            &images,
            bytes(&labels),
            bytes(&order),
            bytes(&[step as u32, 0, 0, 0]),
            &vec![0u8; rows * PIXELS],
        ],
        &[rows as u32, batch as u32, 0, 1 | crate::gpu::PACKED],
        groups_1d(rows * PIXELS / 16, 256),
    )
    .await?;
    let mut got: Vec<f32> = out[6].iter().map(|&p| p as f32).collect();
    got.extend(
        bytemuck::pod_collect_to_vec::<u8, u32>(&out[1])
            .iter()
            .map(|&v| v as f32),
    );
    Ok(compare(
        "batch_gather",
        format!("packed rows={rows}"),
        &got,
        &want,
        0.0,
        0.0,
    ))
}

/// The update kernels' cases, (optimizer, momentum): plain SGD's μ = 0 skips the momentum
/// buffer, so it is a case of its own.
pub const OPTIMIZER_CASES: [(OptimizerKind, f32); 5] = [
    (OptimizerKind::Sgd, 0.9),
    (OptimizerKind::Sgd, 0.0),
    (OptimizerKind::Nesterov, 0.9),
    (OptimizerKind::Adam, 0.9),
    (OptimizerKind::Adamw, 0.9),
];

/// One optimizer's update kernel over a flat parameter buffer (padded to whole vec4s, as the
/// backend keeps it), at global step 7 of a schedule (its row of coefficients in a uniform, as
/// a training step has it). `momentum` is the SGD family's (Adam ignores it); at 0 the momentum
/// buffer must come back as it went in.
pub async fn check_optimizer_update(
    gpu: &Gpu,
    kind: OptimizerKind,
    momentum: f32,
    weight_decay: f32,
    n: usize,
    seed: u32,
) -> Result<CheckRow> {
    let n4 = n.next_multiple_of(4);
    let pad = |mut v: Vec<f32>| {
        v.resize(n4, 0.0);
        v
    };
    let params = pad(rand_vec(n, seed, 18, -1.0, 1.0));
    let state1 = pad(rand_vec(n, seed, 19, -0.1, 0.1));
    // exp_avg_sq is never negative.
    let state2 = pad(rand_vec(n, seed, 23, 0.0, 0.01));
    let grads = pad(rand_vec(n, seed, 20, -1.0, 1.0));
    let cfg = OptimConfig {
        kind,
        momentum,
        weight_decay,
        ..OptimConfig::sgd(0.9)
    };
    let hyper = cfg.step_hyper(7, 0.05);
    let (mut wp, mut w1, mut w2) = (params.clone(), state1.clone(), state2.clone());
    crate::cpu::optim::optimizer_update(&mut wp, &mut w1, &mut w2, &grads, &cfg, &hyper);
    let (kernel, _) = crate::gpu::update_kernel(&cfg);
    let row = [hyper];
    // The SGD family has no second state tensor; the outputs come back in the same order.
    let inputs: Vec<&[u8]> = if kind.is_adam() {
        vec![
            bytes(&params),
            bytes(&state1),
            bytes(&state2),
            bytes(&grads),
            bytes(&row),
        ]
    } else {
        vec![bytes(&params), bytes(&state1), bytes(&grads), bytes(&row)]
    };
    let out = run_one(
        gpu,
        kernel,
        Form::Scalar,
        &inputs,
        &[
            (n4 / 4) as u32,
            0,
            cfg.momentum.to_bits(),
            cfg.weight_decay.to_bits(),
            cfg.beta1.to_bits(),
            cfg.beta2.to_bits(),
            cfg.eps.to_bits(),
        ],
        groups_1d(n4 / 4, 256),
    )
    .await?;
    let mut got = f32s(&out[0]);
    got.extend(f32s(&out[1]));
    wp.extend(w1);
    if kind.is_adam() {
        got.extend(f32s(&out[2]));
        wp.extend(w2);
    }
    Ok(compare(
        kernel.name(),
        format!("n={n} μ={momentum} λ={weight_decay}"),
        &got,
        &wp,
        1e-6,
        1e-5,
    ))
}

/// max_norm on the weight `[out, inp]` at offset `w_off` of a flat parameter buffer, against its
/// twin: rows drawn at lengths on both sides of `c`, and the floats around the weight (other
/// layers' parameters) left as they were.
pub async fn check_max_norm(
    gpu: &Gpu,
    out: usize,
    inp: usize,
    w_off: usize,
    seed: u32,
) -> Result<CheckRow> {
    let n = w_off + out * inp + 3;
    let mut params = rand_vec(n, seed, 27, -1.0, 1.0);
    // Each row at its own scale, so about half the rows are longer than c.
    let c = 0.5 * (inp as f32 / 3.0).sqrt().max(0.1);
    for (r, row) in params[w_off..w_off + out * inp]
        .chunks_exact_mut(inp)
        .enumerate()
    {
        let k = 0.2 + 1.6 * rng::uniform(seed, 28, r as u32);
        row.iter_mut().for_each(|w| *w *= k);
    }
    let mut want = params.clone();
    cpu::constraint::max_norm(&mut want[w_off..], out, inp, c);
    let out_bufs = run_one(
        gpu,
        Kernel::MaxNorm,
        Form::Scalar,
        &[bytes(&params)],
        &[w_off as u32, out as u32, inp as u32, c.to_bits()],
        groups_1d(out, 1),
    )
    .await?;
    let got = f32s(&out_bufs[0]);
    Ok(compare(
        Kernel::MaxNorm.name(),
        format!("{out}x{inp} at {w_off}, c={c:.3}"),
        &got,
        &want,
        1e-6,
        1e-5,
    ))
}

/// apply_mask over a flat parameter buffer and `states` optimizer state buffers (padded to whole
/// vec4s, as the backend keeps them) with about `sparsity` of the mask zero, against its twin.
/// Some inputs are NaN where the mask is zero: a pruned weight must come out +0 regardless.
pub async fn check_apply_mask(
    gpu: &Gpu,
    n: usize,
    states: usize,
    sparsity: f32,
    seed: u32,
) -> Result<CheckRow> {
    let n4 = n.next_multiple_of(4);
    let pad = |mut v: Vec<f32>| {
        v.resize(n4, 0.0);
        v
    };
    let mask = pad((0..n)
        .map(|i| f32::from(rng::uniform(seed, 26, i as u32) >= sparsity))
        .collect());
    let poison = |mut v: Vec<f32>| {
        for (x, m) in v.iter_mut().zip(&mask).step_by(7) {
            if *m == 0.0 {
                *x = f32::NAN;
            }
        }
        v
    };
    let params = poison(pad(rand_vec(n, seed, 18, -1.0, 1.0)));
    let state1 = poison(pad(rand_vec(n, seed, 19, -0.1, 0.1)));
    // SGD's state2 is a 16-byte placeholder the kernel must leave alone.
    let state2 = if states >= 2 {
        poison(pad(rand_vec(n, seed, 23, 0.0, 0.01)))
    } else {
        vec![7.0; 4]
    };
    let (mut wp, mut w1, mut w2) = (params.clone(), state1.clone(), state2.clone());
    let used = if states >= 2 { n4 } else { 0 };
    cpu::prune::apply_mask(&mut wp, &mut w1, &mut w2[..used], &mask);
    let out = run_one(
        gpu,
        Kernel::ApplyMask,
        Form::Scalar,
        &[bytes(&params), bytes(&state1), bytes(&state2), bytes(&mask)],
        &[(n4 / 4) as u32, states as u32],
        groups_1d(n4 / 4, 256),
    )
    .await?;
    let mut got = f32s(&out[0]);
    got.extend(f32s(&out[1]));
    got.extend(f32s(&out[2]));
    wp.extend(w1);
    wp.extend(w2);
    let mut row = compare(
        Kernel::ApplyMask.name(),
        format!("n={n} states={states} sparsity={sparsity}"),
        &got,
        &wp,
        0.0,
        0.0,
    );
    // Bitwise too: a pruned weight is +0, never −0.
    if row.first_bad.is_none() {
        row.first_bad = got
            .iter()
            .zip(&wp)
            .position(|(a, b)| a.to_bits() != b.to_bits());
    }
    Ok(row)
}

/// dropout_forward and dropout_backward on a [rows, width] chunk that starts at row `row0` of
/// its batch, against the CPU twins: the same units dropped, the same scaled values.
pub async fn check_dropout(
    gpu: &Gpu,
    backward: Option<Activation>,
    rows: usize,
    width: usize,
    row0: usize,
    seed: u32,
) -> Result<CheckRow> {
    dropout_case(gpu, backward, (rows, width, row0), 0.3, 2, seed).await
}

/// dropout_forward as `--input-dropout` runs it: p = 0.2 over a [rows, width] chunk of input
/// features from row `row0`, keyed by the input's own layer index.
pub async fn check_input_dropout(
    gpu: &Gpu,
    rows: usize,
    width: usize,
    row0: usize,
    seed: u32,
) -> Result<CheckRow> {
    let mut row = dropout_case(
        gpu,
        None,
        (rows, width, row0),
        0.2,
        twin::INPUT_DROPOUT_LAYER,
        seed,
    )
    .await?;
    row.shape = format!("input {}", row.shape);
    Ok(row)
}

async fn dropout_case(
    gpu: &Gpu,
    backward: Option<Activation>,
    (rows, width, row0): (usize, usize, usize),
    p: f32,
    layer: usize,
    seed: u32,
) -> Result<CheckRow> {
    let n = rows * width;
    let t = 12_345u32;
    // Activations as the forward pass leaves them (non-negative for relu, in (0, 1) for
    // sigmoid, in (−1, 1) for tanh): any of these is fine for the check.
    let act = rand_vec(n, seed, 24, 0.0, 0.9);
    let dact = rand_vec(n, seed, 25, -1.0, 1.0);
    let key = twin::DropoutKey::new(p, seed, t, layer);
    let hyper = [StepHyper {
        t,
        ..StepHyper::default()
    }];
    let (x, want) = match backward {
        None => {
            let mut w = act.clone();
            twin::dropout_forward(&mut w, &key, row0, width);
            (act.clone(), w)
        }
        Some(a) => {
            let mut w = dact.clone();
            twin::dropout_backward(&mut w, &act, &key, a, row0, width);
            (dact.clone(), w)
        }
    };
    let act_kind = match backward {
        Some(Activation::Sigmoid) => 1,
        Some(Activation::Tanh) => 2,
        _ => 0,
    };
    let u = [
        n as u32,
        width as u32,
        row0 as u32,
        key.threshold,
        key.scale.to_bits(),
        key.keep_prob.to_bits(),
        seed,
        key.stream,
        act_kind,
    ];
    let (kernel, inputs): (Kernel, Vec<&[u8]>) = match backward {
        None => (Kernel::DropoutForward, vec![bytes(&x), bytes(&hyper)]),
        Some(_) => (
            Kernel::DropoutBackward,
            vec![bytes(&x), bytes(&act), bytes(&hyper)],
        ),
    };
    let out = run_one(gpu, kernel, Form::Scalar, &inputs, &u, groups_1d(n, 256)).await?;
    let got = f32s(&out[0]);
    let act = backward
        .map(|a| format!("{} ", a.name()))
        .unwrap_or_default();
    Ok(compare(
        kernel.name(),
        format!("{act}{rows}x{width} from row {row0}"),
        &got,
        &want,
        1e-6,
        1e-5,
    ))
}

/// The forms of (matmul_forward, matmul_backward_input, matmul_backward_weight) that apply to
/// (batch, in, out) on this device: the scalar and tiled ones where built, then the vec4 and
/// subgroup ones where the sizes that step rows (and C's rows) are multiples of 4.
pub fn forms(gpu: &Gpu, (b, k, n): (usize, usize, usize)) -> [Vec<Form>; 3] {
    let aligned = k.is_multiple_of(4) && n.is_multiple_of(4) && b > 0;
    [
        Kernel::MatmulForward,
        Kernel::MatmulBackwardInput,
        Kernel::MatmulBackwardWeight,
    ]
    .map(|kernel| {
        [Form::Scalar, Form::Tiled, Form::Vec4, Form::Subgroup]
            .into_iter()
            .filter(|&f| gpu.kernels.has_matmul_form(f) && kernel.has_form(f))
            .filter(|f| aligned || !f.aligned())
            .collect()
    })
}

/// Every kernel against its CPU twin on seeded random inputs of several shapes.
pub async fn kernel_checks(gpu: &Gpu) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    for (i, &s) in MATMUL_SHAPES.iter().enumerate() {
        let seed = i as u32;
        let [ff, fi, fw] = forms(gpu, s);
        for form in ff {
            rows.push(check_matmul_forward(gpu, s, form, seed).await?);
        }
        for form in fi {
            rows.push(check_matmul_backward_input(gpu, s, form, seed).await?);
        }
        for form in fw {
            rows.push(check_matmul_backward_weight(gpu, s, i % 2 == 1, form, seed).await?);
        }
    }
    for (i, a) in [Activation::Relu, Activation::Sigmoid, Activation::Tanh]
        .into_iter()
        .enumerate()
    {
        for &s in &[(7, 13, 10), (64, 784, 128)] {
            let [ff, fi, _] = forms(gpu, s);
            for form in ff {
                rows.push(check_matmul_forward_fused(gpu, s, a, form, i as u32).await?);
            }
            for form in fi {
                rows.push(check_matmul_backward_input_fused(gpu, s, a, form, i as u32).await?);
            }
        }
    }
    for (i, &s) in [(7, 13, 10), (64, 784, 128), (12, 64, 36)]
        .iter()
        .enumerate()
    {
        let [_, _, fw] = forms(gpu, s);
        for form in fw {
            rows.push(check_matmul_backward_weight_bias(gpu, s, i == 1, form, i as u32).await?);
        }
    }
    for (i, &(b, n)) in [(1, 10), (7, 128), (100, 33)].iter().enumerate() {
        rows.push(check_bias_backward(gpu, b, n, i == 1, i as u32).await?);
    }
    for a in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
        for backward in [false, true] {
            for (i, n) in [1, 1000, 70_001].into_iter().enumerate() {
                rows.push(check_activation(gpu, a, backward, n, i as u32).await?);
            }
        }
    }
    for loss in [Loss::Xent, Loss::Mse] {
        for backward in [false, true] {
            for (i, b) in [1, 7, 100].into_iter().enumerate() {
                rows.push(check_loss(gpu, loss, backward, b, i as u32).await?);
            }
        }
    }
    for loss in [Loss::Xent, Loss::Mse] {
        for (i, b) in [1, 7, 100].into_iter().enumerate() {
            rows.push(check_loss_fused(gpu, loss, b, i as u32).await?);
        }
    }
    for (i, r) in [1, 7, 1000].into_iter().enumerate() {
        rows.push(check_loss_reduce(gpu, r, i == 1, i as u32).await?);
    }
    for (i, b) in [1, 7, 100].into_iter().enumerate() {
        rows.push(check_argmax_correct(gpu, b, i as u32).await?);
        rows.push(check_batch_gather(gpu, b, i as u32).await?);
        rows.push(check_batch_gather_packed(gpu, b, i as u32).await?);
    }
    for (i, (b, w, parts)) in [(1, 4, 300), (7, 30, 100), (100, 3072, 128)]
        .into_iter()
        .enumerate()
    {
        rows.push(check_batch_gather_features(gpu, b, w, parts, i as u32).await?);
    }
    for (i, n) in [1, 1000, 101_770].into_iter().enumerate() {
        for (kind, mu) in OPTIMIZER_CASES {
            let wd = if i == 1 { 0.01 } else { 0.0 };
            rows.push(check_optimizer_update(gpu, kind, mu, wd, n, i as u32).await?);
        }
    }
    for (i, (rows_, width, row0)) in [(1, 7, 0), (7, 13, 5), (64, 128, 8192)]
        .into_iter()
        .enumerate()
    {
        let seed = i as u32;
        rows.push(check_dropout(gpu, None, rows_, width, row0, seed).await?);
        for a in [Activation::Relu, Activation::Sigmoid, Activation::Tanh] {
            rows.push(check_dropout(gpu, Some(a), rows_, width, row0, seed).await?);
        }
    }
    for (i, (rows_, width, row0)) in [(1, 784, 0), (7, 784, 5), (3, 13, 100)]
        .into_iter()
        .enumerate()
    {
        rows.push(check_input_dropout(gpu, rows_, width, row0, i as u32).await?);
    }
    for (i, (out, inp, w_off)) in [(1, 1, 0), (7, 13, 5), (800, 784, 0), (10, 801, 3)]
        .into_iter()
        .enumerate()
    {
        rows.push(check_max_norm(gpu, out, inp, w_off, i as u32).await?);
    }
    for (i, (n, states, sparsity)) in [(1, 1, 0.5), (1001, 2, 0.9), (101_770, 1, 0.98)]
        .into_iter()
        .enumerate()
    {
        rows.push(check_apply_mask(gpu, n, states, sparsity, i as u32).await?);
    }
    if gpu.kernels.input {
        for (i, &(b, n)) in INPUT_SHAPES.iter().enumerate() {
            rows.push(check_matmul_input(gpu, b, n, false, false, None, i as u32).await?);
            rows.push(check_matmul_input(gpu, b, n, true, i % 2 == 1, None, i as u32).await?);
            rows.push(check_matmul_input(gpu, b, n, true, false, Some(0.1), i as u32).await?);
        }
    }
    // output_layer_step exists only where the adapter has 64 KiB uniform bindings; its Input
    // form only where act fits one.
    if gpu.kernels.head {
        rows.extend(check_output_layer_steps(gpu).await?);
    }
    Ok(rows)
}

/// check_output_layer_step at every HEAD_CASES shape, in form Scalar and, where act fits a
/// uniform array, form Input.
pub async fn check_output_layer_steps(gpu: &Gpu) -> Result<Vec<CheckRow>> {
    let mut rows = Vec::new();
    for (i, &(b, h, loss, hidden, acc)) in HEAD_CASES.iter().enumerate() {
        for form in [Form::Scalar, Form::Input] {
            if form == Form::Scalar || crate::gpu::head_input(b, h) {
                let seed = i as u32;
                rows.push(
                    check_output_layer_step(gpu, form, b, h, loss, hidden, acc, None, seed).await?,
                );
                // Plain SGD in the stores, at each case that forms a whole gradient.
                if !acc {
                    let sgd = Some(0.1);
                    rows.push(
                        check_output_layer_step(gpu, form, b, h, loss, hidden, acc, sgd, seed)
                            .await?,
                    );
                }
            }
        }
    }
    Ok(rows)
}

/// output_layer_step: the output layer's forward and backward passes and the loss sum in one
/// dispatch, against the CPU's twins run in order. Compares [grads.weight, grads.bias (with the
/// two padding floats after it, which must keep their values), dact, `step_losses[slot]`, state];
/// with `sgd` (SGD_STEP at that learning rate), the whole params (stepped by the `sgd_update`
/// twin) before them, and grads unchanged.
#[allow(clippy::too_many_arguments)]
pub async fn check_output_layer_step(
    gpu: &Gpu,
    form: Form,
    b: usize,
    h: usize,
    loss: Loss,
    hidden: Option<Activation>,
    accumulate: bool,
    sgd: Option<f32>,
    seed: u32,
) -> Result<CheckRow> {
    let c = CLASSES;
    let act = rand_vec(b * h, seed, 30, 0.0, 1.0);
    let labels = rand_labels(b, seed);
    // params: [junk 4, W [10, h], b [10], padding 2]; grads laid out the same.
    let (w_off, b_off) = (4, 4 + c * h);
    let n = b_off + c + 2;
    let params = rand_vec(n, seed, 31, -0.5, 0.5);
    let grads = rand_vec(n, seed, 32, -1.0, 1.0);
    let scale = 1.0 / b as f32;
    let mut want = grads.clone();
    let (dw, rest) = want[w_off..].split_at_mut(c * h);
    let mut dact = vec![0.0; b * h];
    let sum = twin::output_layer_step(
        dw,
        rest,
        &mut dact,
        &act,
        &params[w_off..b_off],
        &params[b_off..b_off + c],
        &labels,
        b,
        h,
        loss,
        hidden,
        scale,
        accumulate,
    );
    // With plain SGD in the stores, params take the step and grads keep their values.
    if let Some(lr) = sgd {
        let mut p = params.clone();
        let range = w_off..b_off + c;
        cpu::optim::sgd_update(&mut p[range.clone()], &mut [], &want[range], lr, 0.0, 0.0);
        p.extend(&grads);
        want = p;
    }
    let old_sum = 0.25f32;
    let step = 3u32;
    want.extend(if hidden.is_some() {
        dact
    } else {
        vec![-1.0; b * h]
    });
    want.push(if accumulate { old_sum + sum } else { sum });
    want.push(f32::from_bits(step + 1));
    let mut flags = if loss == Loss::Mse { 1 } else { 0 } | crate::gpu::ADVANCE_HEAD;
    if accumulate {
        flags |= 2;
    }
    if let Some(a) = hidden {
        flags |= act_flags(a).1;
    }
    if sgd.is_some() {
        flags |= crate::gpu::HEAD_SGD_STEP;
    }
    let hyper = [sgd.unwrap_or(0.0), 1.0, 1.0, 1.0];
    let layer = crate::model::LayerShape {
        inp: h,
        out: c,
        w_off,
        b_off,
    };
    let u = crate::gpu::head_words(&layer, b, flags, scale);
    let mut step_losses = vec![0f32; 8];
    step_losses[step as usize] = old_sum;
    // The host's uniform copy of W and b, and act as a uniform array (form Input only).
    let mut head_w = params[w_off..b_off + c].to_vec();
    head_w.resize(NO_UNIFORM.len() / 4, 0.0);
    let mut act_u = act.clone();
    act_u.resize(NO_UNIFORM.len() / 4, 0.0);
    let out = run_one(
        gpu,
        Kernel::OutputLayerStep,
        form,
        &[
            bytes(&act),
            bytes(&params),
            bytes(&grads),
            bytes(&vec![-1f32; b * h]),
            bytes(&labels),
            bytes(&step_losses),
            bytes(&[step, 0, 0, 0]),
            bytes(&head_w),
            if form == Form::Input {
                bytes(&act_u)
            } else {
                &NO_UNIFORM
            },
            bytes(&hyper),
        ],
        &u,
        [1, 1, 1],
    )
    .await?;
    // With SGD_STEP params, then grads (untouched); grads alone otherwise.
    let mut got = match sgd {
        Some(_) => f32s(&out[1]),
        None => Vec::new(),
    };
    got.extend(f32s(&out[2]));
    got.extend(f32s(&out[3]));
    got.push(f32s(&out[5])[step as usize]);
    got.push(f32::from_bits(bytemuck::pod_read_unaligned::<u32>(
        &out[6][..4],
    )));
    let what = match hidden {
        Some(a) => format!(" {}'", a.name()),
        None => String::new(),
    };
    Ok(compare(
        if form == Form::Input {
            "output_layer_step (uniform act)"
        } else {
            "output_layer_step"
        },
        format!(
            "{}{what} B={b} H={h}{}{}",
            loss.name(),
            if accumulate { " +=" } else { "" },
            match sgd {
                Some(lr) => format!(" SGD_STEP lr {lr}"),
                None => String::new(),
            }
        ),
        &got,
        &want,
        1e-5,
        1e-4,
    ))
}

/// output_layer_step cases: (batch, hidden, loss, hidden activation, accumulate): batch 1, a
/// batch that is not a multiple of the workgroup, the largest batch, act too large for the Input
/// form, W filling its uniform copy, softmax regression.
pub const HEAD_CASES: [(usize, usize, Loss, Option<Activation>, bool); 8] = [
    (1, 128, Loss::Xent, Some(Activation::Relu), false),
    (64, 128, Loss::Xent, Some(Activation::Relu), false),
    // act too large for a uniform array (Scalar only); W and b filling their uniform copy.
    (200, 128, Loss::Xent, Some(Activation::Relu), true),
    (3, 1636, Loss::Xent, Some(Activation::Relu), false),
    (100, 36, Loss::Mse, Some(Activation::Sigmoid), true),
    (256, 12, Loss::Xent, Some(Activation::Tanh), false),
    (7, 784, Loss::Xent, None, false),
    (33, 4, Loss::Mse, Some(Activation::Relu), true),
];
