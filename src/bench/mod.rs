//! `descent bench`'s measurements and report: the CPU path and every GPU adapter side by side on
//! one model, over a sweep of batch sizes or hidden widths, with each kernel of the step timed on
//! each device and set against that device's square-matmul peak. The CLI (src/cli/bench.rs)
//! only parses flags and calls [`run`]; [`table`] prints the report, [`Report`] is its JSON.

pub mod measure;
pub mod peak;
pub mod table;
pub mod timestamps;
pub mod twins;

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::backend::Setup;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBackend, GpuOptions, MatmulVariant};
use crate::model::{Init, ModelSpec};
use crate::optim::OptimConfig;
pub use measure::{Device, Effort, StepFigures};
use twins::KernelCall;

/// What the sweep varies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    Batch,
    Width,
}

/// Everything one bench run measures, already checked.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The model at the sweep's first point (with `--widths`, every hidden layer takes each
    /// width in turn).
    pub model: String,
    pub hidden: Vec<usize>,
    pub optimizer: String,
    pub lr: f32,
    pub momentum: f32,
    pub data: String,
    pub train_samples: usize,
    pub axis: Axis,
    /// Batch sizes (resolved: `full` is the training set's size).
    pub batches: Vec<usize>,
    /// Hidden widths (with `--widths`).
    pub widths: Vec<usize>,
    /// The batch whose step is broken into kernels.
    pub kernel_batch: usize,
    pub kernel_reps: usize,
    pub peak_size: usize,
    pub effort: Effort,
    pub quick: bool,
    /// The command line, word for word.
    pub command: String,
    /// `--kernel`, when given.
    pub forced_kernel: Option<String>,
    pub unfused: bool,
}

/// One device as measured.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// `cpu`, or `gpu: <adapter>`: the column header.
    pub label: String,
    pub kind: &'static str,
    pub name: String,
    /// GPU: the graphics API, adapter type and driver, as wgpu reports them.
    pub backend: Option<String>,
    pub device_type: Option<String>,
    pub driver: Option<String>,
    pub driver_info: Option<String>,
    pub timestamp_queries: Option<bool>,
    pub subgroups: Option<bool>,
    /// GPU: the matmul variant and why it was chosen.
    pub matmul_variant: Option<String>,
    pub kernel_choice: Option<String>,
    /// Opening the adapter and compiling every pipeline, once per run (GPU); the CPU has
    /// nothing to open.
    pub open_ms: f64,
    pub threads: usize,
    /// The best GFLOP/s of a square product of side peak_size/4, peak_size/2 or peak_size, and
    /// what reached it: the best over sizes, as a smaller square can beat a larger one where
    /// its operands stay in cache (lavapipe).
    pub peak_gflops: f64,
    pub peak_source: String,
}

/// The machine's CPU.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub rayon_threads: usize,
    pub os: String,
}

/// One point of the sweep: the figures of every device, in `devices` order.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    pub batch: usize,
    /// Hidden width, on a width sweep.
    pub width: Option<usize>,
    pub model: String,
    pub devices: Vec<StepFigures>,
}

/// One kernel of the step, timed on a GPU and through its CPU twin.
#[derive(Clone, Debug, Serialize)]
pub struct KernelRow {
    pub kernel: String,
    pub label: String,
    /// The implementation the GPU dispatch uses (its form), where it has one.
    pub form: Option<String>,
    pub rows: usize,
    pub flops: Option<u64>,
    pub bytes: u64,
    /// By the adapter's timestamps where it has them, else the wall clock.
    pub gpu_us: Option<f64>,
    /// By the synced wall clock: what the dispatch costs the step, launch overhead included.
    pub gpu_wall_us: Option<f64>,
    pub cpu_us: Option<f64>,
}

/// The kernels of one step on one GPU (or on the CPU alone when no GPU is measured).
#[derive(Clone, Debug, Serialize)]
pub struct KernelTable {
    /// Index into `devices` of the GPU whose plan lists the step; None: the CPU's own step.
    pub gpu: Option<usize>,
    pub batch: usize,
    /// How the GPU dispatches were timed.
    pub gpu_clock: Option<String>,
    pub rows: Vec<KernelRow>,
}

