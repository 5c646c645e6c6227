//! descent in the browser: the library's data loading, CPU training, prediction and checkpoints
//! exposed to JavaScript through wasm-bindgen. The page (`web/www/`) fetches the MNIST files,
//! hands their bytes over, and drives training a few steps at a time so the browser stays
//! responsive in between.
//!
//! Each exported item is a thin wrapper over a plain Rust function returning
//! [`descent::Result`], so the same code is tested natively (`cargo test -p descent-web`).
//! Training runs on the browser's WebGPU adapter through descent's GPU path ([`open_gpu`],
//! [`Session::on_gpu`]): the same WGSL kernels and plans as the CLI, every readback awaited.
//! Without WebGPU it runs on the CPU path, on one thread.

use std::path::Path;
use std::sync::Arc;

use descent::analysis;
use descent::data::{DatasetKind, Splits};
use descent::gpu::{Gpu, GpuOptions, MatmulVariant, verify};
use descent::model::{self, ModelSpec, parse_hidden};
use descent::optim::{OptimConfig, OptimizerKind};
use descent::predict::{PrepareError, prepare_digit};
use descent::trainer::{Device, Progress};
use descent::{Activation, BatchSize, Error, Loss, Result, Trainer, TrainerOptions};
use wasm_bindgen::prelude::*;

fn js(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

/// The browser's WebGPU adapter, opened by descent's GPU path with every kernel compiled.
#[wasm_bindgen]
pub struct GpuDevice {
    gpu: Arc<Gpu>,
}

/// Opens the browser's WebGPU adapter with descent's GPU path, compiling every WGSL kernel the
/// CLI runs (the tiled matmul forms: the tuner's timing needs blocking waits), and reads a
/// buffer back through the async readback; fails with the reason.
#[wasm_bindgen(js_name = openGpu)]
pub async fn open_gpu() -> std::result::Result<GpuDevice, JsError> {
    open_gpu_checked().await.map_err(js)
}

pub async fn open_gpu_checked() -> Result<GpuDevice> {
    let gpu = Gpu::new_async(&GpuOptions::default(), Some(MatmulVariant::Tiled)).await?;
    let probe = [1.5f32, -2.0, 3.25];
    let buf = gpu.storage_init("probe", bytemuck::cast_slice(&probe));
    let back = gpu.read_f32_async(&buf, probe.len()).await?;
    if back != probe {
        return Err(Error::Gpu(format!(
            "readback returned {back:?}, {probe:?} was written"
        )));
    }
    #[allow(clippy::arc_with_non_send_sync)] // the browser's GPU handles live on its one thread
    Ok(GpuDevice { gpu: Arc::new(gpu) })
}

#[wasm_bindgen]
impl GpuDevice {
    /// The adapter's backend and kind (the browser hides its name from wgpu; the page adds what
    /// navigator.gpu tells).
    pub fn kind(&self) -> String {
        let info = &self.gpu.ctx.info;
        format!("{:?}, {:?}", info.backend, info.device_type)
    }

    /// A software adapter (such as SwiftShader), running on the CPU.
    #[wasm_bindgen(js_name = isSoftware)]
    pub fn is_software(&self) -> bool {
        self.gpu.ctx.is_cpu_adapter()
    }

    /// Kernel parity on this adapter: [`browser_kernel_checks`] as JSON rows
    /// `{kernel, shape, max_abs, max_rel, pass}`.
    #[wasm_bindgen(js_name = verifyKernels)]
    pub async fn verify_kernels(&self) -> std::result::Result<String, JsError> {
        let rows = browser_kernel_checks(&self.gpu).await.map_err(js)?;
        let rows: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({"kernel": r.kernel, "shape": r.shape, "max_abs": r.max_abs,
                    "max_rel": r.max_rel, "pass": r.pass()})
            })
            .collect();
        Ok(serde_json::Value::Array(rows).to_string())
    }
}

