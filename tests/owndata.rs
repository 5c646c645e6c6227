//! `--data`: a user's own tables, IDX files and image folders, end to end through the binary on
//! both devices, the preprocessing saved in the checkpoint, and bad input.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::descent;

/// A separable table: class by which of the first three features is largest, with `noise`
/// columns of junk. Rows are written with the label as a name, last.
fn table(n: usize, noise: usize) -> Vec<(Vec<f32>, &'static str)> {
    let names = ["setosa", "versicolor", "virginica"];
    (0..n)
        .map(|i| {
            let c = i % 3;
            let mut row: Vec<f32> = (0..3 + noise)
                .map(|j| ((i * 7 + j * 13) % 10) as f32 / 10.0)
                .collect();
            row[c] += 5.0;
            // A scale unlike the others: standardisation must handle it.
            row[0] *= 100.0;
            (row, names[c])
        })
        .collect()
}

fn write_csv(path: &Path, header: bool, rows: &[(Vec<f32>, &str)]) {
    let mut s = String::new();
    if header {
        let w = rows[0].0.len();
        let cols: Vec<String> = (0..w).map(|j| format!("f{j}")).collect();
        s.push_str(&format!("{},species\n", cols.join(",")));
    }
    for (r, l) in rows {
        let v: Vec<String> = r.iter().map(|x| x.to_string()).collect();
        s.push_str(&format!("{},{l}\n", v.join(",")));
    }
    std::fs::write(path, s).unwrap();
}

fn train(args: &[&str]) -> (bool, String, String) {
    let mut a = vec![
        "train",
        "--quiet",
        "--epochs",
        "15",
        "--batch-size",
        "16",
        "--hidden",
        "16",
    ];
    a.extend_from_slice(args);
    descent(&a)
}

/// The last epoch's test accuracy, from the output.
fn last_acc(out: &str) -> f64 {
    let line = out
        .lines()
        .rfind(|l| l.contains("test acc"))
        .expect("an epoch line");
    let t = line.split("test acc ").nth(1).unwrap();
    t.split('%').next().unwrap().trim().parse().unwrap()
}

#[test]
fn csv_with_header_and_string_labels_trains_on_both_devices_and_predicts_with_names() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("flowers.csv");
    write_csv(&csv, true, &table(150, 2));
    let data = format!("csv:{}", csv.display());
    for device in ["cpu", "gpu"] {
        let ck = dir.path().join(format!("{device}.safetensors"));
        let (ok, out, err) = train(&[
            "--data",
            &data,
            "--device",
            device,
            "--save",
            ck.to_str().unwrap(),
        ]);
        assert!(ok, "{device}: {err}");
        assert!(out.contains("5-16-3"), "{out}");
        assert!(last_acc(&out) >= 95.0, "{device}: {out}");
        // Eval reads the same split with the saved preprocessing: the training run's figure.
        let (ok, ev, err) = descent(&[
            "eval",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--data",
            &data,
            "--device",
            device,
            "--json",
        ]);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(ev.trim()).unwrap();
        assert_eq!(v["samples"], 30);
        assert_eq!(
            v["classes"],
            serde_json::json!(["setosa", "versicolor", "virginica"])
        );
        assert!((v["test_accuracy"].as_f64().unwrap() * 100.0 - last_acc(&out)).abs() < 1e-6);
    }
    // predict --csv: the training rows without their label, then with it; class names printed.
    let rows = table(6, 2);
    let plain = dir.path().join("rows.csv");
    let mut s = String::from("f0,f1,f2,f3,f4\n");
    for (r, _) in &rows {
        let v: Vec<String> = r.iter().map(|x| x.to_string()).collect();
        s.push_str(&format!("{}\n", v.join(",")));
    }
    std::fs::write(&plain, s).unwrap();
    let labelled = dir.path().join("labelled.csv");
    write_csv(&labelled, true, &rows);
    let ck = dir.path().join("cpu.safetensors");
    let mut outs = Vec::new();
    for f in [&plain, &labelled] {
        let (ok, out, err) = descent(&[
            "predict",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--csv",
            f.to_str().unwrap(),
            "--json",
        ]);
        assert!(ok, "{err}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 6);
        for (v, (_, name)) in lines.iter().zip(&rows) {
            assert_eq!(v["name"], *name, "{v}");
        }
        outs.push(lines);
    }
    assert_eq!(outs[0][3]["logits"], outs[1][3]["logits"]);
    // Text output names the classes.
    let (ok, out, _) = descent(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--csv",
        plain.to_str().unwrap(),
    ]);
    assert!(ok);
    assert!(out.starts_with("row 1: setosa ("), "{out}");
}

