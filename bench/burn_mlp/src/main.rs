//! Peer benchmark: a 784-128-10 MLP trained on MNIST with Burn's wgpu backend
//! (autodiff on top), to compare against descent on the same adapter.
//!
//! Burn 0.22 has no backend type parameter any more: `Device::wgpu(..).autodiff()` is what
//! older releases spelled `Autodiff<Wgpu>` (f32 floats are the wgpu default).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::{Linear, LinearConfig, Relu};
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, DeviceKind, Int, Tensor, TensorData};

const BURN_VERSION: &str = env!("BENCH_BURN_VERSION");
const CUBECL_WGPU_VERSION: &str = env!("BENCH_CUBECL_WGPU_VERSION");
const WGPU_VERSION: &str = env!("BENCH_WGPU_VERSION");

const INPUT: usize = 784;
const HIDDEN: usize = 128;
const CLASSES: usize = 10;
const EVAL_SLICE: usize = 128;

// ---------------------------------------------------------------- arguments

struct Args {
    batch_sizes: Vec<usize>,
    seconds: f64,
    warmup_steps: usize,
    reps: usize,
    lr: f64,
    seed: u64,
    eval_samples: usize,
    train_samples: usize,
    /// Largest image tensor in MiB; 0 = the adapter's max_storage_buffer_binding_size.
    chunk_mib: u64,
    data_dir: PathBuf,
}

fn usage() -> ! {
    eprintln!(
        "usage: burn-mlp [--batch-sizes 1,64,128] [--seconds 5] [--warmup-steps 50] \
         [--reps 3] [--lr 0.01] [--seed 42] [--eval-samples 10000] \
         [--train-samples 60000] [--chunk-mib 0] [--data-dir /work/shared/data/mnist]"
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        batch_sizes: vec![1, 64, 128],
        seconds: 5.0,
        warmup_steps: 50,
        reps: 3,
        lr: 0.01,
        seed: 42,
        eval_samples: 10_000,
        train_samples: usize::MAX,
        chunk_mib: 0,
        data_dir: PathBuf::from("/work/shared/data/mnist"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            usage();
        }
        let Some(value) = it.next() else {
            eprintln!("missing value for {flag}");
            usage();
        };
        let bad = |what: &str| -> ! {
            eprintln!("bad value for {flag}: {what}");
            usage();
        };
        match flag.as_str() {
            "--batch-sizes" => {
                args.batch_sizes = value
                    .split(',')
                    .map(|s| s.trim().parse::<usize>().unwrap_or_else(|_| bad(s)))
                    .collect();
                if args.batch_sizes.is_empty() || args.batch_sizes.contains(&0) {
                    bad(&value);
                }
            }
            "--seconds" => args.seconds = value.parse().unwrap_or_else(|_| bad(&value)),
            "--warmup-steps" => args.warmup_steps = value.parse().unwrap_or_else(|_| bad(&value)),
            "--reps" => args.reps = value.parse().unwrap_or_else(|_| bad(&value)),
            "--lr" => args.lr = value.parse().unwrap_or_else(|_| bad(&value)),
            "--seed" => args.seed = value.parse().unwrap_or_else(|_| bad(&value)),
            "--eval-samples" => args.eval_samples = value.parse().unwrap_or_else(|_| bad(&value)),
            "--train-samples" => args.train_samples = value.parse().unwrap_or_else(|_| bad(&value)),
            "--chunk-mib" => args.chunk_mib = value.parse().unwrap_or_else(|_| bad(&value)),
            "--data-dir" => args.data_dir = PathBuf::from(value),
            _ => {
                eprintln!("unknown flag {flag}");
                usage();
            }
        }
    }
    if args.reps == 0 || args.seconds <= 0.0 {
        usage();
    }
    args
}

// ---------------------------------------------------------------- MNIST (IDX, gzip)

/// A bad data file or directory: says which and why, and exits non-zero.
fn fail(path: &Path, why: impl std::fmt::Display) -> ! {
    eprintln!("burn-mlp: {}: {why} (pass --data-dir)", path.display());
    std::process::exit(1);
}