/// Each training kernel against its CPU twin at a few awkward shapes (odd sizes, a partial
/// tile, a batch of one), in every matmul form the adapter compiled: the checks of `descent
/// verify`, awaited. Few and small, as the browser's software adapter is slow.
pub async fn browser_kernel_checks(gpu: &Gpu) -> Result<Vec<verify::CheckRow>> {
    use descent::optim::OptimizerKind;
    let mut rows = Vec::new();
    for (i, &s) in [(1, 784, 128), (7, 13, 10), (33, 17, 70)]
        .iter()
        .enumerate()
    {
        let seed = i as u32;
        let [ff, fi, fw] = verify::forms(gpu, s);
        for form in ff {
            rows.push(verify::check_matmul_forward(gpu, s, form, seed).await?);
            rows.push(
                verify::check_matmul_forward_fused(gpu, s, Activation::Relu, form, seed).await?,
            );
        }
        for form in fi {
            rows.push(
                verify::check_matmul_backward_input_fused(gpu, s, Activation::Relu, form, seed)
                    .await?,
            );
        }
        for form in fw {
            rows.push(verify::check_matmul_backward_weight_bias(gpu, s, i == 1, form, seed).await?);
        }
    }
    for (i, b) in [1, 7].into_iter().enumerate() {
        let seed = i as u32;
        rows.push(verify::check_loss(gpu, Loss::Xent, true, b, seed).await?);
        rows.push(verify::check_loss_fused(gpu, Loss::Xent, b, seed).await?);
        rows.push(verify::check_batch_gather(gpu, b, seed).await?);
        rows.push(verify::check_argmax_correct(gpu, b, seed).await?);
    }
    rows.push(verify::check_activation(gpu, Activation::Relu, true, 1000, 0).await?);
    rows.push(verify::check_loss_reduce(gpu, 7, true, 0).await?);
    rows.push(verify::check_dropout(gpu, Some(Activation::Relu), 7, 13, 5, 0).await?);
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        rows.push(verify::check_optimizer_update(gpu, kind, 0.9, 0.01, 1001, 1).await?);
    }
    Ok(rows)
}

/// The four MNIST files the page fetches, in the order [`Mnist::new`] takes them.
#[wasm_bindgen(js_name = mnistFiles)]
pub fn mnist_files() -> Vec<String> {
    DatasetKind::Mnist
        .spec()
        .files()
        .iter()
        .map(|f| format!("{}.gz", f.name))
        .collect()
}

/// MNIST's training and test splits, gunzipped, checksummed and parsed by the same code as
/// `descent data`.
#[wasm_bindgen]
pub struct Mnist {
    splits: Splits,
}

#[wasm_bindgen]
impl Mnist {
    /// The files' bytes as fetched (gzipped or not): training images and labels, test images
    /// and labels; `base` is where they came from, to name them in messages.
    #[wasm_bindgen(constructor)]
    pub fn new(
        train_images: Vec<u8>,
        train_labels: Vec<u8>,
        test_images: Vec<u8>,
        test_labels: Vec<u8>,
        base: &str,
    ) -> std::result::Result<Mnist, JsError> {
        let files = [train_images, train_labels, test_images, test_labels];
        Mnist::from_files(files, base).map_err(js)
    }

    #[wasm_bindgen(js_name = trainLen)]
    pub fn train_len(&self) -> usize {
        self.splits.train.len()
    }

    #[wasm_bindgen(js_name = testLen)]
    pub fn test_len(&self) -> usize {
        self.splits.test.len()
    }
}

impl Mnist {
    pub fn from_files(files: [Vec<u8>; 4], base: &str) -> Result<Mnist> {
        let splits = Splits::from_files(DatasetKind::Mnist, base, files)?;
        Ok(Mnist { splits })
    }
}

/// What the page's form chose.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    pub hidden: String,
    pub optimizer: String,
    pub batch: usize,
    pub lr: f32,
    pub epochs: usize,
    /// Train on the first `limit` training samples.
    pub limit: usize,
    pub seed: u32,
}

impl Choice {
    fn new(
        hidden: &str,
        optimizer: &str,
        batch: usize,
        lr: f32,
        epochs: usize,
        limit: usize,
        seed: u32,
    ) -> Choice {
        Choice {
            hidden: hidden.into(),
            optimizer: optimizer.into(),
            batch,
            lr,
            epochs,
            limit,
            seed,
        }
    }
}

/// A model being trained, on the CPU path or the browser's WebGPU adapter.
#[wasm_bindgen]
pub struct Session {
    trainer: Trainer,
}

