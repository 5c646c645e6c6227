//! Building plans: a training step, an evaluation and the mask update as lists of dispatches,
//! each with the buffers it binds and the matmul form that runs it.

use crate::cpu::kernels::INPUT_DROPOUT_LAYER;
use crate::data::PIXELS;
use crate::error::Result;
use crate::gpu::backend::{GpuData, Workspace};
use crate::gpu::kernels::{self, Form, Kernel, Kernels, MatmulVariant};
use crate::gpu::matmul::{Mm, vec4_ok};
use crate::gpu::plan::{Plan, PlanBuilder, UniformSrc, groups_1d, words};
use crate::gpu::tune::Product;
use crate::gpu::{
    ACCUMULATE, ADD_BIAS, ADVANCE, BIAS_GRAD, FROM_STATE, Gpu, PACKED, SGD_STEP, SLOT_FROM_STATE,
    WITH_GRAD, act_flags,
};
use crate::model::{Activation, LayerShape, Loss, ModelSpec};
use crate::optim::{OptimConfig, OptimizerKind};

fn act_kernels(a: Activation) -> (Kernel, Kernel) {
    match a {
        Activation::Relu => (Kernel::ReluForward, Kernel::ReluBackward),
        Activation::Sigmoid => (Kernel::SigmoidForward, Kernel::SigmoidBackward),
        Activation::Tanh => (Kernel::TanhForward, Kernel::TanhBackward),
    }
}

/// Pushes one matrix product. `packed`: the batch, packed, which the Input form reads in place
/// of the float one (the caller has checked [`packed_input`]). `hyper`: this step's row, which
/// a product with [`SGD_STEP`] reads its learning rate from.
#[allow(clippy::too_many_arguments)]
fn push_mm(
    pb: &mut PlanBuilder<'_>,
    g: &Gpu,
    label: String,
    kernel: Kernel,
    out: &wgpu::Buffer,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    packed: Option<&wgpu::Buffer>,
    hyper: Option<&wgpu::Buffer>,
    mm: Mm,
) {
    let form = match packed {
        Some(_) => Form::Input,
        None => g.matmul_form(kernel, &mm),
    };
    // The Input form's uniform arrays: the packed batch, and matmul_backward_weight's dout.
    let xu = packed.unwrap_or(&g.no_uniform);
    let du = match packed {
        Some(_) if kernel == Kernel::MatmulBackwardWeight => a,
        _ => &g.no_uniform,
    };
    let label = if packed.is_some() {
        label.replace("activations[0]", "xb (packed)")
    } else {
        label
    };
    pb.push(
        label,
        kernel,
        &[out, a, b, bias, xu, du, hyper.unwrap_or(&g.no_uniform)],
        words(&mm.uniform()),
        g.kernels.groups(form, mm.m, mm.n),
    );
    pb.set_flops(2 * (mm.m * mm.n * mm.k) as u64);
    pb.set_form(form);
}

/// The input layer's two products, when a training plan of `rows` rows could keep its batch
/// packed for the Input form: the form is built, a hidden layer follows the input (whose
/// forward and weight-gradient products both take the vec4 path), and the packed batch and
/// that layer's dout fit a uniform binding.
pub(crate) fn packable(g: &Gpu, spec: &ModelSpec, rows: usize) -> Option<(Mm, Mm)> {
    let layers = spec.layers();
    let (Some(l), true) = (layers.first(), layers.len() > 1) else {
        return None;
    };
    let fwd = Mm::forward(l, rows, 0);
    let bwd = Mm::weight(l, rows, BIAS_GRAD);
    let fits = |bytes: usize| bytes as u64 <= kernels::UNIFORM_ARRAY;
    (g.kernels.input
        && vec4_ok(Kernel::MatmulForward, &fwd)
        && vec4_ok(Kernel::MatmulBackwardWeight, &bwd)
        && fits(rows * l.inp)
        && fits(rows * l.out * 4))
    .then_some((fwd, bwd))
}

/// Whether a training plan of `rows` rows keeps its batch packed: it can, and (auto) the
/// measurement chose the Input form for the input layer, or (blocked) always.
pub(crate) fn packed_input(g: &Gpu, spec: &ModelSpec, rows: usize) -> bool {
    match packable(g, spec, rows) {
        None => false,
        Some((fwd, _)) => match g.kernels.variant {
            MatmulVariant::Auto => g
                .tuned(&packed_key(&fwd))
                .map_or(g.kernels.subgroup_unchecked_ok(), |f| f == Form::Input),
            _ => g.kernels.subgroup_unchecked_ok(),
        },
    }
}

