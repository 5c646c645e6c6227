//! Turning a photo or drawing of a digit into the 28×28 input MNIST's digits were made as, so a
//! model trained on MNIST can read it. Pure: no files, so a web page can call the same function.
//!
//! MNIST's preparation (LeCun et al.): white ink on black, the digit scaled to fit a 20×20 box
//! keeping its aspect ratio (anti-aliased), then placed in 28×28 with its centre of mass at the
//! centre.

use image::{DynamicImage, GrayImage, imageops::FilterType};

use crate::data::{IMAGE_SIDE, PIXELS};

/// Why an image cannot be read as a digit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrepareError {
    #[error("the image is empty (0 pixels)")]
    Empty,
    #[error("the image is all one colour: no digit to read")]
    Blank,
}

/// The side of the box the digit is scaled to fit, as in MNIST.
const BOX: u32 = 20;
/// Below this contrast (of 255) between ink and background there is no digit, only noise.
const MIN_CONTRAST: f32 = 24.0;

/// The 784 inputs (row-major, 0 background, 1 ink, as `batch_gather` gives the network) for an
/// image of one digit in any size and colours:
/// 1. grayscale, transparent pixels read as white paper;
/// 2. inverted when the background (the border's median) is light, so ink is bright;
/// 3. the background level subtracted and the contrast stretched to 0–255;
/// 4. cropped to the ink (pixels above a quarter of the ink's peak);
/// 5. scaled to fit 20×20 keeping the aspect ratio;
/// 6. placed in 28×28 with its centre of mass at the centre.
pub fn prepare_digit(img: &DynamicImage) -> Result<Vec<f32>, PrepareError> {
    let gray = prepare_gray(img)?;
    Ok(gray.pixels().map(|p| p.0[0] as f32 / 255.0).collect())
}

