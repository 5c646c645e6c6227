//! The GPU path: WGSL kernels through wgpu, with the data set resident on the device and every
//! step replayed from a prebuilt plan. No host transfer happens inside an epoch except the
//! shuffled order written at its start; the per-step losses are read back once at its end (and
//! every N steps with `--log-every N`).

pub mod context;
pub mod kernels;
pub mod plan;
pub mod verify;

use std::collections::VecDeque;
use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::backend::{Backend, EpochStats, EvalStats, Setup, Split};
use crate::data::{Dataset, PIXELS};
use crate::error::{Error, Result};
use crate::model::{Activation, LayerShape, Loss, ModelSpec};
use crate::optim::{OptimConfig, OptimizerKind, StepHyper};
pub use context::{GpuContext, GpuOptions};
pub use kernels::{Form, Kernel, Kernels, MatmulVariant};
use plan::{Plan, PlanBuilder, UniformSrc, groups_1d, words};

/// Rows one pass through the network handles at most; a larger batch (full-batch descent) runs
/// as several chunks whose gradients accumulate, keeping every binding far under the limits.
pub const CHUNK_ROWS: usize = 8192;
/// Test-set rows per evaluation chunk.
pub const EVAL_ROWS: usize = 2000;
/// Steps recorded into one command buffer and submitted together.
pub const STEPS_PER_SUBMIT: usize = 64;
/// Submissions allowed in flight before the host waits for the oldest: bounds queued memory.
const MAX_IN_FLIGHT: usize = 2;

// Flag bits shared with the WGSL files (matmul_common.wgsl, loss.wgsl, gather.wgsl).
const ADD_BIAS: u32 = 1;
const ACCUMULATE: u32 = 2;
/// matmul_backward_weight also writes the bias gradient (matmul_common.wgsl).
pub const BIAS_GRAD: u32 = 256;

/// The matmul epilogue flags that apply an activation, and its derivative.
pub fn act_flags(a: Activation) -> (u32, u32) {
    match a {
        Activation::Relu => (4, 32),
        Activation::Sigmoid => (8, 64),
        Activation::Tanh => (16, 128),
    }
}
const SLOT_FROM_STATE: u32 = 4;
const ADVANCE: u32 = 8;
const WITH_GRAD: u32 = 16;
const FROM_STATE: u32 = 1;
/// batch_gather writes the batch packed, to xb (see shaders/gather.wgsl).
pub const PACKED: u32 = 2;

/// A device with its pipelines, shared by every model built on it.
pub struct Gpu {
    pub ctx: GpuContext,
    pub kernels: Kernels,
    /// Fold activations (and their derivatives) into the matmul epilogues: two fewer dispatches
    /// per hidden layer. Off (`--unfused`) runs them as their own kernels.
    pub fuse: bool,
    /// Bound as the Input form's uniform arrays by the products that do not read them.
    no_uniform: wgpu::Buffer,
}

impl Gpu {
    /// Opens the adapter and compiles every kernel. `variant` None picks by adapter type:
    /// register-blocked matmul on CPU adapters (lavapipe), workgroup tiles on real GPUs.
    pub fn new(opts: &GpuOptions, variant: Option<MatmulVariant>) -> Result<Self> {
        let ctx = GpuContext::new(opts)?;
        let variant = variant.unwrap_or(if ctx.is_cpu_adapter() {
            MatmulVariant::Blocked
        } else {
            MatmulVariant::Tiled
        });
        let kernels = Kernels::new(&ctx, variant)?;
        let no_uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("uniform array (unused)"),
            size: kernels::UNIFORM_ARRAY,
            usage: wgpu::BufferUsages::UNIFORM,
            mapped_at_creation: false,
        });
        Ok(Gpu {
            ctx,
            kernels,
            fuse: !opts.unfused,
            no_uniform,
        })
    }

    pub fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.storage_with(label, bytes.max(4), wgpu::BufferUsages::empty())
    }

    /// A storage buffer that can also be bound as one of the Input form's 64 KiB uniform arrays.
    fn storage_uniform(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.storage_with(
            label,
            bytes.max(kernels::UNIFORM_ARRAY),
            wgpu::BufferUsages::UNIFORM,
        )
    }

    fn storage_with(&self, label: &str, bytes: u64, extra: wgpu::BufferUsages) -> wgpu::Buffer {
        self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC
                | extra,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer holding `contents` (readable back, for the parity checks).
    pub fn uniform_init(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_SRC,
            })
    }

    pub fn storage_init(&self, label: &str, contents: &[u8]) -> wgpu::Buffer {
        let mut padded;
        let contents = if contents.is_empty() || !contents.len().is_multiple_of(4) {
            padded = contents.to_vec();
            padded.resize(contents.len().max(4).next_multiple_of(4), 0);
            &padded[..]
        } else {
            contents
        };
        self.ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_DST
                    | wgpu::BufferUsages::COPY_SRC,
            })
    }

    pub fn read_f32(&self, buf: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        let bytes = self.ctx.read_back(buf, (n.max(1) * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec::<u8, f32>(&bytes)[..n].to_vec())
    }

    pub fn read_u32(&self, buf: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
        let bytes = self.ctx.read_back(buf, (n.max(1) * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)[..n].to_vec())
    }
}