/// Everything `bench` measured: what `--json` writes.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub version: &'static str,
    pub config: Config,
    pub machine: Machine,
    pub devices: Vec<DeviceInfo>,
    pub points: Vec<Point>,
    pub kernels: Vec<KernelTable>,
    /// The GPU matmul autotuner's report for each GPU at the kernel table's batch (which form
    /// each product runs, the candidates' times and parity, cache or measured), when there is one.
    pub tuning: Option<String>,
}

/// The devices to measure, opened: the CPU first, then each GPU adapter.
pub struct Devices {
    pub list: Vec<(Device, DeviceInfo)>,
}

/// What [`run`] needs beyond the config: the model, data and how to open GPUs.
pub struct Inputs {
    pub spec: ModelSpec,
    pub optim: OptimConfig,
    pub train: Arc<Dataset>,
    pub test: Arc<Dataset>,
}

/// The names of the usable GPU adapters ($WGPU_BACKEND picks the APIs), one per name: wgpu may
/// list one device under several APIs, and opening by name takes the best of them.
pub fn adapter_names(filter: Option<&str>) -> Vec<String> {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let instance = wgpu::Instance::new(desc);
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let mut names: Vec<String> = Vec::new();
    for a in adapters {
        let info = a.get_info();
        let wanted = filter.is_none_or(|f| info.name.to_lowercase().contains(&f.to_lowercase()));
        if info.backend != wgpu::Backend::Noop && wanted && !names.contains(&info.name) {
            names.push(info.name);
        }
    }
    names
}

/// Opens the CPU and/or the named GPU adapters and measures each one's peak.
pub fn open_devices(
    cpu: bool,
    adapters: &[String],
    opts: &GpuOptions,
    forced: Option<MatmulVariant>,
    peak_size: usize,
    kernel_reps: usize,
) -> Result<Devices> {
    let mut list = Vec::new();
    let threads = rayon::current_num_threads().max(1);
    let sides: Vec<usize> = [peak_size / 4, peak_size / 2, peak_size]
        .into_iter()
        .filter(|&s| s >= 16 || s == peak_size)
        .collect();
    let best = |v: Vec<(f64, usize)>| v.into_iter().max_by(|a, b| a.0.total_cmp(&b.0));
    if cpu {
        let cpu_peak = best(
            sides
                .iter()
                .map(|&s| (crate::cpu::peak::peak_gflops(s), s))
                .collect(),
        )
        .unwrap_or((0.0, peak_size));
        list.push((
            Device::Cpu,
            DeviceInfo {
                label: "cpu".into(),
                kind: "cpu",
                name: machine().cpu_model,
                backend: None,
                device_type: None,
                driver: None,
                driver_info: None,
                timestamp_queries: None,
                subgroups: None,
                matmul_variant: None,
                kernel_choice: None,
                open_ms: 0.0,
                threads,
                peak_gflops: cpu_peak.0,
                peak_source: format!("gemm crate sgemm, {threads} threads, {}³", cpu_peak.1),
            },
        ));
    }
    for name in adapters {
        let t = Instant::now();
        // An exact name: the adapter filter is a substring match, and names may nest.
        let gpu = Arc::new(Gpu::new(
            &GpuOptions {
                adapter: Some(name.clone()),
                ..opts.clone()
            },
            forced,
        )?);
        let open_ms = t.elapsed().as_secs_f64() * 1e3;
        let info = gpu.ctx.info.clone();
        let variant = gpu.kernels.variant;
        let why = match forced {
            Some(_) => "forced by --kernel".to_owned(),
            None => "chosen by measurement: each product's fastest form that passes parity (the tuning report below)".to_owned(),
        };
        // A large product times well in a few runs; more would take seconds on lavapipe.
        let mut runs = Vec::new();
        for &side in &sides {
            let (g, what) = peak::gpu_peak_gflops(&gpu, side, kernel_reps.min(2))?;
            runs.push((g, format!("{what} kernel, {side}³")));
        }
        let (peak, source) = runs
            .into_iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap_or((0.0, String::new()));
        list.push((
            Device::Gpu(gpu.clone()),
            DeviceInfo {
                label: format!("gpu: {}", info.name),
                kind: "gpu",
                name: info.name.clone(),
                backend: Some(format!("{:?}", info.backend)),
                device_type: Some(format!("{:?}", info.device_type)),
                driver: Some(info.driver.clone()),
                driver_info: Some(info.driver_info.clone()),
                timestamp_queries: Some(gpu.ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY)),
                subgroups: Some(gpu.ctx.subgroups),
                matmul_variant: Some(variant.name().to_owned()),
                kernel_choice: Some(why),
                open_ms,
                threads,
                peak_gflops: peak,
                peak_source: format!("our {source}"),
            },
        ));
    }
    Ok(Devices { list })
}

