//! The `descent` binary end to end on the CPU path: training, checkpoints, eval, bad input.

mod common;

use common::{descent, descent_env, mnist_mirror};

fn metrics(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn short_run_learns_and_checkpoint_round_trips_through_eval() {
    let mirror = mnist_mirror();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let m = dir.path().join("m.jsonl");
    let ck = dir.path().join("model.safetensors");
    let (ok, out, err) = descent(&[
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--limit",
        "3000",
        "--epochs",
        "4",
        "--hidden",
        "64",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--mirror",
        &mirror,
        "--metrics",
        m.to_str().unwrap(),
        "--save",
        ck.to_str().unwrap(),
    ]);
    assert!(ok, "{out}\n{err}");
    let rows = metrics(&m);
    assert_eq!(rows.len(), 4);
    for key in [
        "epoch",
        "train_loss",
        "test_loss",
        "test_accuracy",
        "epoch_seconds",
        "samples_per_second",
        "device",
        "lr",
    ] {
        assert!(
            rows[0].get(key).is_some(),
            "metrics lack {key}: {}",
            rows[0]
        );
    }
    let loss = |i: usize| rows[i]["train_loss"].as_f64().unwrap();
    assert!(loss(3) < 0.6 * loss(0), "train loss did not fall: {rows:?}");
    let acc = rows[3]["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.85, "3000 samples should reach 85%: {acc}");

    let (ok, out, err) = descent(&[
        "eval",
        "--json",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--device",
        "cpu",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--mirror",
        &mirror,
    ]);
    assert!(ok, "{out}\n{err}");
    let e: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e["samples"].as_u64(), Some(10_000));
    assert!(
        (e["test_accuracy"].as_f64().unwrap() - acc).abs() < 1e-9,
        "{e} vs {acc}"
    );
    let tl = rows[3]["test_loss"].as_f64().unwrap();
    assert!(
        (e["test_loss"].as_f64().unwrap() - tl).abs() < 1e-6,
        "{e} vs {tl}"
    );

    // The same tensors as a PyTorch user would write them: no metadata, another order.
    let bytes = std::fs::read(&ck).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = st.tensors();
    tensors.reverse();
    let plain = dir.path().join("plain.safetensors");
    std::fs::write(&plain, safetensors::serialize(tensors, None).unwrap()).unwrap();
    let (ok, out, err) = descent(&[
        "eval",
        "--json",
        "--checkpoint",
        plain.to_str().unwrap(),
        "--device",
        "cpu",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--mirror",
        &mirror,
    ]);
    assert!(ok, "{out}\n{err}");
    let e2: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e2["test_accuracy"], e["test_accuracy"]);
}

#[test]
fn every_kind_of_descent_runs_stochastic_minibatch_and_full_batch() {
    let mirror = mnist_mirror();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    for (batch, extra) in [("1", "0.01"), ("full", "0.5"), ("100", "0.05")] {
        let (ok, out, err) = descent(&[
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--limit",
            "500",
            "--epochs",
            "2",
            "--batch-size",
            batch,
            "--lr",
            extra,
            "--hidden",
            "32",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--mirror",
            &mirror,
        ]);
        assert!(ok, "batch {batch}: {out}\n{err}");
        assert!(out.contains("epoch   2"), "{out}");
    }
}

/// `--log-every N` prints the mean loss of the last N steps, N steps apart, within each epoch.
#[test]
fn log_every_prints_running_losses() {
    let mirror = mnist_mirror();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (ok, out, err) = descent(&[
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--limit",
        "640",
        "--epochs",
        "2",
        "--log-every",
        "4",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--mirror",
        &mirror,
    ]);
    assert!(ok, "{out}\n{err}");
    // 640 samples at batch 64: 10 steps, logged after steps 4 and 8 of each epoch.
    for epoch in ["epoch   1", "epoch   2"] {
        for step in ["step      4/10", "step      8/10"] {
            let line = out
                .lines()
                .find(|l| l.starts_with(epoch) && l.contains(step))
                .unwrap_or_else(|| panic!("no {epoch} {step} line:\n{out}"));
            assert!(line.contains("(mean of the last 4 steps)"), "{line}");
        }
    }
    assert_eq!(out.matches("mean of the last").count(), 4, "{out}");
}

#[test]
fn bad_flags_exit_non_zero_with_a_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["--batch-size", "0"], "batch-size"),
        (&["--batch-size", "many"], "batch-size"),
        (&["--lr", "-1"], "--lr"),
        (&["--lr", "NaN"], "--lr"),
        (&["--lr", "inf"], "--lr"),
        (&["--hidden", "0"], "--hidden"),
        (&["--hidden", "12,x"], "--hidden"),
        (&["--activation", "swish"], "swish"),
        (&["--loss", "hinge"], "hinge"),
        (&["--momentum", "1.5"], "--momentum"),
        (&["--epochs", "0"], "--epochs"),
        (&["--log-every", "0"], "--log-every"),
        (&["--limit", "0"], "--limit"),
        (&["--dataset", "cifar"], "cifar"),
        (&["--mirror", "ftp://x"], "mirror"),
        (&["--metrics", "/nonexistent-dir/m.jsonl"], "--metrics"),
        (&["--save", "/nonexistent-dir/m.safetensors"], "--save"),
    ];
    for (args, needle) in cases {
        let mut all = vec!["train", "--quiet", "--device", "cpu"];
        all.extend_from_slice(args);
        let (ok, out, err) = descent(&all);
        assert!(!ok, "{args:?} succeeded: {out}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks `{needle}`: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
    }
}

