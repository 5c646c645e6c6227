//! `descent bench`: the CPU path and every GPU adapter side by side on one model. Flags and their
//! checks live here; the measuring and the report are in src/bench/.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::args::{
    DataArgs, DeviceArgs, DeviceChoice, ModelArgs, check_output_file, load_data, resident_bytes,
};
use descent::bench::{self, Axis, Config, Effort, Inputs};
use descent::data::Splits;
use descent::error::{Error, Result};
use descent::gpu::GpuOptions;
use descent::model::ModelSpec;
use descent::optim::{OptimConfig, OptimizerKind, Schedule};
use descent::plot::bench::{BenchCurve, BenchFigure};
use descent::train::BatchSize;

const DEFAULT_SIZES: &str = "1,16,64,256,1024,full";
/// With `--widths`: the one batch size the widths are measured at.
const DEFAULT_WIDTH_BATCH: &str = "128";
/// `--quick`: training samples, batch sizes and the rest, small enough for CI on lavapipe.
const QUICK_SAMPLES: usize = 256;
const QUICK_SIZES: &str = "1,16,full";

/// Measures training throughput on the CPU and on every GPU adapter (`--device cpu|gpu` for one
/// kind only), over batch sizes (`--sizes`) or hidden widths (`--widths`), and prints one table
/// with a column per device and the GPU/CPU ratio, each device's square-matmul peak, and the
/// step's kernels timed on each device. With `--device auto` (the default) bench measures every
/// adapter, software ones (lavapipe) included.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Batch sizes to sweep, comma separated (`full` = the whole training set)
    /// [default: 1,16,64,256,1024,full; with --widths: 128; with --quick: 1,16,full].
    #[arg(long, alias = "batch-sizes", value_name = "LIST")]
    pub sizes: Option<String>,
    /// Hidden widths to sweep instead of batch sizes, e.g. 64,128,256,512,1024,2048,4096: every
    /// hidden layer takes each width in turn, at the one batch size --sizes gives.
    #[arg(long, value_name = "LIST")]
    pub widths: Option<String>,
    /// Seconds to keep measuring each device at each point (at least --rounds rounds).
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Timed rounds at least, after one warm-up round; the figure is their median.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Time a whole epoch only when the step rate says it takes at most this many seconds.
    #[arg(long, default_value_t = 20.0)]
    pub epoch_seconds: f64,
    /// The batch whose step is broken into kernels [default: 128, or the data set's size].
    #[arg(long, value_name = "N")]
    pub kernel_batch: Option<usize>,
    /// How many times each kernel runs back to back to be timed.
    #[arg(long, default_value_t = 32)]
    pub kernel_reps: usize,
    /// The side of the square matrix product that measures each device's peak.
    #[arg(long, default_value_t = 1024)]
    pub peak_size: usize,
    /// Train on the first N training samples only.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    /// The update rule to time (sgd, nesterov, adam, adamw).
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Write every figure, the devices and the exact configuration as one JSON document.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Draw samples/s against batch size (or width), one curve per device, log axes (.png/.svg).
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    /// A tiny configuration for CI, done in seconds: 256 samples, batches 1,16,full, short
    /// rounds, a 128³ peak.
    #[arg(long)]
    pub quick: bool,
    /// Kept for old scripts: every bench now prints the per-kernel profile (at --kernel-batch).
    #[arg(long, hide = true)]
    pub profile: bool,
}

/// `--sizes`: positive batch sizes or `full`.
fn parse_sizes(s: &str) -> Result<Vec<BatchSize>> {
    s.split(',')
        .map(|v| {
            let v = v.trim();
            match v.parse::<usize>() {
                _ if v.eq_ignore_ascii_case("full") => Ok(BatchSize::Full),
                Ok(n) if n > 0 => Ok(BatchSize::Samples(n)),
                _ => Err(Error::InvalidArg(format!(
                    "--sizes {s}: `{v}` is not a batch size; give positive numbers or `full`, comma separated"
                ))),
            }
        })
        .collect()
}

/// `--widths`: positive hidden widths.
fn parse_widths(s: &str) -> Result<Vec<usize>> {
    s.split(',')
        .map(|v| match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::InvalidArg(format!(
                "--widths {s}: `{}` is not a width; give positive numbers of units, comma separated",
                v.trim()
            ))),
        })
        .collect()
}