/// How many storage buffers a split of features may span (shaders/gather_features.wgsl).
pub const FEATURE_PARTS: usize = 3;

/// A data split resident on the GPU.
struct GpuData {
    /// images: [n, 196] u32, four u8 pixels per word (read as [n, 49] vec4<u32>); a placeholder
    /// for feature data.
    images: wgpu::Buffer,
    /// parts: FEATURE_PARTS buffers of [part_rows, width] f32 features (placeholders past the
    /// data's end, and for pixel data).
    parts: Vec<wgpu::Buffer>,
    part_rows: usize,
    width: usize,
    pixels: bool,
    /// labels: [n] u32.
    labels: wgpu::Buffer,
    n: usize,
}

impl GpuData {
    fn new(gpu: &Gpu, name: &str, d: &Dataset) -> Result<Self> {
        let labels: Vec<u32> = d.labels.iter().map(|&l| l as u32).collect();
        let pixels = d.is_pixels();
        let w = d.width.max(1);
        // Rows per part: as many as one binding holds (whole rows, so no row straddles two).
        let limit = gpu.ctx.limits.max_storage_buffer_binding_size;
        let part_rows = ((limit / (4 * w as u64)) as usize).clamp(1, u32::MAX as usize);
        let parts = if pixels {
            (0..FEATURE_PARTS)
                .map(|i| gpu.storage(&format!("{name}.features[{i}] (unused)"), 16))
                .collect()
        } else {
            let need = d.len().div_ceil(part_rows);
            if need > FEATURE_PARTS {
                return Err(Error::AdapterLimits {
                    adapter: gpu.ctx.describe(),
                    msg: format!(
                        "the {name} split's features take {} bytes ({} rows of {} f32); the GPU path holds at most {FEATURE_PARTS} storage bindings of {limit} bytes ({} bytes). Use --device cpu, or fewer samples (--limit)",
                        d.features.len() * 4,
                        d.len(),
                        d.width,
                        FEATURE_PARTS as u64 * (part_rows * w * 4) as u64
                    ),
                });
            }
            (0..FEATURE_PARTS)
                .map(|i| {
                    let lo = (i * part_rows * w).min(d.features.len());
                    let hi = ((i + 1) * part_rows * w).min(d.features.len());
                    gpu.storage_init(
                        &format!("{name}.features[{i}]"),
                        bytemuck::cast_slice(&d.features[lo..hi]),
                    )
                })
                .collect()
        };
        Ok(GpuData {
            images: gpu.storage_init(&format!("{name}.images"), &d.images),
            parts,
            part_rows,
            width: d.width,
            pixels,
            labels: gpu.storage_init(&format!("{name}.labels"), bytemuck::cast_slice(&labels)),
            n: d.len(),
        })
    }
}

/// Buffers for one pass over up to `rows` samples (the GPU twin of `cpu::Workspace`).
struct Workspace {
    rows: usize,
    /// activations[l]: [rows, sizes[l]]
    activations: Vec<wgpu::Buffer>,
    /// dactivations[l]: [rows, sizes[l]] (entry 0 is a 16-byte placeholder; entry 1 is at least
    /// 64 KiB and uniform-capable when `packed`)
    dactivations: Vec<wgpu::Buffer>,
    /// probs: [rows, classes]
    probs: wgpu::Buffer,
    /// losses: [rows]
    losses: wgpu::Buffer,
    /// labels: [rows] u32
    labels: wgpu::Buffer,
    /// xb: [rows, 196] u32, the batch still packed (where the Input form reads it); a 16-byte
    /// placeholder when not `packed`.
    xb: wgpu::Buffer,
    /// The gather writes xb instead of activations[0], and layer 0's products read it.
    packed: bool,
}