#[test]
fn divergence_stops_with_epoch_and_step() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.jsonl");
    let (ok, out, err) = descent(&[
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--limit",
        "2000",
        "--epochs",
        "3",
        "--lr",
        "1e6",
        "--loss",
        "mse",
        "--mirror",
        &mnist_mirror(),
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
        "--metrics",
        m.to_str().unwrap(),
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("diverged") && err.contains("epoch 1, step"),
        "{err}"
    );
}

#[test]
fn unreachable_mirror_names_the_url_and_mnist_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/mnist/");
    let (ok, _, err) = descent_env(
        &[
            "data",
            "--quiet",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[("MNIST_MIRROR", &url)],
    );
    assert!(!ok);
    assert!(err.contains(&url) && err.contains("MNIST_MIRROR"), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing half-written"
    );
}

#[test]
fn eval_rejects_non_checkpoints_and_wrong_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let mirror = mnist_mirror();
    let data_dir = dir.path().join("d");
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"this is not a checkpoint").unwrap();
    let missing = dir.path().join("missing.safetensors");

    // A checkpoint whose layers do not chain: 784 -> 5, then 6 -> 10.
    let w0 = vec![0.0f32; 5 * 784];
    let b0 = vec![0.0f32; 5];
    let w1 = vec![0.0f32; 10 * 6];
    let b1 = vec![0.0f32; 10];
    fn view(shape: Vec<usize>, d: &[f32]) -> safetensors::tensor::TensorView<'_> {
        safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            shape,
            bytemuck::cast_slice(d),
        )
        .unwrap()
    }
    let bytes = safetensors::serialize(
        [
            ("layers.0.weight", view(vec![5, 784], &w0)),
            ("layers.0.bias", view(vec![5], &b0)),
            ("layers.1.weight", view(vec![10, 6], &w1)),
            ("layers.1.bias", view(vec![10], &b1)),
        ],
        None,
    )
    .unwrap();
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, bytes).unwrap();

    for (path, needle) in [
        (&junk, "not a safetensors checkpoint"),
        (&missing, "No such file"),
        (&bad, "takes 6 inputs but the layer before gives 5"),
    ] {
        let (ok, out, err) = descent(&[
            "eval",
            "--device",
            "cpu",
            "--checkpoint",
            path.to_str().unwrap(),
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--mirror",
            &mirror,
        ]);
        assert!(!ok, "{out}");
        assert!(err.contains(needle), "{path:?}: {err}");
    }
}

/// The foundation's accuracy bar: full MNIST, a few epochs, at least 97% on the test set.
#[test]
fn full_mnist_reaches_97_percent_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.jsonl");
    let (ok, out, err) = descent_env(
        &[
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--epochs",
            "5",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
            "--metrics",
            m.to_str().unwrap(),
        ],
        &[("MNIST_MIRROR", &mnist_mirror())],
    );
    assert!(ok, "{out}\n{err}");
    let rows = metrics(&m);
    let acc = rows.last().unwrap()["test_accuracy"].as_f64().unwrap();
    assert!(acc >= 0.97, "test accuracy {acc}\n{out}");
}

/// `descent web` serves a folder on 127.0.0.1 at the port it prints: files with the types a
/// browser needs, 404 for what is missing or outside; no index.html is refused up front.
#[test]
fn web_serves_the_page_folder_and_nothing_else() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = descent(&["web", "--dir", dir.path().to_str().unwrap(), "--port", "0"]);
    assert!(!ok && err.contains("no index.html"), "{err}");

    std::fs::write(dir.path().join("index.html"), "<p>descent</p>").unwrap();
    std::fs::write(dir.path().join("m.wasm"), [0u8, 97, 115, 109]).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_descent"))
        .args(["web", "--dir", dir.path().to_str().unwrap(), "--port", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "{line}");
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    let index = get("/");
    let wasm = get("/m.wasm");
    let queried = get("/./m.wasm?v=1");
    let outside = get("/../Cargo.toml");
    let climbing = get("/x/../../Cargo.toml");
    let missing = get("/nope.js");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        index.starts_with("HTTP/1.1 200") && index.ends_with("<p>descent</p>"),
        "{index}"
    );
    assert!(wasm.contains("Content-Type: application/wasm"), "{wasm}");
    assert!(
        queried.contains("Content-Type: application/wasm"),
        "{queried}"
    );
    assert!(outside.starts_with("HTTP/1.1 404"), "{outside}");
    assert!(climbing.starts_with("HTTP/1.1 404"), "{climbing}");
    assert!(missing.starts_with("HTTP/1.1 404"), "{missing}");
}
