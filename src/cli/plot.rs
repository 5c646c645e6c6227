//! `descent plot`: the curves of one or more `--metrics` files on the same axes.

use std::path::PathBuf;

use clap::Args;

use descent::error::{Error, Result};
use descent::plot::curves::{CurvesFigure, RunInfo, parse_metrics};
use descent::plot::{Run, XAxis, check_picture_path, render_bytes};

#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// `train --metrics` files (one JSON object per epoch), one run each.
    #[arg(required = true, value_name = "RUN.jsonl")]
    pub runs: Vec<PathBuf>,
    /// The picture to write: .png or .svg.
    #[arg(short, long)]
    pub output: PathBuf,
    /// One label per file, comma-separated [default: the file names].
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// What the x axis counts.
    #[arg(long, value_enum, default_value = "epoch")]
    pub x: XAxis,
    /// The figure's title [default: what the files record: model, dataset, device, optimizer].
    #[arg(long)]
    pub title: Option<String>,
}

pub fn run(args: PlotArgs) -> Result<()> {
    let format = check_picture_path("--output", &args.output)?;
    if !args.labels.is_empty() && args.labels.len() != args.runs.len() {
        return Err(Error::InvalidArg(format!(
            "--labels: {} labels for {} files; give one per file",
            args.labels.len(),
            args.runs.len()
        )));
    }
    let mut runs = Vec::new();
    let mut infos = Vec::new();
    for (i, path) in args.runs.iter().enumerate() {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let (points, info) = parse_metrics(path, &text)?;
        let label = match args.labels.get(i) {
            Some(l) => l.clone(),
            None => path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into(),
            ),
        };
        runs.push(Run { label, points });
        infos.push(info);
    }
    let title = args.title.clone().unwrap_or_else(|| default_title(&infos));
    let fig = CurvesFigure {
        runs: &runs,
        x: args.x,
        title,
    };
    let bytes = render_bytes(&fig, format, &args.output)?;
    descent::write_atomic(&args.output, &bytes)?;
    println!("wrote {}", args.output.display());
    Ok(())
}

/// Each field the runs record, the distinct values joined by " vs ".
fn default_title(infos: &[RunInfo]) -> String {
    let join = |vals: Vec<String>| {
        let mut uniq: Vec<String> = Vec::new();
        for v in vals {
            if !uniq.contains(&v) {
                uniq.push(v);
            }
        }
        uniq.join(" vs ")
    };
    let field = |f: fn(&RunInfo) -> Option<String>| join(infos.iter().filter_map(f).collect());
    let optimizer = join(
        infos
            .iter()
            .map(|i| {
                let name = i.optimizer.clone().unwrap_or_else(|| "SGD".into());
                let mut s = name;
                if let Some(lr) = i.lr {
                    s.push_str(&format!(" lr {}", lr as f32));
                }
                if let Some(b) = i.batch_size {
                    s.push_str(&format!(" batch {b}"));
                }
                s
            })
            .collect(),
    );
    let parts = [
        field(|i| i.model.clone()),
        field(|i| i.dataset.clone()),
        field(|i| i.device.clone()),
        optimizer,
    ];
    let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        "training curves".into()
    } else {
        parts.join(" · ")
    }
}