/// Reads a gzipped IDX file: returns its dimensions and the raw u8 payload.
fn read_idx_gz(path: &Path, expected_magic: u32) -> (Vec<usize>, Vec<u8>) {
    let file =
        std::fs::File::open(path).unwrap_or_else(|e| fail(path, format!("cannot open: {e}")));
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| fail(path, format!("cannot gunzip: {e}")));
    let word = |at: usize| -> u32 {
        match bytes.get(at..at + 4) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            None => fail(path, "truncated header"),
        }
    };
    let magic = word(0);
    if magic != expected_magic {
        fail(
            path,
            format!("magic {magic:#010x}, expected {expected_magic:#010x}"),
        );
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    let dims: Vec<usize> = (0..ndim).map(|i| word(4 + 4 * i) as usize).collect();
    let count: usize = dims.iter().product();
    if bytes.len() - header != count {
        fail(path, "payload size does not match header");
    }
    bytes.drain(..header);
    (dims, bytes)
}

struct Mnist {
    n: usize,
    pixels: Vec<u8>,  // n * 784, raw 0..=255
    labels: Vec<i32>, // n
}

fn load_mnist(dir: &Path, limit: usize) -> Mnist {
    let (idims, ibytes) = read_idx_gz(&dir.join("train-images-idx3-ubyte.gz"), 0x0000_0803);
    let (ldims, lbytes) = read_idx_gz(&dir.join("train-labels-idx1-ubyte.gz"), 0x0000_0801);
    assert_eq!(idims.len(), 3);
    assert_eq!(idims[1] * idims[2], INPUT, "images are not 28x28");
    assert_eq!(idims[0], ldims[0], "image and label counts differ");
    let n = idims[0].min(limit);
    Mnist {
        n,
        pixels: ibytes[..n * INPUT].to_vec(),
        labels: lbytes[..n].iter().map(|&b| b as i32).collect(),
    }
}

// ---------------------------------------------------------------- model

#[derive(Module, Debug)]
struct Mlp {
    fc1: Linear,
    act: Relu,
    fc2: Linear,
}

impl Mlp {
    fn new(device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(INPUT, HIDDEN).init(device),
            act: Relu::new(),
            fc2: LinearConfig::new(HIDDEN, CLASSES).init(device),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.fc2.forward(self.act.forward(self.fc1.forward(x)))
    }
}

// ---------------------------------------------------------------- batches

/// SplitMix64: a small, dependency-free generator for the host-side shuffle.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
}

/// A contiguous part of the training set, resident on the device: pixels/255 as f32.
///
/// All 60,000 images as one f32 tensor are 188 MB, more than one storage binding may hold on
/// lavapipe (wgpu reports max_storage_buffer_binding_size = 128 MiB there, and cubecl refuses
/// the allocation), so the set is cut into as few equal chunks as fit. Where the whole set fits
/// (a real GPU, or `--train-samples` small enough) there is one chunk: one tensor.
struct Chunk {
    images: Tensor<2>,      // [rows, 784]
    labels: Tensor<1, Int>, // [rows]
    rows: usize,
    host_perm: Vec<i32>,
    perm: Tensor<1, Int>, // this epoch's order of the chunk's rows, on the device
    pos: usize,
}

/// Epoch order. Per epoch, each chunk's rows get a Fisher-Yates permutation made on the host
/// and uploaded once as an Int tensor, and the epoch's batches are a shuffled schedule of
/// floor(rows / b) batch slots per chunk. A step takes its chunk's next `b` indices (`narrow`
/// of the permutation, no copy) and gathers those rows of images and labels with `select`:
/// one gather per tensor per step, as with a single tensor. The remainder of each chunk
/// (rows mod b) is dropped for that epoch. With one chunk this is a plain shuffled epoch.
struct Sampler {
    chunks: Vec<Chunk>,
    rng: Rng,
    schedule: Vec<usize>,
    sched_pos: usize,
    batch: usize,
    epochs: usize,
}

impl Sampler {
    fn new(data: &Mnist, max_bytes: u64, seed: u64, device: &Device) -> Self {
        let row_bytes = (INPUT * 4) as u64;
        let max_rows = ((max_bytes / row_bytes) as usize).max(1);
        let count = data.n.div_ceil(max_rows);
        let per = data.n.div_ceil(count);
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < data.n {
            let rows = per.min(data.n - start);
            let pixels: Vec<f32> = data.pixels[start * INPUT..(start + rows) * INPUT]
                .iter()
                .map(|&p| p as f32 / 255.0)
                .collect();
            let labels = data.labels[start..start + rows].to_vec();
            chunks.push(Chunk {
                images: Tensor::<2>::from_data(TensorData::new(pixels, [rows, INPUT]), device),
                labels: Tensor::<1, Int>::from_data(TensorData::new(labels, [rows]), device),
                rows,
                host_perm: (0..rows as i32).collect(),
                perm: Tensor::<1, Int>::zeros([1], device),
                pos: 0,
            });
            start += rows;
        }
        Sampler {
            chunks,
            rng: Rng(seed),
            schedule: Vec::new(),
            sched_pos: 0,
            batch: 0,
            epochs: 0,
        }
    }

