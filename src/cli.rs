//! Command-line interface: argument parsing and the subcommands.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::backend::Backend;
use crate::cpu::CpuBackend;
use crate::data::{DataSource, Dataset, DatasetKind, Splits};
use crate::download::Mirror;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuBackend, GpuOptions, MatmulVariant, verify};

/// How many times `bench --profile` runs each dispatch back to back to time it.
const PROFILE_REPS: usize = 64;
use crate::model::{self, Activation, Init, Loss, ModelSpec};
use crate::train::{self, BatchSize, EpochRecord, TrainConfig};

#[derive(Parser, Debug)]
#[command(
    name = "descent",
    version,
    about = "Train multilayer perceptrons on MNIST with backprop and gradient descent, on the CPU or on a GPU through WGSL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an MLP and report loss and accuracy per epoch.
    Train(TrainArgs),
    /// Evaluate a checkpoint on the test set.
    Eval(EvalArgs),
    /// Download (if needed) and verify the dataset, without training.
    Data(DataArgs),
    /// Measure training throughput (samples/s) at several batch sizes.
    Bench(BenchArgs),
    /// Check every GPU kernel and whole training steps against the CPU on this adapter.
    Verify(VerifyArgs),
}

#[derive(Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Pick the GPU adapter whose name contains this (case-insensitive); also $WGPU_ADAPTER_NAME.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Matmul kernel variant to check [default: by adapter type].
    #[arg(long, value_enum)]
    pub kernel: Option<MatmulVariant>,
}

