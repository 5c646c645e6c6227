//! Pictures: training curves, the confusion matrix, image grids. Each figure draws onto any
//! plotters backend, so one drawing serves PNG and SVG; the format comes from the file's
//! extension. Text uses a font embedded in the binary, so a machine without fonts (CI) draws the
//! same labels.

pub mod bench;
pub mod confusion;
pub mod curves;
pub mod grid;
pub mod landscape;
pub mod modes;
pub mod overfit;
pub mod prune;
pub mod sweep;
pub mod train;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use image::ImageEncoder;

use crate::error::{Error, Result};

pub use curves::{CurvePoint, Run, XAxis};
pub use train::TrainPlot;

/// DejaVu Sans cut down to the characters the pictures use (see assets/fonts/README.md).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");
/// The family name every figure asks for; registered once, on first use.
pub const FONT_FAMILY: &str = "sans-serif";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

/// Checks an output picture path before any work: a `.png` or `.svg` name, not a directory, in a
/// directory that exists. `flag` names the option in the message.
pub fn check_picture_path(flag: &str, path: &Path) -> Result<Format> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("png") => Format::Png,
        Some("svg") => Format::Svg,
        _ => {
            return Err(Error::InvalidArg(format!(
                "{flag} {}: the name must end in .png or .svg (that picks the format)",
                path.display()
            )));
        }
    };
    crate::check_output_file(flag, path)?;
    Ok(format)
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are ours and known good; a failure here would only mean no text, which the
        // tests (that look at rendered pixels) would catch.
        let _ = plotters::style::register_font(FONT_FAMILY, FontStyle::Normal, FONT);
    });
}

/// A figure that can draw itself on any backend.
pub trait Figure {
    /// Width and height in pixels (SVG user units).
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

pub type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// Renders `fig` in `format` and returns the file's bytes.
pub fn render_bytes(fig: &impl Figure, format: Format, path: &Path) -> Result<Vec<u8>> {
    register_font();
    let (w, h) = fig.size();
    let err = |msg: String| Error::Plot {
        path: path.to_owned(),
        msg,
    };
    match format {
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
                fig.draw(&root).map_err(|e| err(e.to_string()))?;
                root.present().map_err(|e| err(e.to_string()))?;
            }
            let mut png = Vec::new();
            // Plots are mostly flat colour: the best compression keeps them small to commit.
            image::codecs::png::PngEncoder::new_with_quality(
                &mut png,
                image::codecs::png::CompressionType::Best,
                image::codecs::png::FilterType::Adaptive,
            )
            .write_image(&rgb, w, h, image::ColorType::Rgb8)
            .map_err(|e| err(e.to_string()))?;
            Ok(png)
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
                fig.draw(&root).map_err(|e| err(e.to_string()))?;
                root.present().map_err(|e| err(e.to_string()))?;
            }
            Ok(svg.into_bytes())
        }
    }
}

/// Renders `fig` to `path` (format by extension), atomically.
pub fn render(fig: &impl Figure, path: &Path) -> Result<()> {
    let format = check_picture_path("output", path)?;
    let bytes = render_bytes(fig, format, path)?;
    crate::write_atomic(path, &bytes)
}

/// A text style in the embedded font.
pub fn font(size: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&BLACK)
}

/// Ten distinct colours (Tableau 10), for runs and classes.
pub const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Diverging blue–white–red for v in [-1, 1] (clamped): negative blue, positive red.
pub fn diverging(v: f32) -> [u8; 3] {
    let v = v.clamp(-1.0, 1.0);
    let (far, t) = if v < 0.0 {
        ([33.0, 102.0, 172.0], -v)
    } else {
        ([178.0, 24.0, 43.0], v)
    };
    let mix = |i: usize| (255.0 + (far[i] - 255.0) * t).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// Sequential white–blue for t in [0, 1] (clamped).
pub fn sequential(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let far = [8.0, 48.0, 107.0];
    let mix = |i: usize| (255.0 + (far[i] - 255.0) * t).round() as u8;
    RGBColor(mix(0), mix(1), mix(2))
}

/// Draws `lines` centred at the top of `area` (the first larger), each wrapped at " · " to fit
/// the width; returns the height used.
pub fn draw_title<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    lines: &[String],
) -> std::result::Result<i32, DrawingAreaErrorKind<DB::ErrorType>> {
    let width = area.dim_in_pixel().0 as i32 - 20;
    let mut y = 8;
    for (i, line) in lines.iter().enumerate() {
        let style = font(if i == 0 { 18.0 } else { 14.0 });
        for part in wrap(area, line, &style, width)? {
            let (w, h) = area.estimate_text_size(&part, &style)?;
            let x = (area.dim_in_pixel().0 as i32 - w as i32) / 2;
            area.draw_text(&part, &style, (x.max(4), y))?;
            y += h as i32 + 6;
        }
    }
    Ok(y + 4)
}

/// Splits `text` at " · " into lines no wider than `width`.
fn wrap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    style: &TextStyle,
    width: i32,
) -> std::result::Result<Vec<String>, DrawingAreaErrorKind<DB::ErrorType>> {
    let mut lines: Vec<String> = Vec::new();
    for part in text.split(" · ") {
        let joined = match lines.last() {
            Some(last) => format!("{last} · {part}"),
            None => part.to_owned(),
        };
        let fits = area.estimate_text_size(&joined, style)?.0 as i32 <= width;
        match lines.last_mut() {
            Some(last) if fits => *last = joined,
            _ => lines.push(part.to_owned()),
        }
    }
    Ok(lines)
}