fn positive(flag: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidArg(format!(
            "{flag} {v}: give a number of seconds ≥ 0"
        )))
    }
}

pub fn run(args: BenchArgs) -> Result<()> {
    // Every check that needs no data comes first: a bad flag costs nothing.
    if let Some(p) = &args.json {
        check_output_file("--json", p)?;
    }
    if let Some(p) = &args.plot {
        descent::plot::check_picture_path("--plot", p)?;
    }
    if args.profile {
        eprintln!(
            "note: --profile is part of every bench now: see the kernel table (at --kernel-batch)"
        );
    }
    let spec = args.model.spec()?;
    Schedule::constant(args.lr).check()?;
    let optim = OptimConfig {
        kind: args.optimizer,
        ..OptimConfig::sgd(args.momentum)
    };
    optim.check()?;
    positive("--seconds", args.seconds)?;
    positive("--epoch-seconds", args.epoch_seconds)?;
    for (flag, v) in [
        ("--kernel-reps", args.kernel_reps),
        ("--peak-size", args.peak_size),
    ] {
        if v == 0 {
            return Err(Error::InvalidArg(format!("{flag} 0: give at least 1")));
        }
    }
    if args.limit == Some(0) {
        return Err(Error::InvalidArg(
            "--limit 0: no samples to train on".into(),
        ));
    }
    let widths = args.widths.as_deref().map(parse_widths).transpose()?;
    let default_sizes = match (&widths, args.quick) {
        (Some(_), _) => DEFAULT_WIDTH_BATCH,
        (None, true) => QUICK_SIZES,
        (None, false) => DEFAULT_SIZES,
    };
    let sizes_text = args
        .sizes
        .clone()
        .unwrap_or_else(|| default_sizes.to_owned());
    let sizes = parse_sizes(&sizes_text)?;
    if widths.is_some() && sizes.len() != 1 {
        return Err(Error::InvalidArg(format!(
            "--sizes {sizes_text} with --widths: a width sweep runs at one batch size; give one (default {DEFAULT_WIDTH_BATCH})"
        )));
    }
    let effort = if args.quick {
        Effort {
            seconds: 0.0,
            rounds: 2,
            round_samples: QUICK_SAMPLES,
            epoch_seconds: 5.0,
        }
    } else {
        Effort {
            seconds: args.seconds,
            rounds: args.rounds.max(1),
            round_samples: 4096,
            epoch_seconds: args.epoch_seconds,
        }
    };
    let limit = args.limit.or(args.quick.then_some(QUICK_SAMPLES));
    let (peak_size, kernel_reps) = if args.quick {
        (args.peak_size.min(128), args.kernel_reps.min(2))
    } else {
        (args.peak_size, args.kernel_reps)
    };

    let Splits { mut train, test } = load_data(&args.data)?;
    if let Some(l) = limit {
        train.truncate(l);
    }
    let n = train.len();
    if n == 0 {
        return Err(Error::InvalidArg(
            "the training set is empty: nothing to time".into(),
        ));
    }
    let mut batches = Vec::new();
    for b in &sizes {
        match *b {
            // The default sweep simply stops at the data set's size.
            BatchSize::Samples(s) if s > n && args.sizes.is_none() => {
                eprintln!(
                    "note: batch {s} left out of the default sweep: only {n} training samples"
                );
            }
            BatchSize::Samples(s) if s > n => {
                return Err(Error::InvalidArg(format!(
                    "--sizes {sizes_text}: batch {s} is larger than the {n} training samples; use `full` for the whole set"
                )));
            }
            b => batches.push(b.resolve(n)),
        }
    }
    let kernel_batch = match args.kernel_batch {
        Some(0) => {
            return Err(Error::InvalidArg(
                "--kernel-batch 0: give at least 1".into(),
            ));
        }
        Some(k) if k > n => {
            return Err(Error::InvalidArg(format!(
                "--kernel-batch {k}: larger than the {n} training samples"
            )));
        }
        Some(k) => k,
        None if args.quick => 16.min(n),
        None => 128.min(n),
    };
    // The input width and class count come from the data (--data), MNIST's otherwise.
    let spec = ModelSpec::with_io(
        train.width,
        spec.hidden(),
        train.classes,
        spec.activation,
        spec.loss,
    );

    let choice = args.device.device;
    let adapters = match choice {
        DeviceChoice::Cpu => Vec::new(),
        _ => bench::adapter_names(args.device.adapter.as_deref()),
    };
    if adapters.is_empty() {
        match choice {
            DeviceChoice::Gpu => {
                return Err(Error::NoAdapter {
                    detail: args
                        .device
                        .adapter
                        .as_deref()
                        .map(|a| format!(" matching `{a}`"))
                        .unwrap_or_default(),
                });
            }
            DeviceChoice::Auto => eprintln!("note: no GPU adapter found; measuring the CPU only"),
            DeviceChoice::Cpu => {}
        }
    }
    let (train, test) = (Arc::new(train), Arc::new(test));
    let opts = GpuOptions {
        adapter: None,
        validation: std::env::var_os("DESCENT_VALIDATION").is_some(),
        max_binding_bytes: resident_bytes(&train, &test),
        unfused: args.device.unfused,
        ..Default::default()
    };
    eprintln!("bench: opening devices and measuring each one's {peak_size}³ matmul peak ...");
    let devices = bench::open_devices(
        choice != DeviceChoice::Gpu,
        &adapters,
        &opts,
        args.device.kernel,
        peak_size,
        kernel_reps,
    )?;
    let config = Config {
        model: spec.describe(),
        hidden: spec.hidden().to_vec(),
        optimizer: args.optimizer.name().to_owned(),
        lr: args.lr,
        momentum: args.momentum,
        data: args.data.name(),
        train_samples: n,
        axis: if widths.is_some() {
            Axis::Width
        } else {
            Axis::Batch
        },
        batches,
        widths: widths.unwrap_or_default(),
        kernel_batch,
        kernel_reps,
        peak_size,
        effort,
        quick: args.quick,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        forced_kernel: args.device.kernel.map(|k| k.name().to_owned()),
        unfused: args.device.unfused,
    };
    let inputs = Inputs {
        spec,
        optim,
        train,
        test,
    };
    let report = bench::run(config, &inputs, devices)?;
    println!("{report}");
    if let Some(p) = &args.json {
        descent::write_atomic(p, &report.to_json()?)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &args.plot {
        descent::plot::render(&figure(&report), p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

/// `784-128-10 (relu, xent, 101770 params)` with `layers` hidden layers as `784-w-10 (relu,
/// xent)`: the model of a width sweep.
fn width_shape(model: &str, layers: usize) -> String {
    let (sizes, rest) = model.split_once(' ').unwrap_or((model, ""));
    let sizes: Vec<&str> = sizes.split('-').collect();
    let (first, last) = (
        sizes.first().copied().unwrap_or("?"),
        sizes.last().copied().unwrap_or("?"),
    );
    let kinds: Vec<&str> = rest.trim_matches(['(', ')']).split(", ").take(2).collect();
    format!(
        "{first}-{}-{last} ({}), w = each hidden width",
        vec!["w"; layers].join("-"),
        kinds.join(", ")
    )
}

/// samples/s per step against the swept quantity, a curve per device.
fn figure(r: &bench::Report) -> BenchFigure {
    let c = &r.config;
    let (x_desc, sweep) = match c.axis {
        Axis::Batch => (
            "batch size: samples per step (log scale)".to_owned(),
            "batch sizes".to_owned(),
        ),
        Axis::Width => (
            format!(
                "hidden width: units per hidden layer (log scale), batch {}",
                c.batches[0]
            ),
            "hidden widths".to_owned(),
        ),
    };
    let curves = r
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| BenchCurve {
            label: d.label.clone(),
            points: r
                .points
                .iter()
                .map(|p| {
                    let x = match (c.axis, p.width) {
                        (Axis::Width, Some(w)) => w,
                        _ => p.batch,
                    };
                    (x as f64, p.devices[i].samples_per_s_step)
                })
                .collect(),
        })
        .collect();
    let (model, samples) = match c.axis {
        Axis::Batch => (
            c.model.clone(),
            format!("full batch = all {} training samples", c.train_samples),
        ),
        Axis::Width => (
            width_shape(&r.config.model, c.hidden.len().max(1)),
            format!("{} training samples", c.train_samples),
        ),
    };
    BenchFigure {
        title: vec![
            format!("descent bench: training throughput over {sweep}, each device"),
            format!(
                "{model} · {} lr {} · {samples} · {} · {} cores",
                c.optimizer, c.lr, r.machine.cpu_model, r.machine.cores
            ),
        ],
        x_desc,
        curves,
    }
}
