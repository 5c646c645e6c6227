//! `descent weights`: the first layer's weights, one 28×28 image per unit.

use std::path::PathBuf;

use clap::Args;

use super::pictures::checkpoint_title;
use descent::data::PIXELS;
use descent::error::{Error, Result};
use descent::model::{self, Activation};
use descent::plot::grid::{Tile, TileGrid};
use descent::plot::{check_picture_path, render_bytes};

#[derive(Args, Debug, Clone)]
pub struct WeightsArgs {
    /// A safetensors checkpoint.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// The picture to write: .png or .svg.
    #[arg(long, value_name = "OUT")]
    pub png: PathBuf,
    /// Draw only the first N units [default: all].
    #[arg(long, value_name = "N")]
    pub units: Option<usize>,
    /// Activation, when the checkpoint's metadata does not name one (only for the title).
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
}

/// The share of weights inside the colour scale: the largest few would wash the rest out.
const SCALE_QUANTILE: f64 = 0.995;

pub fn run(args: WeightsArgs) -> Result<()> {
    let format = check_picture_path("--png", &args.png)?;
    if args.units == Some(0) {
        return Err(Error::InvalidArg("--units 0: nothing to draw".into()));
    }
    let ck = model::load_checkpoint(&args.checkpoint, args.activation, None)?;
    let layer = ck.spec.layers()[0];
    let w = &ck.params[layer.w_off..layer.w_off + layer.inp * layer.out];
    let scale = quantile_abs(w, SCALE_QUANTILE);
    // Without a hidden layer the units are the classes: say so under each.
    let classes = ck.spec.hidden().is_empty();
    let tiles: Vec<Tile> = w
        .chunks_exact(PIXELS)
        .take(args.units.unwrap_or(usize::MAX))
        .enumerate()
        .map(|(u, row)| {
            let caption = if classes {
                vec![format!("class {u}")]
            } else {
                Vec::new()
            };
            Tile::diverging(row, scale, caption)
        })
        .collect();
    let n = tiles.len();
    let cols = (n as f64).sqrt().ceil() as usize;
    let zoom = match cols {
        0..=8 => 4,
        9..=16 => 2,
        _ => 1,
    };
    let what = if classes { "class" } else { "hidden unit" };
    let fig = TileGrid {
        title: vec![
            format!(
                "first-layer weights · {}",
                checkpoint_title(&ck, &args.checkpoint)
            ),
            format!(
                "one 28×28 image per {what} ({n} of {}); scale ±{scale:.3} ({:.1}% of the weights lie inside it)",
                layer.out,
                100.0 * SCALE_QUANTILE
            ),
        ],
        tiles,
        cols,
        zoom,
        colour_bar: Some(scale),
    };
    let bytes = render_bytes(&fig, format, &args.png)?;
    descent::write_atomic(&args.png, &bytes)?;
    println!("wrote {} ({n} units)", args.png.display());
    Ok(())
}

/// The q-quantile of |w| (the largest |w| for q = 1).
fn quantile_abs(w: &[f32], q: f64) -> f32 {
    let mut a: Vec<f32> = w.iter().map(|v| v.abs()).collect();
    a.sort_by(f32::total_cmp);
    let i = ((a.len() as f64 - 1.0) * q).round() as usize;
    a.get(i).copied().unwrap_or(1.0)
}
