//! The MLP's shape, its parameter layout, initialisation and checkpoints (safetensors).
//!
//! Parameters live in one flat f32 buffer, layer after layer, each layer's weight [out, in]
//! (row-major, PyTorch's `nn.Linear` layout) followed by its bias `[out]`. Grads and momentum use the
//! same layout, so one update kernel covers the whole model on CPU and GPU alike.

use std::collections::HashMap;
use std::path::Path;

use crate::data::{CLASSES, DatasetKind, PIXELS};
use crate::error::{Error, Result};
use crate::rng;
use crate::sources::Preprocess;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Loss {
    /// Softmax cross-entropy (natural log), mean over samples.
    Xent,
    /// Mean squared error against one-hot targets, mean over the outputs and the samples.
    Mse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Init {
    /// He for relu, Xavier for sigmoid and tanh.
    Auto,
    He,
    Xavier,
}

impl Activation {
    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Activation::Relu, Activation::Sigmoid, Activation::Tanh]
            .into_iter()
            .find(|a| a.name() == s)
    }
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::Xent => "xent",
            Loss::Mse => "mse",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Loss::Xent, Loss::Mse].into_iter().find(|l| l.name() == s)
    }
}

/// Hidden layer sizes: `none` (softmax regression) or a comma list like `500,300`.
pub fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("none") || s.is_empty() {
        return Ok(Vec::new());
    }
    s.split(',')
        .map(|part| match part.trim().parse::<usize>() {
            Ok(0) => Err(Error::InvalidArg(
                "--hidden: a layer of 0 units cannot learn; use `none` for no hidden layer".into(),
            )),
            Ok(n) if n > 65_536 => Err(Error::InvalidArg(format!(
                "--hidden: {n} units is more than the 65536 allowed per layer"
            ))),
            Ok(n) => Ok(n),
            Err(_) => Err(Error::InvalidArg(format!(
                "--hidden: `{part}` is not a layer size (expected e.g. 128, 500,300 or none)"
            ))),
        })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Layer widths including input and output: [inputs, hidden..., classes] ([784, ..., 10]
    /// for MNIST).
    pub sizes: Vec<usize>,
    pub activation: Activation,
    pub loss: Loss,
}

/// Where one linear layer's tensors sit in the flat parameter buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerShape {
    pub inp: usize,
    pub out: usize,
    /// Offset of weight [out, in].
    pub w_off: usize,
    /// Offset of bias `[out]`.
    pub b_off: usize,
}

impl ModelSpec {
    /// An MNIST-shaped model: 784 inputs, 10 classes.
    pub fn new(hidden: &[usize], activation: Activation, loss: Loss) -> Self {
        Self::with_io(PIXELS, hidden, CLASSES, activation, loss)
    }

    /// A model of `inputs` features and `classes` outputs.
    pub fn with_io(
        inputs: usize,
        hidden: &[usize],
        classes: usize,
        activation: Activation,
        loss: Loss,
    ) -> Self {
        let mut sizes = vec![inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(classes);
        ModelSpec {
            sizes,
            activation,
            loss,
        }
    }

    /// The model's input width.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// The model's output width: the number of classes.
    pub fn classes(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    pub fn hidden(&self) -> &[usize] {
        &self.sizes[1..self.sizes.len() - 1]
    }

    pub fn layers(&self) -> Vec<LayerShape> {
        let mut off = 0;
        self.sizes
            .windows(2)
            .map(|w| {
                let (inp, out) = (w[0], w[1]);
                let l = LayerShape {
                    inp,
                    out,
                    w_off: off,
                    b_off: off + inp * out,
                };
                off += inp * out + out;
                l
            })
            .collect()
    }

    pub fn num_params(&self) -> usize {
        self.sizes.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
    }

    /// Forward + backward FLOPs per sample (2 per multiply-add; the first layer has no input grad).
    pub fn flops_per_sample(&self) -> f64 {
        self.layers()
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let mm = 2.0 * (l.inp * l.out) as f64;
                if i == 0 { 2.0 * mm } else { 3.0 * mm }
            })
            .sum()
    }