    fn new_epoch(&mut self, b: usize, device: &Device) {
        self.schedule.clear();
        for (c, chunk) in self.chunks.iter_mut().enumerate() {
            shuffle(&mut chunk.host_perm, &mut self.rng);
            chunk.perm = Tensor::<1, Int>::from_data(
                TensorData::new(chunk.host_perm.clone(), [chunk.rows]),
                device,
            );
            chunk.pos = 0;
            self.schedule.extend(std::iter::repeat_n(c, chunk.rows / b));
        }
        assert!(
            !self.schedule.is_empty(),
            "batch {b} is larger than every chunk"
        );
        shuffle(&mut self.schedule, &mut self.rng);
        self.sched_pos = 0;
        self.batch = b;
        self.epochs += 1;
    }

    /// The next batch: (images [b, 784], labels [b]).
    fn next(&mut self, b: usize, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
        if b != self.batch || self.sched_pos == self.schedule.len() {
            self.new_epoch(b, device);
        }
        let chunk = &mut self.chunks[self.schedule[self.sched_pos]];
        self.sched_pos += 1;
        let idx = chunk.perm.clone().narrow(0, chunk.pos, b);
        chunk.pos += b;
        (
            chunk.images.clone().select(0, idx.clone()),
            chunk.labels.clone().select(0, idx),
        )
    }
}

struct Trainer {
    device: Device,
    sampler: Sampler,
    optim: ModuleOptimizer,
    loss_fn: CrossEntropyLoss,
    lr: f64,
}

