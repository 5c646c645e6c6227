//! `train --plot`: the curves of the run so far, redrawn after every epoch.

use std::path::{Path, PathBuf};

use super::curves::{CurvePoint, CurvesFigure, Run, XAxis};
use super::{Format, check_picture_path, render_bytes};
use crate::error::Result;

/// Redraws the loss and accuracy of a training run into one PNG or SVG file. Each update
/// replaces the whole file atomically, so a viewer watching it never sees half a picture.
pub struct TrainPlot {
    path: PathBuf,
    format: Format,
    title: String,
}

impl TrainPlot {
    /// Checks `path` (a .png or .svg name in a directory that exists) before any training.
    /// `title` should name the model, dataset, device and optimizer.
    pub fn new(path: &Path, title: String) -> Result<Self> {
        let format = check_picture_path("--plot", path)?;
        Ok(TrainPlot {
            path: path.to_owned(),
            format,
            title,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Redraws the figure from all the epochs so far.
    pub fn update(&mut self, records: &[CurvePoint]) -> Result<()> {
        let runs = [Run {
            label: String::new(),
            points: records.to_vec(),
        }];
        let fig = CurvesFigure {
            runs: &runs,
            x: XAxis::Epoch,
            title: self.title.clone(),
        };
        let bytes = render_bytes(&fig, self.format, &self.path)?;
        crate::write_atomic(&self.path, &bytes)
    }
}