#[wasm_bindgen]
impl Session {
    /// A fresh 784-`hidden`-10 relu network to train by `optimizer` (sgd, nesterov, adam,
    /// adamw) on the first `limit` training samples; fails on a value out of range, naming it.
    #[allow(clippy::too_many_arguments)] // one argument per field of the page's form
    #[wasm_bindgen(constructor)]
    pub fn new(
        data: &Mnist,
        hidden: &str,
        optimizer: &str,
        batch: usize,
        lr: f32,
        epochs: usize,
        limit: usize,
        seed: u32,
    ) -> std::result::Result<Session, JsError> {
        let choice = Choice::new(hidden, optimizer, batch, lr, epochs, limit, seed);
        Session::start(data, &choice, Device::Cpu).map_err(js)
    }

    /// [`Session::new`] on the browser's WebGPU adapter.
    #[allow(clippy::too_many_arguments)] // one argument per field of the page's form
    #[wasm_bindgen(js_name = onGpu)]
    pub fn on_gpu(
        gpu: &GpuDevice,
        data: &Mnist,
        hidden: &str,
        optimizer: &str,
        batch: usize,
        lr: f32,
        epochs: usize,
        limit: usize,
        seed: u32,
    ) -> std::result::Result<Session, JsError> {
        let choice = Choice::new(hidden, optimizer, batch, lr, epochs, limit, seed);
        Session::start(data, &choice, Device::Gpu(gpu.gpu.clone())).map_err(js)
    }

    /// Where the maths runs, in words.
    pub fn device(&self) -> String {
        self.trainer.device()
    }

    pub fn describe(&self) -> String {
        self.trainer.spec().describe()
    }

    #[wasm_bindgen(js_name = batchSize)]
    pub fn batch_size(&self) -> usize {
        self.trainer.batch().0
    }

    #[wasm_bindgen(js_name = stepsPerEpoch)]
    pub fn steps_per_epoch(&self) -> usize {
        self.trainer.batch().1
    }

    /// Runs up to `max` steps (never past an epoch's end) and says what happened, as JSON:
    /// `{"kind":"step","epoch","step","steps"}`, `{"kind":"epoch","record":{...}}` (the
    /// evaluation, as a `--metrics` line) or `{"kind":"finished","outcome":"..."}`.
    /// On the GPU the steps are queued and the promise resolves at once, except at an epoch's
    /// end, which awaits the readbacks of its evaluation.
    pub async fn steps(&mut self, max: usize) -> std::result::Result<String, JsError> {
        self.advance(max).await.map_err(js)
    }

    /// The mean training loss of the last `n` steps of the epoch in progress (on the GPU, once
    /// the queued steps are done: awaiting it paces the page to the GPU).
    #[wasm_bindgen(js_name = recentLoss)]
    pub async fn recent_loss(&mut self, n: usize) -> std::result::Result<Option<f64>, JsError> {
        self.trainer.recent_loss_async(n).await.map_err(js)
    }

    /// The weights as they are now, to predict with or download.
    pub async fn model(&mut self) -> std::result::Result<Model, JsError> {
        self.snapshot().await.map_err(js)
    }
}

impl Session {
    pub fn start(data: &Mnist, c: &Choice, device: Device) -> Result<Session> {
        let hidden = parse_hidden(&c.hidden)?;
        let kind = OptimizerKind::parse(&c.optimizer).ok_or_else(|| {
            Error::InvalidArg(format!(
                "optimizer `{}`: expected sgd, nesterov, adam or adamw",
                c.optimizer
            ))
        })?;
        if c.batch == 0 {
            return Err(Error::InvalidArg(
                "batch size 0: a step needs at least one sample".into(),
            ));
        }
        if c.limit == 0 {
            return Err(Error::InvalidArg(
                "0 training samples: give at least one".into(),
            ));
        }
        let spec = ModelSpec::new(&hidden, Activation::Relu, Loss::Xent);
        let mut train = data.splits.train.clone();
        train.truncate(c.limit);
        let opts = TrainerOptions {
            epochs: c.epochs,
            batch: BatchSize::Samples(c.batch),
            optim: OptimConfig {
                kind,
                ..OptimConfig::sgd(0.9)
            },
            lr: c.lr,
            seed: c.seed,
            ..TrainerOptions::default()
        };
        let trainer = Trainer::new(spec, train, data.splits.test.clone(), opts, device)?;
        Ok(Session { trainer })
    }