/// The tuning key of the input layer's forward product weighed with the packed Input form.
pub(crate) fn packed_key(fwd: &Mm) -> String {
    format!("{} packed", fwd.key(Kernel::MatmulForward))
}

fn loss_words(classes: usize, rows: usize, flags: u32, slot: u32, scale: f32) -> UniformSrc {
    words(&[rows as u32, classes as u32, flags, slot, scale.to_bits()])
}

pub(crate) struct Buffers<'a> {
    pub(crate) params: &'a wgpu::Buffer,
    pub(crate) grads: &'a wgpu::Buffer,
    pub(crate) state1: &'a wgpu::Buffer,
    pub(crate) state2: &'a wgpu::Buffer,
    pub(crate) state: &'a wgpu::Buffer,
    pub(crate) step_losses: &'a wgpu::Buffer,
    /// This step's StepHyper, a uniform.
    pub(crate) hyper_now: &'a wgpu::Buffer,
    /// The last layer's W and b, copied before each step for output_layer_step (a 64 KiB
    /// uniform array).
    pub(crate) head_w: &'a wgpu::Buffer,
    pub(crate) optim: OptimConfig,
    /// (p, seed) when hidden outputs are dropped.
    pub(crate) dropout: Option<(f32, u32)>,
    /// (p, seed) when input features are dropped (`--input-dropout`; the batch is unpacked).
    pub(crate) input_dropout: Option<(f32, u32)>,
}

/// Dropout in a training plan: the probability and seed, the uniform its kernels read the step
/// from, and the chunk's first row within the batch.
#[derive(Clone, Copy)]
struct DropoutBind<'a> {
    p: f32,
    seed: u32,
    hyper_now: &'a wgpu::Buffer,
    row0: usize,
}