    pub fn describe(&self) -> String {
        let sizes: Vec<String> = self.sizes.iter().map(|s| s.to_string()).collect();
        format!(
            "{} ({}, {}, {} params)",
            sizes.join("-"),
            self.activation.name(),
            self.loss.name(),
            self.num_params()
        )
    }

    /// Seeded initial parameters: weights from He N(0, 2/fan_in) or Xavier U(±sqrt(6/(in+out))),
    /// biases zero. Each weight draws from its own counter, so the result is the same however the
    /// work is split.
    pub fn init_params(&self, init: Init, seed: u32) -> Vec<f32> {
        let init = match (init, self.activation) {
            (Init::Auto, Activation::Relu) => Init::He,
            (Init::Auto, _) => Init::Xavier,
            (i, _) => i,
        };
        let mut params = vec![0.0f32; self.num_params()];
        for l in self.layers() {
            let w = &mut params[l.w_off..l.w_off + l.inp * l.out];
            for (i, x) in w.iter_mut().enumerate() {
                let idx = (l.w_off + i) as u32;
                *x = match init {
                    Init::Xavier => {
                        let a = (6.0 / (l.inp + l.out) as f32).sqrt();
                        (2.0 * rng::uniform(seed, rng::stream::INIT, idx) - 1.0) * a
                    }
                    _ => rng::normal(seed, rng::stream::INIT, idx) * (2.0 / l.inp as f32).sqrt(),
                };
            }
        }
        params
    }
}

/// What a checkpoint says beyond its tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    pub spec: ModelSpec,
    pub params: Vec<f32>,
    pub dataset: Option<DatasetKind>,
    /// The preprocessing of a model trained on the user's own data (`--data`).
    pub preprocess: Option<Preprocess>,
    /// Present in checkpoints a run can be resumed from (`--checkpoint-dir`, Ctrl-C).
    pub resume: Option<ResumeState>,
    /// mask: `[num_params]`, 1 keep / 0 pruned (biases 1), from `layers.{i}.weight_mask` tensors
    /// when the checkpoint was pruned (`descent prune`); the weights it prunes are zero.
    pub mask: Option<Vec<f32>>,
}

/// What continuing a run needs beyond the weights: the optimizer's state tensors (stored as
/// `optimizer.<name>` `[num_params]`, in the flat parameter layout), where the run stopped, and
/// the run's full configuration (JSON, as `descent train` resolved it).
#[derive(Clone, Debug, PartialEq)]
pub struct ResumeState {
    pub optimizer: crate::optim::OptimizerKind,
    pub state: Vec<Vec<f32>>,
    pub position: crate::train::Position,
    pub config: String,
}

/// The metadata keys of a resumable checkpoint.
const META_POSITION: &str = "descent.position";
const META_CONFIG: &str = "descent.config";
const META_OPTIMIZER: &str = "descent.optimizer";
/// The preprocessing, class names, input shape and source of `--data` (JSON).
const META_DATA: &str = "descent.data";

/// What a model was trained on, as its checkpoint records it.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainedOn {
    Builtin(DatasetKind),
    Own(Box<Preprocess>),
}

impl From<DatasetKind> for TrainedOn {
    fn from(k: DatasetKind) -> Self {
        TrainedOn::Builtin(k)
    }
}

impl TrainedOn {
    /// The name runs are labelled with: `mnist`, or the source's file name.
    pub fn name(&self) -> String {
        match self {
            TrainedOn::Builtin(k) => k.name().to_owned(),
            TrainedOn::Own(p) => p.source.clone(),
        }
    }
}

/// Writes `layers.{i}.weight` `[out, in]` and `layers.{i}.bias` `[out]` as f32 safetensors,
/// atomically, with the optimizer state and run position when `resume` is given.
#[cfg(feature = "native")]
pub fn save_checkpoint(
    path: &Path,
    spec: &ModelSpec,
    params: &[f32],
    data: impl Into<TrainedOn>,
    resume: Option<&ResumeState>,
) -> Result<()> {
    save_checkpoint_masked(path, spec, params, None, data, resume)
}