impl Workspace {
    fn new(gpu: &Gpu, spec: &ModelSpec, rows: usize, name: &str, packed: bool) -> Self {
        let f = |n: usize| (n * 4) as u64;
        Workspace {
            rows,
            activations: spec
                .sizes
                .iter()
                .enumerate()
                .map(|(l, &s)| gpu.storage(&format!("{name}.activations[{l}]"), f(rows * s)))
                .collect(),
            dactivations: spec
                .sizes
                .iter()
                .enumerate()
                .map(|(l, &s)| {
                    let label = format!("{name}.dactivations[{l}]");
                    match l {
                        // Never written, but output_layer_step binds it as a vec4 array.
                        0 => gpu.storage(&label, 16),
                        // Packed, the Input form's weight gradient reads it as a uniform array.
                        1 if packed => gpu.storage_uniform(&label, f(rows * s)),
                        _ => gpu.storage(&label, f(rows * s)),
                    }
                })
                .collect(),
            probs: gpu.storage(&format!("{name}.probs"), f(rows * spec.classes())),
            losses: gpu.storage(&format!("{name}.losses"), f(rows)),
            labels: gpu.storage(&format!("{name}.labels"), f(rows)),
            // batch_gather binds it either way; only the packed path writes it.
            xb: if packed {
                gpu.storage_uniform(&format!("{name}.xb"), (rows * PIXELS) as u64)
            } else {
                gpu.storage(&format!("{name}.xb"), 16)
            },
            packed,
        }
    }
}

/// How many dispatches and submits the backend has issued: the scheduler's own accounting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub dispatches: usize,
    pub submits: usize,
    pub readbacks: usize,
    pub steps: usize,
}

pub struct GpuBackend {
    gpu: Arc<Gpu>,
    spec: ModelSpec,
    optim: OptimConfig,
    batch: usize,
    n_train: usize,
    /// params, grads: [num_params padded to vec4s], in ModelSpec::layers layout.
    params: wgpu::Buffer,
    grads: wgpu::Buffer,
    /// state1, state2: the optimizer's state, laid out as params (state2 is a placeholder for
    /// the SGD family).
    state1: wgpu::Buffer,
    state2: wgpu::Buffer,
    /// order: [n_train], the epoch's visiting order.
    order: wgpu::Buffer,
    /// state: [4] u32; state[0] is the step within the epoch, advanced by output_layer_step (or
    /// loss_reduce).
    state: wgpu::Buffer,
    /// step_losses: [steps per epoch], Σ loss of each step's batch.
    step_losses: wgpu::Buffer,
    /// hyper: [steps per epoch] StepHyper, written once per epoch; before each step a GPU-side
    /// copy puts its row in hyper_now, the uniform its update and dropout kernels read.
    hyper: wgpu::Buffer,
    hyper_now: wgpu::Buffer,
    step_plan: Plan,
    tail_plan: Option<Plan>,
    test_eval: EvalSet,
    val_eval: Option<EvalSet>,
    /// apply_mask after every step's update, while a mask is set (`set_mask`).
    mask_plan: Option<Plan>,
    encoder: Option<wgpu::CommandEncoder>,
    pending_steps: usize,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
    /// The epoch's first step (a resumed epoch starts past 0), and the steps recorded so far.
    first_step: usize,
    epoch_steps: usize,
    epoch_samples: usize,
    pub counters: Counters,
}

/// A held-out split resident on the GPU with its evaluation plan and result buffers.
struct EvalSet {
    plan: Plan,
    /// sums: [chunks] Σ loss per chunk; correct: [1] u32.
    sums: wgpu::Buffer,
    correct: wgpu::Buffer,
    n: usize,
}

impl EvalSet {
    fn new(
        g: &Gpu,
        spec: &ModelSpec,
        name: &str,
        data: &Dataset,
        params: &wgpu::Buffer,
        state: &wgpu::Buffer,
    ) -> Result<Self> {
        let gd = GpuData::new(g, name, data)?;
        let identity: Vec<u32> = (0..data.len() as u32).collect();
        let order = g.storage_init(&format!("{name}.order"), bytemuck::cast_slice(&identity));
        let chunks = data.len().div_ceil(EVAL_ROWS).max(1);
        let sums = g.storage(&format!("{name}.eval_sums"), (chunks * 4) as u64);
        let correct = g.storage(&format!("{name}.eval_correct"), 4);
        let ws = Workspace::new(g, spec, EVAL_ROWS.min(data.len().max(1)), name, false);
        let plan = build_eval_plan(
            g, spec, &ws, params, state, &gd, &order, &sums, &correct, name,
        )?;
        Ok(EvalSet {
            plan,
            sums,
            correct,
            n: data.len(),
        })
    }
}

fn act_kernels(a: Activation) -> (Kernel, Kernel) {
    match a {
        Activation::Relu => (Kernel::ReluForward, Kernel::ReluBackward),
        Activation::Sigmoid => (Kernel::SigmoidForward, Kernel::SigmoidBackward),
        Activation::Tanh => (Kernel::TanhForward, Kernel::TanhBackward),
    }
}