/// The logits `predict --csv` prints are the model's on the rows as training preprocessed them.
#[test]
fn predict_applies_the_stored_preprocessing() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let rows = table(90, 0);
    write_csv(&csv, false, &rows);
    let ck = dir.path().join("m.safetensors");
    let (ok, _, err) = train(&[
        "--data",
        &format!("csv:{}", csv.display()),
        "--device",
        "cpu",
        "--save",
        ck.to_str().unwrap(),
        "--normalize",
        "standard",
    ]);
    assert!(ok, "{err}");
    let m = descent::model::load_checkpoint(&ck, None, None).unwrap();
    let p = m.preprocess.clone().unwrap();
    assert_eq!(p.input_shape, [3]);
    assert_eq!(p.class_names, ["setosa", "versicolor", "virginica"]);
    // The statistics are the training split's: column 0's mean is near 100·(0.45 + 5/3).
    assert!(p.shift[0] > 150.0 && p.shift[0] < 260.0, "{:?}", p.shift);
    let mut x: Vec<f32> = rows[..5].iter().flat_map(|r| r.0.clone()).collect();
    p.apply(&mut x);
    let want = descent::analysis::logits(&m.spec, &m.params, &x);
    let few = dir.path().join("few.csv");
    write_csv(&few, false, &rows[..5]);
    let (ok, out, err) = descent(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--csv",
        few.to_str().unwrap(),
        "--json",
    ]);
    assert!(ok, "{err}");
    let got: Vec<f32> = out
        .lines()
        .flat_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|z| z.as_f64().unwrap() as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn headerless_and_gzipped_tables_train() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("t.csv.gz");
    let rows = table(120, 1);
    let plain = dir.path().join("t.csv");
    write_csv(&plain, false, &rows);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&std::fs::read(&plain).unwrap()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let (ok, out, err) = train(&[
        "--data",
        &format!("csv:{}", gz.display()),
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("4-16-3"), "{out}");
    assert!(last_acc(&out) >= 95.0, "{out}");
    // --header yes on a headerless file loses the first row to the names.
    let (ok, out, _) = descent(&[
        "data",
        "inspect",
        &format!("csv:{}", plain.display()),
        "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["samples"], 120);
    assert_eq!(v["features"], 4);
    assert_eq!(v["train"], 96);
    assert_eq!(v["test"], 24);
    assert_eq!(v["classes"][1]["name"], "versicolor");
    assert_eq!(v["classes"][1]["count"], 40);
}

fn idx(path: &Path, ty: u8, dims: &[u32], payload: &[u8]) {
    let mut b = vec![0, 0, ty, dims.len() as u8];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend_from_slice(payload);
    std::fs::write(path, b).unwrap();
}

/// 5×7 images: class c lights row c.
fn idx_pair(dir: &Path, prefix: &str, n: usize) -> (PathBuf, PathBuf) {
    let (h, w) = (5usize, 7usize);
    let mut px = Vec::new();
    let mut labels = Vec::new();
    for i in 0..n {
        let c = i % 4;
        for y in 0..h {
            for x in 0..w {
                px.push(if y == c {
                    200 + (x as u8)
                } else {
                    (i * 3 + x) as u8 % 40
                });
            }
        }
        labels.push(c as u8);
    }
    let im = dir.join(format!("{prefix}-images-idx3-ubyte"));
    let lb = dir.join(format!("{prefix}-labels-idx1-ubyte"));
    idx(&im, 8, &[n as u32, h as u32, w as u32], &px);
    idx(&lb, 8, &[n as u32], &labels);
    (im, lb)
}

#[test]
fn idx_files_of_another_shape_train_on_both_devices() {
    let dir = tempfile::tempdir().unwrap();
    idx_pair(dir.path(), "train", 200);
    idx_pair(dir.path(), "t10k", 40);
    let data = format!("idx:{}", dir.path().display());
    for device in ["cpu", "gpu"] {
        let (ok, out, err) = train(&["--data", &data, "--device", device]);
        assert!(ok, "{device}: {err}");
        assert!(out.contains("35-16-4"), "{out}");
        assert!(out.contains("40 test samples"), "{out}");
        assert!(last_acc(&out) >= 99.0, "{device}: {out}");
    }
    // Counts that disagree are named.
    let (im, _) = idx_pair(dir.path(), "bad", 10);
    let lb = dir.path().join("bad9-labels");
    idx(&lb, 8, &[9], &[0; 9]);
    let (ok, _, err) = descent(&[
        "data",
        "inspect",
        &format!("idx:{},{}", im.display(), lb.display()),
    ]);
    assert!(!ok);
    assert!(err.contains("9 labels for the 10 samples"), "{err}");
}

fn png(path: &Path, c: usize, seed: usize) {
    let img = image::RgbImage::from_fn(12, 10, |x, y| {
        let on = match c {
            0 => x < 6,
            1 => y < 5,
            _ => (x + y) % 2 == 0,
        };
        let v = if on { 230 } else { 20 } as u8;
        image::Rgb([v, v.wrapping_add((seed % 7) as u8), v])
    });
    img.save(path).unwrap();
}

#[test]
fn image_folder_of_three_classes_trains_and_names_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("shapes");
    for (c, name) in ["left", "top", "checks"].iter().enumerate() {
        let d = root.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..20 {
            png(&d.join(format!("{i}.png")), c, i);
        }
    }
    let data = format!("images:{}", root.display());
    for device in ["cpu", "gpu"] {
        let (ok, out, err) = train(&["--data", &data, "--device", device, "--channels", "3"]);
        assert!(ok, "{device}: {err}");
        assert!(out.contains("360-16-3"), "{out}");
        assert!(last_acc(&out) >= 99.0, "{device}: {out}");
    }
    let (ok, out, _) = descent(&["data", "inspect", &data, "--image-size", "5x6"]);
    assert!(ok);
    assert!(out.contains("features  30"), "{out}");
    assert!(out.contains("checks"), "{out}");
    // A corrupt image is named; --skip-bad leaves it out and loads the rest.
    std::fs::write(root.join("top/broken.png"), b"not a png").unwrap();
    let (ok, _, err) = descent(&["data", "inspect", &data]);
    assert!(!ok);
    assert!(err.contains("broken.png"), "{err}");
    let (ok, out, _) = descent(&["data", "inspect", &data, "--skip-bad"]);
    assert!(ok);
    assert!(out.contains("samples   60"), "{out}");
    assert!(out.contains("broken.png"), "{out}");
    // A folder without images.
    let empty = dir.path().join("empty/cls");
    std::fs::create_dir_all(&empty).unwrap();
    let (ok, _, err) = descent(&[
        "data",
        "inspect",
        &format!("images:{}", dir.path().join("empty").display()),
    ]);
    assert!(!ok);
    assert!(err.contains("no images"), "{err}");
}

#[test]
fn stratified_split_keeps_each_class_within_one_sample() {
    let labels: Vec<u8> = (0..997u32)
        .map(|i| [0, 0, 0, 1, 1, 2][i as usize % 6])
        .collect();
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    for seed in 0..3 {
        let mask =
            descent::sources::stratified_split(&labels, &names, 0.2, seed, Path::new("x")).unwrap();
        for c in 0..3u8 {
            let total = labels.iter().filter(|&&l| l == c).count() as f64;
            let test = labels
                .iter()
                .zip(&mask)
                .filter(|(l, t)| **l == c && **t)
                .count() as f64;
            assert!(
                (test - 0.2 * total).abs() <= 1.0,
                "class {c}: {test} of {total}"
            );
        }
    }
}

#[test]
fn bad_tables_get_errors_naming_file_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let case = |name: &str, body: &str, extra: &[&str]| -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let src = format!("csv:{}", p.display());
        let mut a = vec!["train", "--quiet", "--device", "cpu", "--data", &src];
        a.extend_from_slice(extra);
        let (ok, _, err) = descent(&a);
        assert!(!ok, "{name} should fail");
        assert!(err.contains(name), "{name}: {err}");
        err
    };
    let err = case("ragged.csv", "a,b,y\n1,2,x\n3,y\n", &[]);
    assert!(err.contains("row 3 has 2 fields"), "{err}");
    let err = case("word.csv", "a,b,y\n1,2,x\n3,oops,y\n", &[]);
    assert!(
        err.contains("row 3, column b: `oops` is not a number"),
        "{err}"
    );
    let err = case("empty.csv", "", &[]);
    assert!(err.contains("empty"), "{err}");
    let err = case(
        "nolabel.csv",
        "a,b,y\n1,2,x\n3,4,y\n",
        &["--label-column", "kind"],
    );
    assert!(err.contains("--label-column kind: no such column"), "{err}");
    let err = case("one.csv", "a,b,y\n1,2,x\n3,4,x\n", &[]);
    assert!(err.contains("at least two"), "{err}");
    let err = case("few.csv", "a,y\n1,x\n2,x\n3,x\n4,x\n5,y\n6,y\n", &[]);
    assert!(err.contains("class `y` has 2 samples"), "{err}");
    let err = case("gap.csv", "a,b,y\n1,,x\n3,4,y\n", &[]);
    assert!(err.contains("row 2, column b: missing value"), "{err}");
    // predict --csv with columns that do not match the checkpoint.
    let good = dir.path().join("good.csv");
    write_csv(&good, true, &table(60, 0));
    let ck = dir.path().join("m.safetensors");
    let (ok, _, err) = train(&[
        "--data",
        &format!("csv:{}", good.display()),
        "--device",
        "cpu",
        "--save",
        ck.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let rows = dir.path().join("wide.csv");
    std::fs::write(&rows, "1,2,3,4,5\n").unwrap();
    let (ok, _, err) = descent(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--csv",
        rows.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("wide.csv") && err.contains("f0, f1, f2"),
        "{err}"
    );
}

#[test]
fn missing_values_drop_or_mean() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::from("a,b,y\n");
    for i in 0..60 {
        let b = if i % 10 == 0 {
            "NA".to_owned()
        } else {
            (i % 3).to_string()
        };
        s.push_str(&format!("{},{b},{}\n", i % 3, ["p", "q", "r"][i % 3]));
    }
    let p = dir.path().join("m.csv");
    std::fs::write(&p, s).unwrap();
    let src = format!("csv:{}", p.display());
    let (ok, out, _) = descent(&["data", "inspect", &src, "--missing", "drop"]);
    assert!(ok);
    assert!(out.contains("samples   54"), "{out}");
    let (ok, out, _) = descent(&["data", "inspect", &src, "--missing", "mean"]);
    assert!(ok);
    assert!(
        out.contains("samples   60") && out.contains("missing   6"),
        "{out}"
    );
}

