//! The teaching commands: `explain`, `landscape`, `modes` and `sweep`, their numbers, their
//! files and their pictures, and their answers to bad input.

mod common;

use common::{descent, descent_env, mnist_mirror};
use descent::explain::{ExplainConfig, explain};
use descent::landscape::{Function, Optimizer, descend};
use descent::model::{Activation, Loss};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// A PNG that decodes to the figure's size and is not one flat colour.
fn assert_png(path: &std::path::Path) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: not a PNG ({e})", path.display()))
        .to_rgb8();
    assert!(
        img.width() > 300 && img.height() > 200,
        "{}",
        path.display()
    );
    let first = *img.get_pixel(0, 0);
    let distinct = img.pixels().filter(|p| **p != first).count();
    assert!(
        distinct > (img.width() * img.height() / 50) as usize,
        "{} is nearly blank",
        path.display()
    );
}

fn assert_svg(path: &std::path::Path) {
    let s = std::fs::read_to_string(path).expect("read svg");
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    assert!(s.len() > 2000, "{} is nearly empty", path.display());
}

// ---------------------------------------------------------------- explain

#[test]
fn explain_default_matches_hand_arithmetic() {
    let e = explain(&ExplainConfig::default()).unwrap();
    assert_eq!(e.sizes, vec![2, 2, 2]);
    // z1 = W1 x + b1 with the textbook numbers, worked in f64 here.
    let x = [0.05f64, 0.10];
    let z1 = [
        0.15 * x[0] + 0.20 * x[1] + 0.35,
        0.25 * x[0] + 0.30 * x[1] + 0.35,
    ];
    let a1 = z1.map(|z| 1.0 / (1.0 + (-z).exp()));
    let z2 = [
        0.40 * a1[0] + 0.45 * a1[1] + 0.60,
        0.50 * a1[0] + 0.55 * a1[1] + 0.60,
    ];
    let m = z2[0].max(z2[1]);
    let s = (z2[0] - m).exp() + (z2[1] - m).exp();
    let p = [(z2[0] - m).exp() / s, (z2[1] - m).exp() / s];
    let close = |a: f32, b: f64| (a as f64 - b).abs() < 1e-5;
    for j in 0..2 {
        assert!(close(e.forward[0].z[j], z1[j]), "z1[{j}]");
        assert!(close(e.forward[0].a[j], a1[j]), "a1[{j}]");
        assert!(close(e.forward[1].z[j], z2[j]), "z2[{j}]");
        assert!(close(e.loss.outputs[j], p[j]), "p[{j}]");
    }
    assert!(close(e.loss.value, -p[1].ln()));
    // δ2 = p − t (class 1), δ1 = W2ᵀ δ2 ⊙ a1 (1 − a1).
    let d2 = [p[0], p[1] - 1.0];
    let d1 = [
        (0.40 * d2[0] + 0.50 * d2[1]) * a1[0] * (1.0 - a1[0]),
        (0.45 * d2[0] + 0.55 * d2[1]) * a1[1] * (1.0 - a1[1]),
    ];
    assert!(close(e.errors[0].delta[0], d2[0]) && close(e.errors[0].delta[1], d2[1]));
    assert!(close(e.errors[1].delta[0], d1[0]) && close(e.errors[1].delta[1], d1[1]));
    assert!(close(e.gradients[1].weight[0][1], d2[0] * a1[1]));
    assert!(close(e.gradients[0].weight[1][0], d1[1] * x[0]));
    // The update went downhill and the check passed.
    assert!(e.new_loss < e.loss.value);
    assert!(close(e.updated[1].bias[0], 0.60 - 0.5 * d2[0]));
    assert!(e.max_difference < 1e-4, "{}", e.max_difference);
}

