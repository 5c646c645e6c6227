//! Grids of 28×28 images: the most confident mistakes, the first layer's weights.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, diverging, draw_title, font};
use crate::data::IMAGE_SIDE;

/// One cell: a 28×28 RGB image and up to two caption lines under it.
pub struct Tile {
    /// [28 · 28 · 3] RGB.
    pub rgb: Vec<u8>,
    pub caption: Vec<String>,
}

impl Tile {
    /// A grayscale MNIST image (0 = background) shown as dark ink on white, as people write.
    pub fn ink(pixels: &[u8], caption: Vec<String>) -> Tile {
        let rgb = pixels.iter().flat_map(|&p| [255 - p; 3]).collect();
        Tile { rgb, caption }
    }

    /// Weights on a diverging scale: −scale blue, 0 white, +scale red.
    pub fn diverging(weights: &[f32], scale: f32, caption: Vec<String>) -> Tile {
        let s = if scale > 0.0 { scale } else { 1.0 };
        let rgb = weights.iter().flat_map(|&w| diverging(w / s)).collect();
        Tile { rgb, caption }
    }
}

pub struct TileGrid {
    pub title: Vec<String>,
    pub tiles: Vec<Tile>,
    pub cols: usize,
    /// Screen pixels per image pixel.
    pub zoom: u32,
    /// A colour bar from −scale to +scale under the grid (for weights).
    pub colour_bar: Option<f32>,
}

const GAP: i32 = 8;
const MARGIN: i32 = 16;
const CAPTION_LINE: i32 = 16;
const BAR_HEIGHT: i32 = 56;

impl TileGrid {
    fn tile_px(&self) -> i32 {
        (IMAGE_SIDE as u32 * self.zoom) as i32
    }
    fn caption_lines(&self) -> i32 {
        self.tiles
            .iter()
            .map(|t| t.caption.len())
            .max()
            .unwrap_or(0) as i32
    }
    fn cell(&self) -> (i32, i32) {
        let t = self.tile_px();
        (t + GAP, t + GAP + self.caption_lines() * CAPTION_LINE)
    }
    fn rows(&self) -> usize {
        self.tiles.len().div_ceil(self.cols.max(1))
    }
    /// Room for the title: a line for each, plus one in case one wraps. Fixed, so the layout
    /// does not depend on how the text measures.
    fn title_px(&self) -> i32 {
        30 + 22 * (self.title.len() as i32 + 1)
    }
}

impl Figure for TileGrid {
    fn size(&self) -> (u32, u32) {
        let (cw, ch) = self.cell();
        let w = (2 * MARGIN + cw * self.cols.max(1) as i32).max(520);
        let bar = if self.colour_bar.is_some() {
            BAR_HEIGHT
        } else {
            0
        };
        let h = self.title_px() + ch * self.rows() as i32 + bar + MARGIN;
        (w as u32, h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw_title(root, &self.title)?;
        let top = self.title_px();
        let (cw, ch) = self.cell();
        let (w, _) = root.dim_in_pixel();
        let grid_w = cw * self.cols as i32 - GAP;
        let left = (w as i32 - grid_w) / 2;
        let t = self.tile_px();
        let z = self.zoom as usize;
        for (i, tile) in self.tiles.iter().enumerate() {
            let (r, c) = ((i / self.cols) as i32, (i % self.cols) as i32);
            let (x, y) = (left + c * cw, top + r * ch);
            // Nearest-neighbour zoom: the pixels stay pixels.
            let side = IMAGE_SIDE * z;
            let mut buf = vec![0u8; side * side * 3];
            for (py, row) in buf.chunks_exact_mut(side * 3).enumerate() {
                for (px, out) in row.chunks_exact_mut(3).enumerate() {
                    let s = ((py / z) * IMAGE_SIDE + px / z) * 3;
                    out.copy_from_slice(&tile.rgb[s..s + 3]);
                }
            }
            if let Some(el) =
                BitMapElement::with_owned_buffer((x, y), (side as u32, side as u32), buf)
            {
                root.draw(&el)?;
            }
            root.draw(&Rectangle::new(
                [(x - 1, y - 1), (x + t, y + t)],
                RGBColor(200, 200, 200),
            ))?;
            for (k, line) in tile.caption.iter().enumerate() {
                let style = font(13.0);
                let (tw, _) = root.estimate_text_size(line, &style)?;
                let tx = x + (t - tw as i32) / 2;
                root.draw_text(line, &style, (tx, y + t + 3 + k as i32 * CAPTION_LINE))?;
            }
        }
        if let Some(scale) = self.colour_bar {
            let y = top + ch * self.rows() as i32 + 6;
            colour_bar(root, (w as i32 / 2 - 160, y), 320, scale)?;
        }
        Ok(())
    }
}

/// A horizontal blue–white–red bar labelled −scale, 0, +scale.
fn colour_bar<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    width: i32,
    scale: f32,
) -> DrawResult<DB> {
    for i in 0..width {
        let v = 2.0 * i as f32 / (width - 1) as f32 - 1.0;
        let [r, g, b] = diverging(v);
        root.draw(&Rectangle::new(
            [(x + i, y), (x + i + 1, y + 14)],
            RGBColor(r, g, b).filled(),
        ))?;
    }
    root.draw(&Rectangle::new(
        [(x, y), (x + width, y + 14)],
        RGBColor(120, 120, 120),
    ))?;
    let style = font(13.0);
    for (frac, text) in [
        (0.0, format!("−{scale:.3}")),
        (0.5, "0".to_owned()),
        (1.0, format!("+{scale:.3}")),
    ] {
        let (tw, _) = root.estimate_text_size(&text, &style)?;
        let tx = x + (frac * width as f64) as i32 - tw as i32 / 2;
        root.draw_text(&text, &style, (tx, y + 18))?;
    }
    let label = "weight (negative blue, positive red)";
    let (tw, _) = root.estimate_text_size(label, &style)?;
    root.draw_text(label, &style, (x + (width - tw as i32) / 2, y + 34))?;
    Ok(())
}
