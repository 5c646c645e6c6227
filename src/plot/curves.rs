//! Loss and accuracy over training, two panels, for one run or several on the same axes.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Deserialize;

use super::{DrawResult, Figure, PALETTE, draw_title, font};
use crate::error::{Error, Result};

/// One epoch of one run, as the curves need it. Plain data, so the trainer's own record can
/// grow fields without touching the plots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CurvePoint {
    pub epoch: usize,
    /// Training seconds from the start of the run to the end of this epoch.
    pub seconds: f64,
    /// Training samples seen from the start of the run to the end of this epoch.
    pub samples: f64,
    pub train_loss: f64,
    pub test_loss: Option<f64>,
    /// Fractions in [0, 1].
    pub test_accuracy: Option<f64>,
    pub val_loss: Option<f64>,
    pub val_accuracy: Option<f64>,
    pub train_accuracy: Option<f64>,
    /// The learning rate during this epoch (TensorBoard's `lr`).
    pub lr: Option<f64>,
    pub samples_per_second: Option<f64>,
}

/// One labelled run.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub label: String,
    pub points: Vec<CurvePoint>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum XAxis {
    Epoch,
    /// Cumulative training seconds (evaluation excluded).
    Seconds,
    /// Cumulative training samples.
    Samples,
}

impl XAxis {
    fn of(self, p: &CurvePoint) -> f64 {
        match self {
            XAxis::Epoch => p.epoch as f64,
            XAxis::Seconds => p.seconds,
            XAxis::Samples => p.samples,
        }
    }
    fn label(self) -> &'static str {
        match self {
            XAxis::Epoch => "epoch",
            XAxis::Seconds => "training time (s)",
            XAxis::Samples => "training samples seen",
        }
    }
}

/// One line of a `--metrics` file: only `epoch` and `train_loss` are required, unknown keys are
/// ignored, so files from older and newer versions both read.
#[derive(Deserialize)]
struct MetricsLine {
    epoch: usize,
    train_loss: f64,
    test_loss: Option<f64>,
    test_accuracy: Option<f64>,
    val_loss: Option<f64>,
    val_accuracy: Option<f64>,
    train_accuracy: Option<f64>,
    epoch_seconds: Option<f64>,
    elapsed_seconds: Option<f64>,
    samples_per_second: Option<f64>,
    steps: Option<f64>,
    batch_size: Option<f64>,
    lr: Option<f64>,
    /// Carried into the default title when present.
    device: Option<String>,
    model: Option<String>,
    dataset: Option<String>,
    optimizer: Option<String>,
}

/// What a metrics file says about its run beyond the curves (for titles).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunInfo {
    pub device: Option<String>,
    pub model: Option<String>,
    pub dataset: Option<String>,
    pub optimizer: Option<String>,
    pub batch_size: Option<f64>,
    pub lr: Option<f64>,
}

/// Parses a `--metrics` JSONL file. x in seconds is the running sum of `epoch_seconds`, or
/// `elapsed_seconds` where a line has it. Samples per epoch are `samples_per_second ×
/// epoch_seconds` (exactly the samples the trainer counted, up to rounding), else `steps ×
/// batch_size` (which counts a short last batch as full). A broken line is an error naming the
/// file and line.
pub fn parse_metrics(path: &Path, text: &str) -> Result<(Vec<CurvePoint>, RunInfo)> {
    let mut points = Vec::new();
    let mut info = RunInfo::default();
    let (mut seconds, mut samples) = (0.0, 0.0);
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let err = |msg: String| Error::Metrics {
            path: path.to_owned(),
            line: i + 1,
            msg,
        };
        let m: MetricsLine = serde_json::from_str(line).map_err(|e| err(e.to_string()))?;
        let epoch_secs = m.epoch_seconds.unwrap_or(0.0);
        seconds = m.elapsed_seconds.unwrap_or(seconds + epoch_secs);
        samples += match (m.samples_per_second, m.epoch_seconds, m.steps, m.batch_size) {
            (Some(r), Some(s), _, _) => (r * s).round(),
            (_, _, Some(st), Some(b)) => st * b,
            _ => 0.0,
        };
        points.push(CurvePoint {
            epoch: m.epoch,
            seconds,
            samples,
            train_loss: m.train_loss,
            test_loss: m.test_loss,
            test_accuracy: m.test_accuracy,
            val_loss: m.val_loss,
            val_accuracy: m.val_accuracy,
            train_accuracy: m.train_accuracy,
            lr: m.lr,
            samples_per_second: m.samples_per_second,
        });
        info = RunInfo {
            device: m.device.or(info.device),
            model: m.model.or(info.model),
            dataset: m.dataset.or(info.dataset),
            optimizer: m.optimizer.or(info.optimizer),
            batch_size: m.batch_size.or(info.batch_size),
            // The first line's rate: the peak of a schedule, as the run was asked for.
            lr: info.lr.or(m.lr),
        };
    }
    if points.is_empty() {
        return Err(Error::Metrics {
            path: path.to_owned(),
            line: 0,
            msg: "holds no epochs".into(),
        });
    }
    Ok((points, info))
}

/// Which curve of a run: split and quantity.
#[derive(Clone, Copy)]
struct Curve {
    name: &'static str,
    get: fn(&CurvePoint) -> Option<f64>,
}

const LOSSES: [Curve; 3] = [
    Curve {
        name: "train",
        get: |p| Some(p.train_loss),
    },
    Curve {
        name: "validation",
        get: |p| p.val_loss,
    },
    Curve {
        name: "test",
        get: |p| p.test_loss,
    },
];

