//! `--data images:DIR`: DIR/`<class>`/*.{png,jpg,jpeg,bmp}, as torchvision's ImageFolder: class
//! names from the folder names (sorted), every image converted to grayscale or RGB
//! (`--channels`) and resized to one size (`--image-size`, default the first image's), decoded
//! in parallel. Samples are stored channel-major, [channels, height, width], as bytes.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;

use super::{Known, Raw, ReadOptions, check_class_count};
use crate::error::{Error, Result};

const EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The class folders of `dir` (sorted) and each one's image files (sorted).
pub fn list(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut classes = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
            .map_err(|e| Error::io(&p, e))?
            .filter_map(|f| f.ok().map(|f| f.path()))
            .filter(|f| {
                f.is_file()
                    && f.extension().is_some_and(|x| {
                        EXTENSIONS
                            .iter()
                            .any(|ok| x.to_string_lossy().eq_ignore_ascii_case(ok))
                    })
            })
            .collect();
        files.sort();
        classes.push((e.file_name().to_string_lossy().into_owned(), files));
    }
    classes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(classes)
}

pub fn decode(path: &Path) -> std::result::Result<image::DynamicImage, String> {
    image::io::Reader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .decode()
        .map_err(|e| format!("cannot decode it: {e}"))
}

/// One image as [channels, h, w] bytes (as f32).
pub fn pixels(img: &image::DynamicImage, channels: usize, (h, w): (usize, usize)) -> Vec<f32> {
    let img = if img.width() as usize != w || img.height() as usize != h {
        img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle)
    } else {
        img.clone()
    };
    let plane = h * w;
    let mut out = vec![0.0; channels * plane];
    if channels == 1 {
        for (o, p) in out.iter_mut().zip(img.to_luma8().pixels()) {
            *o = p.0[0] as f32;
        }
    } else {
        for (i, p) in img.to_rgb8().pixels().enumerate() {
            for c in 0..3 {
                out[c * plane + i] = p.0[c] as f32;
            }
        }
    }
    out
}

pub fn read(dir: &Path, opts: &ReadOptions, known: Option<&Known>) -> Result<Raw> {
    let err = |msg: String| Error::Data {
        path: dir.to_owned(),
        msg,
    };
    if !dir.is_dir() {
        return Err(err("is not a directory of class folders".into()));
    }
    if opts.channels != 1 && opts.channels != 3 {
        return Err(Error::InvalidArg(format!(
            "--channels {}: give 1 (grayscale) or 3 (RGB)",
            opts.channels
        )));
    }
    let classes = list(dir)?;
    let total: usize = classes.iter().map(|c| c.1.len()).sum();
    if total == 0 {
        return Err(err(format!(
            "no images: expected {}/<class>/*.png (or .jpg, .bmp); found {} class folders",
            dir.display(),
            classes.len()
        )));
    }
    let names: Vec<String> = match known {
        Some(k) => {
            for (c, files) in &classes {
                if !k.class_names.contains(c) && !files.is_empty() {
                    return Err(err(format!(
                        "class folder `{c}` is not a class of the training data"
                    )));
                }
            }
            k.class_names.clone()
        }
        None => classes
            .iter()
            .filter(|c| !c.1.is_empty())
            .map(|c| c.0.clone())
            .collect(),
    };
    check_class_count(names.len(), dir)?;
    let files: Vec<(u8, PathBuf)> = classes
        .iter()
        .filter_map(|(c, f)| names.iter().position(|n| n == c).map(|i| (i as u8, f)))
        .flat_map(|(i, f)| f.iter().map(move |p| (i, p.clone())))
        .collect();
    // The size: the flag's, the training set's, or the first image that decodes.
    let size = match (opts.image_size, known.map(|k| &k.shape[..])) {
        (_, Some([c, h, w])) if *c == opts.channels => (*h, *w),
        (_, Some([c, _, _])) => {
            return Err(Error::InvalidArg(format!(
                "--channels {}: the model was trained on {c}",
                opts.channels
            )));
        }
        (Some(s), _) => s,
        _ => files
            .iter()
            .find_map(|(_, p)| decode(p).ok())
            .map(|i| (i.height() as usize, i.width() as usize))
            .ok_or_else(|| err("none of the images decodes".into()))?,
    };
    let bar = if opts.progress {
        ProgressBar::new(files.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("decoding {bar:30} {pos}/{len} images {eta}") {
        bar.set_style(style);
    }
    let width = opts.channels * size.0 * size.1;
    super::check_memory(dir, (files.len() * width) as u64 * 4, super::memory_limit())?;
    let decoded: Vec<std::result::Result<Vec<f32>, String>> = files
        .par_iter()
        .map(|(_, p)| {
            let r = decode(p).map(|img| pixels(&img, opts.channels, size));
            bar.inc(1);
            r
        })
        .collect();
    bar.finish_and_clear();
    let mut raw = Raw {
        x: Vec::with_capacity(files.len() * width),
        width,
        shape: vec![opts.channels, size.0, size.1],
        class_names: names,
        bytes: true,
        path: dir.to_owned(),
        ..Raw::default()
    };
    for ((c, p), d) in files.iter().zip(decoded) {
        match d {
            Ok(px) => {
                raw.x.extend_from_slice(&px);
                raw.labels.push(*c);
            }
            Err(msg) if opts.skip_bad => raw.skipped.push(format!("{}: {msg}", p.display())),
            Err(msg) => {
                return Err(Error::Image {
                    path: p.clone(),
                    msg: format!("{msg} (--skip-bad leaves such files out)"),
                });
            }
        }
    }
    Ok(raw)
}
