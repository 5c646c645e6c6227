//! The training loop and `descent train`'s new flags on the CPU: optimizers end to end, per-mode
//! defaults, validation, early stopping, checkpoints, exact resume, Ctrl-C, and bad input.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{descent, mnist_mirror};
use descent::backend::{Backend, Setup, Split};
use descent::cpu::CpuBackend;
use descent::optim::{OptimConfig, OptimizerKind};

fn cpu(setup: Setup) -> Box<dyn Backend> {
    Box::new(CpuBackend::new(setup))
}

/// A run stopped after epoch 2 and resumed from its checkpoint ends with the same weights and
/// optimizer state, bit for bit, as the run that never stopped: for every optimizer, with a
/// warm-up and cosine schedule, validation, dropout (hidden and input) and max-norm.
#[test]
fn resume_equals_an_uninterrupted_run_bit_for_bit() {
    for (kind, dropout, max_norm) in [
        (OptimizerKind::Sgd, (0.0, 0.0), 0.0),
        (OptimizerKind::Nesterov, (0.2, 0.0), 0.0),
        (OptimizerKind::Sgd, (0.3, 0.2), 1.0),
        (OptimizerKind::Adam, (0.0, 0.0), 0.0),
        (OptimizerKind::Adamw, (0.3, 0.1), 1.0),
    ] {
        let optim = OptimConfig {
            kind,
            weight_decay: 1e-3,
            max_norm,
            ..OptimConfig::sgd(0.9)
        };
        let (straight, resumed) = common::straight_and_resumed(&cpu, optim, dropout, 4, 2);
        assert_eq!(straight.0, resumed.0, "{kind:?}: parameters differ");
        assert_eq!(straight.1, resumed.1, "{kind:?}: optimizer state differs");
    }
}

fn args<'a>(dir: &'a Path, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
        "--mirror",
        &mnist_mirror(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(dir: &Path, extra: &[&str]) -> (bool, String, String) {
    let a = args(dir, extra);
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    descent(&refs)
}

/// With nothing but the mode flag, each kind of descent prints the defaults it chose.
#[test]
fn per_mode_defaults_are_printed() {
    let dir = tempfile::tempdir().unwrap();
    for (batch, want) in [
        (
            "1",
            "defaults for stochastic gradient descent: --optimizer sgd, --lr 0.02",
        ),
        (
            "64",
            "defaults for mini-batch gradient descent: --optimizer sgd, --lr 0.05, --momentum 0.9",
        ),
        (
            "full",
            "defaults for batch gradient descent: --optimizer adam, --lr 0.01",
        ),
    ] {
        let (ok, out, err) = run(dir.path(), &["--limit", "200", "--batch-size", batch]);
        assert!(ok, "{out}\n{err}");
        assert!(out.contains(want), "batch {batch}:\n{out}");
        // The header names the schedule that ran.
        let schedule = if batch == "full" {
            "--lr-schedule constant"
        } else {
            "--lr-schedule cosine"
        };
        assert!(out.contains(schedule), "{out}");
    }
    // A flag the user gives is not listed as a default.
    let (ok, out, _) = run(
        dir.path(),
        &[
            "--limit",
            "200",
            "--epochs",
            "1",
            "--optimizer",
            "adam",
            "--lr",
            "0.002",
        ],
    );
    assert!(ok);
    assert!(out.contains("adam (betas 0.9, 0.999"), "{out}");
    assert!(
        !out.contains("--lr 0.002,") && !out.contains("--optimizer adam"),
        "{out}"
    );
}

/// Validation is printed and recorded; the best epoch is written to best.safetensors and the
/// last to last.safetensors; --patience restores the best weights.
#[test]
fn validation_checkpoints_and_early_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.jsonl");
    let ck = dir.path().join("ck");
    let save = dir.path().join("final.safetensors");
    // A high constant rate on a tiny set overfits quickly, so the validation loss turns up.
    let (ok, out, err) = run(
        dir.path(),
        &[
            "--limit",
            "600",
            "--val",
            "200",
            "--epochs",
            "30",
            "--patience",
            "3",
            "--lr",
            "0.1",
            "--lr-schedule",
            "constant",
            "--hidden",
            "64",
            "--metrics",
            m.to_str().unwrap(),
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--save",
            save.to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("val loss") && out.contains("val acc"), "{out}");
    assert!(out.contains("400 samples (+200 validation)"), "{out}");
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.iter().all(|r| r["val_loss"].is_number()));
    let best = rows
        .iter()
        .min_by(|a, b| {
            a["val_loss"]
                .as_f64()
                .partial_cmp(&b["val_loss"].as_f64())
                .unwrap()
        })
        .unwrap();
    let best_epoch = best["epoch"].as_u64().unwrap() as usize;
    assert!(rows.len() < 30, "early stopping never fired:\n{out}");
    assert_eq!(
        rows.len(),
        best_epoch + 3,
        "stopped 3 epochs after the best"
    );
    assert!(
        out.contains(&format!("restored the weights of epoch {best_epoch}")),
        "{out}"
    );
    assert!(ck.join("last.safetensors").is_file() && ck.join("best.safetensors").is_file());
    // The saved model is the best epoch's: its test accuracy is the best row's.
    let (ok, eval, err) = descent(&[
        "eval",
        "--json",
        "--device",
        "cpu",
        "--checkpoint",
        save.to_str().unwrap(),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--mirror",
        &mnist_mirror(),
    ]);
    assert!(ok, "{err}");
    let e: serde_json::Value = serde_json::from_str(eval.trim()).unwrap();
    let want = best["test_accuracy"].as_f64().unwrap();
    assert!(
        (e["test_accuracy"].as_f64().unwrap() - want).abs() < 1e-9,
        "{e} vs {best}"
    );
}