#[test]
fn explain_gradients_match_finite_differences_for_every_network() {
    for (hidden, act, loss, seed) in [
        (vec![2], Activation::Sigmoid, Loss::Xent, None),
        (vec![3, 2], Activation::Tanh, Loss::Mse, Some(7)),
        (vec![4], Activation::Relu, Loss::Xent, Some(1)),
        (vec![], Activation::Sigmoid, Loss::Mse, None),
    ] {
        let cfg = ExplainConfig {
            hidden: hidden.clone(),
            activation: act,
            loss,
            seed,
            ..ExplainConfig::default()
        };
        let e = explain(&cfg).unwrap();
        assert_eq!(e.gradient_check.len(), cfg.spec().num_params());
        for g in &e.gradient_check {
            assert!(
                (g.backprop - g.finite_difference).abs() <= 1e-4,
                "{hidden:?} {act:?} {loss:?}: {} backprop {} fd {}",
                g.name,
                g.backprop,
                g.finite_difference
            );
        }
        assert_eq!(e.errors.len(), hidden.len() + 1);
    }
}

#[test]
fn explain_prints_gradients_equal_to_finite_differences() {
    let (ok, out, err) = descent(&["explain"]);
    assert!(ok, "{err}");
    for stage in [
        "Forward pass",
        "Loss",
        "Output error",
        "chain rule",
        "Gradients",
        "Update",
    ] {
        assert!(out.contains(stage), "missing {stage}:\n{out}");
    }
    let rows: Vec<(f64, f64)> = out
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            t.starts_with('W') || t.starts_with('b')
        })
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() != 4 {
                return None;
            }
            Some((f[1].parse::<f64>().ok()?, f[2].parse::<f64>().ok()?))
        })
        .collect();
    assert_eq!(rows.len(), 12, "one check row per parameter:\n{out}");
    for (bp, fd) in rows {
        assert!((bp - fd).abs() <= 1e-4, "{bp} vs {fd}");
    }
}

