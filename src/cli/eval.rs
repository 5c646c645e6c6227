//! `descent eval`: a checkpoint's loss and accuracy on the test set.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::args::{DataArgs, DeviceArgs, eval_backend, load};
use super::pictures::checkpoint_metadata;
use descent::analysis::{self, Confusion, Mistake};
use descent::backend::Split;
use descent::data::{Dataset, PIXELS, Splits};
use descent::error::{Error, Result};
use descent::model::{self, Activation, Loss};
use descent::plot::confusion::ConfusionFigure;
use descent::plot::grid::{Tile, TileGrid};
use descent::plot::{self, check_picture_path};

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
    /// Also print the 10×10 confusion matrix with per-class precision and recall (in the JSON:
    /// `confusion`, `precision`, `recall`). Computed on the CPU, whatever --device.
    #[arg(long)]
    pub confusion: bool,
    /// Draw the confusion matrix as a heatmap with counts (.png or .svg).
    #[arg(long, value_name = "PATH")]
    pub confusion_png: Option<PathBuf>,
    /// Draw the most confidently wrong test images, captioned with the true and predicted
    /// class and the probability given to the prediction (.png or .svg).
    #[arg(long, value_name = "PATH")]
    pub errors_png: Option<PathBuf>,
    /// How many images --errors-png shows (the JSON lists them as `errors`).
    #[arg(long, default_value_t = 36, value_name = "N")]
    pub errors: usize,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: EvalArgs) -> Result<()> {
    if let Some(p) = &args.confusion_png {
        check_picture_path("--confusion-png", p)?;
    }
    if let Some(p) = &args.errors_png {
        check_picture_path("--errors-png", p)?;
    }
    if args.errors == 0 {
        return Err(Error::InvalidArg(
            "--errors 0: give how many images to show, at least 1".into(),
        ));
    }
    let ck = model::load_checkpoint(&args.checkpoint, args.activation, args.loss)?;
    if let Some(p) = &ck.preprocess
        && args.data.data.is_none()
    {
        return Err(Error::InvalidArg(format!(
            "{}: the model was trained on {}; give --data (and --test) to evaluate it on that data",
            args.checkpoint.display(),
            p.source
        )));
    }
    if ck.preprocess.is_none() && args.data.data.is_some() {
        return Err(Error::InvalidArg(format!(
            "{}: the checkpoint has no descent.data metadata (preprocessing, class names), so --data cannot be read the way it was trained",
            args.checkpoint.display()
        )));
    }
    if args.errors_png.is_some() && ck.preprocess.is_some() {
        return Err(Error::InvalidArg(
            "--errors-png draws 28×28 MNIST-style images; this model was trained on --data".into(),
        ));
    }
    if let Some(ds) = ck.dataset
        && ck.preprocess.is_none()
        && ds != args.data.dataset
    {
        eprintln!(
            "note: the checkpoint was trained on {}, evaluating on {}",
            ds.name(),
            args.data.dataset.name()
        );
    }
    let (Splits { test, .. }, _) = load(&args.data, ck.preprocess.as_ref())?;
    let names = class_names(&ck);
    let test = Arc::new(test);
    let mut backend = eval_backend(&args.device, &ck.spec, ck.params.clone(), Arc::clone(&test))?;
    let e = backend.evaluate(Split::Test)?;
    let per_sample = PerSample::new(&args, &ck, &test);
    if args.json {
        let mut obj = serde_json::json!({
            "test_accuracy": e.accuracy,
            "test_loss": e.loss,
            "samples": e.samples,
            "model": ck.spec.describe(),
            "device": backend.device(),
            "classes": names,
        });
        if let (Some(ps), Some(map)) = (&per_sample, obj.as_object_mut()) {
            ps.add_json(map);
        }
        println!("{obj}");
    } else {
        println!(
            "{}: test loss {:.4}  test acc {:.2}%  ({} samples, {})",
            ck.spec.describe(),
            e.loss,
            100.0 * e.accuracy,
            e.samples,
            backend.device()
        );
        if let Some(ps) = &per_sample
            && args.confusion
        {
            print!("{}", ps.confusion.table());
            if ck.preprocess.is_some() {
                println!("classes: {}", numbered_names(&names));
            }
        }
    }
    if let Some(ps) = &per_sample {
        ps.draw(&args)?;
    }
    Ok(())
}

