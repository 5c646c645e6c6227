//! The argument groups several subcommands share (data, model, device), and the helpers that
//! turn them into data, a model spec and a backend.
// The doc comments on these flags are clap's `--help` text, written for a terminal (`[default:
// …]`, `<class>`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};

use descent::backend::{Backend, Setup};
use descent::cpu::CpuBackend;
use descent::data::{DataSource, Dataset, DatasetKind, Splits};
use descent::download::Mirror;
use descent::error::{Error, Result};
use descent::gpu::{Gpu, GpuBackend, GpuOptions, MatmulVariant};
use descent::model::{self, Activation, Init, Loss, ModelSpec, TrainedOn};
use descent::optim::OptimConfig;
use descent::sources::{
    self, Header, Missing, Normalize, Preprocess, ReadOptions, Request, Source,
};
pub use descent::{check_output_dir, check_output_file};

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
    /// Your own data instead of --dataset: csv:PATH (plain or .gz), idx:PREFIX,
    /// idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS] or images:DIR (DIR/<class>/*.png|jpg|bmp).
    #[arg(long, value_name = "SOURCE")]
    pub data: Option<String>,
    /// The test set, as a source of the same kind [default: --test-split of --data].
    #[arg(long, value_name = "SOURCE", requires = "data")]
    pub test: Option<String>,
    /// With --data and no --test: the fraction held out as the test set, stratified by class.
    #[arg(long, value_name = "F", default_value_t = 0.2)]
    pub test_split: f64,
    /// Seed of the --test-split choice.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub split_seed: u32,
    /// CSV: whether the first row names the columns [default: auto, a first row with a
    /// non-numeric feature].
    #[arg(long, value_enum, default_value = "auto")]
    pub header: Header,
    /// CSV: the label column, by header name or 0-based index [default: the last].
    #[arg(long, value_name = "NAME|INDEX")]
    pub label_column: Option<String>,
    /// CSV: what to do with a missing value (empty, NA, NaN, ?).
    #[arg(long, value_enum, default_value = "error")]
    pub missing: Missing,
    /// Input normalisation, fitted on the training split and saved in the checkpoint
    /// [default: auto, standard for tables and scale for images].
    #[arg(long, value_enum, default_value = "auto")]
    pub normalize: Normalize,
    /// Images: 1 (grayscale) or 3 (RGB).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Images: resize every image to HxW, e.g. 32x32 [default: the first image's size].
    #[arg(long, value_name = "HxW")]
    pub image_size: Option<String>,
    /// Images: leave out files that do not decode (named on stderr) instead of stopping.
    #[arg(long)]
    pub skip_bad: bool,
}

/// `--image-size HxW`.
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::InvalidArg(format!("--image-size {s}: give height x width, e.g. 32x32"));
    let (h, w) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    match (h.trim().parse::<usize>(), w.trim().parse::<usize>()) {
        (Ok(h), Ok(w)) if h > 0 && w > 0 && h * w <= 4096 * 4096 => Ok((h, w)),
        _ => Err(bad()),
    }
}

impl DataArgs {
    /// The `--data` request, when there is one.
    pub fn request(&self, data: Option<&str>) -> Result<Option<Request>> {
        let Some(d) = data.or(self.data.as_deref()) else {
            return Ok(None);
        };
        if !(self.test_split > 0.0 && self.test_split < 1.0) {
            return Err(Error::InvalidArg(format!(
                "--test-split {}: give a fraction between 0 and 1",
                self.test_split
            )));
        }
        Ok(Some(Request {
            data: Source::parse("--data", d)?,
            test: self
                .test
                .as_deref()
                .map(|t| Source::parse("--test", t))
                .transpose()?,
            test_split: self.test_split,
            seed: self.split_seed,
            normalize: self.normalize,
            read: ReadOptions {
                header: self.header,
                label_column: self.label_column.clone(),
                missing: self.missing,
                channels: self.channels,
                image_size: self.image_size.as_deref().map(parse_size).transpose()?,
                skip_bad: self.skip_bad,
                progress: !self.quiet,
            },
        }))
    }

