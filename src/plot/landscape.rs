//! `descent landscape`'s picture: the function's contours (log-spaced where its values span
//! decades) with each optimizer's path on top, and how fast each closes the gap to the minimum.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, PALETTE, draw_title, font};
use crate::landscape::{Function, Path};

pub struct LandscapeFigure<'a> {
    pub function: Function,
    pub paths: &'a [Path],
    pub start: [f64; 2],
    pub tol: f64,
    pub title: Vec<String>,
}

/// Contour bands across the value range.
const BANDS: usize = 16;

/// A perceptual blue-to-yellow ramp (viridis' anchors), for t in [0, 1].
fn ramp(t: f64) -> [f64; 3] {
    const ANCHORS: [[f64; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = t.clamp(0.0, 1.0) * (ANCHORS.len() - 1) as f64;
    let i = (t.floor() as usize).min(ANCHORS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    [0, 1, 2].map(|k| a[k] + (b[k] - a[k]) * f)
}

impl LandscapeFigure<'_> {
    /// The contour image of the plotting area, `w`×`h` RGB, row 0 at the top (y1).
    fn contour_image(&self, w: usize, h: usize) -> Vec<u8> {
        let f = self.function;
        let (x0, x1, y0, y1) = f.view();
        let fmin = f.min_value();
        let gaps: Vec<f64> = (0..h)
            .flat_map(|r| {
                let y = y1 - (r as f64 + 0.5) / h as f64 * (y1 - y0);
                (0..w).map(move |c| {
                    let x = x0 + (c as f64 + 0.5) / w as f64 * (x1 - x0);
                    (f.value(x, y) - fmin).max(0.0)
                })
            })
            .collect();
        let top = gaps.iter().copied().fold(0.0, f64::max).max(1e-12);
        // Log levels: each band a constant factor, from a millionth of the range up.
        let level = |g: f64| {
            if f.log_levels() {
                let eps = top * 1e-6;
                ((g + eps).ln() - eps.ln()) / ((top + eps).ln() - eps.ln())
            } else {
                g / top
            }
        };
        let bands: Vec<usize> = gaps
            .iter()
            .map(|&g| ((level(g) * BANDS as f64) as usize).min(BANDS - 1))
            .collect();
        let mut rgb = vec![0u8; w * h * 3];
        for r in 0..h {
            for c in 0..w {
                let i = r * w + c;
                let b = bands[i];
                let mut col = ramp((b as f64 + 0.5) / BANDS as f64);
                // Lightened, so the paths on top stand out; a darker pixel where the band
                // changes draws the contour line.
                let edge = (c + 1 < w && bands[i + 1] != b) || (r + 1 < h && bands[i + w] != b);
                for v in &mut col {
                    *v = if edge {
                        *v * 0.55
                    } else {
                        255.0 - (255.0 - *v) * 0.55
                    };
                }
                rgb[i * 3..i * 3 + 3].copy_from_slice(&col.map(|v| v.round() as u8));
            }
        }
        rgb
    }

    fn contour_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let f = self.function;
        let (x0, x1, y0, y1) = f.view();
        let caption = if f.log_levels() {
            "paths over the contours of f (log-spaced levels)"
        } else {
            "paths over the contours of f (evenly spaced levels)"
        };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, font(16.0))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x")
            .y_desc("y")
            .x_label_formatter(&|v| trimmed(*v, 2))
            .y_label_formatter(&|v| trimmed(*v, 2))
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .draw()?;
        let (pw, ph) = chart.plotting_area().dim_in_pixel();
        let img = self.contour_image(pw as usize, ph as usize);
        if let Some(el) = BitMapElement::with_owned_buffer((x0, y1), (pw, ph), img) {
            chart.draw_series(std::iter::once(el))?;
        }
        let inside = |p: &[f64; 2]| p[0] >= x0 && p[0] <= x1 && p[1] >= y0 && p[1] <= y1;
        for (i, path) in self.paths.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            // Only segments inside the view: a path that leaves it is not drawn off the axes.
            let segments = path
                .points
                .windows(2)
                .filter(|w| inside(&w[0]) && inside(&w[1]))
                .map(|w| {
                    PathElement::new(
                        vec![(w[0][0], w[0][1]), (w[1][0], w[1][1])],
                        colour.stroke_width(2),
                    )
                });
            let ann = chart.draw_series(segments)?;
            let label = match path.diverged_at {
                Some(s) => format!(
                    "{} (lr {}): diverged at step {s}",
                    path.optimizer.name(),
                    path.lr
                ),
                None => {
                    let e = path.end();
                    format!(
                        "{} (lr {}): ends at ({}, {})",
                        path.optimizer.name(),
                        path.lr,
                        trimmed(e[0], 2),
                        trimmed(e[1], 2)
                    )
                }
            };
            ann.label(label).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
            });
            if path.points.len() <= 80 {
                chart.draw_series(
                    path.points
                        .iter()
                        .filter(|p| inside(p))
                        .map(|p| Circle::new((p[0], p[1]), 2, colour.filled())),
                )?;
            }
            let end = path.end();
            if inside(&end) {
                chart.draw_series([
                    Circle::new((end[0], end[1]), 6, colour.filled()),
                    Circle::new((end[0], end[1]), 6, BLACK.stroke_width(1)),
                ])?;
            }
        }
        let minima = f.minima();
        chart
            .draw_series(
                minima
                    .iter()
                    .map(|m| Cross::new((m[0], m[1]), 7, WHITE.stroke_width(3))),
            )?
            .label("minimum")
            .legend(|(x, y)| Cross::new((x + 10, y), 6, BLACK.stroke_width(2)));
        chart.draw_series(
            minima
                .iter()
                .map(|m| Cross::new((m[0], m[1]), 5, BLACK.stroke_width(1))),
        )?;
        let s = (self.start[0], self.start[1]);
        if inside(&self.start) {
            chart
                .draw_series([
                    Circle::new(s, 7, WHITE.filled()),
                    Circle::new(s, 7, BLACK.stroke_width(3)),
                ])?
                .label("start (filled dots: ends)")
                .legend(|(x, y)| Circle::new((x + 10, y), 5, BLACK.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font(12.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(150, 150, 150))
            .draw()?;
        Ok(())
    }

    fn gap_panel<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let f = self.function;
        let fmin = f.min_value();
        // f − f_min per step, floored so an exact zero still has a place on a log axis.
        const FLOOR: f64 = 1e-12;
        let series: Vec<Vec<(f64, f64)>> = self
            .paths
            .iter()
            .map(|p| {
                p.points
                    .iter()
                    .enumerate()
                    .map(|(t, q)| (t as f64, (f.value(q[0], q[1]) - fmin).max(FLOOR)))
                    .collect()
            })
            .collect();
        let steps = self
            .paths
            .iter()
            .map(|p| p.points.len())
            .max()
            .unwrap_or(2)
            .max(2) as f64
            - 1.0;
        let ys = series.iter().flatten().map(|p| p.1);
        let lo = ys.clone().fold(f64::INFINITY, f64::min).min(self.tol);
        let hi = ys.fold(0.0, f64::max).max(self.tol);
        let (lo, hi) = (lo.max(FLOOR) / 3.0, hi * 3.0);
        let mut chart = ChartBuilder::on(area)
            .caption("distance to the minimum value", font(16.0))
            .margin(12)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..steps, (lo..hi).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("f - f_min (log scale)")
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| format!("{v:.0e}"))
            .light_line_style(WHITE)
            .draw()?;
        for (i, (pts, path)) in series.iter().zip(self.paths).enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let label = match (path.diverged_at, path.reached_at) {
                (Some(s), _) => format!("{}: diverged at step {s}", path.optimizer.name()),
                (None, Some(s)) => format!("{}: tolerance at step {s}", path.optimizer.name()),
                (None, None) => format!("{}: tolerance not reached", path.optimizer.name()),
            };
            chart
                .draw_series(super::modes::segments(
                    pts.iter().copied(),
                    colour.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                });
        }
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, self.tol), (steps, self.tol)],
                6,
                4,
                BLACK.stroke_width(1),
            ))?
            .label(format!("tolerance {:e}", self.tol))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(font(12.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(150, 150, 150))
            .draw()?;
        Ok(())
    }
}

impl Figure for LandscapeFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1300, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let used = draw_title(root, &self.title)?;
        let (_, body) = root.split_vertically(used);
        let (left, right) = body.split_horizontally(720);
        self.contour_panel(&left)?;
        self.gap_panel(&right)?;
        Ok(())
    }
}

/// A number to `decimals` places without trailing zeros: 2, -1.5, 0.25.
pub fn trimmed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}