/// The machine's CPU model (from /proc/cpuinfo where there is one) and core count.
pub fn machine() -> Machine {
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    Machine {
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rayon_threads: rayon::current_num_threads(),
        os: std::env::consts::OS.to_owned(),
    }
}

/// The model at one width of a width sweep: every hidden layer `width` units.
pub fn at_width(spec: &ModelSpec, width: usize) -> ModelSpec {
    let hidden = vec![width; spec.hidden().len().max(1)];
    ModelSpec::with_io(
        spec.inputs(),
        &hidden,
        spec.classes(),
        spec.activation,
        spec.loss,
    )
}

fn setup(inputs: &Inputs, spec: &ModelSpec, batch: usize) -> Setup {
    Setup {
        spec: spec.clone(),
        params: spec.init_params(Init::Auto, 0),
        train: inputs.train.clone(),
        test: inputs.test.clone(),
        val: None,
        batch,
        optim: inputs.optim,
        dropout: 0.0,
        input_dropout: 0.0,
        seed: 0,
    }
}

/// Measures every device at every point of the sweep, then the step's kernels at
/// `config.kernel_batch`, printing progress to stderr.
pub fn run(config: Config, inputs: &Inputs, devices: Devices) -> Result<Report> {
    let mut points = Vec::new();
    let xs: Vec<(usize, Option<usize>)> = match config.axis {
        Axis::Batch => config.batches.iter().map(|&b| (b, None)).collect(),
        Axis::Width => config
            .widths
            .iter()
            .map(|&w| (config.batches[0], Some(w)))
            .collect(),
    };
    for (batch, width) in xs {
        let spec = width.map_or_else(|| inputs.spec.clone(), |w| at_width(&inputs.spec, w));
        let mut figs = Vec::new();
        for (dev, info) in &devices.list {
            eprintln!(
                "bench: {} batch {batch}, {} ...",
                spec.describe(),
                info.label
            );
            let mut f =
                measure::measure(dev, setup(inputs, &spec, batch), config.lr, &config.effort)?;
            f.peak_share = (info.peak_gflops > 0.0).then(|| f.gflops / info.peak_gflops);
            figs.push(f);
        }
        points.push(Point {
            batch,
            width,
            model: spec.describe(),
            devices: figs,
        });
    }
    let (kernels, tuning) = kernel_tables(&config, inputs, &devices)?;
    Ok(Report {
        version: env!("CARGO_PKG_VERSION"),
        config,
        machine: machine(),
        devices: devices.list.into_iter().map(|(_, i)| i).collect(),
        points,
        kernels,
        tuning: (!tuning.is_empty()).then(|| tuning.join("\n")),
    })
}