    pub async fn advance(&mut self, max: usize) -> Result<String> {
        let v = match self.trainer.steps_async(max).await? {
            Progress::Stepped { epoch, step, steps } => {
                serde_json::json!({"kind": "step", "epoch": epoch, "step": step, "steps": steps})
            }
            Progress::Epoch(record) => serde_json::json!({"kind": "epoch", "record": record}),
            Progress::Finished(outcome) => {
                serde_json::json!({"kind": "finished", "outcome": format!("{outcome:?}")})
            }
        };
        Ok(v.to_string())
    }

    pub async fn snapshot(&mut self) -> Result<Model> {
        Ok(Model {
            spec: self.trainer.spec().clone(),
            params: self.trainer.params_async().await?,
        })
    }
}

/// A trained MNIST model: from a [`Session`] or a checkpoint the CLI wrote.
#[wasm_bindgen]
pub struct Model {
    spec: ModelSpec,
    params: Vec<f32>,
}

#[wasm_bindgen]
impl Model {
    /// Reads a safetensors checkpoint (`descent train --save`); `name` (the file's) labels
    /// the messages: not a checkpoint, or not a model of MNIST's 784 inputs and 10 classes.
    pub fn load(bytes: &[u8], name: &str) -> std::result::Result<Model, JsError> {
        Model::from_checkpoint(bytes, name).map_err(js)
    }

    pub fn describe(&self) -> String {
        self.spec.describe()
    }

    /// The model as a safetensors checkpoint that `descent eval` and `descent predict` read.
    pub fn checkpoint(&self) -> std::result::Result<Vec<u8>, JsError> {
        self.checkpoint_bytes().map_err(js)
    }

    /// Class probabilities (`[10]`) for one prepared digit `x` (`[784]`).
    pub fn predict(&self, x: &[f32]) -> std::result::Result<Vec<f32>, JsError> {
        self.probabilities(x).map_err(js)
    }

    /// Test-set accuracy (a fraction).
    pub fn accuracy(&self, data: &Mnist) -> f64 {
        descent::cpu::evaluate(&self.spec, &self.params, &data.splits.test, &mut None).accuracy
    }
}

impl Model {
    pub fn from_checkpoint(bytes: &[u8], name: &str) -> Result<Model> {
        let ck = model::checkpoint_from_bytes(bytes, Path::new(name), None, None)?;
        if let Some(p) = ck.preprocess {
            return Err(Error::Checkpoint {
                path: name.into(),
                msg: format!(
                    "was trained on {} ({}), not on MNIST digits; this page draws 28×28 digits",
                    p.source,
                    p.describe()
                ),
            });
        }
        Ok(Model {
            spec: ck.spec,
            params: ck.params,
        })
    }

    pub fn checkpoint_bytes(&self) -> Result<Vec<u8>> {
        let name = Path::new("descent-mnist.safetensors");
        model::checkpoint_bytes(
            name,
            &self.spec,
            &self.params,
            None,
            DatasetKind::Mnist,
            None,
        )
    }

    pub fn probabilities(&self, x: &[f32]) -> Result<Vec<f32>> {
        if x.len() != self.spec.inputs() {
            return Err(Error::InvalidArg(format!(
                "{} inputs given; the model takes {}",
                x.len(),
                self.spec.inputs()
            )));
        }
        let mut p = analysis::probabilities(&self.spec, &self.params, x);
        Ok(p.pop().unwrap_or_default())
    }
}

/// The 784 inputs for a drawing (`rgba`: [height, width, 4] bytes, as a canvas's
/// `getImageData` gives them), prepared by the same function as `descent predict`. A blank
/// canvas is an error saying so.
#[wasm_bindgen(js_name = prepareDrawing)]
pub fn prepare_drawing(
    rgba: Vec<u8>,
    width: u32,
    height: u32,
) -> std::result::Result<Vec<f32>, JsError> {
    prepare_rgba(rgba, width, height).map_err(|e| JsError::new(&e))
}

