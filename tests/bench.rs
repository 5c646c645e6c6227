//! `descent bench` end to end: the CI-sized run on the CPU and the machine's GPU adapter
//! (lavapipe in CI) writes a JSON report with every field and a picture; a width sweep; and each
//! bad input stops with a message naming its flag before anything is measured. No assertion is
//! about speed: the figures are whatever this machine gives.

mod common;

use common::{descent_env, mnist_mirror};
use serde_json::Value;

/// `bench` on the first `limit` MNIST training samples with `extra` arguments.
fn bench(dir: &std::path::Path, extra: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mirror = mnist_mirror();
    let data = dir.join("data");
    let mut args = vec![
        "bench",
        "--quiet",
        "--data-dir",
        data.to_str().unwrap(),
        "--mirror",
        &mirror,
    ];
    args.extend_from_slice(extra);
    descent_env(&args, env)
}

fn field<'a>(v: &'a Value, key: &str) -> &'a Value {
    v.get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {}", serde_json::to_string_pretty(v).unwrap()))
}

fn keys(v: &Value, names: &[&str]) {
    for k in names {
        field(v, k);
    }
}

fn num(v: &Value, key: &str) -> f64 {
    field(v, key)
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is not a number: {v}"))
}

const FIGURES: [&str; 12] = [
    "batch",
    "samples_per_s_step",
    "samples_per_s_epoch",
    "ms_per_step",
    "gflops",
    "peak_share",
    "dispatches_per_step",
    "submits_per_step",
    "plan_dispatches",
    "encode_us_per_step",
    "first_step_ms",
    "rounds",
];

#[test]
fn quick_run_compares_cpu_and_gpu_and_its_json_has_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let png = dir.path().join("bench.png");
    let (ok, out, err) = bench(
        dir.path(),
        &[
            "--quick",
            "--json",
            json.to_str().unwrap(),
            "--plot",
            png.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{out}\n{err}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    keys(
        &r,
        &[
            "version", "config", "machine", "devices", "points", "kernels", "tuning",
        ],
    );
    let c = field(&r, "config");
    keys(
        c,
        &[
            "model",
            "hidden",
            "optimizer",
            "lr",
            "momentum",
            "data",
            "train_samples",
            "axis",
            "batches",
            "widths",
            "kernel_batch",
            "kernel_reps",
            "peak_size",
            "effort",
            "quick",
            "command",
            "forced_kernel",
            "unfused",
        ],
    );
    assert_eq!(field(c, "quick"), &Value::Bool(true));
    assert!(field(c, "command").as_str().unwrap().contains("--quick"));
    let n = num(c, "train_samples") as usize;
    let batches: Vec<u64> = field(c, "batches")
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap())
        .collect();
    assert_eq!(batches, [1, 16, n as u64], "1, 16 and full");
    let m = field(&r, "machine");
    keys(m, &["cpu_model", "cores", "rayon_threads", "os"]);
    assert!(num(m, "cores") >= 1.0);

    // The CPU and (CI has lavapipe) at least one GPU adapter, each with its peak.
    let devices = field(&r, "devices").as_array().unwrap();
    let kinds: Vec<&str> = devices
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "cpu", "{kinds:?}");
    assert!(
        kinds[1..].iter().all(|k| *k == "gpu") && kinds.len() >= 2,
        "{kinds:?}"
    );
    for d in devices {
        keys(
            d,
            &[
                "label",
                "kind",
                "name",
                "backend",
                "device_type",
                "driver",
                "driver_info",
                "timestamp_queries",
                "subgroups",
                "matmul_variant",
                "kernel_choice",
                "open_ms",
                "threads",
                "peak_gflops",
                "peak_source",
            ],
        );
        assert!(num(d, "peak_gflops") > 0.0, "{d}");
        if d["kind"] == "gpu" {
            assert!(d["backend"].is_string() && d["driver"].is_string(), "{d}");
            assert!(
                d["kernel_choice"]
                    .as_str()
                    .unwrap()
                    .contains("chosen by measurement"),
                "{d}"
            );
        }
    }

    // One point per batch, one set of figures per device in each.
    let points = field(&r, "points").as_array().unwrap();
    assert_eq!(points.len(), batches.len());
    for (p, &b) in points.iter().zip(&batches) {
        keys(p, &["batch", "width", "model", "devices"]);
        let figs = field(p, "devices").as_array().unwrap();
        assert_eq!(figs.len(), devices.len());
        for (f, d) in figs.iter().zip(devices) {
            keys(f, &FIGURES);
            assert_eq!(num(f, "batch") as u64, b);
            assert!(num(f, "samples_per_s_step") > 0.0, "{f}");
            assert!(num(f, "first_step_ms") > 0.0, "{f}");
            assert!(num(f, "peak_share") > 0.0, "{f}");
            if d["kind"] == "gpu" {
                // The counters agree with the plan: every step here is a whole batch (n divides).
                assert_eq!(
                    num(f, "dispatches_per_step"),
                    num(f, "plan_dispatches"),
                    "{f}"
                );
                let s = num(f, "submits_per_step");
                assert!(s > 0.0 && s <= 1.0, "{f}");
                assert!(num(f, "encode_us_per_step") > 0.0, "{f}");
            } else {
                assert!(f["dispatches_per_step"].is_null(), "{f}");
            }
        }
    }

    // The step's kernels on the GPU, each with its CPU twin timed.
    let tables = field(&r, "kernels").as_array().unwrap();
    assert_eq!(tables.len(), devices.len() - 1, "one table per GPU");
    for t in tables {
        keys(t, &["gpu", "batch", "gpu_clock", "rows"]);
        // The adapter's own clock where it has timestamp queries, the wall clock otherwise.
        let stamps = devices[num(t, "gpu") as usize]["timestamp_queries"] == Value::Bool(true);
        let clock = field(t, "gpu_clock").as_str().unwrap();
        assert_eq!(clock.starts_with("timestamp queries"), stamps, "{clock}");
        let rows = field(t, "rows").as_array().unwrap();
        let plan = num(&points[1]["devices"][1], "plan_dispatches") as usize;
        assert_eq!(num(t, "batch"), 16.0);
        assert_eq!(rows.len(), plan, "a row per dispatch of the batch-16 plan");
        for row in rows {
            keys(
                row,
                &[
                    "kernel",
                    "label",
                    "form",
                    "rows",
                    "flops",
                    "bytes",
                    "gpu_us",
                    "gpu_wall_us",
                    "cpu_us",
                ],
            );
            assert!(
                num(row, "gpu_us") > 0.0 && num(row, "cpu_us") > 0.0,
                "{row}"
            );
            assert!(num(row, "gpu_wall_us") > 0.0, "{row}");
        }
        assert!(rows.iter().any(|r| r["kernel"] == "matmul_forward"));
    }

    // The printed table: a column per device and the ratio.
    assert!(out.contains("| batch | figure | cpu | gpu: "), "{out}");
    assert!(
        out.contains("samples/s, per step") && out.contains("×"),
        "{out}"
    );
    assert!(out.contains("kernel chosen and why"), "{out}");
    // The autotuner's report, in the table and the JSON, names each product it chose for.
    assert!(
        out.contains("matmul tuning:") && out.contains("matmul_forward"),
        "{out}"
    );
    assert!(
        r["tuning"]
            .as_str()
            .is_some_and(|t| t.contains("matmul_forward")),
        "{}",
        r["tuning"]
    );
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1000, 620));
}