const ACCURACIES: [Curve; 3] = [
    Curve {
        name: "train",
        get: |p| p.train_accuracy.map(|a| 100.0 * a),
    },
    Curve {
        name: "validation",
        get: |p| p.val_accuracy.map(|a| 100.0 * a),
    },
    Curve {
        name: "test",
        get: |p| p.test_accuracy.map(|a| 100.0 * a),
    },
];

type Series = (usize, usize, Vec<(f64, f64)>);

/// The two-panel figure.
pub struct CurvesFigure<'a> {
    pub runs: &'a [Run],
    pub x: XAxis,
    pub title: String,
}

impl Figure for CurvesFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let used = draw_title(root, std::slice::from_ref(&self.title))?;
        let (_, body) = root.split_vertically(used);
        let panels = body.split_evenly((1, 2));
        self.panel(&panels[0], "loss", "mean loss per sample", &LOSSES, false)?;
        self.panel(&panels[1], "accuracy", "accuracy (%)", &ACCURACIES, true)?;
        Ok(())
    }
}

impl CurvesFigure<'_> {
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        caption: &str,
        y_desc: &str,
        curves: &[Curve],
        accuracy: bool,
    ) -> DrawResult<DB> {
        // (run, curve, points) for every curve with data.
        let series: Vec<Series> = self
            .runs
            .iter()
            .enumerate()
            .flat_map(|(r, run)| {
                curves.iter().enumerate().filter_map(move |(c, curve)| {
                    let pts: Vec<(f64, f64)> = run
                        .points
                        .iter()
                        .filter_map(|p| (curve.get)(p).map(|y| (self.x.of(p), y)))
                        .filter(|(x, y)| x.is_finite() && y.is_finite())
                        .collect();
                    (!pts.is_empty()).then_some((r, c, pts))
                })
            })
            .collect();
        let all = || series.iter().flat_map(|s| s.2.iter());
        let (mut x0, mut x1) = min_max(all().map(|p| p.0)).unwrap_or((0.0, 1.0));
        if x1 - x0 < 1e-9 {
            x0 -= 0.5;
            x1 += 0.5;
        }
        let (y0, y1) = match min_max(all().map(|p| p.1)) {
            None => (0.0, 1.0),
            Some((lo, hi)) if accuracy => {
                let lo = (lo - 0.5).floor().max(0.0);
                let hi = (hi + 0.5).ceil().min(100.0);
                (lo, if hi - lo < 1.0 { lo + 1.0 } else { hi })
            }
            Some((_, hi)) => (0.0, if hi > 0.0 { hi * 1.08 } else { 1.0 }),
        };
        let mut chart = ChartBuilder::on(area)
            .caption(caption, font(17.0))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        let x_is_epoch = self.x == XAxis::Epoch;
        chart
            .configure_mesh()
            .x_desc(self.x.label())
            .y_desc(y_desc)
            .label_style(font(13.0))
            .axis_desc_style(font(15.0))
            .x_labels(if x_is_epoch {
                ((x1 - x0).round() as usize + 1).min(11)
            } else {
                8
            })
            .x_label_formatter(&|v| format_tick(*v, x_is_epoch))
            .y_label_formatter(&|v| format!("{v:.2}"))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let several = self.runs.len() > 1;
        for (r, c, pts) in &series {
            // One run: a colour per split. Several: a colour per run, the split in the line's
            // pattern (test solid, train dashed, validation dotted).
            let colour = if several {
                PALETTE[r % PALETTE.len()]
            } else {
                PALETTE[*c]
            };
            let style = colour.stroke_width(2);
            let name = curves[*c].name;
            let label = if several {
                format!("{} {name}", self.runs[*r].label)
            } else {
                name.to_owned()
            };
            let ann = match (several, name) {
                (true, "train") => {
                    chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 8, 5, style))?
                }
                (true, "validation") => {
                    chart.draw_series(DashedLineSeries::new(pts.iter().copied(), 2, 4, style))?
                }
                _ => chart.draw_series(LineSeries::new(pts.iter().copied(), style))?,
            };
            // The legend's sample repeats the line's pattern: three segments, touching for a
            // solid line.
            let segs: [(i32, i32); 3] = match (several, name) {
                (true, "train") => [(0, 6), (9, 15), (18, 24)],
                (true, "validation") => [(0, 2), (11, 13), (22, 24)],
                _ => [(0, 8), (8, 16), (16, 24)],
            };
            ann.label(label).legend(move |(x, y)| {
                let seg = |(a, b): (i32, i32)| {
                    PathElement::new(vec![(a, 0), (b, 0)], colour.stroke_width(2))
                };
                EmptyElement::at((x, y)) + seg(segs[0]) + seg(segs[1]) + seg(segs[2])
            });
            // Markers, so a run of one or two epochs is still visible.
            if pts.len() <= 30 {
                chart.draw_series(
                    pts.iter()
                        .map(|&p| Circle::new(p, 3, colour.filled()).into_dyn()),
                )?;
            }
        }
        chart
            .configure_series_labels()
            .position(if accuracy {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .label_font(font(13.0))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()?;
        Ok(())
    }
}

fn min_max(it: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    it.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Tick labels: whole epochs, else short numbers (12k, 1.2M) that never collide.
fn format_tick(v: f64, whole: bool) -> String {
    if whole {
        return if (v - v.round()).abs() < 1e-6 {
            format!("{}", v.round())
        } else {
            String::new()
        };
    }
    let a = v.abs();
    if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}