/// The strides of one matrix product (see shaders/matmul.wgsl).
struct Mm {
    m: usize,
    n: usize,
    k: usize,
    flags: u32,
    a: (usize, usize, usize),
    b: (usize, usize, usize),
    c_off: usize,
    bias_off: usize,
}

impl Mm {
    /// matmul_forward of layer `l` over `rows` rows: out[rows, out] = inp[rows, in]·Wᵀ + b.
    fn forward(l: &LayerShape, rows: usize, flags: u32) -> Self {
        Mm {
            m: rows,
            n: l.out,
            k: l.inp,
            flags,
            a: (0, l.inp, 1),
            b: (l.w_off, 1, l.inp),
            c_off: 0,
            bias_off: l.b_off,
        }
    }

    /// matmul_backward_weight of layer `l` over `rows` rows: dW[out, in] (+)= doutᵀ·inp, with
    /// the bias gradient at the bias's offset.
    fn weight(l: &LayerShape, rows: usize, flags: u32) -> Self {
        Mm {
            m: l.out,
            n: l.inp,
            k: rows,
            flags,
            a: (0, 1, l.out),
            b: (0, l.inp, 1),
            c_off: l.w_off,
            bias_off: l.b_off,
        }
    }
}

/// Whether the vec4 forms can run `mm`: every row start 16-byte aligned (the strides that step
/// rows, the offsets, and C's rows).
fn vec4_ok(kernel: Kernel, mm: &Mm) -> bool {
    let al = |x: usize| x.is_multiple_of(4);
    // store4 reads the bias or the activation as vec4s at bias_off.
    al(mm.n)
        && al(mm.c_off)
        && al(mm.bias_off)
        && match kernel {
            Kernel::MatmulForward => {
                al(mm.k) && al(mm.a.0) && al(mm.a.1) && al(mm.b.0) && al(mm.b.2)
            }
            Kernel::MatmulBackwardInput => {
                al(mm.k) && al(mm.n) && al(mm.a.0) && al(mm.a.1) && al(mm.b.0) && al(mm.b.1)
            }
            _ => al(mm.m) && al(mm.a.0) && al(mm.a.2) && al(mm.b.0) && al(mm.b.1),
        }
}

/// Pushes one matrix product. `packed`: the batch, packed, which the Input form reads in place
/// of the float one (the caller has checked [`packed_input`]).
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
    mm: Mm,
) {
    let u = |x: usize| x as u32;
    let kernels = &g.kernels;
    let variant = kernels.variant;
    let vec4 = variant == MatmulVariant::Blocked && vec4_ok(kernel, &mm);
    let form = match (vec4, kernels.subgroup && kernel.has_form(Form::Subgroup)) {
        _ if packed.is_some() => Form::Input,
        (true, true) => Form::Subgroup,
        (true, false) => Form::Vec4,
        (false, _) => Form::Scalar,
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
        &[out, a, b, bias, xu, du],
        words(&[
            u(mm.m),
            u(mm.n),
            u(mm.k),
            mm.flags,
            u(mm.a.0),
            u(mm.a.1),
            u(mm.a.2),
            u(mm.b.0),
            u(mm.b.1),
            u(mm.b.2),
            u(mm.c_off),
            u(mm.bias_off),
        ]),
        form.groups(variant, mm.m, mm.n),
    );
    pb.set_flops(2 * (mm.m * mm.n * mm.k) as u64);
    pb.set_form(form);
}

/// Whether a training plan of `rows` rows keeps its batch packed for the Input form: the form
/// is built, a hidden layer follows the input (whose forward and weight-gradient products both
/// take the vec4 path), and the packed batch and that layer's dout fit a uniform binding.
fn packed_input(g: &Gpu, spec: &ModelSpec, rows: usize) -> bool {
    let layers = spec.layers();
    let (Some(l), true) = (layers.first(), layers.len() > 1) else {
        return false;
    };
    let fwd = Mm::forward(l, rows, 0);
    let bwd = Mm::weight(l, rows, BIAS_GRAD);
    let fits = |bytes: usize| bytes as u64 <= kernels::UNIFORM_ARRAY;
    g.kernels.input
        && vec4_ok(Kernel::MatmulForward, &fwd)
        && vec4_ok(Kernel::MatmulBackwardWeight, &bwd)
        && fits(rows * l.inp)
        && fits(rows * l.out * 4)
}

fn loss_words(classes: usize, rows: usize, flags: u32, slot: u32, scale: f32) -> UniformSrc {
    words(&[rows as u32, classes as u32, flags, slot, scale.to_bits()])
}

