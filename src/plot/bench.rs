//! `descent bench --plot`: training throughput against batch size or hidden width, one curve per
//! device, both axes logarithmic, so a crossover between devices shows where it lies.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::modes::{segments, tick};
use super::{DrawResult, Figure, PALETTE, draw_title, font};

/// One device's curve: (batch size or width, samples/s) in sweep order.
pub struct BenchCurve {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

pub struct BenchFigure {
    pub title: Vec<String>,
    pub x_desc: String,
    pub curves: Vec<BenchCurve>,
}

impl Figure for BenchFigure {
    fn size(&self) -> (u32, u32) {
        (1000, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let used = draw_title(root, &self.title)?;
        let (_, body) = root.split_vertically(used);
        let all = || self.curves.iter().flat_map(|c| c.points.iter());
        let positive = |v: &f64| v.is_finite() && *v > 0.0;
        let xs: Vec<f64> = all().map(|p| p.0).filter(positive).collect();
        let ys: Vec<f64> = all().map(|p| p.1).filter(positive).collect();
        let lo = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
        // Empty sweeps still draw labelled axes.
        let (x0, x1) = if xs.is_empty() {
            (1.0, 10.0)
        } else {
            (lo(&xs) / 1.5, hi(&xs) * 1.5)
        };
        let (y0, y1) = if ys.is_empty() {
            (1.0, 10.0)
        } else {
            (lo(&ys) / 2.0, hi(&ys) * 2.0)
        };
        let mut chart = ChartBuilder::on(&body)
            .margin(18)
            .x_label_area_size(52)
            .y_label_area_size(76)
            .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(self.x_desc.as_str())
            .y_desc("training samples per second (log scale)")
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        for (i, c) in self.curves.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let pts: Vec<(f64, f64)> = c
                .points
                .iter()
                .copied()
                .filter(|(x, y)| positive(x) && positive(y))
                .collect();
            chart
                .draw_series(segments(pts.iter().copied(), colour.stroke_width(3)))?
                .label(c.label.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 22, y)], colour.stroke_width(3))
                });
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 5, colour.filled())))?;
        }
        // The legend goes in the corner farthest from every point, so it hides none.
        let (lx0, lx1, ly0, ly1) = (x0.ln(), x1.ln(), y0.ln(), y1.ln());
        let corners = [
            (SeriesLabelPosition::UpperRight, (1.0, 1.0)),
            (SeriesLabelPosition::LowerRight, (1.0, 0.0)),
            (SeriesLabelPosition::UpperLeft, (0.0, 1.0)),
            (SeriesLabelPosition::LowerLeft, (0.0, 0.0)),
        ];
        let clearance = |(cx, cy): (f64, f64)| {
            all()
                .filter(|p| positive(&p.0) && positive(&p.1))
                .map(|p| {
                    let u = (p.0.ln() - lx0) / (lx1 - lx0);
                    let v = (p.1.ln() - ly0) / (ly1 - ly0);
                    (u - cx).abs().max((v - cy).abs())
                })
                .fold(f64::INFINITY, f64::min)
        };
        let corner = corners
            .into_iter()
            .max_by(|a, b| clearance(a.1).total_cmp(&clearance(b.1)))
            .map_or(SeriesLabelPosition::UpperRight, |c| c.0);
        chart
            .configure_series_labels()
            .position(corner)
            .label_font(font(14.0))
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(150, 150, 150))
            .draw()?;
        Ok(())
    }
}
