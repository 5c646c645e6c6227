//! `descent predict`: classify image files (digits, or images like a `--data images:DIR` model's)
//! or the rows of a CSV table (`--csv`) with a checkpoint, applying the preprocessing it saved.

use std::path::{Path, PathBuf};

use clap::Args;

use descent::analysis::{logits, probabilities, ranked};
use descent::data::PIXELS;
use descent::error::{Error, Result};
use descent::model::{self, Activation};
use descent::predict::prepare_gray;
use descent::sources::{self, Known, Missing, Preprocess, ReadOptions};

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// A safetensors checkpoint.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// PNG, JPEG or BMP images, one digit each, any size, dark on light or light on dark (or,
    /// for a model trained on `--data images:DIR`, images like its own).
    #[arg(required_unless_present = "csv", value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Classify each row of this CSV table (plain or .gz): the training data's feature
    /// columns, the label column optional.
    #[arg(long, value_name = "PATH", conflicts_with = "images")]
    pub csv: Option<PathBuf>,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the 28×28 input the network saw as PNG (with several images, PATH's name gets
    /// -1, -2, … before the extension).
    #[arg(long, value_name = "PATH")]
    pub show_input: Option<PathBuf>,
    /// How many classes to list per file or row.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=255))]
    pub top: u8,
    /// Activation, when the checkpoint's metadata does not name one [default: relu].
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
}

pub fn run(args: PredictArgs) -> Result<()> {
    let show: Vec<PathBuf> = match &args.show_input {
        None => Vec::new(),
        Some(p) => {
            let png = p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
            if !png {
                return Err(Error::InvalidArg(format!(
                    "--show-input {}: the name must end in .png",
                    p.display()
                )));
            }
            descent::check_output_file("--show-input", p)?;
            if args.images.len() == 1 {
                vec![p.clone()]
            } else {
                (1..=args.images.len()).map(|i| numbered(p, i)).collect()
            }
        }
    };
    let ck = model::load_checkpoint(&args.checkpoint, args.activation, None)?;
    if let Some(csv) = &args.csv {
        return predict_csv(&args, &ck, csv);
    }
    let names = super::eval::class_names(&ck);
    if let Some(p) = &ck.preprocess
        && p.input_shape.len() != 3
    {
        return Err(Error::InvalidArg(format!(
            "{}: the model was trained on a table ({}); give its rows with --csv PATH",
            args.checkpoint.display(),
            p.source
        )));
    }
    let width = ck.spec.inputs();

    // Read every file first; one that fails is reported and the others still run.
    let mut inputs = Vec::new();
    let mut outcomes: Vec<std::result::Result<usize, String>> = Vec::new();
    for (i, path) in args.images.iter().enumerate() {
        if let Some(p) = &ck.preprocess {
            match read_like_training(path, p) {
                Ok(x) => {
                    outcomes.push(Ok(inputs.len() / width));
                    inputs.extend(x);
                }
                Err(msg) => outcomes.push(Err(msg)),
            }
            continue;
        }
        match read_digit(path) {
            Ok(gray) => {
                if let Some(out) = show.get(i) {
                    let mut png = Vec::new();
                    image::DynamicImage::ImageLuma8(gray.clone())
                        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                        .map_err(|e| Error::Image {
                            path: out.clone(),
                            msg: e.to_string(),
                        })?;
                    descent::write_atomic(out, &png)?;
                }
                outcomes.push(Ok(inputs.len() / PIXELS));
                inputs.extend(gray.pixels().map(|p| p.0[0] as f32 / 255.0));
            }
            Err(msg) => outcomes.push(Err(msg)),
        }
    }
    let probs = probabilities(&ck.spec, &ck.params, &inputs);
    let mut failed = 0;
    for (path, outcome) in args.images.iter().zip(&outcomes) {
        match outcome {
            Ok(row) => {
                let top: Vec<(usize, f32)> = ranked(&probs[*row])
                    .into_iter()
                    .take(args.top as usize)
                    .collect();
                if args.json {
                    let classes: Vec<_> = top
                        .iter()
                        .map(|&(c, p)| serde_json::json!({"class": c, "name": names[c], "probability": p}))
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({
                            "file": path.display().to_string(),
                            "prediction": top[0].0,
                            "name": names[top[0].0],
                            "top": classes,
                        })
                    );
                } else {
                    let list: Vec<String> = top
                        .iter()
                        .map(|&(c, p)| format!("{} ({:.1}%)", names[c], 100.0 * p))
                        .collect();
                    println!("{}: {}", path.display(), list.join("  "));
                }
            }
            Err(msg) => {
                failed += 1;
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "error": msg})
                    );
                }
                eprintln!("error: {}: {msg}", path.display());
            }
        }
    }
    if failed > 0 {
        return Err(Error::SomeImagesFailed {
            failed,
            total: args.images.len(),
        });
    }
    Ok(())
}

