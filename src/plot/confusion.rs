//! The confusion matrix as a heatmap with counts, recall per row and precision per column.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{DrawResult, Figure, draw_title, font, sequential};
use crate::analysis::Confusion;

pub struct ConfusionFigure<'a> {
    pub title: Vec<String>,
    pub confusion: &'a Confusion,
    /// The class names the axes show (the digits for MNIST), one per class.
    pub names: &'a [String],
}

/// About how wide a label is at the axis font (15 px): 8.5 px a character.
fn label_px(names: &[String]) -> i32 {
    names.iter().map(|n| n.chars().count()).max().unwrap_or(1) as i32 * 17 / 2
}

const CELL: i32 = 54;

/// A cell's side: 54 px up to 10 classes, smaller beyond so the figure stays readable, never
/// under 8 px.
fn cell(classes: usize) -> i32 {
    if classes <= 10 {
        CELL
    } else {
        (CELL * 10 / classes as i32).max(8)
    }
}
const LEFT: i32 = 110;
const TOP: i32 = 150;

impl ConfusionFigure<'_> {
    /// Room left of the grid: the row labels, right-aligned, then the axis name.
    fn left(&self) -> i32 {
        LEFT.max(label_px(self.names) + 90)
    }

    /// Names wider than a cell stand upright above their columns.
    fn upright(&self) -> bool {
        label_px(self.names) > cell(self.confusion.classes()) - 6
    }

    /// Room above the grid: the title, the axis name and the column labels.
    fn top(&self) -> i32 {
        if self.upright() {
            TOP.max(110 + label_px(self.names))
        } else {
            TOP
        }
    }
}

impl Figure for ConfusionFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let n = self.confusion.classes();
        let grid = cell(n) * n as i32;
        // Wide enough for the title lines, however few the classes.
        (
            (self.left() + grid + 110).max(640) as u32,
            (self.top() + grid + 80) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        draw_title(root, &self.title)?;
        let (left, top) = (self.left(), self.top());
        let c = self.confusion;
        let classes = c.classes();
        let cell_px = cell(classes);
        let grid = cell_px * classes as i32;
        // Counts and labels only where they fit; the shading still shows the pattern.
        let every = |px: i32| (px + cell_px - 1) / cell_px;
        let label_every = every(24) as usize;
        // A percentage is about 44 px wide at 13 px.
        let precision_every = every(48) as usize;
        let centre = |style: TextStyle<'static>| style.pos(Pos::new(HPos::Center, VPos::Center));
        let centred = |size: f64| centre(font(size));
        // Axis names and class names: predicted across the top, true down the left.
        let up = if self.upright() {
            label_px(self.names) - 8
        } else {
            16
        };
        root.draw_text(
            "predicted class",
            &centred(15.0),
            (left + grid / 2, top - 26 - up),
        )?;
        let axis_x = (left - 28 - label_px(self.names)).min(left - 62);
        root.draw_text("true", &centred(15.0), (axis_x, top + grid / 2 - 9))?;
        root.draw_text("class", &centred(15.0), (axis_x, top + grid / 2 + 9))?;
        let upright = self.upright();
        for k in (0..classes as i32).step_by(label_every) {
            let mid = k * cell_px + cell_px / 2;
            let name = self
                .names
                .get(k as usize)
                .cloned()
                .unwrap_or_else(|| k.to_string());
            if upright {
                let style = font(15.0)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Left, VPos::Center));
                root.draw_text(&name, &style, (left + mid, top - 8))?;
            } else {
                root.draw_text(&name, &centred(15.0), (left + mid, top - 16))?;
            }
            let right = font(15.0).pos(Pos::new(HPos::Right, VPos::Center));
            root.draw_text(&name, &right, (left - 10, top + mid))?;
        }
        root.draw_text("recall", &centred(14.0), (left + grid + 50, top - 16))?;
        root.draw_text("precision", &centred(14.0), (left - 50, top + grid + 20))?;
        for t in 0..classes {
            let row: u64 = c.counts[t].iter().sum();
            for p in 0..classes {
                let n = c.counts[t][p];
                // Shade by the share of the true class, square-rooted so that a handful of
                // mistakes still shows against the diagonal.
                let share = if row > 0 { n as f64 / row as f64 } else { 0.0 };
                let shade = share.sqrt();
                let (x, y) = (left + p as i32 * cell_px, top + t as i32 * cell_px);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell_px, y + cell_px)],
                    sequential(shade).filled(),
                ))?;
                if n > 0 && cell_px >= 30 {
                    let colour: &'static RGBColor = if shade > 0.55 { &WHITE } else { &BLACK };
                    root.draw_text(
                        &n.to_string(),
                        &centre(font(14.0).color(colour)),
                        (x + cell_px / 2, y + cell_px / 2),
                    )?;
                }
            }
            let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1}%", 100.0 * v));
            let mid = t as i32 * cell_px + cell_px / 2;
            if t % label_every == 0 {
                root.draw_text(
                    &pct(c.recall(t)),
                    &centre(font(13.0)),
                    (left + grid + 50, top + mid),
                )?;
            }
            if t % precision_every == 0 {
                root.draw_text(
                    &pct(c.precision(t)),
                    &centre(font(13.0)),
                    (left + mid, top + grid + 20),
                )?;
            }
        }
        root.draw(&Rectangle::new(
            [(left, top), (left + grid, top + grid)],
            RGBColor(120, 120, 120),
        ))?;
        let note = format!(
            "{} samples, {} correct ({:.2}%); shade: share of the true class",
            c.total(),
            c.correct(),
            100.0 * c.accuracy()
        );
        root.draw_text(&note, &centred(13.0), (left + grid / 2, top + grid + 52))?;
        Ok(())
    }
}
