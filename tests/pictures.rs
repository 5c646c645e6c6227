//! The picture commands end to end on the CPU: `plot`, `weights`, `eval --confusion
//! --confusion-png --errors-png`, `predict`, and the `TrainPlot` library API, on a small model
//! trained once for the whole file.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{descent, mnist_mirror};
use descent::data::{DataSource, Dataset, DatasetKind, IMAGE_SIDE, PIXELS};
use image::{GrayImage, Luma};

struct Trained {
    dir: PathBuf,
    data_dir: PathBuf,
    checkpoint: PathBuf,
    metrics: PathBuf,
}

/// One short training run (10k samples, 2 epochs, 64 hidden units) shared by every test.
fn trained() -> &'static Trained {
    static T: OnceLock<Trained> = OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let data_dir = dir.join("data");
        let checkpoint = dir.join("model.safetensors");
        let metrics = dir.join("run.jsonl");
        let (ok, out, err) = descent(&[
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--limit",
            "10000",
            "--epochs",
            "3",
            "--hidden",
            "64",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--mirror",
            &mnist_mirror(),
            "--metrics",
            metrics.to_str().unwrap(),
            "--save",
            checkpoint.to_str().unwrap(),
        ]);
        assert!(ok, "{out}\n{err}");
        Trained {
            dir,
            data_dir,
            checkpoint,
            metrics,
        }
    })
}

fn data_args(t: &Trained) -> Vec<String> {
    vec![
        "--data-dir".into(),
        t.data_dir.to_str().unwrap().into(),
        "--mirror".into(),
        mnist_mirror(),
        "--quiet".into(),
    ]
}

fn run(args: &[String]) -> (bool, String, String) {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    descent(&a)
}

fn s(p: &Path) -> String {
    p.to_str().unwrap().to_owned()
}

fn test_set(t: &Trained) -> Dataset {
    DataSource {
        kind: DatasetKind::Mnist,
        dir: t.data_dir.clone(),
        mirror: None,
        progress: false,
    }
    .load()
    .unwrap()
    .test
}

/// A PNG file that decodes, at the size given, and is not one flat colour.
fn assert_png(path: &Path, size: (u32, u32)) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let first = *img.get_pixel(0, 0);
    let differing = img.pixels().filter(|&&p| p != first).count();
    assert!(
        differing > 1000,
        "{}: only {differing} pixels differ from the background",
        path.display()
    );
}