/// [`prepare_digit`] as a 28×28 8-bit image (0 background), for `--show-input`.
pub fn prepare_gray(img: &DynamicImage) -> Result<GrayImage, PrepareError> {
    let (w, h) = (img.width(), img.height());
    if w == 0 || h == 0 {
        return Err(PrepareError::Empty);
    }
    // Transparent pixels over white paper: a PNG drawn with a transparent background and dark
    // ink would otherwise read as black on black.
    let la = img.to_luma_alpha8();
    let mut v: Vec<f32> = la
        .pixels()
        .map(|p| {
            let a = p.0[1] as f32 / 255.0;
            p.0[0] as f32 * a + 255.0 * (1.0 - a)
        })
        .collect();
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    if hi - lo < MIN_CONTRAST {
        return Err(PrepareError::Blank);
    }
    let mut border: Vec<f32> = (0..w as usize)
        .flat_map(|x| [v[x], v[(h as usize - 1) * w as usize + x]])
        .chain(
            (0..h as usize).flat_map(|y| [v[y * w as usize], v[y * w as usize + w as usize - 1]]),
        )
        .collect();
    border.sort_by(f32::total_cmp);
    let bg = border[border.len() / 2];
    if bg > (lo + hi) / 2.0 {
        v.iter_mut().for_each(|x| *x = 255.0 - *x);
    }
    let bg = if bg > (lo + hi) / 2.0 { 255.0 - bg } else { bg };
    let peak = v.iter().copied().fold(f32::MIN, f32::max);
    if peak - bg < MIN_CONTRAST {
        return Err(PrepareError::Blank);
    }
    let stretch = 255.0 / (peak - bg);
    v.iter_mut()
        .for_each(|x| *x = ((*x - bg) * stretch).clamp(0.0, 255.0));

    // Crop to the ink.
    let threshold = 24.0;
    let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if v[(y * w + x) as usize] > threshold {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    if x0 > x1 {
        return Err(PrepareError::Blank);
    }
    let (cw, ch) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = GrayImage::from_fn(cw, ch, |x, y| {
        image::Luma([v[((y0 + y) * w + x0 + x) as usize].round() as u8])
    });

    // Fit 20×20, keeping the aspect ratio; a thin stroke (a 1) stays at least a pixel wide.
    let scale = BOX as f32 / cw.max(ch) as f32;
    let nw = ((cw as f32 * scale).round() as u32).clamp(1, BOX);
    let nh = ((ch as f32 * scale).round() as u32).clamp(1, BOX);
    let digit = image::imageops::resize(&crop, nw, nh, FilterType::Triangle);

    // Centre of mass to the centre of the 28×28 field.
    let (cx, cy) = centre_of_mass(&digit).ok_or(PrepareError::Blank)?;
    let side = IMAGE_SIDE as i64;
    let half = side as f64 / 2.0;
    let place = |com: f64, len: u32| ((half - com).round() as i64).clamp(0, side - len as i64);
    let (ox, oy) = (place(cx, nw), place(cy, nh));
    let mut out = GrayImage::new(IMAGE_SIDE as u32, IMAGE_SIDE as u32);
    image::imageops::overlay(&mut out, &digit, ox, oy);
    debug_assert_eq!(out.len(), PIXELS);
    Ok(out)
}

/// The intensity-weighted mean pixel index; None for an all-black image. MNIST puts this at
/// index (14, 14) of the 28×28 field (measured on its test set: 14.0 ± 0.3 on each axis).
fn centre_of_mass(img: &GrayImage) -> Option<(f64, f64)> {
    let (mut m, mut mx, mut my) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y, p) in img.enumerate_pixels() {
        let v = p.0[0] as f64;
        m += v;
        mx += v * x as f64;
        my += v * y as f64;
    }
    (m > 0.0).then(|| (mx / m, my / m))
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgba, RgbaImage};

    /// A dark bar on white paper, off-centre in a large canvas.
    fn bar(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageLuma8(GrayImage::from_fn(w, h, |x, y| {
            if (30..40).contains(&x) && (10..70).contains(&y) {
                Luma([10])
            } else {
                Luma([240])
            }
        }))
    }

    #[test]
    fn light_background_is_inverted_cropped_scaled_and_centred() {
        let g = prepare_gray(&bar(200, 100)).unwrap();
        assert_eq!(g.dimensions(), (28, 28));
        // Inverted: the corners are background (0), the middle is ink.
        assert_eq!(g.get_pixel(0, 0).0[0], 0);
        assert!(g.get_pixel(14, 14).0[0] > 200);
        // The 60-tall bar now spans the 20-pixel box.
        let rows: Vec<u32> = (0..28)
            .filter(|&y| (0..28).any(|x| g.get_pixel(x, y).0[0] > 128))
            .collect();
        assert_eq!(rows.len(), 20, "{rows:?}");
        let (cx, cy) = centre_of_mass(&g).unwrap();
        assert!(
            (cx - 14.0).abs() < 1.0 && (cy - 14.0).abs() < 1.0,
            "{cx} {cy}"
        );
    }

    #[test]
    fn dark_background_is_kept() {
        let img = DynamicImage::ImageLuma8(GrayImage::from_fn(50, 50, |x, y| {
            Luma([if (20..30).contains(&x) && (5..45).contains(&y) {
                250
            } else {
                0
            }])
        }));
        let x = prepare_digit(&img).unwrap();
        assert_eq!(x.len(), 784);
        assert_eq!(x[0], 0.0);
        assert!(x[14 * 28 + 14] > 0.8);
    }

    #[test]
    fn transparent_background_reads_as_paper() {
        let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(40, 40, |x, y| {
            if (15..25).contains(&x) && (5..35).contains(&y) {
                Rgba([0, 0, 0, 255])
            } else {
                Rgba([0, 0, 0, 0])
            }
        }));
        let g = prepare_gray(&img).unwrap();
        assert_eq!(g.get_pixel(0, 0).0[0], 0);
        assert!(g.get_pixel(14, 14).0[0] > 200);
    }

    #[test]
    fn blank_and_empty_are_errors() {
        let flat = DynamicImage::ImageLuma8(GrayImage::from_pixel(30, 30, Luma([128])));
        assert_eq!(prepare_digit(&flat), Err(PrepareError::Blank));
        let empty = DynamicImage::ImageLuma8(GrayImage::new(0, 0));
        assert_eq!(prepare_digit(&empty), Err(PrepareError::Empty));
    }
}