#[test]
fn explain_json_carries_every_stage() {
    let (ok, out, err) = descent(&["explain", "--json", "--hidden", "3", "--activation", "tanh"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("--json parses");
    for key in [
        "params",
        "forward",
        "loss",
        "errors",
        "gradients",
        "updated",
        "new_loss",
        "gradient_check",
        "max_difference",
    ] {
        assert!(v.get(key).is_some(), "no {key}");
    }
    assert_eq!(v["forward"].as_array().unwrap().len(), 2);
    assert_eq!(v["forward"][0]["z"].as_array().unwrap().len(), 3);
    assert_eq!(v["errors"][1]["carried"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["gradient_check"].as_array().unwrap().len(),
        3 * 2 + 3 + 2 * 3 + 2
    );
    assert!(v["new_loss"].as_f64().unwrap() < v["loss"]["value"].as_f64().unwrap());
}

#[test]
fn explain_rejects_bad_input() {
    let (ok, _, err) = descent(&["explain", "--lr", "0"]);
    assert!(!ok && err.contains("--lr"), "{err}");
    let (ok, _, err) = descent(&["explain", "--hidden", "2000"]);
    assert!(!ok && err.contains("too many"), "{err}");
    let (ok, _, err) = descent(&["explain", "--outputs", "1"]);
    assert!(!ok && err.contains("2 outputs"), "{err}");
}

// ---------------------------------------------------------------- landscape

#[test]
fn landscape_every_optimizer_reaches_the_bowls_minimum() {
    let start = [-4.0, 3.0];
    for o in Optimizer::ALL {
        let p = descend(
            Function::Bowl,
            o,
            Function::Bowl.default_lr(o),
            start,
            300,
            1e-6,
        );
        assert_eq!(p.points[0], start, "{o:?}: the first point is the start");
        assert_eq!(p.diverged_at, None);
        assert!(p.reached_at.is_some(), "{o:?} never reached the tolerance");
        let e = p.end();
        assert!(e[0].hypot(e[1]) < 1e-2, "{o:?} ends at {e:?}");
    }
}

#[test]
fn landscape_momentum_and_adam_beat_plain_sgd_on_rosenbrock() {
    let f = Function::Rosenbrock;
    let (lr, steps, start) = (0.002, 2000, [0.0, 0.0]);
    let end = |o| {
        let p = descend(f, o, lr, start, steps, 1e-4);
        assert_eq!(p.points[0], start);
        assert_eq!(p.points.len(), steps + 1);
        let e = p.end();
        f.value(e[0], e[1])
    };
    let sgd = end(Optimizer::Sgd);
    let momentum = end(Optimizer::Momentum);
    let adam = end(Optimizer::Adam);
    assert!(momentum < sgd / 100.0, "momentum {momentum} vs sgd {sgd}");
    assert!(adam < sgd / 100.0, "adam {adam} vs sgd {sgd}");
}

#[test]
fn landscape_steps_are_the_training_update_rule() {
    // Plain SGD's first step from (1, 2) on the bowl is p − lr·∇f = p − 0.1·(2, 4).
    let p = descend(Function::Bowl, Optimizer::Sgd, 0.1, [1.0, 2.0], 1, 1e-9);
    assert!((p.points[1][0] - 0.8).abs() < 1e-6 && (p.points[1][1] - 1.6).abs() < 1e-6);
    // Adam's first step moves each coordinate by lr (bias-corrected m/√v = sign(g)).
    let p = descend(
        Function::Rosenbrock,
        Optimizer::Adam,
        0.01,
        [0.0, 0.0],
        1,
        1e-9,
    );
    assert!((p.points[1][0] - 0.01).abs() < 1e-6, "{:?}", p.points[1]);
    // Each analytic gradient against a central difference.
    for f in [
        Function::Bowl,
        Function::Elongated,
        Function::Rosenbrock,
        Function::Saddle,
        Function::Himmelblau,
        Function::Rastrigin,
    ] {
        let (x, y, h) = (0.37, -0.81, 1e-6);
        let g = f.gradient(x, y);
        let gx = (f.value(x + h, y) - f.value(x - h, y)) / (2.0 * h);
        let gy = (f.value(x, y + h) - f.value(x, y - h)) / (2.0 * h);
        assert!(
            (g[0] - gx).abs() < 1e-4 && (g[1] - gy).abs() < 1e-4,
            "{f:?}"
        );
    }
}

#[test]
fn landscape_divergence_is_reported_with_its_step_and_not_drawn() {
    let p = descend(Function::Bowl, Optimizer::Sgd, 5.0, [-4.0, 3.0], 100, 1e-4);
    let at = p.diverged_at.expect("lr 5 on the bowl diverges");
    assert!(at < 100);
    assert!(
        p.points
            .iter()
            .all(|q| q[0].is_finite() && q[1].is_finite())
    );
    let dir = tmp();
    let png = dir.path().join("d.png");
    let (ok, out, err) = descent(&[
        "landscape",
        "--function",
        "bowl",
        "--lr",
        "sgd=5",
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains(&format!("diverged at step {at}")), "{out}");
    assert!(err.contains("smaller --lr"), "{err}");
    assert_png(&png);
    let (ok, _, err) = descent(&[
        "landscape",
        "--function",
        "bowl",
        "--optimizers",
        "sgd,momentum",
        "--lr",
        "50",
    ]);
    assert!(!ok && err.contains("every optimizer diverged"), "{err}");
}

#[test]
fn landscape_prints_and_draws_png_and_svg() {
    let dir = tmp();
    for (f, name) in [
        ("rosenbrock", "r.png"),
        ("himmelblau", "h.svg"),
        ("saddle", "s.png"),
    ] {
        let path = dir.path().join(name);
        let (ok, out, err) = descent(&[
            "landscape",
            "--function",
            f,
            "--plot",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        for o in ["sgd", "momentum", "nesterov", "adam"] {
            assert!(out.lines().any(|l| l.starts_with(o)), "no {o} row:\n{out}");
        }
        if name.ends_with("png") {
            assert_png(&path);
        } else {
            assert_svg(&path);
        }
    }
}

#[test]
fn landscape_rejects_bad_input() {
    for (args, want) in [
        (vec!["--function", "sphere"], "invalid value"),
        (vec!["--optimizers", "sgd,rmsprop"], "rmsprop"),
        (vec!["--steps", "0"], "--steps 0"),
        (vec!["--start", "1"], "two finite numbers"),
        (vec!["--start", "1,inf"], "two finite numbers"),
        (vec!["--start", "a,b"], "two finite numbers"),
        (vec!["--lr", "0.1,0.2"], "one per optimizer"),
        (vec!["--lr", "-1"], "above 0"),
        (vec!["--plot", "x.jpg"], ".png or .svg"),
    ] {
        let mut a = vec!["landscape"];
        a.extend(args.iter());
        let (ok, _, err) = descent(&a);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

// ---------------------------------------------------------------- modes

/// Runs a training subcommand quietly on the CPU with MNIST kept in `data`.
fn on_mnist(sub: &str, data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let mut a = vec![
        sub,
        "--device",
        "cpu",
        "--quiet",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    a.extend_from_slice(args);
    descent_env(&a, &[("MNIST_MIRROR", &mnist_mirror())])
}

/// Runs `descent modes` on 300 MNIST samples on the CPU with `args`, writing its JSON; returns
/// (success, stdout, stderr, the runs).
fn modes(args: &[&str]) -> (bool, String, String, Vec<serde_json::Value>) {
    let dir = tmp();
    let json = dir.path().join("modes.json");
    let data = dir.path().join("data");
    let mut a = vec!["--limit", "300", "--json", json.to_str().unwrap()];
    a.extend_from_slice(args);
    let (ok, out, err) = on_mnist("modes", &data, &a);
    let runs = match std::fs::read_to_string(&json) {
        Ok(s) => serde_json::from_str(&s).unwrap(),
        Err(_) => Vec::new(),
    };
    (ok, out, err, runs)
}

#[test]
fn modes_updates_follow_each_modes_definition_from_the_same_weights() {
    let dir = tmp();
    let png = dir.path().join("modes.png");
    let (ok, out, err, runs) = modes(&[
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--hidden",
        "32",
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("defaults"), "the defaults are shown:\n{out}");
    assert_eq!(runs.len(), 3);
    let updates: Vec<u64> = runs
        .iter()
        .map(|r| r["updates"].as_u64().unwrap())
        .collect();
    // Batch: 1 per epoch; stochastic: N per epoch; mini-batch: ceil(N/B) per epoch.
    assert_eq!(updates, vec![2, 600, 2 * 300usize.div_ceil(64) as u64]);
    let batches: Vec<u64> = runs.iter().map(|r| r["batch"].as_u64().unwrap()).collect();
    assert_eq!(batches, vec![300, 1, 64]);
    let init: Vec<&str> = runs
        .iter()
        .map(|r| r["initial_weights"].as_str().unwrap())
        .collect();
    assert!(init.iter().all(|w| *w == init[0]), "{init:?}");
    // Each mode with its own defaults.
    assert!(runs[0]["optimizer"].as_str().unwrap().starts_with("adam"));
    assert!(runs[1]["optimizer"].as_str().unwrap() == "sgd");
    assert!(
        runs[2]["optimizer"]
            .as_str()
            .unwrap()
            .contains("momentum 0.9")
    );
    for r in &runs {
        let acc = r["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.1, "{r}");
    }
    assert_png(&png);
}

#[test]
fn modes_seconds_budget_gives_each_mode_its_training_time() {
    let (ok, _, err, runs) = modes(&["--seconds", "0.3", "--hidden", "16"]);
    assert!(ok, "{err}");
    assert_eq!(runs.len(), 3);
    for r in &runs {
        // The clock, not an epoch count, ended each run: about the budget was trained (the
        // loop's work between epochs runs on the clock but is not training time).
        assert!(r["seconds"].as_f64().unwrap() >= 0.24, "{r}");
        assert!(r["updates"].as_u64().unwrap() >= 1, "{r}");
        assert_eq!(r["schedule"], "constant", "{r}");
    }
}

#[test]
fn modes_rejects_bad_input() {
    let (ok, _, err) = descent(&["modes", "--batch-size", "1"]);
    assert!(!ok && err.contains("--batch-size 1"), "{err}");
    let (ok, _, err) = descent(&["modes", "--seconds", "-1"]);
    assert!(!ok && err.contains("--seconds"), "{err}");
    let (ok, _, err) = descent(&["modes", "--epochs", "0"]);
    assert!(!ok && err.contains("--epochs 0"), "{err}");
    let (ok, _, err) = descent(&["modes", "--epochs", "2", "--seconds", "3"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, _, err) = descent(&["modes", "--plot", "/nonexistent/dir/m.png"]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

// ---------------------------------------------------------------- sweep

fn sweep(args: &[&str], data: &std::path::Path) -> (bool, String, String) {
    let mut a = vec!["--limit", "256", "--epochs", "1", "--hidden", "16"];
    a.extend_from_slice(args);
    on_mnist("sweep", data, &a)
}

#[test]
fn sweep_grid_records_cells_and_resumes_without_redoing_them() {
    let dir = tmp();
    let data = dir.path().join("data");
    let out = dir.path().join("sweep.jsonl");
    let png = dir.path().join("sweep.png");
    let grid = [
        "--lr",
        "0.01,0.1",
        "--batch-size",
        "16,64",
        "--jobs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    let mut first = grid.to_vec();
    first.extend(["--plot", png.to_str().unwrap()]);
    let (ok, text, err) = sweep(&first, &data);
    assert!(ok, "{err}");
    assert!(text.contains("4 cells"), "{text}");
    let lines: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 4);
    let mut seen = Vec::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["status"], "ok", "{l}");
        let acc = v["test_accuracy"].as_f64().unwrap();
        assert!(acc > 0.0 && acc <= 1.0, "{l}");
        seen.push((
            v["cell"]["lr"].as_f64().unwrap().to_string(),
            v["cell"]["batch_size"].as_str().unwrap().to_owned(),
        ));
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "four distinct cells: {seen:?}");
    assert_png(&png);

    // An interrupted sweep: the file holds only what finished before the interruption.
    std::fs::write(&out, format!("{}\n{}\n", lines[0], lines[1])).unwrap();
    let mut again = grid.to_vec();
    again.push("--resume");
    let (ok, text, err) = sweep(&again, &data);
    assert!(ok, "{err}");
    assert!(text.contains("2 already in"), "{text}");
    assert!(text.contains("2 to run"), "{text}");
    let resumed: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(resumed.len(), 4);
    // The finished cells were kept as they were, not rerun: a rerun would measure other seconds.
    for (a, b) in resumed[..2].iter().zip(&lines[..2]) {
        let (a, b): (serde_json::Value, serde_json::Value) = (
            serde_json::from_str(a).unwrap(),
            serde_json::from_str(b).unwrap(),
        );
        assert_eq!(a["cell"], b["cell"]);
        let (sa, sb) = (
            a["seconds"].as_f64().unwrap(),
            b["seconds"].as_f64().unwrap(),
        );
        assert!((sa - sb).abs() <= 1e-12 * sb.abs(), "{sa} vs {sb}");
    }
    // A complete sweep resumed has nothing left to run and does not load the data.
    let (ok, text, err) = sweep(&again, &data);
    assert!(ok, "{err}");
    assert!(
        text.contains("4 already in") && text.contains("0 to run"),
        "{text}"
    );
}

#[test]
fn sweep_shows_a_diverging_cell_as_diverged() {
    let dir = tmp();
    let data = dir.path().join("data");
    let svg = dir.path().join("sweep.svg");
    let (ok, text, err) = sweep(&["--lr", "0.05,50", "--plot", svg.to_str().unwrap()], &data);
    assert!(ok, "{err}");
    let diverged = text
        .lines()
        .find(|l| l.starts_with("--lr 50:"))
        .unwrap_or_else(|| panic!("no lr 50 line:\n{text}"));
    assert!(diverged.contains("diverged at epoch 1, step"), "{diverged}");
    assert!(text.contains("diverged e1"), "{text}");
    assert_svg(&svg);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("diverged"));
}

#[test]
fn sweep_rejects_empty_or_malformed_grids() {
    for (args, want) in [
        (vec!["--lr", "0.1"], "nothing to sweep"),
        (vec!["--lr", "0.1,,0.2"], "empty value"),
        (vec!["--lr", "0.1,fast"], "--lr `fast`"),
        (vec!["--lr", "0.1,0.1"], "listed twice"),
        (vec!["--batch-size", "0,16"], "--batch-size 0"),
        (vec!["--optimizer", "sgd,lion"], "lion"),
        (vec!["--hidden", "16,0"], "0 units"),
        (vec!["--epochs", "1,0"], "--epochs `0`"),
        (
            vec!["--lr", "0.1,0.2", "--epochs", "1,2", "--hidden", "8,16"],
            "two at most",
        ),
        (vec!["--lr", "0.1,0.2", "--jobs", "0"], "--jobs 0"),
        (vec!["--lr", "0.1,0.2", "--resume"], "--out"),
    ] {
        let mut a = vec!["sweep"];
        a.extend(args.iter());
        let (ok, _, err) = descent(&a);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