/// An image prepared as the training images were: decoded, converted to the channels, resized
/// to the input shape, normalised.
fn read_like_training(path: &Path, p: &Preprocess) -> std::result::Result<Vec<f32>, String> {
    let [c, h, w] = p.input_shape[..] else {
        return Err("the model was not trained on images".into());
    };
    let img = sources::images::decode(path)?;
    let mut x = sources::images::pixels(&img, c, (h, w));
    p.apply(&mut x);
    Ok(x)
}

/// `predict --csv`: every row's class, by name, and its probability.
fn predict_csv(args: &PredictArgs, ck: &model::Checkpoint, path: &Path) -> Result<()> {
    let p = ck.preprocess.as_ref().ok_or_else(|| {
        Error::InvalidArg(format!(
            "--csv: {} has no descent.data metadata (columns, preprocessing); it was not trained on --data csv:",
            args.checkpoint.display()
        ))
    })?;
    if p.input_shape.len() != 1 {
        return Err(Error::InvalidArg(format!(
            "--csv: the model was trained on images ({}); give image files instead",
            p.source
        )));
    }
    let known = Known {
        unlabelled: true,
        ..Known::of(p)
    };
    let opts = ReadOptions {
        label_column: p.label_column.clone(),
        // Filled as in training when the model was trained with --missing mean.
        missing: if p.fill.is_empty() {
            Missing::Error
        } else {
            Missing::Mean
        },
        ..ReadOptions::default()
    };
    let mut raw = sources::csv::read(path, &opts, Some(&known))?;
    if raw.is_empty() {
        return Err(Error::Data {
            path: path.to_owned(),
            msg: "holds no rows to classify".into(),
        });
    }
    p.apply(&mut raw.x);
    let c = ck.spec.classes();
    let z = logits(&ck.spec, &ck.params, &raw.x);
    let probs = probabilities(&ck.spec, &ck.params, &raw.x);
    for (i, pr) in probs.iter().enumerate() {
        let top: Vec<(usize, f32)> = ranked(pr).into_iter().take(args.top as usize).collect();
        if args.json {
            let classes: Vec<_> = top
                .iter()
                .map(|&(k, q)| serde_json::json!({"class": k, "name": p.class_names[k], "probability": q}))
                .collect();
            println!(
                "{}",
                serde_json::json!({
                    "row": i + 1,
                    "prediction": top[0].0,
                    "name": p.class_names[top[0].0],
                    "probability": top[0].1,
                    "top": classes,
                    "logits": &z[i * c..(i + 1) * c],
                })
            );
        } else {
            let list: Vec<String> = top
                .iter()
                .map(|&(k, q)| format!("{} ({:.1}%)", p.class_names[k], 100.0 * q))
                .collect();
            println!("row {}: {}", i + 1, list.join("  "));
        }
    }
    Ok(())
}

/// Decodes `path` (by content, not by its name) and prepares it; the message says why not.
fn read_digit(path: &Path) -> std::result::Result<image::GrayImage, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len == 0 {
        return Err("the file is empty (0 bytes)".into());
    }
    let reader = image::io::Reader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not a PNG, JPEG or BMP image".into());
    }
    let img = reader
        .decode()
        .map_err(|e| format!("cannot decode the image: {e}"))?;
    prepare_gray(&img).map_err(|e| e.to_string())
}

/// `dir/name.png` → `dir/name-3.png`.
fn numbered(path: &Path, i: usize) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into());
    let ext = path
        .extension()
        .map_or_else(String::new, |s| s.to_string_lossy().into());
    path.with_file_name(format!("{stem}-{i}.{ext}"))
}