/// Ctrl-C finishes the step, writes a resumable checkpoint, exits 130; resuming with the same
/// flags ends with exactly the weights of a run that was never interrupted.
#[test]
fn ctrl_c_writes_a_checkpoint_and_resume_finishes_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let flags = [
        "--limit",
        "3000",
        "--epochs",
        "3",
        "--batch-size",
        "1",
        "--hidden",
        "32",
        "--dropout",
        "0.1",
        // Kept in the checkpoint's run configuration and applied again on resume.
        "--input-dropout",
        "0.1",
        "--max-norm",
        "2",
    ];
    let straight = dir.path().join("straight.safetensors");
    let mut f: Vec<&str> = flags.to_vec();
    f.extend(["--save", straight.to_str().unwrap()]);
    let (ok, out, err) = run(dir.path(), &f);
    assert!(ok, "{out}\n{err}");

    // The interrupted run: SIGINT once the first epoch has printed.
    let mut f: Vec<&str> = flags.to_vec();
    f.extend(["--checkpoint-dir", ck.to_str().unwrap()]);
    let a = args(dir.path(), &f);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(&a)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("epoch   1") {
            // SAFETY: signals a child process we own.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        }
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}\n{err}");
    assert!(
        err.contains("resumable checkpoint") && err.contains("--resume"),
        "{err}"
    );
    let last = ck.join("last.safetensors");
    assert!(last.is_file());

    let resumed = dir.path().join("resumed.safetensors");
    let mut f: Vec<&str> = flags.to_vec();
    f.extend([
        "--resume",
        last.to_str().unwrap(),
        "--save",
        resumed.to_str().unwrap(),
    ]);
    let (ok, out, err) = run(dir.path(), &f);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("resuming at epoch"), "{out}");
    let a = descent::model::load_checkpoint(&straight, None, None).unwrap();
    let b = descent::model::load_checkpoint(&resumed, None, None).unwrap();
    assert_eq!(
        a.params, b.params,
        "resumed weights differ from the straight run's"
    );
}

/// A run whose accuracy is at chance after an epoch says so, in the output and the metrics.
#[test]
fn a_run_at_chance_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.jsonl");
    let (ok, out, err) = run(
        dir.path(),
        &[
            "--limit",
            "2000",
            "--epochs",
            "1",
            "--optimizer",
            "sgd",
            "--momentum",
            "0.9",
            "--lr",
            "10",
            "--lr-schedule",
            "constant",
            "--metrics",
            m.to_str().unwrap(),
        ],
    );
    // Seeded, so this run always ends at chance (9.6%) without overflowing to NaN.
    assert!(ok, "{out}\n{err}");
    assert!(
        err.contains("at chance") && err.contains("too high"),
        "{err}"
    );
    let text = std::fs::read_to_string(&m).unwrap();
    assert!(text.contains("\"warning\""), "{text}");
}