impl Trainer {
    /// One SGD step; returns the updated model and this step's (lazy) loss tensor.
    fn step(&mut self, model: Mlp, b: usize) -> (Mlp, Tensor<1>) {
        let (x, y) = self.sampler.next(b, &self.device);
        let logits = model.forward(x);
        let loss = self.loss_fn.forward(logits, y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let model = self.optim.step(self.lr, model, grads);
        (model, loss.detach())
    }

    /// Mean cross-entropy and accuracy of `model` over the first `n` training samples, in
    /// slices of at most EVAL_SLICE rows (one matmul shape to compile and tune, not one per n).
    fn evaluate(&self, model: &Mlp, n: usize) -> (f32, f64) {
        let first = &self.sampler.chunks[0];
        let n = n.min(first.rows);
        let (mut loss_sum, mut correct) = (0f64, 0i64);
        let mut start = 0;
        while start < n {
            let len = EVAL_SLICE.min(n - start);
            let x = first.images.clone().narrow(0, start, len);
            let y = first.labels.clone().narrow(0, start, len);
            let logits = model.forward(x).detach();
            let loss: f32 = self
                .loss_fn
                .forward(logits.clone(), y.clone())
                .into_scalar();
            loss_sum += loss as f64 * len as f64;
            correct += logits
                .argmax(1)
                .reshape([len])
                .equal(y)
                .int()
                .sum()
                .into_scalar::<i64>();
            start += len;
        }
        ((loss_sum / n as f64) as f32, correct as f64 / n as f64)
    }
}

// ---------------------------------------------------------------- reporting helpers

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn fmt_rate(r: f64) -> String {
    if r >= 10_000.0 {
        format!("{:.1}k", r / 1000.0)
    } else {
        format!("{r:.0}")
    }
}

/// Where cubecl 0.11 keeps its persistent caches (autotune results among them) with the
/// default `[environment] path = "target"`: `target/environment` under the directory of the
/// outermost Cargo.toml above the working directory, or the user cache directory when there
/// is none. Mirrors `cubecl_environment::persistence::CacheConfig::root`.
fn cubecl_cache_root() -> String {
    let Ok(cwd) = std::env::current_dir() else {
        return "(no cwd: user cache dir)".into();
    };
    let mut root = None;
    let mut dir = Some(cwd.as_path());
    while let Some(d) = dir {
        if d.join("Cargo.toml").exists() {
            root = Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    match root {
        Some(r) => r.join("target").join("environment").display().to_string(),
        None => "(no Cargo.toml above cwd: the user cache dir, e.g. ~/.cache)".into(),
    }
}

/// Adapter list as wgpu (the same version Burn links) reports it. Vulkan adapters only:
/// cubecl's automatic choice tries Vulkan first on Linux. Returns the smallest
/// max_storage_buffer_binding_size among them (None if there is no adapter).
fn print_wgpu_adapters() -> Option<u64> {
    use burn::tensor::wgpu::wgpu;
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = block_on(instance.enumerate_adapters(wgpu::Backends::VULKAN));
    if adapters.is_empty() {
        println!("  wgpu Vulkan adapters: none");
    }
    let mut binding_limit: Option<u64> = None;
    for a in adapters {
        let i = a.get_info();
        println!(
            "  wgpu adapter: {} | type {:?} | backend {:?} | driver {} ({}) | vendor {:#06x} device {:#06x}",
            i.name, i.device_type, i.backend, i.driver, i.driver_info, i.vendor, i.device
        );
        let l = a.limits();
        println!(
            "    limits: max_storage_buffer_binding_size {} MiB, max_buffer_size {} MiB",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20
        );
        let lim = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        binding_limit = Some(binding_limit.map_or(lim, |b| b.min(lim)));
    }
    binding_limit
}

/// wgpu's native futures are ready at once; poll with a no-op waker.
fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

// ---------------------------------------------------------------- main

fn main() {
    let t_process = Instant::now();
    let mut args = parse_args();

    // cubecl keeps its persistent caches (autotune results) under the outermost Cargo.toml
    // above the working directory. Run from this crate's directory whatever the caller's cwd,
    // so the cache is always this crate's target/environment and never lands in another
    // project (e.g. /work/main/target/environment when started from /work/main).
    if let Ok(abs) = std::path::absolute(&args.data_dir) {
        args.data_dir = abs;
    }
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    if let Err(e) = std::env::set_current_dir(crate_dir) {
        eprintln!("warning: cannot chdir to {crate_dir}: {e}; the cubecl cache follows the cwd");
    }

    println!("burn-mlp: 784-128-10 MLP, MNIST train set, SGD");
    println!(
        "  burn {BURN_VERSION} (cubecl-wgpu {CUBECL_WGPU_VERSION}, wgpu {WGPU_VERSION}); \
         burn default features for wgpu: fusion + autotune + persistent cache"
    );
    println!(
        "  config: batch sizes {:?}, {} s per repetition, {} repetitions, {} warm-up steps, \
         lr {}, momentum 0, seed {}, eval on the first {} samples",
        args.batch_sizes,
        args.seconds,
        args.reps,
        args.warmup_steps,
        args.lr,
        args.seed,
        args.eval_samples
    );
    println!(
        "  batches: images (f32, pixels/255) and labels resident on the device; per epoch a host \
         Fisher-Yates order per chunk, uploaded once as an Int tensor; per step \
         narrow(order) -> select(images), select(labels)"
    );
    println!("  cubecl cache root: {}", cubecl_cache_root());
    for var in [
        "WGPU_BACKEND",
        "CUBECL_WGPU_DEFAULT_DEVICE",
        "CUBECL_WGPU_MAX_TASKS",
    ] {
        if let Ok(v) = std::env::var(var) {
            println!("  env {var}={v}");
        }
    }
    let binding_limit = print_wgpu_adapters();
    let chunk_bytes = match args.chunk_mib {
        0 => binding_limit.unwrap_or(128 << 20),
        mib => mib << 20,
    };

    // Data -------------------------------------------------------------------------------
    let t = Instant::now();
    let data = load_mnist(&args.data_dir, args.train_samples);
    println!(
        "  loaded {} samples from {} in {:.2} s",
        data.n,
        args.data_dir.display(),
        secs(t.elapsed())
    );
    let eval_n = args.eval_samples.min(data.n).max(1);

    // Device -----------------------------------------------------------------------------
    let t = Instant::now();
    let base = Device::wgpu(DeviceKind::DefaultDevice);
    match base.identity() {
        Some(id) => println!(
            "  burn device: {} | fingerprint {} | physical {:?}",
            id.name, id.fingerprint, id.physical
        ),
        None => println!("  burn device: {base:?} (no identity reported)"),
    }
    println!("  burn device settings: {:?}", base.settings());
    let device = base.autodiff();
    device.seed(args.seed);

    let sampler = Sampler::new(&data, chunk_bytes, args.seed ^ 0x5EED, &device);
    let model = Mlp::new(&device);
    device.sync().expect("device sync after upload");
    let rows: Vec<usize> = sampler.chunks.iter().map(|c| c.rows).collect();
    println!(
        "  device init + upload ({:.0} MB of f32 images as {} tensor(s) of {:?} rows, \
         chunk limit {} MiB) + model init: {:.2} s",
        (data.n * INPUT * 4) as f64 / 1e6,
        rows.len(),
        rows,
        chunk_bytes >> 20,
        secs(t.elapsed())
    );
    drop(data);
    let eval_n = eval_n.min(rows[0]); // the eval set is the head of the first chunk

    let mut trainer = Trainer {
        sampler,
        device: device.clone(),
        optim: SgdConfig::new().init(),
        loss_fn: CrossEntropyLossConfig::new().init(&device),
        lr: args.lr,
    };

    // First step (kernel compilation + any autotuning) -------------------------------------
    let initial_model = model.clone(); // parameters are immutable handles: this keeps the start
    let b0 = args.batch_sizes[0];
    let t = Instant::now();
    let (mut model, loss) = trainer.step(model, b0);
    let first_loss: f32 = loss.into_scalar();
    println!(
        "first step (batch {b0}) done: {:.2} s for the step itself, {:.2} s since process start \
         (batch loss {first_loss:.4})",
        secs(t.elapsed()),
        secs(t_process.elapsed())
    );

    let t = Instant::now();
    let (loss0, acc0) = trainer.evaluate(&initial_model, eval_n);
    println!(
        "loss at start (initial weights, {eval_n} samples): {loss0:.4}, accuracy {:.2}% \
         [eval took {:.2} s]",
        acc0 * 100.0,
        secs(t.elapsed())
    );
    drop(initial_model);

    // Timed runs ---------------------------------------------------------------------------
    let window = Duration::from_secs_f64(args.seconds);
    let mut summary = Vec::new();
    for &b in &args.batch_sizes {
        println!("batch {b}:");
        // Warm-up: the first step at this size alone (new shapes may compile/tune), then the rest.
        let t = Instant::now();
        let (m, loss) = trainer.step(model, b);
        model = m;
        let l: f32 = loss.into_scalar();
        let first = t.elapsed();
        let t = Instant::now();
        let mut last = None;
        for _ in 1..args.warmup_steps {
            let (m, loss) = trainer.step(model, b);
            model = m;
            last = Some(loss);
        }
        let l = last.map(|x| x.into_scalar::<f32>()).unwrap_or(l);
        println!(
            "  warm-up: first step {:.3} s, {} more steps {:.3} s (loss {l:.4})",
            secs(first),
            args.warmup_steps.saturating_sub(1),
            secs(t.elapsed())
        );

        let mut rates = Vec::new();
        for rep in 1..=args.reps {
            let t0 = Instant::now();
            let mut steps = 0usize;
            let mut last = None;
            while t0.elapsed() < window {
                let (m, loss) = trainer.step(model, b);
                model = m;
                last = Some(loss);
                steps += 1;
            }
            let enqueued = t0.elapsed();
            // The only readback of the window: the last step's loss depends on every earlier
            // step through the weights, so reading it waits for all of them.
            let l: f32 = last.expect("at least one step").into_scalar();
            let total = t0.elapsed();
            let rate = (steps * b) as f64 / secs(total);
            println!(
                "  rep {rep}: {steps} steps in {:.3} s (host loop {:.3} s + final sync {:.3} s) \
                 = {} samples/s ({:.3} ms/step), loss {l:.4}",
                secs(total),
                secs(enqueued),
                secs(total - enqueued),
                fmt_rate(rate),
                secs(total) * 1e3 / steps as f64
            );
            rates.push(rate);
        }
        let med = median(&rates);
        println!("  batch {b}: median {} samples/s", fmt_rate(med));
        summary.push((b, med, rates));
    }

    // Check that it trained --------------------------------------------------------------
    let (loss1, acc1) = trainer.evaluate(&model, eval_n);
    println!(
        "loss after the timed runs ({eval_n} samples): {loss1:.4}, accuracy {:.2}% \
         (start {loss0:.4}, {:.2}%); {} epoch order(s) drawn",
        acc1 * 100.0,
        acc0 * 100.0,
        trainer.sampler.epochs
    );
    if !(loss1 < loss0) {
        println!("WARNING: loss did not fall");
    }

    println!("summary (burn {BURN_VERSION}, wgpu backend, autodiff, f32):");
    println!("  batch | median samples/s | repetitions");
    for (b, med, rates) in &summary {
        let reps: Vec<String> = rates.iter().map(|r| fmt_rate(*r)).collect();
        println!("  {b:>5} | {:>16} | {}", fmt_rate(*med), reps.join(", "));
    }
    println!("total wall time {:.1} s", secs(t_process.elapsed()));
}
