//! The backend that runs plans: the data set and parameters resident on the device, the
//! workspace one pass streams through, step execution with batched submits, and readback.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::backend::{Backend, EpochStats, EvalStats, Pending, Prefetch, Setup, Split};
use crate::data::{Dataset, PIXELS};
use crate::error::{Error, Result};
use crate::gpu::context::block_on;
use crate::gpu::kernels;
use crate::gpu::plan::build::{
    Buffers, build_eval_plan, build_step_plan, grads_held, head_input, head_runs, head_w_bytes,
    mask_plan, packed_input,
};
use crate::gpu::plan::{self, Plan};
use crate::gpu::tune::{self, TuneReport};
use crate::gpu::{CHUNK_ROWS, EVAL_ROWS, Gpu, MAX_IN_FLIGHT, STEPS_PER_SUBMIT};
use crate::model::ModelSpec;
use crate::optim::{OptimConfig, StepHyper};

/// How many storage buffers a split of features may span (shaders/gather_features.wgsl).
pub const FEATURE_PARTS: usize = 3;

/// A data split resident on the GPU.
pub(crate) struct GpuData {
    /// images: [n, 196] u32, four u8 pixels per word (read as [n, 49] vec4<u32>); a placeholder
    /// for feature data.
    pub(crate) images: wgpu::Buffer,
    /// parts: FEATURE_PARTS buffers of [part_rows, width] f32 features (placeholders past the
    /// data's end, and for pixel data).
    pub(crate) parts: Vec<wgpu::Buffer>,
    pub(crate) part_rows: usize,
    pub(crate) width: usize,
    pub(crate) pixels: bool,
    /// labels: [n] u32.
    pub(crate) labels: wgpu::Buffer,
    pub(crate) n: usize,
}