/// An SVG document of the size given, with text and shapes in it.
fn assert_svg(path: &Path, size: (u32, u32)) {
    let svg = std::fs::read_to_string(path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
    let head = &svg[..svg.find('>').unwrap()];
    assert!(
        head.contains(&format!("width=\"{}\"", size.0))
            && head.contains(&format!("height=\"{}\"", size.1)),
        "{head}"
    );
    assert!(svg.contains("<text") && svg.trim_end().ends_with("</svg>"));
}

#[test]
fn plot_draws_runs_as_png_and_svg() {
    let t = trained();
    let second = t.dir.join("second.jsonl");
    std::fs::copy(&t.metrics, &second).unwrap();
    for (ext, x) in [("png", "epoch"), ("svg", "seconds"), ("png", "samples")] {
        let out = t.dir.join(format!("curves-{x}.{ext}"));
        let (ok, o, e) = run(&[
            "plot".into(),
            s(&t.metrics),
            s(&second),
            "--labels".into(),
            "first,second".into(),
            "--x".into(),
            x.into(),
            "-o".into(),
            s(&out),
        ]);
        assert!(ok, "{o}\n{e}");
        if ext == "png" {
            assert_png(&out, (1200, 520));
        } else {
            assert_svg(&out, (1200, 520));
            let svg = std::fs::read_to_string(&out).unwrap();
            assert!(svg.contains("first test") && svg.contains("second train"));
            assert!(svg.contains("training time (s)"));
        }
    }
}

#[test]
fn plot_names_the_file_and_line_of_a_broken_metrics_line() {
    let t = trained();
    let bad = t.dir.join("broken.jsonl");
    let good = std::fs::read_to_string(&t.metrics).unwrap();
    let first = good.lines().next().unwrap();
    std::fs::write(&bad, format!("{first}\n{{\"epoch\": 2, \"train_lo\n")).unwrap();
    let (ok, _, err) = run(&["plot".into(), s(&bad), "-o".into(), s(&t.dir.join("x.png"))]);
    assert!(!ok);
    assert!(err.contains("broken.jsonl, line 2"), "{err}");

    let (ok, _, err) = run(&[
        "plot".into(),
        s(&t.metrics),
        "--labels".into(),
        "a,b".into(),
        "-o".into(),
        s(&t.dir.join("x.png")),
    ]);
    assert!(!ok && err.contains("--labels"), "{err}");
}

#[test]
fn output_paths_are_checked_before_any_work() {
    let t = trained();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "plot".into(),
                s(&t.metrics),
                "-o".into(),
                "/no/such/dir/x.png".into(),
            ],
            "--output /no/such/dir/x.png: directory /no/such/dir does not exist",
        ),
        (
            vec![
                "plot".into(),
                s(&t.metrics),
                "-o".into(),
                s(&t.dir.join("x.gif")),
            ],
            "must end in .png or .svg",
        ),
        (
            vec![
                "weights".into(),
                "--checkpoint".into(),
                s(&t.checkpoint),
                "--png".into(),
                s(&t.dir.join("d.png/")),
            ],
            "--png",
        ),
        (
            vec![
                "eval".into(),
                "--checkpoint".into(),
                "/no/such/checkpoint".into(),
                "--confusion-png".into(),
                "/no/such/dir/c.png".into(),
            ],
            "--confusion-png /no/such/dir/c.png",
        ),
        (
            vec![
                "eval".into(),
                "--checkpoint".into(),
                "/no/such/checkpoint".into(),
                "--errors-png".into(),
                s(&t.dir),
            ],
            "--errors-png",
        ),
        (
            vec![
                "predict".into(),
                "--checkpoint".into(),
                "/no/such/checkpoint".into(),
                "--show-input".into(),
                "/no/such/dir/in.png".into(),
                "x.png".into(),
            ],
            "--show-input /no/such/dir/in.png",
        ),
    ];
    std::fs::create_dir_all(t.dir.join("d.png")).unwrap();
    for (args, want) in cases {
        let (ok, _, err) = run(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn weights_draws_one_tile_per_unit() {
    let t = trained();
    for ext in ["png", "svg"] {
        let out = t.dir.join(format!("weights.{ext}"));
        let (ok, o, e) = run(&[
            "weights".into(),
            "--checkpoint".into(),
            s(&t.checkpoint),
            "--png".into(),
            s(&out),
        ]);
        assert!(ok, "{o}\n{e}");
        assert!(o.contains("(64 units)"), "{o}");
        // 64 units: 8 columns of 28·4 + 8 pixels, 16-pixel margins; 3 title lines, 8 rows, the
        // colour bar.
        let size = (8 * (112 + 8) + 32, 30 + 66 + 8 * 120 + 56 + 16);
        if ext == "png" {
            assert_png(&out, size);
        } else {
            assert_svg(&out, size);
        }
    }
}

fn eval_json(t: &Trained, extra: &[String]) -> serde_json::Value {
    let mut args = vec![
        "eval".into(),
        "--json".into(),
        "--device".into(),
        "cpu".into(),
        "--checkpoint".into(),
        s(&t.checkpoint),
    ];
    args.extend(data_args(t));
    args.extend_from_slice(extra);
    let (ok, out, err) = run(&args);
    assert!(ok, "{out}\n{err}");
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn confusion_rows_sum_to_the_class_counts_and_its_trace_is_the_accuracy() {
    let t = trained();
    let png = t.dir.join("confusion.png");
    let svg = t.dir.join("confusion.svg");
    let e = eval_json(
        t,
        &["--confusion".into(), "--confusion-png".into(), s(&png)],
    );
    let test = test_set(t);
    let m: Vec<Vec<u64>> = serde_json::from_value(e["confusion"].clone()).unwrap();
    assert_eq!(m.len(), 10);
    let mut correct = 0;
    for (c, row) in m.iter().enumerate() {
        let count = test.labels.iter().filter(|&&l| l as usize == c).count() as u64;
        assert_eq!(row.iter().sum::<u64>(), count, "row {c}");
        correct += row[c];
    }
    let acc = e["test_accuracy"].as_f64().unwrap();
    assert_eq!(correct as f64 / test.len() as f64, acc);
    let recall0 = e["recall"][0].as_f64().unwrap();
    assert!((recall0 - m[0][0] as f64 / m[0].iter().sum::<u64>() as f64).abs() < 1e-12);
    assert_png(&png, (760, 770));

    // The text table, and SVG.
    let mut args = vec![
        "eval".into(),
        "--confusion".into(),
        "--device".into(),
        "cpu".into(),
        "--checkpoint".into(),
        s(&t.checkpoint),
        "--confusion-png".into(),
        s(&svg),
    ];
    args.extend(data_args(t));
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    assert!(out.contains("recall") && out.contains("precision"), "{out}");
    assert!(out.contains(&format!("({correct} of 10000)")), "{out}");
    assert_svg(&svg, (760, 770));
}

#[test]
fn errors_grid_shows_only_mistakes_surest_first() {
    let t = trained();
    let png = t.dir.join("errors.png");
    let e = eval_json(
        t,
        &[
            "--errors".into(),
            "12".into(),
            "--errors-png".into(),
            s(&png),
        ],
    );
    let test = test_set(t);
    let errors = e["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 12);
    let mut last = f64::INFINITY;
    for m in errors {
        let i = m["index"].as_u64().unwrap() as usize;
        let (label, pred) = (
            m["label"].as_u64().unwrap(),
            m["predicted"].as_u64().unwrap(),
        );
        assert_eq!(label, test.labels[i] as u64, "the label of sample {i}");
        assert_ne!(label, pred, "sample {i} is not a mistake");
        let p = m["probability"].as_f64().unwrap();
        assert!(p <= last && p > 0.1, "{p} after {last}");
        last = p;
    }
    // 12 tiles: 4 columns of 112 + 8, at least 520 wide; title, 3 rows of 112 + 8 + 2 captions.
    assert_png(&png, (520, 30 + 66 + 3 * (120 + 32) + 16));
    // The first tile holds the first mistake's image, dark ink on white, zoomed 4×.
    let img = image::open(&png).unwrap().to_luma8();
    let first = errors[0]["index"].as_u64().unwrap() as usize;
    let px = &test.images[first * PIXELS..(first + 1) * PIXELS];
    let left = (520 - (4 * 120 - 8)) / 2;
    let top = 96;
    let mut close = 0;
    for y in 0..28 {
        for x in 0..28 {
            let shown = img.get_pixel(left + x * 4 + 2, top + y * 4 + 2).0[0] as i32;
            if (shown - (255 - px[(y * 28 + x) as usize] as i32)).abs() <= 2 {
                close += 1;
            }
        }
    }
    assert!(
        close > 770,
        "only {close} of 784 pixels match sample {first}"
    );
}

/// MNIST test images redrawn the way people's files come: zoomed, inverted (dark ink on white),
/// off-centre on a larger canvas, as PNG, JPEG and BMP.
fn redraw(px: &[u8], i: usize) -> (image::DynamicImage, &'static str) {
    let digit = GrayImage::from_fn(28, 28, |x, y| Luma([px[(y * 28 + x) as usize]]));
    let zoom = [1u32, 2, 3, 5][i % 4];
    let big = image::imageops::resize(
        &digit,
        28 * zoom,
        28 * zoom,
        image::imageops::FilterType::Triangle,
    );
    let invert = i.is_multiple_of(2);
    let (w, h) = (28 * zoom + 40 + 7 * (i as u32 % 5), 28 * zoom + 25);
    let mut canvas = GrayImage::from_pixel(w, h, Luma([if invert { 255 } else { 0 }]));
    for (x, y, p) in big.enumerate_pixels() {
        let v = if invert { 255 - p.0[0] } else { p.0[0] };
        canvas.put_pixel(x + 3 + (i as u32 % 7) * 5, y + 4, Luma([v]));
    }
    let ext = ["png", "png", "jpg", "bmp"][i % 4];
    (image::DynamicImage::ImageLuma8(canvas), ext)
}

#[test]
fn predict_reads_redrawn_mnist_digits_as_well_as_the_model_reads_mnist() {
    let t = trained();
    let test = test_set(t);
    let n = 200;
    let dir = t.dir.join("digits");
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for i in 0..n {
        let (img, ext) = redraw(&test.images[i * PIXELS..(i + 1) * PIXELS], i);
        let path = dir.join(format!("{i}.{ext}"));
        img.save(&path).unwrap();
        files.push(s(&path));
    }
    let mut args = vec![
        "predict".into(),
        "--json".into(),
        "--checkpoint".into(),
        s(&t.checkpoint),
    ];
    args.extend(files.iter().cloned());
    let (ok, out, err) = run(&args);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), n);
    let mut right = 0;
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["file"].as_str(), Some(files[i].as_str()));
        let top = l["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        let p: Vec<f64> = top
            .iter()
            .map(|c| c["probability"].as_f64().unwrap())
            .collect();
        assert!(p[0] >= p[1] && p[1] >= p[2] && p[0] <= 1.0);
        if l["prediction"].as_u64() == Some(test.labels[i] as u64) {
            right += 1;
        }
    }
    // The same model on the same 200 samples as MNIST has them.
    let ck = descent::model::load_checkpoint(&t.checkpoint, None, None).unwrap();
    let mut subset = test.clone();
    subset.truncate(n);
    let probs = descent::analysis::dataset_probabilities(&ck.spec, &ck.params, &subset);
    let mnist_right = probs
        .iter()
        .zip(&subset.labels)
        .filter(|(p, l)| descent::analysis::argmax(p) == **l as usize)
        .count();
    eprintln!("redrawn {right}/{n}, MNIST {mnist_right}/{n}");
    assert!(
        right + 6 >= mnist_right,
        "redrawn digits: {right}/{n} right, the same MNIST images: {mnist_right}/{n}"
    );
}

#[test]
fn predict_reports_each_bad_file_and_still_classifies_the_rest() {
    let t = trained();
    let dir = t.dir.join("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let test = test_set(t);
    let good = dir.join("seven.png");
    redraw(&test.images[..PIXELS], 0).0.save(&good).unwrap();
    let garbage = dir.join("garbage.png");
    std::fs::write(&garbage, b"this is not a picture").unwrap();
    let empty = dir.join("empty.bmp");
    std::fs::write(&empty, b"").unwrap();
    let blank = dir.join("blank.png");
    GrayImage::from_pixel(40, 40, Luma([255]))
        .save(&blank)
        .unwrap();
    let missing = dir.join("missing.png");
    let shown = dir.join("seen.png");
    let (ok, out, err) = run(&[
        "predict".into(),
        "--checkpoint".into(),
        s(&t.checkpoint),
        "--show-input".into(),
        s(&shown),
        s(&garbage),
        s(&good),
        s(&empty),
        s(&blank),
        s(&missing),
    ]);
    assert!(!ok, "a run with bad files must fail");
    assert!(
        err.contains("4 of 5 images could not be classified"),
        "{err}"
    );
    for (f, why) in [
        (&garbage, "cannot decode the image"),
        (&empty, "the file is empty"),
        (&blank, "all one colour"),
        (&missing, "No such file"),
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(f.to_str().unwrap()))
            .unwrap_or_else(|| panic!("no error line for {}: {err}", f.display()));
        assert!(line.contains(why), "{line}");
    }
    let line = out.lines().find(|l| l.contains("seven.png")).unwrap();
    assert!(
        line.starts_with(&format!("{}: {} (", good.display(), test.labels[0])),
        "{line}"
    );
    // With several files, --show-input numbers them; the good one is the second.
    let seen = image::open(dir.join("seen-2.png")).unwrap().to_luma8();
    assert_eq!(seen.dimensions(), (IMAGE_SIDE as u32, IMAGE_SIDE as u32));
    assert_eq!(seen.get_pixel(0, 0).0[0], 0);
}

#[test]
fn predict_refuses_a_checkpoint_for_another_input_size() {
    let t = trained();
    let ck = t.dir.join("wide.safetensors");
    let w = vec![0f32; 10 * 100];
    let b = vec![0f32; 10];
    let tensors = vec![
        (
            "layers.0.weight".to_owned(),
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![10, 100],
                bytemuck::cast_slice(&w),
            )
            .unwrap(),
        ),
        (
            "layers.0.bias".to_owned(),
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![10],
                bytemuck::cast_slice(&b),
            )
            .unwrap(),
        ),
    ];
    std::fs::write(&ck, safetensors::serialize(tensors, None).unwrap()).unwrap();
    let (ok, _, err) = run(&[
        "predict".into(),
        "--checkpoint".into(),
        s(&ck),
        "x.png".into(),
    ]);
    assert!(!ok);
    assert!(err.contains("100 inputs") && err.contains("784"), "{err}");
}