/// [`save_checkpoint`], plus `layers.{i}.weight_mask` [out, in] (as PyTorch's
/// torch.nn.utils.prune names its masks) when `mask` `[num_params]` is given.
#[cfg(feature = "native")]
pub fn save_checkpoint_masked(
    path: &Path,
    spec: &ModelSpec,
    params: &[f32],
    mask: Option<&[f32]>,
    data: impl Into<TrainedOn>,
    resume: Option<&ResumeState>,
) -> Result<()> {
    let bytes = checkpoint_bytes(path, spec, params, mask, data, resume)?;
    crate::write_atomic(path, &bytes)
}

/// The bytes of the safetensors file [`save_checkpoint_masked`] writes, for a caller with no
/// filesystem (a web page offers them as a download); `path` names the file in messages.
pub fn checkpoint_bytes(
    path: &Path,
    spec: &ModelSpec,
    params: &[f32],
    mask: Option<&[f32]>,
    data: impl Into<TrainedOn>,
    resume: Option<&ResumeState>,
) -> Result<Vec<u8>> {
    if params.len() != spec.num_params() {
        return Err(checkpoint_err(
            path,
            format!(
                "{} parameters given for a model of {}",
                params.len(),
                spec.num_params()
            ),
        ));
    }
    let data = data.into();
    let mut tensors: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
    for (i, l) in spec.layers().iter().enumerate() {
        let w = &params[l.w_off..l.w_off + l.inp * l.out];
        let b = &params[l.b_off..l.b_off + l.out];
        tensors.push((format!("layers.{i}.weight"), vec![l.out, l.inp], w));
        tensors.push((format!("layers.{i}.bias"), vec![l.out], b));
        if let Some(m) = mask {
            let wm = &m[l.w_off..l.w_off + l.inp * l.out];
            tensors.push((format!("layers.{i}.weight_mask"), vec![l.out, l.inp], wm));
        }
    }
    if let Some(r) = resume {
        for (name, t) in r.optimizer.state_names().iter().zip(&r.state) {
            tensors.push((format!("optimizer.{name}"), vec![t.len()], t));
        }
    }
    let views: Result<Vec<(String, safetensors::tensor::TensorView<'_>)>> = tensors
        .iter()
        .map(|(name, shape, data)| {
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                shape.clone(),
                bytemuck::cast_slice(data),
            )
            .map(|v| (name.clone(), v))
            .map_err(|e| checkpoint_err(path, e.to_string()))
        })
        .collect();
    let hidden: Vec<String> = spec.hidden().iter().map(|h| h.to_string()).collect();
    let mut meta = HashMap::from([
        ("format".to_owned(), "descent-mlp".to_owned()),
        ("activation".to_owned(), spec.activation.name().to_owned()),
        ("loss".to_owned(), spec.loss.name().to_owned()),
        ("dataset".to_owned(), data.name()),
        ("hidden".to_owned(), hidden.join(",")),
    ]);
    if let TrainedOn::Own(p) = &data {
        let json = serde_json::to_string(p).map_err(|e| checkpoint_err(path, e.to_string()))?;
        meta.insert(META_DATA.to_owned(), json);
    }
    if let Some(r) = resume {
        let pos =
            serde_json::to_string(&r.position).map_err(|e| checkpoint_err(path, e.to_string()))?;
        meta.insert(META_POSITION.to_owned(), pos);
        meta.insert(META_CONFIG.to_owned(), r.config.clone());
        meta.insert(META_OPTIMIZER.to_owned(), r.optimizer.name().to_owned());
    }
    safetensors::serialize(views?, Some(meta)).map_err(|e| checkpoint_err(path, e.to_string()))
}

fn checkpoint_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_owned(),
        msg: msg.into(),
    }
}

/// Loads a checkpoint written by `save_checkpoint` or by PyTorch's safetensors with the same names.
/// `activation`/`loss` fill in what the metadata does not say (or override it when given).
#[cfg(feature = "native")]
pub fn load_checkpoint(
    path: &Path,
    activation: Option<Activation>,
    loss: Option<Loss>,
) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    checkpoint_from_bytes(&bytes, path, activation, loss)
}