#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Which dataset.
    #[arg(long, value_enum, default_value = "mnist")]
    pub dataset: DatasetKind,
    /// Where the dataset's files are kept [default: data/<dataset>].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Base to download from: http(s):// URL, file:// URL or a directory. Overrides the public
    /// mirrors. Defaults to $MNIST_MIRROR (mnist) or $FASHION_MNIST_MIRROR (fashion).
    #[arg(long)]
    pub mirror: Option<String>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl DataArgs {
    pub fn source(&self) -> Result<DataSource> {
        let env_name = match self.dataset {
            DatasetKind::Mnist => "MNIST_MIRROR",
            DatasetKind::Fashion => "FASHION_MNIST_MIRROR",
        };
        let mirror = match &self.mirror {
            Some(m) => Some(m.clone()),
            None => std::env::var(env_name)
                .ok()
                .filter(|s| !s.trim().is_empty()),
        };
        Ok(DataSource {
            kind: self.dataset,
            dir: self
                .data_dir
                .clone()
                .unwrap_or_else(|| Path::new("data").join(self.dataset.name())),
            mirror: mirror.as_deref().map(Mirror::parse).transpose()?,
            progress: !self.quiet,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// The best GPU adapter, else the CPU with a notice.
    Auto,
    Gpu,
    Cpu,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Hidden layer sizes: `128`, `500,300`, or `none` for softmax regression.
    #[arg(long, default_value = "128")]
    pub hidden: String,
    #[arg(long, value_enum, default_value = "relu")]
    pub activation: Activation,
    #[arg(long, value_enum, default_value = "xent")]
    pub loss: Loss,
    /// Weight initialisation.
    #[arg(long, value_enum, default_value = "auto")]
    pub init: Init,
}

impl ModelArgs {
    pub fn spec(&self) -> Result<ModelSpec> {
        Ok(ModelSpec::new(
            &model::parse_hidden(&self.hidden)?,
            self.activation,
            self.loss,
        ))
    }
}

/// Where to run: `--device`, `--adapter`, `--kernel`.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// auto: the best GPU adapter, else the CPU with a notice; gpu: a GPU adapter or an error.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceChoice,
    /// Pick the GPU adapter whose name contains this (case-insensitive); also $WGPU_ADAPTER_NAME.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Matmul kernel variant [default: blocked on CPU adapters such as lavapipe, tiled on GPUs].
    #[arg(long, value_enum)]
    pub kernel: Option<MatmulVariant>,
    /// GPU: run activations and their derivatives as separate dispatches, not fused into the
    /// matmul epilogues (to time or check them on their own).
    #[arg(long)]
    pub unfused: bool,
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Passes over the training set.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Samples per step: a number (64 = mini-batch, 1 = stochastic) or `full` (batch descent).
    #[arg(long, default_value = "64")]
    pub batch_size: String,
    /// Learning rate.
    #[arg(long, default_value_t = 0.03, allow_negative_numbers = true)]
    pub lr: f32,
    /// SGD momentum (0 = plain SGD).
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f32,
    /// Seed for initialisation and shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Train on the first N training samples only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Append nothing; (re)write this file with one JSON object per epoch.
    #[arg(long)]
    pub metrics: Option<PathBuf>,
    /// Save the trained model as a safetensors checkpoint.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Also print the mean training loss every N steps. The loss is summed on the device, so on
    /// the GPU this reads it back every N steps instead of once per epoch.
    #[arg(long, value_name = "N")]
    pub log_every: Option<usize>,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print the GPU step plan (every dispatch of a step, in order) and exit.
    #[arg(long)]
    pub print_plan: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A safetensors checkpoint (from `train --save`, or PyTorch with the same tensor names).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Activation, when the checkpoint's metadata does not name one [default: relu].
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Loss to report, when the metadata does not name one [default: xent].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Batch sizes to measure, comma separated (`full` allowed).
    #[arg(long, default_value = "1,64,128,full")]
    pub batch_sizes: String,
    /// Time spent measuring each batch size, in seconds.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    #[arg(long, default_value_t = 0.01)]
    pub lr: f32,
    #[arg(long, default_value_t = 0.0)]
    pub momentum: f32,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// GPU only: also time every dispatch of one step with timestamp queries.
    #[arg(long)]
    pub profile: bool,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => cmd_train(a),
        Command::Eval(a) => cmd_eval(a),
        Command::Data(a) => cmd_data(a),
        Command::Bench(a) => cmd_bench(a),
        Command::Verify(a) => cmd_verify(a),
    }
}

fn load_data(args: &DataArgs) -> Result<Splits> {
    let splits = args.source()?.load()?;
    Ok(splits)
}

/// Opens the GPU the user asked for: `Ok(None)` when `auto` finds none (after a notice).
pub fn open_gpu(dev: &DeviceArgs, max_binding_bytes: u64) -> Result<Option<Arc<Gpu>>> {
    if dev.device == DeviceChoice::Cpu {
        return Ok(None);
    }
    let opts = GpuOptions {
        adapter: dev.adapter.clone(),
        validation: std::env::var_os("DESCENT_VALIDATION").is_some(),
        max_binding_bytes,
        unfused: dev.unfused,
    };
    match Gpu::new(&opts, dev.kernel) {
        // A software adapter (lavapipe) runs the same two cores as the CPU path, an order of
        // magnitude slower; `auto` wants the fastest, so it takes the CPU. `gpu` still gets it.
        Ok(gpu) if dev.device == DeviceChoice::Auto && gpu.ctx.is_cpu_adapter() => {
            eprintln!(
                "note: the only GPU adapter is a software one ({}); the CPU path is faster, using it (--device gpu forces the adapter)",
                gpu.ctx.info.name
            );
            Ok(None)
        }
        Ok(gpu) => Ok(Some(Arc::new(gpu))),
        Err(Error::NoAdapter { .. }) if dev.device == DeviceChoice::Auto => {
            eprintln!(
                "note: no GPU adapter found, running on the CPU (`apt-get install mesa-vulkan-drivers` gives a software one)"
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Bytes of the largest split's packed images: the biggest storage binding the GPU path makes.
fn resident_bytes(train: &Dataset, test: &Dataset) -> u64 {
    train.images.len().max(test.images.len()) as u64
}

/// Builds the backend the user asked for.
fn make_backend(
    dev: &DeviceArgs,
    spec: &ModelSpec,
    params: Vec<f32>,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    batch: usize,
    momentum: f32,
) -> Result<Box<dyn Backend>> {
    match open_gpu(dev, resident_bytes(&train, &test))? {
        Some(gpu) => Ok(Box::new(GpuBackend::new(
            gpu,
            spec.clone(),
            &params,
            &train,
            &test,
            batch,
            momentum,
        )?)),
        None => Ok(Box::new(CpuBackend::new(
            spec.clone(),
            params,
            train,
            test,
            batch,
            momentum,
        ))),
    }
}

fn cmd_data(args: DataArgs) -> Result<()> {
    let src = args.source()?;
    let splits = src.load()?;
    println!(
        "{}: {} training and {} test samples in {}, checksums verified",
        src.kind.name(),
        splits.train.len(),
        splits.test.len(),
        src.dir.display()
    );
    Ok(())
}

fn cmd_train(args: TrainArgs) -> Result<()> {
    // Check every flag before touching the data, so a typo costs nothing.
    let spec = args.model.spec()?;
    let batch = BatchSize::parse(&args.batch_size)?;
    let lr = train::check_lr(args.lr)?;
    let momentum = train::check_momentum(args.momentum)?;
    if args.epochs == 0 {
        return Err(Error::InvalidArg("--epochs 0: nothing to train".into()));
    }
    if args.log_every == Some(0) {
        return Err(Error::InvalidArg(
            "--log-every 0: give a number of steps, at least 1".into(),
        ));
    }
    if args.limit == Some(0) {
        return Err(Error::InvalidArg(
            "--limit 0: no samples to train on".into(),
        ));
    }
    for (flag, path) in [("--metrics", &args.metrics), ("--save", &args.save)] {
        if let Some(p) = path {
            check_output_dir(flag, p)?;
        }
    }

    let Splits { mut train, test } = load_data(&args.data)?;
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let n_train = train.len();
    let batch = batch.resolve(n_train);
    let params = spec.init_params(args.model.init, args.seed);
    if args.print_plan {
        let dev = DeviceArgs {
            device: DeviceChoice::Gpu,
            ..args.device.clone()
        };
        let gpu = open_gpu(&dev, resident_bytes(&train, &test))?
            .ok_or_else(|| Error::InvalidArg("--print-plan needs a GPU adapter".into()))?;
        let b = GpuBackend::new(gpu, spec.clone(), &params, &train, &test, batch, momentum)?;
        println!("{}", b.device());
        for p in b.plans() {
            println!("{p}");
        }
        return Ok(());
    }
    let mut backend = make_backend(
        &args.device,
        &spec,
        params,
        Arc::new(train),
        Arc::new(test),
        batch,
        momentum,
    )?;
    let quiet = args.data.quiet;
    println!(
        "model {} | {} on {} | {} samples, batch {}, lr {}, momentum {} | {}",
        spec.describe(),
        args.data.dataset.name(),
        backend.device(),
        n_train,
        batch,
        lr,
        momentum,
        if batch == n_train {
            "batch gradient descent"
        } else if batch == 1 {
            "stochastic gradient descent"
        } else {
            "mini-batch gradient descent"
        }
    );
    let cfg = TrainConfig {
        epochs: args.epochs,
        batch,
        lr,
        seed: args.seed,
        progress: !quiet,
        log_every: args.log_every,
    };
    let mut lines = String::new();
    let metrics = args.metrics.clone();
    train::train(backend.as_mut(), &cfg, n_train, |r: &EpochRecord| {
        println!(
            "epoch {:>3}  train loss {:.4}  test loss {:.4}  test acc {:.2}%  {:.2}s  {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.test_loss,
            100.0 * r.test_accuracy,
            r.epoch_seconds,
            r.samples_per_second
        );
        if let Some(path) = &metrics {
            let line = serde_json::to_string(r).map_err(|e| {
                Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                )
            })?;
            lines.push_str(&line);
            lines.push('\n');
            crate::write_atomic(path, lines.as_bytes())?;
        }
        Ok(())
    })?;
    if let Some(path) = &args.save {
        let params = backend.params()?;
        model::save_checkpoint(path, &spec, &params, args.data.dataset)?;
        println!("saved {}", path.display());
    }
    Ok(())
}

/// Fails before any training when an output file's directory does not exist.
fn check_output_dir(flag: &str, path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if dir.is_dir() {
        Ok(())
    } else {
        Err(Error::InvalidArg(format!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        )))
    }
}

fn cmd_eval(args: EvalArgs) -> Result<()> {
    let ck = model::load_checkpoint(&args.checkpoint, args.activation, args.loss)?;
    if let Some(ds) = ck.dataset
        && ds != args.data.dataset
    {
        eprintln!(
            "note: the checkpoint was trained on {}, evaluating on {}",
            ds.name(),
            args.data.dataset.name()
        );
    }
    let Splits { test, .. } = load_data(&args.data)?;
    let test = Arc::new(test);
    let mut backend = make_backend(
        &args.device,
        &ck.spec,
        ck.params,
        Arc::new(Dataset::default()),
        test,
        1,
        0.0,
    )?;
    let e = backend.evaluate()?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "test_accuracy": e.accuracy,
                "test_loss": e.loss,
                "samples": e.samples,
                "model": ck.spec.describe(),
                "device": backend.device(),
            })
        );
    } else {
        println!(
            "{}: test loss {:.4}  test acc {:.2}%  ({} samples, {})",
            ck.spec.describe(),
            e.loss,
            100.0 * e.accuracy,
            e.samples,
            backend.device()
        );
    }
    Ok(())
}