impl GpuBackend {
    pub fn new(gpu: Arc<Gpu>, setup: &Setup) -> Result<Self> {
        let Setup {
            spec,
            params,
            train,
            test,
            val,
            batch,
            optim,
            dropout,
            seed,
        } = setup;
        let n_train = train.len();
        let batch = (*batch).max(1);
        let g = &*gpu;
        let np = spec.num_params();
        crate::cpu::check_len("parameters", params.len(), np)?;
        // The parameters and the widest activation chunk must each fit one storage binding.
        let limit = g.ctx.limits.max_storage_buffer_binding_size;
        let rows = batch.clamp(EVAL_ROWS, CHUNK_ROWS) as u64;
        let widest = spec.sizes.iter().max().copied().unwrap_or(0) as u64;
        for (what, bytes) in [
            ("the parameters", np.next_multiple_of(4) as u64 * 4),
            ("one chunk of activations", rows * widest * 4),
        ] {
            if bytes > limit {
                return Err(Error::AdapterLimits {
                    adapter: g.ctx.describe(),
                    msg: format!(
                        "{what} of {} take {bytes} bytes, over its {limit}-byte storage binding limit; use smaller --hidden layers or --device cpu",
                        spec.describe()
                    ),
                });
            }
        }
        // Padded to whole vec4s for the update kernels; the padding stays zero.
        let np4 = np.next_multiple_of(4);
        let mut padded = params.to_vec();
        padded.resize(np4, 0.0);
        let params_buf = g.storage_init("params", bytemuck::cast_slice(&padded));
        let grads = g.storage_init("grads", &vec![0u8; np4 * 4]);
        let state1 = g.storage_init(optim.kind.state_names()[0], &vec![0u8; np4 * 4]);
        let state2 = optim
            .kind
            .is_adam()
            .then(|| g.storage_init("exp_avg_sq", &vec![0u8; np4 * 4]));
        let train_data = GpuData::new(g, "train", train)?;
        let order = g.storage("order", (n_train * 4) as u64);
        let state = g.storage_init("state", &[0u8; 16]);
        let steps = n_train.div_ceil(batch).max(1);
        let step_losses = g.storage("step_losses", (steps * 4) as u64);
        let rows = batch.min(CHUNK_ROWS);
        let packed = g.fuse && train_data.pixels && packed_input(g, spec, rows);
        let ws = Workspace::new(g, spec, rows, "train", packed);
        // The buffers only some runs use come after the ones every step streams through.
        let state2 = state2.unwrap_or_else(|| g.storage("exp_avg_sq (unused)", 16));
        let hyper = g.storage("hyper", (steps * std::mem::size_of::<StepHyper>()) as u64);
        let hyper_now = g.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("hyper_now"),
            size: std::mem::size_of::<StepHyper>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        let b = Buffers {
            params: &params_buf,
            grads: &grads,
            state1: &state1,
            state2: &state2,
            state: &state,
            step_losses: &step_losses,
            hyper_now: &hyper_now,
            optim: *optim,
            dropout: (*dropout > 0.0).then_some((*dropout, *seed)),
        };
        let step_plan = build_step_plan(g, spec, &ws, &b, &train_data, &order, batch, batch)?;
        let tail = n_train % batch;
        let tail_plan = (tail != 0 && n_train > batch)
            .then(|| build_step_plan(g, spec, &ws, &b, &train_data, &order, batch, tail))
            .transpose()?;
        let test_eval = EvalSet::new(g, spec, "test", test, &params_buf, &state)?;
        let val_eval = val
            .as_ref()
            .map(|v| EvalSet::new(g, spec, "val", v, &params_buf, &state))
            .transpose()?;
        g.ctx.check_errors()?;
        Ok(GpuBackend {
            gpu,
            spec: spec.clone(),
            optim: *optim,
            batch,
            n_train,
            params: params_buf,
            grads,
            state1,
            state2,
            order,
            state,
            step_losses,
            hyper,
            hyper_now,
            step_plan,
            tail_plan,
            test_eval,
            val_eval,
            mask_plan: None,
            encoder: None,
            pending_steps: 0,
            in_flight: VecDeque::new(),
            first_step: 0,
            epoch_steps: 0,
            epoch_samples: 0,
            counters: Counters::default(),
        })
    }