/// [`load_checkpoint`] from the file's bytes (a web page's upload); `path` names it in messages.
pub fn checkpoint_from_bytes(
    bytes: &[u8],
    path: &Path,
    activation: Option<Activation>,
    loss: Option<Loss>,
) -> Result<Checkpoint> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| checkpoint_err(path, format!("not a safetensors checkpoint ({e})")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| checkpoint_err(path, e.to_string()))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let pick = |key: &str| meta.get(key).map(String::as_str);

    let activation = match (activation, pick("activation")) {
        (Some(a), _) => a,
        (None, Some(s)) => Activation::parse(s)
            .ok_or_else(|| checkpoint_err(path, format!("unknown activation `{s}` in metadata")))?,
        (None, None) => Activation::Relu,
    };
    let loss = match (loss, pick("loss")) {
        (Some(l), _) => l,
        (None, Some(s)) => Loss::parse(s)
            .ok_or_else(|| checkpoint_err(path, format!("unknown loss `{s}` in metadata")))?,
        (None, None) => Loss::Xent,
    };
    let dataset = pick("dataset").and_then(DatasetKind::parse);
    let preprocess: Option<Preprocess> = pick(META_DATA)
        .map(|s| {
            serde_json::from_str(s).map_err(|e| checkpoint_err(path, format!("{META_DATA}: {e}")))
        })
        .transpose()?;

    let mut n_layers = 0;
    while st.tensor(&format!("layers.{n_layers}.weight")).is_ok() {
        n_layers += 1;
    }
    if n_layers == 0 {
        return Err(checkpoint_err(
            path,
            "holds no `layers.0.weight` tensor; expected layers.{i}.weight [out, in] and layers.{i}.bias [out]",
        ));
    }
    let optimizer = pick(META_OPTIMIZER)
        .map(|s| {
            crate::optim::OptimizerKind::parse(s)
                .ok_or_else(|| checkpoint_err(path, format!("unknown optimizer `{s}` in metadata")))
        })
        .transpose()?;
    let state_names: Vec<String> = optimizer
        .map(|o| {
            o.state_names()
                .iter()
                .map(|n| format!("optimizer.{n}"))
                .collect()
        })
        .unwrap_or_default();
    let mask_names: Vec<String> = (0..n_layers)
        .map(|i| format!("layers.{i}.weight_mask"))
        .filter(|n| st.tensor(n).is_ok())
        .collect();
    let expected_names = 2 * n_layers + state_names.len() + mask_names.len();
    if st.len() != expected_names {
        let extra: Vec<&str> = st
            .names()
            .into_iter()
            .filter(|n| {
                !(0..n_layers)
                    .any(|i| *n == format!("layers.{i}.weight") || *n == format!("layers.{i}.bias"))
                    && !state_names.iter().any(|s| s == *n)
                    && !mask_names.iter().any(|s| s == *n)
            })
            .collect();
        return Err(checkpoint_err(
            path,
            format!("unexpected tensors {extra:?} (or a bias is missing)"),
        ));
    }

    let mut sizes = Vec::new();
    let mut params = Vec::new();
    for i in 0..n_layers {
        let w = tensor_f32(&st, &format!("layers.{i}.weight"), path)?;
        let b = tensor_f32(&st, &format!("layers.{i}.bias"), path)?;
        let (out, inp) = match w.0[..] {
            [o, n] => (o, n),
            _ => {
                return Err(checkpoint_err(
                    path,
                    format!("layers.{i}.weight has shape {:?}, expected [out, in]", w.0),
                ));
            }
        };
        if b.0 != [out] {
            return Err(checkpoint_err(
                path,
                format!("layers.{i}.bias has shape {:?}, expected [{out}]", b.0),
            ));
        }
        match sizes.last() {
            None => sizes.push(inp),
            Some(&prev) if prev != inp => {
                return Err(checkpoint_err(
                    path,
                    format!(
                        "layers.{i}.weight takes {inp} inputs but the layer before gives {prev}"
                    ),
                ));
            }
            _ => {}
        }
        sizes.push(out);
        params.extend(w.1);
        params.extend(b.1);
    }
    // Without its data's description a model must be MNIST-shaped; with it, the shapes agree.
    let (want_in, want_out) = preprocess
        .as_ref()
        .map_or((PIXELS, CLASSES), |p| (p.width(), p.class_names.len()));
    if sizes[0] != want_in || sizes.last() != Some(&want_out) {
        return Err(checkpoint_err(
            path,
            format!(
                "the model maps {} inputs to {} outputs; {} needs {want_in} -> {want_out}",
                sizes[0],
                sizes.last().copied().unwrap_or(0),
                if preprocess.is_some() {
                    "its data description"
                } else {
                    "a checkpoint without descent.data metadata"
                }
            ),
        ));
    }
    let spec = ModelSpec {
        sizes,
        activation,
        loss,
    };
    let mask = if mask_names.is_empty() {
        None
    } else {
        Some(load_masks(&st, &spec, &mut params, path)?)
    };
    let resume = match optimizer {
        None => None,
        Some(kind) => {
            let mut state = Vec::new();
            for name in &state_names {
                let (shape, data) = tensor_f32(&st, name, path)?;
                if shape != [params.len()] {
                    return Err(checkpoint_err(
                        path,
                        format!("{name} has shape {shape:?}, expected [{}]", params.len()),
                    ));
                }
                state.push(data);
            }
            let position = pick(META_POSITION)
                .ok_or_else(|| checkpoint_err(path, format!("{META_POSITION} is missing")))
                .and_then(|s| {
                    serde_json::from_str(s)
                        .map_err(|e| checkpoint_err(path, format!("{META_POSITION}: {e}")))
                })?;
            let config = pick(META_CONFIG)
                .ok_or_else(|| checkpoint_err(path, format!("{META_CONFIG} is missing")))?
                .to_owned();
            Some(ResumeState {
                optimizer: kind,
                state,
                position,
                config,
            })
        }
    };
    Ok(Checkpoint {
        spec,
        params,
        dataset,
        preprocess,
        resume,
        mask,
    })
}

