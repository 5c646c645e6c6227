//! `descent predict`: classify image files of digits with a checkpoint.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::analysis::{probabilities, ranked};
use crate::data::PIXELS;
use crate::error::{Error, Result};
use crate::model::{self, Activation};
use crate::plot::check_output_path;
use crate::predict::prepare_gray;

#[derive(Args, Debug, Clone)]
pub struct PredictArgs {
    /// A safetensors checkpoint.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// PNG, JPEG or BMP images, one digit each, any size, dark on light or light on dark.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Print one JSON object per file instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the 28×28 input the network saw as PNG (with several images, PATH's name gets
    /// -1, -2, … before the extension).
    #[arg(long, value_name = "PATH")]
    pub show_input: Option<PathBuf>,
    /// How many classes to list per file.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=10))]
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
            check_output_path("--show-input", p)?;
            if args.images.len() == 1 {
                vec![p.clone()]
            } else {
                (1..=args.images.len()).map(|i| numbered(p, i)).collect()
            }
        }
    };
    let ck = model::load_checkpoint(&args.checkpoint, args.activation, None)?;

    // Read every file first; one that fails is reported and the others still run.
    let mut inputs = Vec::new();
    let mut outcomes: Vec<std::result::Result<usize, String>> = Vec::new();
    for (i, path) in args.images.iter().enumerate() {
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
                    crate::write_atomic(out, &png)?;
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
                        .map(|&(c, p)| serde_json::json!({"class": c, "probability": p}))
                        .collect();
                    println!(
                        "{}",
                        serde_json::json!({
                            "file": path.display().to_string(),
                            "prediction": top[0].0,
                            "top": classes,
                        })
                    );
                } else {
                    let list: Vec<String> = top
                        .iter()
                        .map(|&(c, p)| format!("{c} ({:.1}%)", 100.0 * p))
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