    pub fn plans(&self) -> Vec<&Plan> {
        let mut v = vec![&self.step_plan];
        v.extend(self.tail_plan.as_ref());
        v.push(&self.test_eval.plan);
        v.extend(self.val_eval.as_ref().map(|e| &e.plan));
        v
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(enc) = self.encoder.take() {
            let idx = self.gpu.ctx.queue.submit([enc.finish()]);
            self.counters.submits += 1;
            self.pending_steps = 0;
            self.in_flight.push_back(idx);
            while self.in_flight.len() > MAX_IN_FLIGHT {
                if let Some(old) = self.in_flight.pop_front() {
                    self.gpu
                        .ctx
                        .device
                        .poll(wgpu::PollType::Wait {
                            submission_index: Some(old),
                            timeout: None,
                        })
                        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
                }
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        self.flush()?;
        self.in_flight.clear();
        self.gpu.ctx.wait()
    }

    /// The gradient of the last step (for parity tests).
    pub fn grads(&mut self) -> Result<Vec<f32>> {
        self.sync()?;
        self.counters.readbacks += 1;
        self.gpu.read_f32(&self.grads, self.spec.num_params())
    }
}

struct Buffers<'a> {
    params: &'a wgpu::Buffer,
    grads: &'a wgpu::Buffer,
    state1: &'a wgpu::Buffer,
    state2: &'a wgpu::Buffer,
    state: &'a wgpu::Buffer,
    step_losses: &'a wgpu::Buffer,
    /// This step's StepHyper, a uniform.
    hyper_now: &'a wgpu::Buffer,
    optim: OptimConfig,
    /// (p, seed) when hidden outputs are dropped.
    dropout: Option<(f32, u32)>,
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
/// subgroups it needs, the batch fits its one workgroup, and the layer's input width and offsets
/// allow vec4 access.
pub fn head_fits(kernels: &Kernels, spec: &ModelSpec, rows: usize) -> bool {
    let layers = spec.layers();
    let Some(l) = layers.last() else {
        return false;
    };
    kernels.head
        && rows <= HEAD_MAX_ROWS
        && l.out == HEAD_CLASSES
        && l.inp.is_multiple_of(4)
        && l.w_off.is_multiple_of(4)
        && l.b_off.is_multiple_of(4)
}

/// The class count output_layer_step is written for (shaders/head.wgsl); other output widths
/// run the separate kernels, which take theirs from the uniform block.
pub const HEAD_CLASSES: usize = 10;

/// output_layer_step writes dact = dlogits·W without an activation's derivative (DIDENT).
pub const HEAD_DIDENT: u32 = 512;

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
    spec: &ModelSpec,
    ws: &Workspace,
    b: &Buffers<'_>,
    rows: usize,
    scale: f32,
    accumulate: bool,
    advance: bool,
) {
    let layers = spec.layers();
    let last = layers.len() - 1;
    // With dropout below, the head writes dlogits·W alone and dropout_backward applies f'.
    let base = match b.dropout {
        Some(_) if last > 0 => (head_flags(spec) & !act_flags(spec.activation).1) | HEAD_DIDENT,
        _ => head_flags(spec),
    };
    let flags = base | if accumulate { ACCUMULATE } else { 0 } | if advance { ADVANCE } else { 0 };
    pb.push(
        format!(
            "layers.{last} logits, losses, grads.weight, grads.bias, dactivations[{last}]; \
             step_losses[step] += Σ losses{}",
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
        ],
        words(&head_words(&layers[last], rows, flags, scale)),
        [1, 1, 1],
    );
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
        // Fused: the weight-gradient product also sums dout's columns into the bias gradient.
        push_mm(
            pb,
            g,
            if g.fuse {
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
            b.grads,
            &ws.dactivations[l + 1],
            &ws.activations[l],
            &ws.activations[l],
            (l == 0 && ws.packed).then_some(&ws.xb),
            Mm::weight(s, rows, acc | if g.fuse { BIAS_GRAD } else { 0 }),
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
                Mm {
                    m: rows,
                    n: s.inp,
                    k: s.out,
                    flags: if fuse_dact { dact } else { 0 },
                    a: (0, s.out, 1),
                    b: (s.w_off, s.inp, 1),
                    c_off: 0,
                    bias_off: 0,
                },
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
fn build_step_plan(
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
    let head = g.fuse && head_fits(&g.kernels, spec, ws.rows);
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
                spec,
                ws,
                b,
                rows,
                1.0 / len as f32,
                !first,
                last_chunk,
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
        );
    }
    let o = &b.optim;
    let (kernel, label) = update_kernel(o);
    pb.push(
        label,
        kernel,
        &if b.optim.kind.is_adam() {
            vec![b.params, b.state1, b.state2, b.grads, b.hyper_now]
        } else {
            vec![b.params, b.state1, b.grads, b.hyper_now]
        },
        words(&[
            spec.num_params().div_ceil(4) as u32,
            0,
            o.momentum.to_bits(),
            o.weight_decay.to_bits(),
            o.beta1.to_bits(),
            o.beta2.to_bits(),
            o.eps.to_bits(),
        ]),
        groups_1d(spec.num_params().div_ceil(4), 256),
    );
    pb.build()
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
fn build_eval_plan(
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

impl Backend for GpuBackend {
    fn device(&self) -> String {
        format!(
            "gpu: {}, {} matmul",
            self.gpu.ctx.describe(),
            self.gpu.kernels.variant.name()
        )
    }

    fn begin_epoch(&mut self, order: &[u32], hyper: &[StepHyper], first_step: usize) -> Result<()> {
        self.sync()?;
        let steps = self.n_train.div_ceil(self.batch).max(1);
        if order.len() != self.n_train || hyper.len() != steps || first_step > steps {
            return Err(Error::Gpu(format!(
                "begin_epoch: {} order entries, {} step coefficients and first step {first_step} \
                 for {} samples in {steps} steps",
                order.len(),
                hyper.len(),
                self.n_train
            )));
        }
        let q = &self.gpu.ctx.queue;
        q.write_buffer(&self.order, 0, bytemuck::cast_slice(order));
        q.write_buffer(&self.hyper, 0, bytemuck::cast_slice(hyper));
        q.write_buffer(
            &self.state,
            0,
            bytemuck::cast_slice(&[first_step as u32, 0, 0, 0]),
        );
        self.first_step = first_step;
        self.epoch_steps = first_step;
        self.epoch_samples = 0;
        Ok(())
    }

    fn step(&mut self, step: usize, start: usize, len: usize) -> Result<()> {
        if start != self.epoch_steps * self.batch || step != self.epoch_steps {
            return Err(Error::Gpu(format!(
                "steps must run in order: got step {step} at sample {start}, expected step {} at {}",
                self.epoch_steps,
                self.epoch_steps * self.batch
            )));
        }
        let plan = if len == self.batch {
            &self.step_plan
        } else {
            match &self.tail_plan {
                Some(p) if len == self.n_train % self.batch => p,
                _ => {
                    return Err(Error::Gpu(format!(
                        "no plan for a step of {len} samples (batch {})",
                        self.batch
                    )));
                }
            }
        };
        let enc = self.encoder.get_or_insert_with(|| {
            self.gpu
                .ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("train steps"),
                })
        });
        // This step's learning rate and bias corrections: a 16-byte copy on the GPU's queue, in
        // order with the passes, so no host write happens between steps.
        let row = std::mem::size_of::<StepHyper>() as u64;
        enc.copy_buffer_to_buffer(&self.hyper, step as u64 * row, &self.hyper_now, 0, row);
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("train step"),
                timestamp_writes: None,
            });
            plan.encode(&self.gpu.kernels, &mut pass)?;
            if let Some(m) = &self.mask_plan {
                m.encode(&self.gpu.kernels, &mut pass)?;
                self.counters.dispatches += m.dispatches.len();
            }
        }
        self.counters.dispatches += plan.dispatches.len();
        self.counters.steps += 1;
        self.epoch_steps += 1;
        self.epoch_samples += len;
        self.pending_steps += 1;
        if self.pending_steps >= STEPS_PER_SUBMIT {
            self.flush()?;
        }
        Ok(())
    }

    fn step_loss_sums(&mut self) -> Result<Vec<f32>> {
        self.sync()?;
        self.counters.readbacks += 1;
        let all = self.gpu.read_f32(&self.step_losses, self.epoch_steps)?;
        Ok(all[self.first_step..].to_vec())
    }

    fn end_epoch(&mut self) -> Result<EpochStats> {
        let losses = self.step_loss_sums()?;
        let mut stats = EpochStats {
            samples: self.epoch_samples,
            ..Default::default()
        };
        for (i, &l) in losses.iter().enumerate() {
            let step = self.first_step + i;
            if !l.is_finite() && stats.nonfinite.is_none() {
                let len = if (step + 1) * self.batch > self.n_train {
                    self.n_train % self.batch
                } else {
                    self.batch
                };
                stats.nonfinite = Some((step, l / len as f32));
            }
            stats.loss_sum += l as f64;
        }
        Ok(stats)
    }

    fn evaluate(&mut self, split: Split) -> Result<EvalStats> {
        self.flush()?;
        let set = match (split, &self.val_eval) {
            (Split::Test, _) => &self.test_eval,
            (Split::Val, Some(v)) => v,
            (Split::Val, None) => {
                return Err(Error::InvalidArg("no validation split (--val)".into()));
            }
        };
        let mut enc = self
            .gpu
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("evaluate"),
            });
        enc.clear_buffer(&set.correct, 0, None);
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("evaluate"),
                timestamp_writes: None,
            });
            set.plan.encode(&self.gpu.kernels, &mut pass)?;
        }
        self.gpu.ctx.queue.submit([enc.finish()]);
        self.counters.submits += 1;
        self.counters.dispatches += set.plan.dispatches.len();
        let chunks = set.n.div_ceil(EVAL_ROWS);
        let sums = self.gpu.read_f32(&set.sums, chunks)?;
        let correct = self.gpu.read_u32(&set.correct, 1)?[0];
        self.counters.readbacks += 2;
        let n = set.n.max(1) as f64;
        Ok(EvalStats {
            loss: sums.iter().map(|&s| s as f64).sum::<f64>() / n,
            accuracy: correct as f64 / n,
            samples: set.n,
        })
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        self.sync()?;
        self.counters.readbacks += 1;
        self.gpu.read_f32(&self.params, self.spec.num_params())
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        crate::cpu::check_len("parameters", params.len(), self.spec.num_params())?;
        self.sync()?;
        self.gpu
            .ctx
            .queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(params));
        Ok(())
    }

    fn optimizer_state(&mut self) -> Result<Vec<Vec<f32>>> {
        self.sync()?;
        let n = self.spec.num_params();
        let count = self.optim.kind.state_names().len();
        let mut out = Vec::with_capacity(count);
        for buf in [&self.state1, &self.state2].into_iter().take(count) {
            self.counters.readbacks += 1;
            out.push(self.gpu.read_f32(buf, n)?);
        }
        Ok(out)
    }

    fn set_optimizer_state(&mut self, state: &[Vec<f32>]) -> Result<()> {
        let n = self.spec.num_params();
        let count = self.optim.kind.state_names().len();
        crate::cpu::check_len("optimizer state tensors", state.len(), count)?;
        self.sync()?;
        for (buf, src) in [&self.state1, &self.state2].into_iter().zip(state) {
            crate::cpu::check_len("optimizer state", src.len(), n)?;
            self.gpu
                .ctx
                .queue
                .write_buffer(buf, 0, bytemuck::cast_slice(src));
        }
        Ok(())
    }

    fn set_mask(&mut self, mask: Option<&[f32]>) -> Result<()> {
        self.sync()?;
        self.mask_plan = match mask {
            None => None,
            Some(m) => {
                crate::cpu::check_len("mask entries", m.len(), self.spec.num_params())?;
                let bufs = [&self.params, &self.state1, &self.state2];
                let plan = mask_plan(&self.gpu, m, bufs, &self.optim)?;
                // Once now, so the pruned weights are zero before the first step.
                let ctx = &self.gpu.ctx;
                let mut enc = ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("apply_mask"),
                    });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some("apply_mask"),
                        timestamp_writes: None,
                    });
                    plan.encode(&self.gpu.kernels, &mut pass)?;
                }
                ctx.queue.submit([enc.finish()]);
                self.counters.submits += 1;
                self.counters.dispatches += plan.dispatches.len();
                Some(plan)
            }
        };
        Ok(())
    }
}