#[test]
fn bad_flags_fail_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--patience", "3"], "--patience needs --val"),
        (vec!["--val", "60000"], "--val 60000"),
        (vec!["--dropout", "1.5"], "--dropout 1.5"),
        (vec!["--input-dropout", "1"], "--input-dropout 1"),
        (vec!["--input-dropout", "-0.1"], "--input-dropout -0.1"),
        (vec!["--max-norm", "-1"], "--max-norm -1"),
        (vec!["--max-norm", "NaN"], "--max-norm NaN"),
        (vec!["--max-norm", "inf"], "--max-norm inf"),
        (vec!["--beta2", "1"], "--beta2 1"),
        (vec!["--lr-schedule", "sometimes"], "sometimes"),
        (vec!["--optimizer", "rmsprop"], "rmsprop"),
        (
            vec!["--optimizer", "nesterov", "--momentum", "0"],
            "nesterov",
        ),
        (
            vec!["--save", dir.path().to_str().unwrap()],
            "is a directory",
        ),
        (
            vec!["--metrics", "/nonexistent/dir/m.jsonl"],
            "does not exist",
        ),
        (
            vec!["--checkpoint-dir", file.to_str().unwrap()],
            "not a directory",
        ),
        (
            vec!["--resume", garbage.to_str().unwrap()],
            "not a safetensors checkpoint",
        ),
        (vec!["--target-accuracy", "150"], "--target-accuracy"),
    ];
    for (extra, want) in cases {
        let (ok, out, err) = run(dir.path(), &extra);
        assert!(!ok, "{extra:?} should fail:\n{out}");
        assert!(
            err.contains(want),
            "{extra:?}: expected `{want}` in:\n{err}"
        );
        assert!(
            !out.contains("epoch   1"),
            "{extra:?} trained before failing"
        );
    }
    // --data-dir that is a file names the flag and the path.
    let (ok, _, err) = descent(&[
        "train",
        "--device",
        "cpu",
        "--data-dir",
        file.to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("--data-dir") && err.contains("not a directory"),
        "{err}"
    );
}

/// --resume refuses a checkpoint of another architecture, one written by --save (no state),
/// and a truncated one.
#[test]
fn resume_refuses_foreign_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ck");
    let (ok, out, err) = run(
        dir.path(),
        &[
            "--limit",
            "300",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--checkpoint-dir",
            ck.to_str().unwrap(),
            "--save",
            dir.path().join("w.safetensors").to_str().unwrap(),
        ],
    );
    assert!(ok, "{out}\n{err}");
    let last = ck.join("last.safetensors");
    let last = last.to_str().unwrap();
    // A resume of `checkpoint` on the first 300 samples with `flags`: its success and stderr.
    let resume = |checkpoint: &str, flags: &[&str]| {
        let mut f = vec!["--limit", "300", "--resume", checkpoint];
        f.extend(flags);
        let (ok, _, err) = run(dir.path(), &f);
        (ok, err)
    };
    let (ok, err) = resume(last, &["--hidden", "32"]);
    assert!(
        !ok && err.contains("784-16-10") && err.contains("--hidden"),
        "{err}"
    );
    let (ok, err) = resume(last, &["--hidden", "16", "--batch-size", "8"]);
    assert!(!ok && err.contains("--batch-size"), "{err}");
    // The regularization it trained with is part of the run.
    let (ok, err) = resume(
        last,
        &[
            "--hidden",
            "16",
            "--max-norm",
            "3",
            "--input-dropout",
            "0.2",
        ],
    );
    assert!(
        !ok && err.contains("--max-norm was 0, now 3") && err.contains("--input-dropout"),
        "{err}"
    );
    let w = dir.path().join("w.safetensors");
    let (ok, err) = resume(w.to_str().unwrap(), &["--hidden", "16"]);
    assert!(!ok && err.contains("not a resumable run"), "{err}");
    let bytes = std::fs::read(last).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let (ok, err) = resume(cut.to_str().unwrap(), &["--hidden", "16"]);
    assert!(!ok && err.contains("cut.safetensors"), "{err}");
}

/// The target accuracy stops the run and reports the training time it took.
#[test]
fn target_accuracy_stops_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, out, err) = run(
        dir.path(),
        &[
            "--limit",
            "5000",
            "--epochs",
            "20",
            "--target-accuracy",
            "80",
        ],
    );
    assert!(ok, "{out}\n{err}");
    assert!(
        out.contains("target accuracy 80.00% reached after epoch"),
        "{out}"
    );
    assert!(!out.contains("epoch  20"), "{out}");
}

/// Evaluating the validation split needs one.
#[test]
fn val_split_is_required_for_val_evaluation() {
    let spec = descent::model::ModelSpec::new(
        &[8],
        descent::model::Activation::Relu,
        descent::model::Loss::Xent,
    );
    let mut b = CpuBackend::new(Setup {
        spec: spec.clone(),
        params: spec.init_params(descent::model::Init::Auto, 0),
        train: Arc::new(descent::gpu::verify::synthetic(10, 0)),
        test: Arc::new(descent::gpu::verify::synthetic(10, 1)),
        val: None,
        batch: 5,
        optim: OptimConfig::sgd(0.0),
        dropout: 0.0,
        input_dropout: 0.0,
        seed: 0,
    });
    assert!(b.evaluate(Split::Val).is_err());
    assert!(b.evaluate(Split::Test).is_ok());
}
