//! `descent modes`' picture: the training loss of batch, stochastic and mini-batch descent
//! against updates, epochs and wall-clock seconds, one curve per mode.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{DrawResult, Figure, PALETTE, draw_title, font};

/// The loss of one update, with where it falls on each x axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepPoint {
    /// 1-based update count.
    pub update: f64,
    /// Fractional epochs done after this update.
    pub epoch: f64,
    /// Training seconds after this update (spread evenly over the epoch's measured time).
    pub seconds: f64,
    /// Mean loss of the update's batch, measured before the update.
    pub loss: f64,
}

pub struct ModeCurve {
    pub label: String,
    pub points: Vec<StepPoint>,
}

pub struct ModesFigure<'a> {
    pub curves: &'a [ModeCurve],
    pub title: Vec<String>,
}

/// Each curve is drawn from at most about this many points (window means), so SGD's hundred
/// thousand updates stay a readable, still visibly noisy line.
const MAX_POINTS: usize = 400;

/// Means over consecutive windows of `w` points (the x of a window is its last point's).
pub fn window_means(points: &[StepPoint], w: usize) -> Vec<StepPoint> {
    points
        .chunks(w.max(1))
        .filter_map(|c| {
            let last = *c.last()?;
            let loss = c.iter().map(|p| p.loss).sum::<f64>() / c.len() as f64;
            Some(StepPoint { loss, ..last })
        })
        .collect()
}

/// Means over windows that grow geometrically with the update count, so a log-scaled axis shows
/// every mode from its first update with at most about `MAX_POINTS` (400) points.
pub fn log_bin_means(points: &[StepPoint]) -> Vec<StepPoint> {
    let n = points.len();
    if n <= MAX_POINTS {
        return points.to_vec();
    }
    let ratio = (n as f64).powf(1.0 / MAX_POINTS as f64);
    let mut out = Vec::new();
    let (mut lo, mut edge) = (0usize, 1.0f64);
    while lo < n {
        edge *= ratio;
        let hi = (edge.floor() as usize).clamp(lo + 1, n);
        out.extend(window_means(&points[lo..hi], hi - lo));
        lo = hi;
    }
    out
}

/// The window that keeps a curve of `n` points under `MAX_POINTS`.
pub fn window_for(n: usize) -> usize {
    n.div_ceil(MAX_POINTS).max(1)
}

#[derive(Clone, Copy)]
enum Axis {
    Updates,
    Epochs,
    Seconds,
}

impl ModesFigure<'_> {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        axis: Axis,
        curves: &[Vec<StepPoint>],
    ) -> DrawResult<DB> {
        let logged: Vec<Vec<StepPoint>>;
        let smoothed = match axis {
            Axis::Updates => {
                logged = curves.iter().map(|c| log_bin_means(c)).collect();
                &logged
            }
            _ => curves,
        };
        let x_of = |p: &StepPoint| match axis {
            Axis::Updates => p.update,
            Axis::Epochs => p.epoch,
            Axis::Seconds => p.seconds,
        };
        let all = || smoothed.iter().flatten();
        let x_max = all().map(x_of).fold(0.0, f64::max).max(1e-6);
        let y_max = all()
            .map(|p| p.loss)
            .filter(|l| l.is_finite())
            .fold(0.0, f64::max)
            .max(1e-6)
            * 1.05;
        let (caption, desc) = match axis {
            Axis::Updates => (
                "loss against updates",
                "updates (log scale; windows grow with it)",
            ),
            Axis::Epochs => ("loss against epochs", "epochs (passes over the data)"),
            Axis::Seconds => ("loss against time", "training time (s)"),
        };
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(caption, font(16.0))
            .margin(10)
            .x_label_area_size(44)
            .y_label_area_size(52);
        macro_rules! draw {
            ($chart:expr) => {{
                let mut chart = $chart;
                chart
                    .configure_mesh()
                    .x_desc(desc)
                    .y_desc("training loss")
                    .label_style(font(12.0))
                    .axis_desc_style(font(14.0))
                    .x_label_formatter(&|v| tick(*v))
                    .y_label_formatter(&|v| format!("{v:.1}"))
                    .light_line_style(RGBColor(240, 240, 240))
                    .draw()?;
                for (i, (pts, curve)) in smoothed.iter().zip(self.curves).enumerate() {
                    let colour = PALETTE[i % PALETTE.len()];
                    let ann = chart.draw_series(segments(
                        pts.iter().map(|p| (x_of(p), p.loss)),
                        colour.stroke_width(2),
                    ))?;
                    ann.label(curve.label.clone()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
                    });
                    // Few updates (batch descent): mark each, so the steps are visible.
                    if pts.len() <= 40 {
                        chart.draw_series(
                            pts.iter()
                                .map(|p| Circle::new((x_of(p), p.loss), 3, colour.filled())),
                        )?;
                    }
                }
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .label_font(font(12.0))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(150, 150, 150))
                    .draw()?;
            }};
        }
        match axis {
            Axis::Updates => {
                draw!(builder.build_cartesian_2d((1.0..x_max * 1.2).log_scale(), 0.0..y_max)?)
            }
            _ => draw!(builder.build_cartesian_2d(0.0..x_max, 0.0..y_max)?),
        }
        Ok(())
    }
}

/// A polyline as separate two-point segments. Plotters joins a thick LineSeries with unlimited
/// miters, which on a noisy curve's sharp turns shoot spikes far off the axes.
pub fn segments(
    points: impl Iterator<Item = (f64, f64)>,
    style: ShapeStyle,
) -> Vec<PathElement<(f64, f64)>> {
    let pts: Vec<(f64, f64)> = points.collect();
    pts.windows(2)
        .map(|w| PathElement::new(vec![w[0], w[1]], style))
        .collect()
}

/// Short tick labels: 1, 2.5, 100, 12k, 1.2M.
pub fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 10.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl Figure for ModesFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1500, 540)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let used = draw_title(root, &self.title)?;
        let (_, body) = root.split_vertically(used);
        let panels = body.split_evenly((1, 3));
        let smoothed: Vec<Vec<StepPoint>> = self
            .curves
            .iter()
            .map(|c| window_means(&c.points, window_for(c.points.len())))
            .collect();
        let raw: Vec<Vec<StepPoint>> = self.curves.iter().map(|c| c.points.clone()).collect();
        self.panel(&panels[0], Axis::Updates, &raw)?;
        self.panel(&panels[1], Axis::Epochs, &smoothed)?;
        self.panel(&panels[2], Axis::Seconds, &smoothed)?;
        Ok(())
    }
}
