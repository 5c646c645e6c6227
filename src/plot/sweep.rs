//! `descent sweep`'s heatmap: test accuracy over a grid of two hyperparameters, diverged cells
//! marked as such, never as a number.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, draw_title, font, sequential};

/// What one cell shows.
#[derive(Clone, Debug, PartialEq)]
pub enum CellView {
    /// Test accuracy in [0, 1] and training seconds.
    Done { accuracy: f64, seconds: f64 },
    /// Diverged at (epoch, step).
    Diverged { epoch: usize, step: usize },
    /// Not run (an interrupted sweep).
    Missing,
}

pub struct SweepFigure {
    pub title: Vec<String>,
    /// Columns: the first swept flag and its values.
    pub x_name: String,
    pub x_values: Vec<String>,
    /// Rows: the second swept flag (one row "" when only one is swept).
    pub y_name: String,
    pub y_values: Vec<String>,
    /// `cells[row][col]`.
    pub cells: Vec<Vec<CellView>>,
}

const CELL_W: i32 = 150;
const CELL_H: i32 = 64;
const LEFT: i32 = 150;
const TOP_LABELS: i32 = 56;
const MARGIN: i32 = 24;
const TITLE: i32 = 76;

impl Figure for SweepFigure {
    fn size(&self) -> (u32, u32) {
        let w = LEFT + CELL_W * self.x_values.len().max(1) as i32 + MARGIN;
        let h = TITLE + TOP_LABELS + CELL_H * self.y_values.len().max(1) as i32 + MARGIN + 30;
        (w.max(640) as u32, h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw_title(root, &self.title)?;
        let (w, _) = root.dim_in_pixel();
        let grid_w = CELL_W * self.x_values.len() as i32;
        let left = ((w as i32 - grid_w - LEFT) / 2).max(0) + LEFT;
        let top = TITLE + TOP_LABELS;
        let accs: Vec<f64> = self
            .cells
            .iter()
            .flatten()
            .filter_map(|c| match c {
                CellView::Done { accuracy, .. } => Some(*accuracy),
                _ => None,
            })
            .collect();
        let lo = accs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = accs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        // Column header: the flag, then each value.
        let header = font(15.0);
        let (tw, _) = root.estimate_text_size(&self.x_name, &header)?;
        root.draw_text(
            &self.x_name,
            &header,
            (left + (grid_w - tw as i32) / 2, TITLE + 4),
        )?;
        for (c, v) in self.x_values.iter().enumerate() {
            let style = font(14.0);
            let (tw, _) = root.estimate_text_size(v, &style)?;
            let x = left + c as i32 * CELL_W + (CELL_W - tw as i32) / 2;
            root.draw_text(v, &style, (x, top - 22))?;
        }
        if !self.y_name.is_empty() {
            root.draw_text(&self.y_name, &header, (left - LEFT + 8, top - 22))?;
        }
        for (r, v) in self.y_values.iter().enumerate() {
            let style = font(14.0);
            let (tw, th) = root.estimate_text_size(v, &style)?;
            let y = top + r as i32 * CELL_H + (CELL_H - th as i32) / 2;
            root.draw_text(v, &style, (left - 12 - tw as i32, y))?;
        }
        for (r, row) in self.cells.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (x0, y0) = (left + c as i32 * CELL_W, top + r as i32 * CELL_H);
                let rect = [(x0, y0), (x0 + CELL_W - 2, y0 + CELL_H - 2)];
                let (fill, lines, dark) = match cell {
                    CellView::Done { accuracy, seconds } => {
                        // Shade by the error rate on a log scale: 5% against 10% error matters
                        // as much as 20% against 40%, so good cells stay distinguishable.
                        let err = |a: f64| (1.0 - a).max(1e-4).ln();
                        let t = if hi - lo > 1e-9 {
                            0.15 + 0.85 * (err(lo) - err(*accuracy)) / (err(lo) - err(hi))
                        } else {
                            0.6
                        };
                        (
                            sequential(t),
                            vec![
                                format!("{:.2}%", 100.0 * accuracy),
                                format!("{seconds:.1} s"),
                            ],
                            t > 0.55,
                        )
                    }
                    CellView::Diverged { epoch, step } => (
                        RGBColor(250, 215, 210),
                        vec!["diverged".into(), format!("epoch {epoch}, step {step}")],
                        false,
                    ),
                    CellView::Missing => (RGBColor(235, 235, 235), vec!["not run".into()], false),
                };
                root.draw(&Rectangle::new(rect, fill.filled()))?;
                let colour = if dark { WHITE } else { BLACK };
                for (k, line) in lines.iter().enumerate() {
                    let style = font(if k == 0 { 17.0 } else { 12.0 }).color(&colour);
                    let (tw, _) = root.estimate_text_size(line, &style)?;
                    let x = x0 + (CELL_W - tw as i32) / 2;
                    root.draw_text(line, &style, (x, y0 + 12 + 24 * k as i32))?;
                }
            }
        }
        let note = "test accuracy (darker = fewer errors, log scale across this grid) and training time per cell";
        let style = font(12.0);
        let (tw, _) = root.estimate_text_size(note, &style)?;
        let y = top + CELL_H * self.y_values.len() as i32 + 10;
        root.draw_text(note, &style, ((w as i32 - tw as i32) / 2, y))?;
        Ok(())
    }
}
