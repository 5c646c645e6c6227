//! `descent overfit --plot`: one small panel per remedy, train and test loss per epoch on shared
//! axes, so where the curves part (and how far) can be compared at a glance.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, PALETTE, draw_title, font};
use crate::overfit::RemedyRun;

/// Panels per row.
const COLUMNS: usize = 3;
const PANEL: (u32, u32) = (420, 300);

pub struct OverfitFigure<'a> {
    pub runs: &'a [RemedyRun],
    pub title: String,
    /// The epoch budget every run had (the shared x axis).
    pub epochs: usize,
}

impl OverfitFigure<'_> {
    fn grid(&self) -> (usize, usize) {
        let n = self.runs.len().max(1);
        let cols = n.min(COLUMNS);
        (n.div_ceil(cols), cols)
    }
}

impl Figure for OverfitFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let (rows, cols) = self.grid();
        (PANEL.0 * cols as u32, PANEL.1 * rows as u32 + 80)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let lines = [
            self.title.clone(),
            "train loss (dashed) and test loss (solid) per epoch · grey line: lowest test loss"
                .to_owned(),
        ];
        let used = draw_title(root, &lines)?;
        let (_, body) = root.split_vertically(used);
        let (rows, cols) = self.grid();
        let panels = body.split_evenly((rows, cols));
        // Scaled to the losses from epoch 3 on, where the curves part: the first epochs' high
        // losses (a small network starts far off) would flatten everything else. They are clipped.
        let ymax = self
            .runs
            .iter()
            .flat_map(|r| {
                r.points
                    .iter()
                    .filter(|p| p.epoch >= 3.min(r.points.len()))
                    .flat_map(|p| [p.train.loss, p.test.loss])
            })
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.25;
        let x1 = self.epochs.max(2) as f64;
        for (run, area) in self.runs.iter().zip(&panels) {
            panel(area, run, x1, ymax)?;
        }
        Ok(())
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    run: &RemedyRun,
    x1: f64,
    ymax: f64,
) -> DrawResult<DB> {
    // Two lines above the chart: the run, then its verdict (the table's gaps), kept off the
    // curves, which can run anywhere in the plot.
    let caption = format!("{} ({})", run.remedy.name(), run.remedy.strength());
    let verdict = format!(
        "gap at the end: accuracy {:.1} pp, loss {:.2} · test acc {:.1}%",
        100.0 * run.gap(),
        run.loss_gap(),
        100.0 * run.final_test.accuracy,
    );
    let (head, body) = area.split_vertically(44);
    let w = head.dim_in_pixel().0 as i32;
    for (text, style, y) in [
        (caption, font(15.0), 6),
        (verdict, font(12.0).color(&RGBColor(70, 70, 70)), 26),
    ] {
        let (tw, _) = head.estimate_text_size(&text, &style)?;
        head.draw_text(&text, &style, ((w - tw as i32) / 2, y))?;
    }
    let mut chart = ChartBuilder::on(&body)
        .margin(8)
        .margin_top(2)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(1.0..x1, 0.0..ymax)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("loss")
        .label_style(font(11.0))
        .axis_desc_style(font(12.0))
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.1}"))
        .light_line_style(RGBColor(238, 238, 238))
        .draw()?;
    let best = run.best_test_loss_epoch() as f64;
    chart.draw_series(DashedLineSeries::new(
        [(best, 0.0), (best, ymax)],
        3,
        4,
        RGBColor(150, 150, 150).stroke_width(1),
    ))?;
    let (train_c, test_c) = (PALETTE[0], PALETTE[1]);
    let pts = |f: fn(&crate::overfit::Point) -> f64| -> Vec<(f64, f64)> {
        run.points
            .iter()
            .map(|p| (p.epoch as f64, f(p).min(ymax)))
            .collect()
    };
    chart
        .draw_series(DashedLineSeries::new(
            pts(|p| p.train.loss),
            6,
            4,
            train_c.stroke_width(2),
        ))?
        .label("train")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 8, y)], train_c.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            pts(|p| p.test.loss),
            test_c.stroke_width(2),
        ))?
        .label("test")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], test_c.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .label_font(font(11.0))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(190, 190, 190))
        .draw()?;
    Ok(())
}