    /// What the run is called in headers and metrics: the dataset, or the source.
    pub fn name(&self) -> String {
        match &self.data {
            Some(d) => d.clone(),
            None => self.dataset.name().to_owned(),
        }
    }

    /// [`DataArgs::name`] with a source's file name only, for figure titles.
    pub fn short_name(&self) -> String {
        match self.data.as_deref().map(|d| Source::parse("--data", d)) {
            Some(Ok(s)) => s.short_name(),
            _ => self.name(),
        }
    }

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
        let dir = self
            .data_dir
            .clone()
            .unwrap_or_else(|| Path::new("data").join(self.dataset.name()));
        if dir.exists() && !dir.is_dir() {
            return Err(Error::InvalidArg(format!(
                "--data-dir {}: is a file, not a directory",
                dir.display()
            )));
        }
        Ok(DataSource {
            kind: self.dataset,
            dir,
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
    /// Matmul kernels: auto (the forms measured fastest on this adapter at the model's shapes,
    /// cached in ~/.cache/descent; $DESCENT_CACHE_DIR moves it, $DESCENT_NO_TUNE_CACHE=1 turns
    /// it off), blocked (register blocks: CPU adapters) or tiled (workgroup tiles) [default: auto].
    #[arg(long, value_enum)]
    pub kernel: Option<MatmulVariant>,
    /// GPU: run activations and their derivatives as separate dispatches, not fused into the
    /// matmul epilogues (to time or check them on their own).
    #[arg(long)]
    pub unfused: bool,
}

pub fn load_data(args: &DataArgs) -> Result<Splits> {
    load(args, None).map(|l| l.0)
}

/// The splits and what they are: `--dataset`'s files, or `--data` read, split and preprocessed
/// (with `fitted`, a checkpoint's preprocessing applied instead of a new one fitted).
pub fn load(args: &DataArgs, fitted: Option<&Preprocess>) -> Result<(Splits, TrainedOn)> {
    match args.request(None)? {
        None => Ok((args.source()?.load()?, TrainedOn::Builtin(args.dataset))),
        Some(req) => {
            let p = sources::load(&req, fitted)?;
            for n in &p.notes {
                eprintln!("note: {n}");
            }
            Ok((p.splits, TrainedOn::Own(Box::new(p.prep))))
        }
    }
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
        ..Default::default()
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
/// Features are split over several bindings of the adapter's size, so they ask for no more than
/// every adapter gives (128 MiB).
pub fn resident_bytes(train: &Dataset, test: &Dataset) -> u64 {
    let features = (train.features.len().max(test.features.len()) as u64 * 4).min(128 << 20);
    (train.images.len().max(test.images.len()) as u64).max(features)
}

/// Builds the backend the user asked for.
pub fn make_backend(dev: &DeviceArgs, setup: Setup) -> Result<Box<dyn Backend>> {
    for (what, d) in [("training", &setup.train), ("test", &setup.test)] {
        if !d.is_empty() && (d.width != setup.spec.inputs() || d.classes != setup.spec.classes()) {
            return Err(Error::InvalidArg(format!(
                "the {what} set has {} features and {} classes; the model {} takes {} and gives {}",
                d.width,
                d.classes,
                setup.spec.describe(),
                setup.spec.inputs(),
                setup.spec.classes()
            )));
        }
    }
    let bytes = resident_bytes(&setup.train, &setup.test);
    match open_gpu(dev, bytes)? {
        Some(gpu) => Ok(Box::new(GpuBackend::new(gpu, &setup)?)),
        None => Ok(Box::new(CpuBackend::new(setup))),
    }
}

/// A backend for evaluating `params` on `test` (no training set, no optimizer state to speak of).
pub fn eval_backend(
    dev: &DeviceArgs,
    spec: &ModelSpec,
    params: Vec<f32>,
    test: Arc<Dataset>,
) -> Result<Box<dyn Backend>> {
    make_backend(
        dev,
        Setup {
            spec: spec.clone(),
            params,
            train: Arc::new(test.empty_like()),
            test,
            val: None,
            batch: 1,
            optim: OptimConfig::sgd(0.0),
            dropout: 0.0,
            input_dropout: 0.0,
            seed: 0,
        },
    )
}