/// What the per-sample flags need: every test sample's prediction, on the CPU whatever
/// --device (the GPU path reports only sums).
struct PerSample {
    confusion: Confusion,
    /// The class names, for the heatmap's axes.
    names: Vec<String>,
    mistakes: Vec<Mistake>,
    /// The pictures' title lines' common part: model, dataset, device, optimizer.
    title: String,
    test: Arc<Dataset>,
}

impl PerSample {
    fn new(args: &EvalArgs, ck: &model::Checkpoint, test: &Arc<Dataset>) -> Option<Self> {
        if !args.confusion && args.confusion_png.is_none() && args.errors_png.is_none() {
            return None;
        }
        let probs = analysis::dataset_probabilities(&ck.spec, &ck.params, test);
        let mut title = format!(
            "{} · {} test set · evaluated on the CPU",
            ck.spec.describe(),
            args.data.short_name(),
        );
        if let Some(opt) = checkpoint_metadata(&args.checkpoint).get("optimizer") {
            title.push_str(&format!(" · {opt}"));
        }
        Some(PerSample {
            confusion: Confusion::new(&test.labels, &probs),
            names: class_names(ck),
            mistakes: analysis::confident_mistakes(&test.labels, &probs, args.errors),
            title,
            test: Arc::clone(test),
        })
    }

    fn add_json(&self, map: &mut serde_json::Map<String, serde_json::Value>) {
        let c = &self.confusion;
        map.insert("confusion".into(), serde_json::json!(c.counts));
        map.insert(
            "precision".into(),
            serde_json::json!((0..c.classes()).map(|k| c.precision(k)).collect::<Vec<_>>()),
        );
        map.insert(
            "recall".into(),
            serde_json::json!((0..c.classes()).map(|k| c.recall(k)).collect::<Vec<_>>()),
        );
        let errors: Vec<serde_json::Value> = self
            .mistakes
            .iter()
            .map(|m| {
                serde_json::json!({
                    "index": m.index,
                    "label": m.label,
                    "predicted": m.predicted,
                    "probability": m.probability,
                })
            })
            .collect();
        map.insert("errors".into(), errors.into());
    }

    fn draw(&self, args: &EvalArgs) -> Result<()> {
        if let Some(path) = &args.confusion_png {
            let fig = ConfusionFigure {
                title: vec!["confusion matrix".to_owned(), self.title.clone()],
                confusion: &self.confusion,
                names: &self.names,
            };
            plot::render(&fig, path)?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(path) = &args.errors_png {
            let tiles = self
                .mistakes
                .iter()
                .map(|m| {
                    let px = &self.test.images[m.index * PIXELS..(m.index + 1) * PIXELS];
                    Tile::ink(
                        px,
                        vec![
                            format!("true {}, said {}", m.label, m.predicted),
                            format!("p = {:.1}%", 100.0 * m.probability),
                        ],
                    )
                })
                .collect::<Vec<_>>();
            let n = tiles.len();
            let fig = TileGrid {
                title: vec![
                    format!("the {n} most confident mistakes, surest first"),
                    self.title.clone(),
                ],
                cols: ((n as f64).sqrt().ceil() as usize).max(1),
                tiles,
                zoom: 4,
                colour_bar: None,
            };
            plot::render(&fig, path)?;
            eprintln!("wrote {} ({n} images)", path.display());
        }
        Ok(())
    }
}

/// The class names of a checkpoint: its data's, or the digits 0..9.
pub fn class_names(ck: &model::Checkpoint) -> Vec<String> {
    match &ck.preprocess {
        Some(p) => p.class_names.clone(),
        None => (0..ck.spec.classes()).map(|c| c.to_string()).collect(),
    }
}

/// `0 = setosa, 1 = versicolor, …`
fn numbered_names(names: &[String]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} = {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