#[test]
fn width_sweep_on_the_cpu_measures_each_width() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("w.json");
    let (ok, out, err) = bench(
        dir.path(),
        &[
            "--quick",
            "--device",
            "cpu",
            "--widths",
            "8,32",
            "--sizes",
            "16",
            "--hidden",
            "64,64",
            "--json",
            json.to_str().unwrap(),
        ],
        &[],
    );
    assert!(ok, "{out}\n{err}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["config"]["axis"], "width");
    let points = r["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    // Both hidden layers take each width.
    assert!(
        points[0]["model"]
            .as_str()
            .unwrap()
            .starts_with("784-8-8-10"),
        "{}",
        points[0]
    );
    assert!(
        points[1]["model"]
            .as_str()
            .unwrap()
            .starts_with("784-32-32-10")
    );
    assert_eq!(points[1]["width"], 32);
    assert_eq!(r["devices"].as_array().unwrap().len(), 1);
    // With no GPU the kernel table is the CPU backend's own step.
    let rows = r["kernels"][0]["rows"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|row| row["gpu_us"].is_null() && row["cpu_us"].as_f64().unwrap() > 0.0)
    );
    assert!(out.contains("| width | figure | cpu |"), "{out}");
}

/// Each bad input: a non-zero exit, the flag named, and nothing measured.
#[test]
fn bad_input_is_refused_before_measuring() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no/such/dir");
    let json_in_missing = missing.join("b.json");
    let png_in_missing = missing.join("b.png");
    let txt = dir.path().join("b.txt");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--sizes", "1,abc"],
            "--sizes 1,abc: `abc` is not a batch size",
        ),
        (vec!["--sizes", "0"], "--sizes 0"),
        (
            vec!["--widths", "64,x"],
            "--widths 64,x: `x` is not a width",
        ),
        (
            vec!["--widths", "64", "--sizes", "1,2"],
            "a width sweep runs at one batch size",
        ),
        (
            vec!["--sizes", "64,1000", "--limit", "500"],
            "batch 1000 is larger than the 500 training samples",
        ),
        (
            vec!["--kernel-batch", "900", "--limit", "500"],
            "--kernel-batch 900",
        ),
        (vec!["--json", json_in_missing.to_str().unwrap()], "--json"),
        (
            vec!["--json", dir.path().to_str().unwrap()],
            "is a directory",
        ),
        (vec!["--plot", png_in_missing.to_str().unwrap()], "--plot"),
        (
            vec!["--plot", txt.to_str().unwrap()],
            "must end in .png or .svg",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["--device", "cpu"];
        args.extend(extra.iter());
        let (ok, out, err) = bench(dir.path(), &args, &[]);
        assert!(!ok, "{extra:?} should fail: {out}");
        assert!(err.contains(want), "{extra:?}: want `{want}` in: {err}");
        assert!(
            !err.contains("bench: "),
            "{extra:?} measured before failing: {err}"
        );
    }
    // No adapter (WGPU_BACKEND names a backend Linux lacks): --device gpu is an error.
    let (ok, _, err) = bench(
        dir.path(),
        &["--device", "gpu", "--quick"],
        &[("WGPU_BACKEND", "dx12")],
    );
    assert!(!ok);
    assert!(err.contains("no GPU adapter"), "{err}");
    assert!(!err.contains("bench: "), "{err}");
    // ... and `auto` measures the CPU alone, saying so.
    let (ok, out, err) = bench(dir.path(), &["--quick"], &[("WGPU_BACKEND", "dx12")]);
    assert!(ok, "{err}");
    assert!(
        err.contains("no GPU adapter found; measuring the CPU only"),
        "{err}"
    );
    assert!(
        out.contains("| batch | figure | cpu |") && !out.contains("gpu:"),
        "{out}"
    );
}