/// scikit-learn's tables open with a count line (`150,4,setosa,versicolor,virginica`): its class
/// names name the integer labels, and it is not a row.
#[test]
fn a_scikit_learn_count_line_names_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("iris-like.csv");
    let mut s = String::from("6,2,setosa,versicolor,virginica\n");
    for i in 0..6 {
        s.push_str(&format!("{i}.5,{}.25,{}\n", i * 2, i % 3));
    }
    std::fs::write(&p, s).unwrap();
    let (ok, out, err) = descent(&["data", "inspect", &format!("csv:{}", p.display()), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["samples"], 6);
    assert_eq!(v["features"], 2);
    let names: Vec<&str> = v["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["setosa", "versicolor", "virginica"]);
    // Eval reads the numbered labels again as those classes.
    let src = format!("csv:{}", p.display());
    let ck = dir.path().join("m.safetensors");
    let split = ["--test-split", "0.5"];
    let (ok, _, err) = train(
        &[
            &[
                "--data",
                &src,
                "--device",
                "cpu",
                "--save",
                ck.to_str().unwrap(),
            ][..],
            &split[..],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = descent(
        &[
            &[
                "eval",
                "--checkpoint",
                ck.to_str().unwrap(),
                "--data",
                &src,
                "--json",
            ][..],
            &split[..],
        ]
        .concat(),
    );
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["classes"],
        serde_json::json!(["setosa", "versicolor", "virginica"])
    );
    assert_eq!(v["samples"], 3);
}

/// A model trained on a table prunes, by weights and by units, into checkpoints that keep the
/// table's preprocessing and class names: `eval --data` and `predict --csv` work on them.
#[test]
fn pruned_table_models_keep_their_preprocessing_and_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    let rows = table(300, 2);
    write_csv(&csv, true, &rows);
    let src = format!("csv:{}", csv.display());
    let ck = dir.path().join("m.safetensors");
    let (ok, out, err) = train(&[
        "--device",
        "cpu",
        "--data",
        &src,
        "--save",
        ck.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    for (extra, name) in [
        (vec!["--sparsity", "0.5"], "w.safetensors"),
        (vec!["--method", "units", "--keep", "8"], "u.safetensors"),
    ] {
        let pruned = dir.path().join(name);
        let mut a = vec![
            "prune",
            "--quiet",
            "--device",
            "cpu",
            "--data",
            &src,
            "--finetune-epochs",
            "2",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--out",
            pruned.to_str().unwrap(),
        ];
        a.extend(extra.iter().copied());
        let (ok, out, err) = descent(&a);
        assert!(ok, "{out}\n{err}");
        let (ok, out, err) = descent(&[
            "eval",
            "--device",
            "cpu",
            "--data",
            &src,
            "--checkpoint",
            pruned.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {err}");
        assert!(last_acc(&out) > 90.0, "{name}: {out}");
        let (ok, out, err) = descent(&[
            "predict",
            "--checkpoint",
            pruned.to_str().unwrap(),
            "--csv",
            csv.to_str().unwrap(),
        ]);
        assert!(ok, "{name}: {err}");
        assert!(
            out.contains("setosa") && out.contains("virginica"),
            "{name}: {out}"
        );
    }
}

/// A data set that will not fit in memory is refused with its size and the limit before it is
/// allocated (`DESCENT_MEMORY_LIMIT` stands in for a small machine).
#[test]
fn a_data_set_too_big_for_memory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // An IDX pair whose header promises 100000 rows of 100 floats: 40 MB as f32.
    let (images, labels) = (dir.path().join("x-idx"), dir.path().join("y-idx"));
    let mut x = vec![0u8, 0, 0x08, 2];
    x.extend(100_000u32.to_be_bytes());
    x.extend(100u32.to_be_bytes());
    x.resize(x.len() + 100_000 * 100, 1);
    std::fs::write(&images, &x).unwrap();
    let mut y = vec![0u8, 0, 0x08, 1];
    y.extend(100_000u32.to_be_bytes());
    y.extend((0..100_000u32).map(|i| (i % 3) as u8));
    std::fs::write(&labels, &y).unwrap();
    let src = format!("idx:{},{}", images.display(), labels.display());
    let (ok, out, err) = common::descent_env(
        &["train", "--quiet", "--device", "cpu", "--data", &src],
        &[("DESCENT_MEMORY_LIMIT", "10000000")],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("x-idx") && err.contains("39 MB") && err.contains("9 MB of memory"),
        "{err}"
    );
    // A CSV's size shows as it is read: refused when the matrix outgrows the limit.
    let csv = dir.path().join("big.csv");
    let mut s = String::new();
    for i in 0..60_000 {
        let row: Vec<String> = (0..300).map(|j| ((i + j) % 7).to_string()).collect();
        s.push_str(&format!("{},{}\n", row.join(","), i % 2));
    }
    std::fs::write(&csv, s).unwrap();
    let (ok, out, err) = common::descent_env(
        &[
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--data",
            &format!("csv:{}", csv.display()),
        ],
        &[("DESCENT_MEMORY_LIMIT", "10000000")],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("big.csv") && err.contains("memory available"),
        "{err}"
    );
}

/// The confusion heatmap of a table model shows its class names (upright above the columns
/// when they are wider than a cell), not indices: the figure grows to hold them.
#[test]
fn confusion_heatmap_makes_room_for_class_names() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    write_csv(&csv, true, &table(120, 1));
    let src = format!("csv:{}", csv.display());
    let ck = dir.path().join("m.safetensors");
    let (ok, out, err) = train(&[
        "--device",
        "cpu",
        "--data",
        &src,
        "--save",
        ck.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let png = dir.path().join("c.png");
    let (ok, _, err) = descent(&[
        "eval",
        "--device",
        "cpu",
        "--data",
        &src,
        "--checkpoint",
        ck.to_str().unwrap(),
        "--confusion-png",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let img = image::open(&png).unwrap();
    // Three 54-px cells: 392 px tall with digit labels; "versicolor" upright adds its width.
    assert!(
        img.height() > 392 && img.width() >= 640,
        "{}x{}",
        img.width(),
        img.height()
    );
}