/// The flat mask of a pruned checkpoint: each `layers.{i}.weight_mask` must have its weight's
/// shape and hold only 0 and 1; a layer without one keeps every weight. The masked weights are
/// zeroed in `params`, so a pruned weight is zero whatever the file held.
fn load_masks(
    st: &safetensors::SafeTensors<'_>,
    spec: &ModelSpec,
    params: &mut [f32],
    path: &Path,
) -> Result<Vec<f32>> {
    let mut mask = vec![1.0f32; params.len()];
    for (i, l) in spec.layers().iter().enumerate() {
        let name = format!("layers.{i}.weight_mask");
        if st.tensor(&name).is_err() {
            continue;
        }
        let (shape, data) = tensor_f32(st, &name, path)?;
        if shape != [l.out, l.inp] {
            return Err(checkpoint_err(
                path,
                format!(
                    "{name} has shape {shape:?}, but layers.{i}.weight is [{}, {}]",
                    l.out, l.inp
                ),
            ));
        }
        if let Some(bad) = data.iter().find(|&&m| m != 0.0 && m != 1.0) {
            return Err(checkpoint_err(
                path,
                format!("{name} holds {bad}; a mask holds only 0 (pruned) and 1 (kept)"),
            ));
        }
        let w = l.w_off..l.w_off + l.inp * l.out;
        for (p, &m) in params[w.clone()].iter_mut().zip(&data) {
            if m == 0.0 {
                *p = 0.0;
            }
        }
        mask[w].copy_from_slice(&data);
    }
    Ok(mask)
}

fn tensor_f32(
    st: &safetensors::SafeTensors<'_>,
    name: &str,
    path: &Path,
) -> Result<(Vec<usize>, Vec<f32>)> {
    let t = st
        .tensor(name)
        .map_err(|_| checkpoint_err(path, format!("missing tensor {name}")))?;
    if t.dtype() != safetensors::Dtype::F32 {
        return Err(checkpoint_err(
            path,
            format!("{name} is {:?}; descent reads F32 tensors", t.dtype()),
        ));
    }
    // The data may not be 4-byte aligned inside the file, so copy bytewise.
    let data = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((t.shape().to_vec(), data))
}