impl GpuData {
    pub(crate) fn new(gpu: &Gpu, name: &str, d: &Dataset) -> Result<Self> {
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
pub(crate) struct Workspace {
    pub(crate) rows: usize,
    /// activations[l]: [rows, sizes[l]]
    pub(crate) activations: Vec<wgpu::Buffer>,
    /// dactivations[l]: [rows, sizes[l]] (entry 0 is a 16-byte placeholder; entry 1 is at least
    /// 64 KiB and uniform-capable when `packed`)
    pub(crate) dactivations: Vec<wgpu::Buffer>,
    /// probs: [rows, classes]
    pub(crate) probs: wgpu::Buffer,
    /// losses: [rows]
    pub(crate) losses: wgpu::Buffer,
    /// labels: [rows] u32
    pub(crate) labels: wgpu::Buffer,
    /// xb: [rows, 196] u32, the batch still packed (where the Input form reads it); a 16-byte
    /// placeholder when not `packed`.
    pub(crate) xb: wgpu::Buffer,
    /// The gather writes xb instead of activations[0], and layer 0's products read it.
    pub(crate) packed: bool,
}

impl Workspace {
    pub(crate) fn new(gpu: &Gpu, spec: &ModelSpec, rows: usize, name: &str, packed: bool) -> Self {
        let f = |n: usize| (n * 4) as u64;
        Workspace {
            rows,
            activations: spec
                .sizes
                .iter()
                .enumerate()
                .map(|(l, &s)| {
                    let label = format!("{name}.activations[{l}]");
                    // The output layer's input, which output_layer_step reads as a uniform
                    // array where it fits one.
                    if l + 2 == spec.sizes.len() && head_input(rows, s) {
                        gpu.storage_uniform(&label, f(rows * s))
                    } else {
                        gpu.storage(&label, f(rows * s))
                    }
                })
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
    /// head_w: output_layer_step's uniform copy of the last layer's W and b; head_copy: the
    /// (byte offset in params, bytes) copied into it before each step, when the plans use it.
    head_w: wgpu::Buffer,
    head_copy: Option<(u64, u64)>,
    step_plan: Plan,
    tail_plan: Option<Plan>,
    /// The floats of params whose gradient a step writes to grads ([`grads_held`]); plain SGD
    /// updates the rest inside the products (their gradient is never stored).
    grads_held: std::ops::Range<usize>,
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
    /// Which matmul forms the plans run, and why.
    tuning: TuneReport,
    /// What [`Backend::prefetch`] read ahead.
    fetched: Fetched,
}

/// Results read back ahead of the synchronous call that returns them (see
/// [`Backend::prefetch`]); cleared by every step and parameter change.
#[derive(Default)]
struct Fetched {
    step_losses: Option<Vec<f32>>,
    test: Option<EvalStats>,
    val: Option<EvalStats>,
    params: Option<Vec<f32>>,
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
            input_dropout,
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
        // The matmul forms first (auto: measured or cached), then the plans that use them. A
        // backend with nothing to train (evaluation) has no step to tune.
        let tuning = if n_train == 0 {
            TuneReport::none(g)
        } else {
            tune::tune_model(g, spec, rows, train_data.pixels)?
        };
        // Input dropout works on the unpacked batch.
        let packed =
            g.fuse && train_data.pixels && *input_dropout == 0.0 && packed_input(g, spec, rows);
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

        // output_layer_step's copy of the last layer's W and b, refreshed before each step.
        let head_w = g.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("head_w"),
            size: kernels::UNIFORM_ARRAY,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let head_copy = head_runs(g, spec, ws.rows).then(|| {
            let last = spec.layers()[spec.layers().len() - 1];
            ((last.w_off * 4) as u64, head_w_bytes(&last))
        });
        let b = Buffers {
            params: &params_buf,
            grads: &grads,
            state1: &state1,
            state2: &state2,
            state: &state,
            step_losses: &step_losses,
            hyper_now: &hyper_now,
            head_w: &head_w,
            optim: *optim,
            dropout: (*dropout > 0.0).then_some((*dropout, *seed)),
            input_dropout: (*input_dropout > 0.0).then_some((*input_dropout, *seed)),
        };
        let step_plan = build_step_plan(g, spec, &ws, &b, &train_data, &order, batch, batch)?;
        // What grads() holds after a step of the whole batch (the tail plan decides its own).
        let grads_held = grads_held(g, spec, &ws, optim, batch);
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
            head_w,
            head_copy,
            step_plan,
            tail_plan,
            grads_held,
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
            tuning,
            fetched: Fetched::default(),
        })
    }

    /// What `--kernel` chose for this model's products and why (measured, cached or forced).
    pub fn tuning(&self) -> &TuneReport {
        &self.tuning
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

    /// The floats of the parameters whose gradient [`Self::grads`] holds: all of them, less the
    /// input layer's weight and bias where plain SGD updates them inside that layer's
    /// weight-gradient product, and the last layer's where it updates them inside
    /// output_layer_step.
    pub fn grads_held(&self) -> std::ops::Range<usize> {
        self.grads_held.clone()
    }

    /// The gradient of the last step (for parity tests), within [`Self::grads_held`].
    pub fn grads(&mut self) -> Result<Vec<f32>> {
        self.sync()?;
        self.counters.readbacks += 1;
        self.gpu.read_f32(&self.grads, self.spec.num_params())
    }

    /// [`Backend::step_loss_sums`], awaiting the readback instead of blocking on it.
    pub async fn step_loss_sums_async(&mut self) -> Result<Vec<f32>> {
        self.sync()?;
        self.counters.readbacks += 1;
        let all = self
            .gpu
            .read_f32_async(&self.step_losses, self.epoch_steps)
            .await?;
        Ok(all[self.first_step..].to_vec())
    }

    /// [`Backend::evaluate`], awaiting the readbacks instead of blocking on them.
    pub async fn evaluate_async(&mut self, split: Split) -> Result<EvalStats> {
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
        let chunks = set.n.div_ceil(EVAL_ROWS);
        let sums = self.gpu.read_f32_async(&set.sums, chunks).await?;
        let correct = self.gpu.read_u32_async(&set.correct, 1).await?[0];
        self.counters.submits += 1;
        self.counters.dispatches += set.plan.dispatches.len();
        self.counters.readbacks += 2;
        let n = set.n.max(1) as f64;
        Ok(EvalStats {
            loss: sums.iter().map(|&s| s as f64).sum::<f64>() / n,
            accuracy: correct as f64 / n,
            samples: set.n,
        })
    }

    /// [`Backend::params`], awaiting the readback instead of blocking on it.
    pub async fn params_async(&mut self) -> Result<Vec<f32>> {
        self.sync()?;
        self.counters.readbacks += 1;
        self.gpu
            .read_f32_async(&self.params, self.spec.num_params())
            .await
    }

    async fn prefetch_async(&mut self, what: Prefetch) -> Result<()> {
        match what {
            Prefetch::StepLosses => {
                self.fetched.step_losses = Some(self.step_loss_sums_async().await?);
            }
            Prefetch::Params => self.fetched.params = Some(self.params_async().await?),
            Prefetch::EpochEnd { val } => {
                self.fetched.step_losses = Some(self.step_loss_sums_async().await?);
                self.fetched.test = Some(self.evaluate_async(Split::Test).await?);
                if val {
                    self.fetched.val = Some(self.evaluate_async(Split::Val).await?);
                    self.fetched.params = Some(self.params_async().await?);
                }
            }
        }
        Ok(())
    }
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
        self.fetched = Fetched::default();
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
        self.fetched = Fetched::default();
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
        if let Some((offset, bytes)) = self.head_copy {
            enc.copy_buffer_to_buffer(&self.params, offset, &self.head_w, 0, bytes);
        }
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
        match &self.fetched.step_losses {
            Some(v) => Ok(v.clone()),
            None => block_on(self.step_loss_sums_async(), "step_loss_sums")?,
        }
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
        let fetched = match split {
            Split::Test => self.fetched.test,
            Split::Val => self.fetched.val,
        };
        match fetched {
            Some(e) => Ok(e),
            None => block_on(self.evaluate_async(split), "evaluate")?,
        }
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        match &self.fetched.params {
            Some(p) => Ok(p.clone()),
            None => block_on(self.params_async(), "params")?,
        }
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        crate::cpu::check_len("parameters", params.len(), self.spec.num_params())?;
        self.sync()?;
        self.fetched = Fetched::default();
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
        self.fetched = Fetched::default();
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

    fn prefetch(&mut self, what: Prefetch) -> Pending<'_> {
        Box::pin(self.prefetch_async(what))
    }
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
                let secs = plan.time_repeated(&self.gpu.ctx, &self.gpu.kernels, i, reps)?;
                times.push(secs * 1e9);
            }
            let mut t = times[1..].to_vec();
            t.sort_by(f64::total_cmp);
            out.push((d.clone(), t[1]));
        }
        Ok(out)
    }
}
