//! `descent prune --sweep --plot`: test accuracy against sparsity, before and after fine-tuning,
//! with the dense model's accuracy for reference.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, PALETTE, draw_title, font};

/// One sparsity of a sweep: accuracies as fractions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepPoint {
    pub sparsity: f64,
    pub pruned: f64,
    pub finetuned: Option<f64>,
}

pub struct SweepFigure<'a> {
    pub points: &'a [SweepPoint],
    /// The unpruned model's test accuracy.
    pub dense: f64,
    pub title: String,
    /// Whether the sparsity is a fraction of units (else of weights).
    pub units: bool,
    pub finetune_epochs: usize,
}

impl Figure for SweepFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (900, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let used = draw_title(root, std::slice::from_ref(&self.title))?;
        let (_, body) = root.split_vertically(used);
        let pct = |v: f64| 100.0 * v;
        let mut ys: Vec<f64> = self.points.iter().map(|p| pct(p.pruned)).collect();
        ys.extend(self.points.iter().filter_map(|p| p.finetuned.map(pct)));
        ys.push(pct(self.dense));
        let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
        let y0 = (lo - 1.0).floor().max(0.0);
        let y1 = (pct(self.dense) + 1.0).ceil().min(100.0);
        let xs: Vec<f64> = self.points.iter().map(|p| pct(p.sparsity)).collect();
        let lo_x = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi_x = xs.iter().copied().fold(0.0, f64::max);
        let pad = ((hi_x - lo_x) * 0.05).max(1.0);
        let (x0, x1) = ((lo_x - pad).max(0.0), (hi_x + pad).min(100.0));
        let mut chart = ChartBuilder::on(&body)
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(if self.units {
                "hidden units removed (%)"
            } else {
                "weights removed: sparsity (%)"
            })
            .y_desc("test accuracy (%)")
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let grey = RGBColor(120, 120, 120);
        chart
            .draw_series(DashedLineSeries::new(
                [(x0, pct(self.dense)), (x1, pct(self.dense))],
                8,
                5,
                grey.stroke_width(2),
            ))?
            .label(format!("unpruned {:.2}%", pct(self.dense)))
            .legend(move |(x, y)| {
                let seg =
                    |a: i32, b: i32| PathElement::new(vec![(a, 0), (b, 0)], grey.stroke_width(2));
                EmptyElement::at((x, y)) + seg(0, 8) + seg(13, 21)
            });
        let mut line = |name: String, c: RGBColor, pts: Vec<(f64, f64)>| -> DrawResult<DB> {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            Ok(())
        };
        line(
            "pruned, no fine-tuning".into(),
            PALETTE[3],
            self.points
                .iter()
                .map(|p| (pct(p.sparsity), pct(p.pruned)))
                .collect(),
        )?;
        let ft: Vec<(f64, f64)> = self
            .points
            .iter()
            .filter_map(|p| p.finetuned.map(|a| (pct(p.sparsity), pct(a))))
            .collect();
        if !ft.is_empty() {
            line(
                format!(
                    "after {} epoch{} of fine-tuning",
                    self.finetune_epochs,
                    if self.finetune_epochs == 1 { "" } else { "s" }
                ),
                PALETTE[0],
                ft,
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .label_font(font(13.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
        Ok(())
    }
}