/// [`prepare_drawing`], natively testable.
pub fn prepare_rgba(
    rgba: Vec<u8>,
    width: u32,
    height: u32,
) -> std::result::Result<Vec<f32>, String> {
    let img = image::RgbaImage::from_raw(width, height, rgba)
        .ok_or_else(|| format!("{width}×{height} pixels need {} bytes", width * height * 4))?;
    prepare_digit(&image::DynamicImage::ImageRgba8(img)).map_err(|e| match e {
        PrepareError::Blank | PrepareError::Empty => "blank".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pollster::block_on;

    /// The MNIST files from `$MNIST_MIRROR` (a directory or file:// URL), else ../shared/data/mnist
    /// or data/mnist beside the workspace, as the main suite finds them.
    fn mnist() -> Mnist {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::var("MNIST_MIRROR")
            .ok()
            .map(|m| m.trim_start_matches("file://").into())
            .into_iter()
            .chain([root.join("../shared/data/mnist"), root.join("data/mnist")])
            .find(|d: &std::path::PathBuf| d.join("t10k-labels-idx1-ubyte.gz").is_file())
            .expect("MNIST: set MNIST_MIRROR to a directory holding the four *-ubyte.gz files");
        let files: Vec<Vec<u8>> = mnist_files()
            .iter()
            .map(|n| std::fs::read(dir.join(n)).expect("read"))
            .collect();
        Mnist::from_files(files.try_into().expect("four files"), "mnist").expect("MNIST")
    }

    /// What the page's default run does, natively: the browser's figures (README) are compared
    /// with these.
    #[test]
    fn a_session_trains_predicts_and_round_trips_its_checkpoint() {
        let data = mnist();
        let choice = Choice {
            hidden: "128".into(),
            optimizer: "sgd".into(),
            batch: 64,
            lr: 0.05,
            epochs: 1,
            limit: 6400,
            seed: 0,
        };
        let mut s = Session::start(&data, &choice, Device::Cpu).expect("start");
        let mut record = None;
        loop {
            let v: serde_json::Value =
                serde_json::from_str(&block_on(s.advance(20)).expect("steps")).expect("json");
            match v["kind"].as_str() {
                Some("step") => assert!(s.trainer.recent_loss(20).expect("loss").is_some()),
                Some("epoch") => record = Some(v["record"].clone()),
                Some("finished") => break,
                other => panic!("{other:?}"),
            }
        }
        let record = record.expect("an epoch");
        println!("native: {record}");
        let acc = record["test_accuracy"].as_f64().expect("accuracy");
        assert!(acc > 0.85, "{record}");

        let model = block_on(s.snapshot()).expect("model");
        let back =
            Model::from_checkpoint(&model.checkpoint_bytes().expect("bytes"), "m").expect("load");
        assert_eq!(back.params, model.params);
        assert_eq!(back.accuracy(&data), acc);
        let p = back
            .probabilities(&data.splits.test.row(0))
            .expect("predict");
        assert_eq!(p.len(), 10);
        let err = Model::from_checkpoint(b"junk", "junk.bin")
            .err()
            .expect("junk")
            .to_string();
        assert!(err.contains("junk.bin"), "{err}");
        let bad = Choice {
            optimizer: "rmsprop".into(),
            ..choice
        };
        let err = Session::start(&data, &bad, Device::Cpu)
            .err()
            .expect("bad optimizer")
            .to_string();
        assert!(err.contains("rmsprop"), "{err}");
    }

    #[test]
    fn a_stroke_is_prepared_and_a_blank_canvas_is_not() {
        let (w, h) = (140u32, 140u32);
        let mut rgba = vec![255u8; (w * h * 4) as usize];
        assert_eq!(prepare_rgba(rgba.clone(), w, h), Err("blank".into()));
        // A vertical black bar: a "1", centred by its mass.
        for y in 20..120 {
            for x in 60..75 {
                let i = ((y * w + x) * 4) as usize;
                rgba[i..i + 3].fill(0);
            }
        }
        let x = prepare_rgba(rgba, w, h).expect("a digit");
        assert_eq!(x.len(), 784);
        let ink: f32 = x.iter().sum();
        assert!(ink > 20.0, "{ink}");
        // Ink only in the middle columns.
        assert!((0..28).all(|r| x[r * 28] == 0.0 && x[r * 28 + 27] == 0.0));
        assert!(prepare_rgba(vec![0; 10], w, h).is_err());
    }
}