/// dropout_forward or dropout_backward over layer `layer`'s output [rows, width].
#[allow(clippy::too_many_arguments)]
fn push_dropout(
    pb: &mut PlanBuilder<'_>,
    label: String,
    backward: Option<(&wgpu::Buffer, Activation)>,
    x: &wgpu::Buffer,
    d: &DropoutBind<'_>,
    layer: usize,
    rows: usize,
    width: usize,
) {
    let key = crate::cpu::kernels::DropoutKey::new(d.p, d.seed, 0, layer);
    let n = rows * width;
    let act_kind = match backward.map(|(_, a)| a) {
        Some(Activation::Sigmoid) => 1,
        Some(Activation::Tanh) => 2,
        _ => 0,
    };
    let u = words(&[
        n as u32,
        width as u32,
        d.row0 as u32,
        key.threshold,
        key.scale.to_bits(),
        key.keep_prob.to_bits(),
        d.seed,
        key.stream,
        act_kind,
    ]);
    match backward {
        Some((act, _)) => pb.push(
            label,
            Kernel::DropoutBackward,
            &[x, act, d.hyper_now],
            u,
            groups_1d(n, 256),
        ),
        None => pb.push(
            label,
            Kernel::DropoutForward,
            &[x, d.hyper_now],
            u,
            groups_1d(n, 256),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn push_forward(
    pb: &mut PlanBuilder<'_>,
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    rows: usize,
    params: &wgpu::Buffer,
    grad_scale: Option<f32>,
    head: bool,
    dropout: Option<DropoutBind<'_>>,
) {
    let layers = spec.layers();
    let last = layers.len() - 1;
    let (act_fwd, _) = act_kernels(spec.activation);
    let (fused_act, _) = act_flags(spec.activation);
    // With `head`, output_layer_step runs the last layer and the loss.
    let through = if head { last } else { last + 1 };
    for (l, s) in layers.iter().enumerate().take(through) {
        let fuse = g.fuse && l != last;
        push_mm(
            pb,
            g,
            if fuse {
                format!(
                    "layers.{l} activations[{}] = {}(activations[{l}]·Wᵀ + b)",
                    l + 1,
                    spec.activation.name()
                )
            } else {
                format!(
                    "layers.{l} activations[{}] = activations[{l}]·Wᵀ + b",
                    l + 1
                )
            },
            Kernel::MatmulForward,
            &ws.activations[l + 1],
            &ws.activations[l],
            params,
            params,
            (l == 0 && ws.packed).then_some(&ws.xb),
            None,
            Mm::forward(s, rows, ADD_BIAS | if fuse { fused_act } else { 0 }),
        );
        if l != last && !fuse {
            let n = rows * s.out;
            pb.push(
                format!("layers.{l} activations[{}]", l + 1),
                act_fwd,
                &[&ws.activations[l + 1]],
                words(&[n as u32]),
                groups_1d(n, 256),
            );
        }
        if let (Some(d), true) = (&dropout, l != last) {
            push_dropout(
                pb,
                format!(
                    "layers.{l} activations[{}] = dropout(activations[{}], p = {})",
                    l + 1,
                    l + 1,
                    d.p
                ),
                None,
                &ws.activations[l + 1],
                d,
                l,
                rows,
                s.out,
            );
        }
    }
    if head {
        return;
    }
    let logits = &ws.activations[last + 1];
    // With a scale, the loss kernel also writes the gradient w.r.t. the logits (fused).
    let dlogits = &ws.dactivations[last + 1];
    let (flags, scale) = grad_scale.map_or((0, 1.0), |s| (WITH_GRAD, s));
    match spec.loss {
        Loss::Xent => pb.push(
            if grad_scale.is_some() {
                "losses, probs = softmax_xent(logits); dactivations[out] = (probs − onehot)/B"
            } else {
                "losses, probs = softmax_xent(logits)"
            },
            Kernel::SoftmaxXentForward,
            &[&ws.losses, &ws.probs, logits, &ws.labels, dlogits],
            loss_words(spec.classes(), rows, flags, 0, scale),
            [(rows as u32).div_ceil(64), 1, 1],
        ),
        Loss::Mse => pb.push(
            if grad_scale.is_some() {
                "losses = mse(logits); dactivations[out] = 2(logits − onehot)/(10B)"
            } else {
                "losses = mse(logits)"
            },
            Kernel::MseForward,
            &[&ws.losses, logits, &ws.labels, dlogits],
            loss_words(spec.classes(), rows, flags, 0, scale),
            [(rows as u32).div_ceil(64), 1, 1],
        ),
    }
}

/// Whether output_layer_step (shaders/head.wgsl) can run the last layer: the adapter has the
/// 64 KiB uniform bindings it needs, the batch fits its one workgroup, the layer's W and b fit
/// its uniform copy, and the layer's input width and offsets allow vec4 access.
pub fn head_fits(kernels: &Kernels, spec: &ModelSpec, rows: usize) -> bool {
    let layers = spec.layers();
    let Some(l) = layers.last() else {
        return false;
    };
    kernels.head
        && rows <= HEAD_MAX_ROWS
        && head_w_bytes(l) <= kernels::UNIFORM_ARRAY
        && l.out == HEAD_CLASSES
        && l.inp.is_multiple_of(4)
        && l.w_off.is_multiple_of(4)
        && l.b_off.is_multiple_of(4)
}

/// Whether a plan of `rows` rows runs the last layer through output_layer_step: fused, and
/// [`head_fits`].
pub(crate) fn head_runs(g: &Gpu, spec: &ModelSpec, rows: usize) -> bool {
    g.fuse && head_fits(&g.kernels, spec, rows)
}

/// Bytes of the last layer's W `[10, h]` and b `[10]`, which output_layer_step reads from a uniform
/// copy (`head_w`, made before each step).
pub fn head_w_bytes(l: &LayerShape) -> u64 {
    ((l.b_off + l.out - l.w_off) * 4) as u64
}

/// Whether output_layer_step reads its input act `[rows, h]` as a uniform array (form Input):
/// it fits one. Workspace::new makes that buffer bindable as one.
pub fn head_input(rows: usize, h: usize) -> bool {
    (rows * h * 4) as u64 <= kernels::UNIFORM_ARRAY
}

/// The class count output_layer_step is written for (shaders/head.wgsl); other output widths
/// run the separate kernels, which take theirs from the uniform block.
pub const HEAD_CLASSES: usize = 10;

/// output_layer_step writes dact = dlogits·W without an activation's derivative (DIDENT).
pub const HEAD_DIDENT: u32 = 512;

/// output_layer_step's flag for plain SGD in its stores (SGD_STEP in shaders/head.wgsl).
pub const HEAD_SGD_STEP: u32 = 1024;

/// output_layer_step's flag that advances the step counter (ADVANCE in shaders/head.wgsl).
pub const ADVANCE_HEAD: u32 = 8;

/// The most rows output_layer_step takes (its workgroup memory holds dlogits for them).
pub const HEAD_MAX_ROWS: usize = 256;

/// The uniform block of output_layer_step: [rows, h/4, w_off/4, b_off/4, flags, scale, slot].
pub fn head_words(l: &LayerShape, rows: usize, flags: u32, scale: f32) -> [u32; 7] {
    [
        rows as u32,
        (l.inp / 4) as u32,
        (l.w_off / 4) as u32,
        (l.b_off / 4) as u32,
        flags,
        scale.to_bits(),
        0,
    ]
}

/// output_layer_step's flags for a model.
pub fn head_flags(spec: &ModelSpec) -> u32 {
    let mse = if spec.loss == Loss::Mse { 1 } else { 0 };
    // The derivative of the activation below, when a hidden layer feeds the output layer.
    let dact = if spec.sizes.len() > 2 {
        act_flags(spec.activation).1
    } else {
        0
    };
    mse | dact
}

/// The last layer's forward and backward passes, the loss and its sum, in one dispatch.
#[allow(clippy::too_many_arguments)]
fn push_head(
    pb: &mut PlanBuilder<'_>,
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    b: &Buffers<'_>,
    rows: usize,
    scale: f32,
    accumulate: bool,
    advance: bool,
    sgd: bool,
) {
    let layers = spec.layers();
    let last = layers.len() - 1;
    // With dropout below, the head writes dlogits·W alone and dropout_backward applies f'.
    let base = match b.dropout {
        Some(_) if last > 0 => (head_flags(spec) & !act_flags(spec.activation).1) | HEAD_DIDENT,
        _ => head_flags(spec),
    };
    let flags = base
        | if accumulate { ACCUMULATE } else { 0 }
        | if advance { ADVANCE } else { 0 }
        | if sgd { HEAD_SGD_STEP } else { 0 };
    let input = head_input(rows, layers[last].inp);
    pb.push(
        format!(
            "layers.{last} logits, losses, {}, dactivations[{last}]; \
             step_losses[step] += Σ losses{}",
            if sgd {
                "weight, bias −= lr[step]·grads"
            } else {
                "grads.weight, grads.bias"
            },
            if advance { "; step += 1" } else { "" }
        ),
        Kernel::OutputLayerStep,
        &[
            &ws.activations[last],
            b.params,
            b.grads,
            &ws.dactivations[last],
            &ws.labels,
            b.step_losses,
            b.state,
            b.head_w,
            if input {
                &ws.activations[last]
            } else {
                &g.no_uniform
            },
            b.hyper_now,
        ],
        words(&head_words(&layers[last], rows, flags, scale)),
        [1, 1, 1],
    );
    if input {
        pb.set_form(Form::Input);
    }
}

#[allow(clippy::too_many_arguments)]
fn push_backward(
    pb: &mut PlanBuilder<'_>,
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    b: &Buffers<'_>,
    rows: usize,
    scale: f32,
    accumulate: bool,
    head: bool,
    dropout: Option<DropoutBind<'_>>,
    sgd_in_product: bool,
) {
    let layers = spec.layers();
    let last = layers.len() - 1;
    let (_, act_bwd) = act_kernels(spec.activation);
    if let (Some(d), true) = (&dropout, head && last > 0) {
        push_dropout(
            pb,
            format!(
                "layers.{} dactivations[{last}] = dropout'(dactivations[{last}]) ⊙ {}'",
                last - 1,
                spec.activation.name()
            ),
            Some((&ws.activations[last], spec.activation)),
            &ws.dactivations[last],
            d,
            last - 1,
            rows,
            layers[last].inp,
        );
    }
    let dlogits = &ws.dactivations[last + 1];
    let n = rows * spec.classes();
    // Fused: the loss forward kernel already wrote dlogits; with `head`, output_layer_step did
    // the last layer's backward pass too.
    let below = if head { last } else { last + 1 };
    match spec.loss {
        _ if g.fuse => {}
        Loss::Xent => pb.push(
            "dactivations[out] = (probs − onehot)/B",
            Kernel::SoftmaxXentBackward,
            &[dlogits, &ws.probs, &ws.labels],
            loss_words(spec.classes(), rows, 0, 0, scale),
            groups_1d(n, 256),
        ),
        Loss::Mse => pb.push(
            "dactivations[out] = 2(logits − onehot)/(10B)",
            Kernel::MseBackward,
            &[dlogits, &ws.activations[last + 1], &ws.labels],
            loss_words(spec.classes(), rows, 0, 0, scale),
            groups_1d(n, 256),
        ),
    }
    let acc = if accumulate { ACCUMULATE } else { 0 };
    for (l, s) in layers.iter().enumerate().take(below).rev() {
        // With `sgd_in_product`: the input layer's product is the step's last, so nothing reads
        // its weight after it, and plain SGD updates the weight there (sgd_update skips it).
        let sgd = l == 0 && sgd_in_product;
        // Fused: the weight-gradient product also sums dout's columns into the bias gradient.
        push_mm(
            pb,
            g,
            if sgd {
                format!(
                    "layers.{l} weight, bias −= lr[step]·(dactivations[{}]ᵀ·[activations[{l}], 1])",
                    l + 1
                )
            } else if g.fuse {
                format!(
                    "layers.{l} grads.weight, grads.bias = dactivations[{}]ᵀ·[activations[{l}], 1]",
                    l + 1
                )
            } else {
                format!(
                    "layers.{l} grads.weight = dactivations[{}]ᵀ·activations[{l}]",
                    l + 1
                )
            },
            Kernel::MatmulBackwardWeight,
            if sgd { b.params } else { b.grads },
            &ws.dactivations[l + 1],
            &ws.activations[l],
            &ws.activations[l],
            (l == 0 && ws.packed).then_some(&ws.xb),
            sgd.then_some(b.hyper_now),
            Mm::weight(
                s,
                rows,
                match sgd {
                    true => BIAS_GRAD | SGD_STEP,
                    false => acc | if g.fuse { BIAS_GRAD } else { 0 },
                },
            ),
        );
        if !g.fuse {
            pb.push(
                format!("layers.{l} grads.bias = Σ dactivations[{}]", l + 1),
                Kernel::BiasBackward,
                &[b.grads, &ws.dactivations[l + 1]],
                words(&[rows as u32, s.out as u32, s.b_off as u32, acc]),
                [(s.out as u32).div_ceil(64), 1, 1],
            );
        }
        if l > 0 {
            // Fused: the epilogue multiplies by the activation's derivative, read from the
            // activation's output bound in the bias slot. With dropout, dropout_backward does.
            let (_, dact) = act_flags(spec.activation);
            let fuse_dact = g.fuse && dropout.is_none();
            push_mm(
                pb,
                g,
                if fuse_dact {
                    format!(
                        "layers.{l} dactivations[{l}] = dactivations[{}]·W ⊙ {}'",
                        l + 1,
                        spec.activation.name()
                    )
                } else {
                    format!("layers.{l} dactivations[{l}] = dactivations[{}]·W", l + 1)
                },
                Kernel::MatmulBackwardInput,
                &ws.dactivations[l],
                &ws.dactivations[l + 1],
                b.params,
                if fuse_dact {
                    &ws.activations[l]
                } else {
                    b.params
                },
                None,
                None,
                Mm::input_grad(s, rows, if fuse_dact { dact } else { 0 }),
            );
            if let Some(d) = &dropout {
                push_dropout(
                    pb,
                    format!(
                        "layers.{} dactivations[{l}] = dropout'(dactivations[{l}]) ⊙ {}'",
                        l - 1,
                        spec.activation.name()
                    ),
                    Some((&ws.activations[l], spec.activation)),
                    &ws.dactivations[l],
                    d,
                    l - 1,
                    rows,
                    s.inp,
                );
            } else if !g.fuse {
                let n = rows * s.inp;
                pb.push(
                    format!("layers.{} dactivations[{l}]", l - 1),
                    act_bwd,
                    &[&ws.dactivations[l], &ws.activations[l]],
                    words(&[n as u32]),
                    groups_1d(n, 256),
                );
            }
        }
    }
}

/// batch_gather into the workspace's input rows; `u` is [rows, batch, base, flags].
fn push_gather(
    pb: &mut PlanBuilder<'_>,
    label: String,
    ws: &Workspace,
    data: &GpuData,
    order: &wgpu::Buffer,
    state: &wgpu::Buffer,
    u: [u32; 4],
) {
    // Packed, the batch goes to xb rather than activations[0].
    let label = if ws.packed {
        label.replacen("activations[0]", "xb (packed)", 1)
    } else {
        label
    };
    if !data.pixels {
        pb.push(
            label,
            Kernel::BatchGatherFeatures,
            &[
                &ws.activations[0],
                &ws.labels,
                &data.parts[0],
                &data.labels,
                order,
                state,
                &data.parts[1],
                &data.parts[2],
            ],
            words(&[
                u[0],
                u[1],
                u[2],
                u[3],
                data.width as u32,
                data.part_rows as u32,
            ]),
            groups_1d(u[0] as usize * data.width, 256),
        );
        return;
    }
    pb.push(
        label,
        Kernel::BatchGather,
        &[
            &ws.activations[0],
            &ws.labels,
            &data.images,
            &data.labels,
            order,
            state,
            &ws.xb,
        ],
        words(&[u[0], u[1], u[2], u[3] | if ws.packed { PACKED } else { 0 }]),
        groups_1d(u[0] as usize * PIXELS / 16, 256),
    );
}

/// One training step over `len` samples (a full batch, or the epoch's last partial one).
#[allow(clippy::too_many_arguments)]
pub(crate) fn build_step_plan(
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    b: &Buffers<'_>,
    data: &GpuData,
    order: &wgpu::Buffer,
    batch: usize,
    len: usize,
) -> Result<Plan> {
    let mut pb = PlanBuilder::new(&g.ctx, &g.kernels, format!("train step, {len} samples"));
    let chunks = len.div_ceil(ws.rows);
    let head = head_runs(g, spec, ws.rows);
    // The floats sgd_update steps: those whose update does not run inside a product.
    let held = grads_held(g, spec, ws, &b.optim, len);
    let sgd_in = held.start > 0;
    let head_sgd = held.end < spec.num_params();
    for c in 0..chunks {
        let off = c * ws.rows;
        let rows = ws.rows.min(len - off);
        let first = c == 0;
        let last_chunk = c + 1 == chunks;
        let dropout = b.dropout.map(|(p, seed)| DropoutBind {
            p,
            seed,
            hyper_now: b.hyper_now,
            row0: off,
        });
        push_gather(
            &mut pb,
            format!("activations[0], labels = train[order[step·{batch} + {off}..][..{rows}]]"),
            ws,
            data,
            order,
            b.state,
            [rows as u32, batch as u32, off as u32, FROM_STATE],
        );
        if let Some((p, seed)) = b.input_dropout {
            let d = DropoutBind {
                p,
                seed,
                hyper_now: b.hyper_now,
                row0: off,
            };
            push_dropout(
                &mut pb,
                format!("activations[0] = dropout(activations[0], p = {p})"),
                None,
                &ws.activations[0],
                &d,
                INPUT_DROPOUT_LAYER,
                rows,
                spec.inputs(),
            );
        }
        push_forward(
            &mut pb,
            g,
            spec,
            ws,
            rows,
            b.params,
            g.fuse.then_some(1.0 / len as f32),
            head,
            dropout,
        );
        let flags = SLOT_FROM_STATE
            | if first { 0 } else { ACCUMULATE }
            | if last_chunk { ADVANCE } else { 0 };
        if head {
            push_head(
                &mut pb,
                g,
                spec,
                ws,
                b,
                rows,
                1.0 / len as f32,
                !first,
                last_chunk,
                head_sgd,
            );
            push_backward(
                &mut pb,
                g,
                spec,
                ws,
                b,
                rows,
                1.0 / len as f32,
                !first,
                true,
                dropout,
                sgd_in,
            );
            continue;
        }
        pb.push(
            if last_chunk {
                "step_losses[step] += Σ losses; step += 1"
            } else {
                "step_losses[step] += Σ losses"
            },
            Kernel::LossReduce,
            &[b.step_losses, b.state, &ws.losses],
            loss_words(spec.classes(), rows, flags, 0, 1.0),
            [1, 1, 1],
        );
        push_backward(
            &mut pb,
            g,
            spec,
            ws,
            b,
            rows,
            1.0 / len as f32,
            !first,
            false,
            dropout,
            sgd_in,
        );
    }
    let o = &b.optim;
    let (kernel, label) = update_kernel(o);
    let (off4, n4) = (held.start / 4, held.end.div_ceil(4));
    let layers = spec.layers();
    let fused: Vec<String> = [
        sgd_in.then(|| "layers.0: in its product".to_owned()),
        head_sgd.then(|| format!("layers.{}: in output_layer_step", layers.len() - 1)),
    ]
    .into_iter()
    .flatten()
    .collect();
    // Nothing left to step: plain SGD ran in every layer's product.
    if n4 > off4 {
        pb.push(
            match fused.is_empty() {
                true => label.to_owned(),
                false => format!(
                    "params[{}..{}] −= lr[step]·grads ({})",
                    held.start,
                    held.end,
                    fused.join("; ")
                ),
            },
            kernel,
            &if b.optim.kind.is_adam() {
                vec![b.params, b.state1, b.state2, b.grads, b.hyper_now]
            } else {
                vec![b.params, b.state1, b.grads, b.hyper_now]
            },
            words(&[
                n4 as u32,
                off4 as u32,
                o.momentum.to_bits(),
                o.weight_decay.to_bits(),
                o.beta1.to_bits(),
                o.beta2.to_bits(),
                o.eps.to_bits(),
            ]),
            groups_1d(n4 - off4, 256),
        );
    }
    if o.max_norm > 0.0 {
        push_max_norm(&mut pb, spec, b.params, o.max_norm);
    }
    pb.build()
}

/// Where plain SGD runs inside the input layer's weight-gradient product ([`SGD_STEP`]) in a
/// step of `len` samples: the floats of that layer's weight and bias, which lead the parameters
/// and which sgd_update then skips; 0 where it does not. Only for plain SGD (μ = 0, λ = 0: the
/// update is −lr·g alone), a step of one chunk (no gradient to accumulate), a form of the
/// product whose store is store4_grad (the packed-input, vec4 and subgroup forms; the scalar
/// and tiled ones ignore the flag) and a hidden layer (so that the input layer's product is in
/// the step).
pub(crate) fn sgd_in_product(
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    o: &OptimConfig,
    len: usize,
) -> usize {
    let layers = spec.layers();
    let l0 = &layers[0];
    let end = l0.b_off + l0.out;
    let leads = l0.w_off == 0 && l0.b_off == l0.inp * l0.out && end.is_multiple_of(4);
    // The form push_backward will pick for this product (the same Mm, flags aside).
    let stores4 = ws.packed
        || matches!(
            g.matmul_form(
                Kernel::MatmulBackwardWeight,
                &Mm::weight(l0, len.min(ws.rows), BIAS_GRAD)
            ),
            Form::Vec4 | Form::Subgroup
        );
    match g.fuse && plain_sgd(o) && len <= ws.rows && stores4 && layers.len() > 1 && leads {
        true => end,
        false => 0,
    }
}

/// Plain SGD: μ = 0 and λ = 0, so a parameter's update is −lr·g alone.
fn plain_sgd(o: &OptimConfig) -> bool {
    o.kind == OptimizerKind::Sgd && o.momentum == 0.0 && o.weight_decay == 0.0
}

/// Whether plain SGD runs inside output_layer_step ([`HEAD_SGD_STEP`]) in a step of `len`
/// samples: plain SGD, fused, a step of one chunk (the head forms the last layer's whole
/// gradient), and the head runs it.
pub(crate) fn sgd_in_head(
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    o: &OptimConfig,
    len: usize,
) -> bool {
    plain_sgd(o) && len <= ws.rows && head_runs(g, spec, ws.rows)
}

/// The floats of the parameters whose gradient a training step of `len` samples writes to
/// `grads`, and which the update kernel then steps: all of them, less the input layer's where
/// plain SGD runs in its product ([`sgd_in_product`]) and the last layer's where it runs in
/// output_layer_step ([`sgd_in_head`]).
pub(crate) fn grads_held(
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    o: &OptimConfig,
    len: usize,
) -> std::ops::Range<usize> {
    let start = sgd_in_product(g, spec, ws, o, len);
    let end = match (sgd_in_head(g, spec, ws, o, len), spec.layers().last()) {
        (true, Some(l)) => l.w_off,
        _ => spec.num_params(),
    };
    start..end.max(start)
}

/// max_norm after the update, one dispatch per layer: each unit's incoming weights (a row of
/// `layers.{l}.weight` [out, in]) scaled back to norm `c` where longer; one workgroup a row.
fn push_max_norm(pb: &mut PlanBuilder<'_>, spec: &ModelSpec, params: &wgpu::Buffer, c: f32) {
    for (l, s) in spec.layers().iter().enumerate() {
        pb.push(
            format!("layers.{l}.weight rows = min(1, {c}/‖row‖)·rows"),
            Kernel::MaxNorm,
            &[params],
            words(&[s.w_off as u32, s.out as u32, s.inp as u32, c.to_bits()]),
            groups_1d(s.out, 1),
        );
    }
}

/// The update kernel of an optimizer, with its plan label.
pub fn update_kernel(o: &OptimConfig) -> (Kernel, &'static str) {
    match o.kind {
        OptimizerKind::Sgd => (
            Kernel::SgdUpdate,
            "params −= lr[step]·(momentum_buffer = μ·momentum_buffer + grads + λ·params)",
        ),
        OptimizerKind::Nesterov => (
            Kernel::NesterovUpdate,
            "params −= lr[step]·(g + μ·(momentum_buffer = μ·momentum_buffer + g)), g = grads + λ·params",
        ),
        OptimizerKind::Adam => (
            Kernel::AdamUpdate,
            "params −= lr[step]·m̂/(√v̂ + ε); exp_avg, exp_avg_sq from grads + λ·params",
        ),
        OptimizerKind::Adamw => (
            Kernel::AdamwUpdate,
            "params = params·(1 − lr[step]·λ) − lr[step]·m̂/(√v̂ + ε); exp_avg, exp_avg_sq from grads",
        ),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn build_eval_plan(
    g: &Gpu,
    spec: &ModelSpec,
    ws: &Workspace,
    params: &wgpu::Buffer,
    state: &wgpu::Buffer,
    data: &GpuData,
    order: &wgpu::Buffer,
    sums: &wgpu::Buffer,
    correct: &wgpu::Buffer,
    name: &str,
) -> Result<Plan> {
    let mut pb = PlanBuilder::new(
        &g.ctx,
        &g.kernels,
        format!("evaluate {name}, {} samples", data.n),
    );
    let last = spec.sizes.len() - 1;
    for c in 0..data.n.div_ceil(ws.rows) {
        let off = c * ws.rows;
        let rows = ws.rows.min(data.n - off);
        push_gather(
            &mut pb,
            format!("activations[0], labels = {name}[{off}..][..{rows}]"),
            ws,
            data,
            order,
            state,
            [rows as u32, 0, off as u32, 0],
        );
        push_forward(&mut pb, g, spec, ws, rows, params, None, false, None);
        pb.push(
            format!("eval_sums[{c}] = Σ losses"),
            Kernel::LossReduce,
            &[sums, state, &ws.losses],
            loss_words(spec.classes(), rows, 0, c as u32, 1.0),
            [1, 1, 1],
        );
        pb.push(
            "eval_correct += #(argmax == label)",
            Kernel::ArgmaxCorrect,
            &[correct, &ws.activations[last], &ws.labels],
            loss_words(spec.classes(), rows, 0, 0, 1.0),
            [(rows as u32).div_ceil(64), 1, 1],
        );
    }
    pb.build()
}

/// The one-dispatch plan that zeroes the pruned weights of `params` and of the optimizer state
/// after each update: mask [num_params] is uploaded padded to whole vec4s.
pub(crate) fn mask_plan(
    g: &Gpu,
    mask: &[f32],
    [params, state1, state2]: [&wgpu::Buffer; 3],
    optim: &OptimConfig,
) -> Result<Plan> {
    let n4 = mask.len().div_ceil(4);
    let mut padded = mask.to_vec();
    padded.resize(n4 * 4, 0.0);
    let buf = g.storage_init("mask", bytemuck::cast_slice(&padded));
    let mut pb = PlanBuilder::new(&g.ctx, &g.kernels, "mask");
    pb.push(
        "params, optimizer state = 0 where mask = 0",
        Kernel::ApplyMask,
        &[params, state1, state2, &buf],
        words(&[n4 as u32, optim.kind.state_names().len() as u32]),
        groups_1d(n4, 256),
    );
    pb.build()
}

/// The matrix products a training step over `rows`-row passes runs, in plan order, as the
/// tuner times them (the epilogue flags as the plan sets them without dropout).
pub(crate) fn tuned_products(g: &Gpu, spec: &ModelSpec, rows: usize) -> Vec<Product> {
    let layers = spec.layers();
    let last = layers.len() - 1;
    let head = head_runs(g, spec, rows);
    let through = if head { last } else { last + 1 };
    let (act, dact) = act_flags(spec.activation);
    let mut out = Vec::new();
    for (l, s) in layers.iter().enumerate().take(through) {
        let fused = if g.fuse && l != last { act } else { 0 };
        out.push(Product {
            what: format!("layers.{l} matmul_forward"),
            kernel: Kernel::MatmulForward,
            mm: Mm::forward(s, rows, ADD_BIAS | fused),
        });
    }
    for (l, s) in layers.iter().enumerate().take(through).rev() {
        out.push(Product {
            what: format!("layers.{l} matmul_backward_weight"),
            kernel: Kernel::MatmulBackwardWeight,
            mm: Mm::weight(s, rows, if g.fuse { BIAS_GRAD } else { 0 }),
        });
        if l > 0 {
            out.push(Product {
                what: format!("layers.{l} matmul_backward_input"),
                kernel: Kernel::MatmulBackwardInput,
                mm: Mm::input_grad(s, rows, if g.fuse { dact } else { 0 }),
            });
        }
    }
    out
}