#[test]
fn train_plot_redraws_the_whole_figure_atomically() {
    use descent::plot::{CurvePoint, TrainPlot};
    let t = trained();
    assert!(TrainPlot::new(&t.dir.join("p.jpg"), "x".into()).is_err());
    assert!(TrainPlot::new(Path::new("/no/such/dir/p.png"), "x".into()).is_err());
    let dir = t.dir.join("trainplot");
    std::fs::create_dir_all(&dir).unwrap();
    for ext in ["png", "svg"] {
        let path = dir.join(format!("live.{ext}"));
        let mut plot =
            TrainPlot::new(&path, "784-64-10 · mnist · cpu · SGD lr 0.03".into()).unwrap();
        let mut points = Vec::new();
        for epoch in 1..=3 {
            points.push(CurvePoint {
                epoch,
                seconds: epoch as f64 * 0.5,
                samples: epoch as f64 * 60_000.0,
                train_loss: 0.5 / epoch as f64,
                test_loss: Some(0.4 / epoch as f64),
                test_accuracy: Some(0.9 + 0.02 * epoch as f64),
                val_loss: Some(0.45 / epoch as f64),
                val_accuracy: Some(0.89 + 0.02 * epoch as f64),
                ..Default::default()
            });
            plot.update(&points).unwrap();
            if ext == "png" {
                assert_png(&path, (1200, 520));
            } else {
                assert_svg(&path, (1200, 520));
                let svg = std::fs::read_to_string(&path).unwrap();
                assert!(svg.contains("validation") && svg.contains("SGD lr 0.03"));
            }
        }
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