/// The one-dispatch plan that zeroes the pruned weights of `params` and of the optimizer state
/// after each update: mask [num_params] is uploaded padded to whole vec4s.
fn mask_plan(
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

impl GpuBackend {
    /// Runs one training step with a timestamp around every dispatch (each in its own pass) and
    /// returns (dispatch, nanoseconds). Needs TIMESTAMP_QUERY; call between begin_epoch and the
    /// epoch's first real step (it consumes a step).
    /// Wall-clock time per dispatch of each dispatch in the step plan, each run `reps` times in
    /// a row in one submit, in nanoseconds. That includes what a dispatch costs beyond its
    /// kernel (on llvmpipe, thread hand-offs), which is what a step pays. The repeated
    /// dispatches run on whatever the buffers hold; the backend is not fit to train afterwards.
    pub fn profile_step(&mut self, reps: usize) -> Result<Vec<(plan::Dispatch, f64)>> {
        self.sync()?;
        let plan = &self.step_plan;
        let mut out = Vec::with_capacity(plan.dispatches.len());
        for (i, d) in plan.dispatches.iter().enumerate() {
            let mut times = Vec::new();
            // One warm-up round, then the median of three.
            for _ in 0..4 {
                let ctx = &self.gpu.ctx;
                let mut enc = ctx
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("profile"),
                    });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&d.label),
                        timestamp_writes: None,
                    });
                    plan.encode_repeated(&self.gpu.kernels, &mut pass, i, reps)?;
                }
                let t0 = std::time::Instant::now();
                ctx.queue.submit([enc.finish()]);
                ctx.wait()?;
                times.push(t0.elapsed().as_secs_f64() * 1e9 / reps as f64);
            }
            let mut t = times[1..].to_vec();
            t.sort_by(f64::total_cmp);
            out.push((d.clone(), t[1]));
        }
        Ok(out)
    }
}