/// The step at `kernel_batch` kernel by kernel: on each GPU its plan's dispatches, each with
/// its CPU twin at the same shapes; with no GPU, the CPU backend's own kernels.
fn kernel_tables(
    config: &Config,
    inputs: &Inputs,
    devices: &Devices,
) -> Result<(Vec<KernelTable>, Vec<String>)> {
    let spec = &inputs.spec;
    let batch = config.kernel_batch;
    let threads = rayon::current_num_threads().max(1);
    let reps = config.kernel_reps;
    let has_cpu = devices.list.iter().any(|(d, _)| matches!(d, Device::Cpu));
    // (bytes the kernel touches, µs of its CPU twin when the CPU is measured).
    let twin_of = |call: &KernelCall| -> (u64, Option<f64>) {
        match twins::twin(call, spec, &inputs.optim, threads) {
            Some(mut t) => (t.bytes, has_cpu.then(|| t.time_us(reps))),
            None => (0, None),
        }
    };
    let mut tables = Vec::new();
    let mut tunings = Vec::new();
    for (i, (dev, _)) in devices.list.iter().enumerate() {
        let Device::Gpu(gpu) = dev else { continue };
        eprintln!(
            "bench: kernels of one step at batch {batch}, {} ...",
            gpu.ctx.info.name
        );
        let mut g = GpuBackend::new(gpu.clone(), &setup(inputs, spec, batch))?;
        tunings.push(format!("{}:\n{}", gpu.ctx.info.name, g.tuning()));
        let n = inputs.train.len();
        let order = crate::train::epoch_order(n, 0, 1);
        let hyper: Vec<_> = (0..n.div_ceil(batch) as u64)
            .map(|t| inputs.optim.step_hyper(t, config.lr))
            .collect();
        crate::backend::Backend::begin_epoch(&mut g, &order, &hyper, 0)?;
        // The adapter's clock where it has one (all-zero stamps count as none), the synced
        // wall clock always.
        let stamps = g
            .plans()
            .first()
            .map(|plan| timestamps::dispatch_ns(gpu, plan, reps))
            .transpose()?
            .flatten()
            .filter(|t| t.iter().sum::<f64>() > 0.0);
        let timed = g.profile_step(reps)?;
        let rows_per_chunk = batch.min(crate::gpu::CHUNK_ROWS);
        let rows = timed
            .into_iter()
            .enumerate()
            .map(|(i, (d, wall_ns))| {
                let ns = stamps
                    .as_ref()
                    .and_then(|t| t.get(i).copied())
                    .unwrap_or(wall_ns);
                let call = KernelCall {
                    kernel: d.kernel,
                    layer: twins::label_layer(&d.label),
                    rows: rows_per_chunk,
                    label: d.label.clone(),
                };
                let (bytes, cpu_us) = twin_of(&call);
                KernelRow {
                    kernel: d.kernel.name().to_owned(),
                    label: d.label,
                    form: Some(format!("{:?}", d.form)),
                    rows: call.rows,
                    flops: d.flops,
                    bytes,
                    gpu_us: Some(ns / 1e3),
                    gpu_wall_us: Some(wall_ns / 1e3),
                    cpu_us,
                }
            })
            .collect();
        tables.push(KernelTable {
            gpu: Some(i),
            batch,
            gpu_clock: Some(format!(
                "{}: each dispatch {reps}× back to back, median of 3 after a warm-up",
                if stamps.is_some() {
                    "timestamp queries around a pass per dispatch (the synced wall clock in gpu_wall_us)"
                } else {
                    "synced wall clock, one submit per dispatch (the adapter has no timestamp queries)"
                }
            )),
            rows,
        });
    }
    if tables.is_empty() && has_cpu {
        eprintln!("bench: kernels of one step at batch {batch}, cpu ...");
        let rows_per_call = batch;
        let rows = twins::cpu_step(spec, &inputs.optim, rows_per_call, inputs.train.is_pixels())
            .into_iter()
            .map(|call| {
                let flops = matmul_flops(&call, spec);
                let (bytes, cpu_us) = twin_of(&call);
                KernelRow {
                    kernel: call.kernel.name().to_owned(),
                    form: None,
                    rows: call.rows,
                    flops,
                    bytes,
                    gpu_us: None,
                    gpu_wall_us: None,
                    cpu_us,
                    label: call.label,
                }
            })
            .collect();
        tables.push(KernelTable {
            gpu: None,
            batch,
            gpu_clock: None,
            rows,
        });
    }
    Ok((tables, tunings))
}

/// 2·m·n·k of a matrix product call, the way the GPU plan counts it.
fn matmul_flops(call: &KernelCall, spec: &ModelSpec) -> Option<u64> {
    if !call.kernel.is_matmul() {
        return None;
    }
    let s = spec.layers().get(call.layer?).copied()?;
    Some(2 * (call.rows * s.inp * s.out) as u64)
}

impl Report {
    /// The report as pretty JSON.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self).map_err(|e| Error::InvalidArg(format!("--json: {e}")))
    }
}