fn cmd_bench(args: BenchArgs) -> Result<()> {
    let spec = args.model.spec()?;
    let lr = train::check_lr(args.lr)?;
    let momentum = train::check_momentum(args.momentum)?;
    let batches: Vec<BatchSize> = args
        .batch_sizes
        .split(',')
        .map(BatchSize::parse)
        .collect::<Result<_>>()?;
    let Splits { train, test } = load_data(&args.data)?;
    let n = train.len();
    let (train, test) = (Arc::new(train), Arc::new(test));
    let order = train::epoch_order(n, 0, 1);
    if args.profile {
        let gpu = open_gpu(
            &DeviceArgs {
                device: DeviceChoice::Gpu,
                ..args.device.clone()
            },
            resident_bytes(&train, &test),
        )?
        .ok_or_else(|| Error::InvalidArg("--profile needs a GPU adapter".into()))?;
        for b in &batches {
            let batch = b.resolve(n);
            let mut g = GpuBackend::new(
                gpu.clone(),
                spec.clone(),
                &spec.init_params(Init::Auto, 0),
                &train,
                &test,
                batch,
                momentum,
            )?;
            g.begin_epoch(&order)?;
            let rows = g.profile_step(PROFILE_REPS)?;
            let total: f64 = rows.iter().map(|r| r.1).sum();
            println!(
                "\nprofile of one step, batch {batch}, {}: {:.1} µs in {} dispatches \
                 (each timed as {PROFILE_REPS} in a row, wall clock)",
                g.device(),
                total / 1e3,
                rows.len()
            );
            println!("| # | kernel | what | µs | GFLOP/s |\n|---|---|---|---|---|");
            for (i, (d, ns)) in rows.iter().enumerate() {
                let flops = d
                    .flops
                    .map(|f| format!("{:.1}", f as f64 / ns.max(1.0)))
                    .unwrap_or_default();
                println!(
                    "| {i} | {} | {} | {:.1} | {flops} |",
                    d.kernel.name(),
                    d.label,
                    ns / 1e3
                );
            }
        }
        return Ok(());
    }
    println!("model {}, {} training samples", spec.describe(), n);
    let mut header = false;
    for b in batches {
        let batch = b.resolve(n);
        let mut backend = make_backend(
            &args.device,
            &spec,
            spec.init_params(Init::Auto, 0),
            train.clone(),
            test.clone(),
            batch,
            momentum,
        )?;
        // A round is the first ~4k samples of an epoch (at least one step), timed to the end
        // of its work.
        if !header {
            println!("device: {}", backend.device());
            println!("| batch | samples/s (median) | GFLOP/s | rounds |");
            println!("|---|---|---|---|");
            header = true;
        }
        let steps_per_round = (4096 / batch).clamp(1, n.div_ceil(batch));
        let mut rates = Vec::new();
        let t_all = Instant::now();
        let mut round = 0;
        while round < 2 || t_all.elapsed().as_secs_f64() < args.seconds || rates.len() < 3 {
            backend.begin_epoch(&order)?;
            let t0 = Instant::now();
            let mut samples = 0;
            for step in 0..steps_per_round {
                let len = batch.min(n - step * batch);
                backend.step(step, step * batch, len, lr)?;
                samples += len;
            }
            backend.end_epoch()?;
            let dt = t0.elapsed().as_secs_f64();
            // The first round warms caches and pipelines; it is not counted.
            if round > 0 {
                rates.push(samples as f64 / dt);
            }
            round += 1;
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "| {} | {:.0} | {:.1} | {} |",
            if batch == n {
                format!("full ({n})")
            } else {
                batch.to_string()
            },
            median,
            median * spec.flops_per_sample() / 1e9,
            rates.len()
        );
    }
    Ok(())
}

fn cmd_verify(args: VerifyArgs) -> Result<()> {
    let dev = DeviceArgs {
        device: DeviceChoice::Gpu,
        adapter: args.adapter,
        kernel: args.kernel,
        unfused: false,
    };
    let gpu = open_gpu(&dev, 0)?.ok_or_else(|| Error::NoAdapter {
        detail: String::new(),
    })?;
    println!(
        "adapter: {}, {} matmul",
        gpu.ctx.describe(),
        gpu.kernels.variant.name()
    );
    let mut rows = verify::kernel_checks(&gpu)?;
    for (hidden, act, loss, batch, steps) in [
        (&[128][..], Activation::Relu, Loss::Xent, 64, 10),
        (&[33, 17][..], Activation::Tanh, Loss::Mse, 7, 10),
        (&[][..], Activation::Sigmoid, Loss::Xent, 1, 10),
    ] {
        let spec = ModelSpec::new(hidden, act, loss);
        rows.extend(verify::step_checks(gpu.clone(), &spec, batch, steps)?);
    }
    print!("{}", verify::table(&rows));
    verify::require_all_pass(&rows)?;
    println!("all {} checks passed", rows.len());
    Ok(())
}
