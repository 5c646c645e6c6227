//! The library without the command line: the `Trainer` facade, checkpoints as bytes, MNIST from
//! its files' bytes, and the `train_mnist` example end to end (its checkpoint read by `descent
//! eval`).

mod common;

use std::path::{Path, PathBuf};

use descent::data::{DatasetKind, Splits};
use descent::model::{self, checkpoint_bytes, checkpoint_from_bytes};
use descent::{
    Activation, BatchSize, Dataset, EpochRecord, Loss, ModelSpec, OptimConfig, OptimizerKind,
    Outcome, Progress, Trainer, TrainerOptions,
};

/// The four MNIST files' bytes as stored (gzipped), in `DatasetSpec::files` order.
fn mnist_files() -> [Vec<u8>; 4] {
    let dir = common::mnist_dir();
    DatasetKind::Mnist.spec().files().map(|f| {
        let gz = dir.join(format!("{}.gz", f.name));
        let path = if gz.is_file() { gz } else { dir.join(f.name) };
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    })
}

fn small_mnist(train: usize, test: usize) -> (Dataset, Dataset) {
    let splits = Splits::from_files(DatasetKind::Mnist, "mnist", mnist_files()).expect("MNIST");
    let (mut tr, mut te) = (splits.train, splits.test);
    tr.truncate(train);
    te.truncate(test);
    (tr, te)
}

fn opts() -> TrainerOptions {
    TrainerOptions {
        epochs: 2,
        batch: BatchSize::Samples(50),
        optim: OptimConfig {
            kind: OptimizerKind::Adam,
            ..OptimConfig::sgd(0.0)
        },
        lr: 2e-3,
        seed: 7,
        ..TrainerOptions::default()
    }
}

#[test]
fn mnist_from_file_bytes_is_checked_like_the_cli_loads_it() {
    let splits = Splits::from_files(DatasetKind::Mnist, "served/", mnist_files()).expect("load");
    assert_eq!((splits.train.len(), splits.test.len()), (60_000, 10_000));
    assert_eq!(splits.test.labels[..3], [7, 2, 1]);

    // One changed pixel: the checksum names the file as the caller served it.
    let mut files = mnist_files();
    let mut raw = descent::files::decompress(files[2].clone(), Path::new("x")).expect("gunzip");
    raw[1000] ^= 1;
    files[2] = raw;
    let err = Splits::from_files(DatasetKind::Mnist, "served/", files)
        .expect_err("a changed byte must fail")
        .to_string();
    assert!(err.contains("served/t10k-images-idx3-ubyte"), "{err}");
    assert!(err.contains("SHA-256"), "{err}");

    // Cut short: the gzip stream is reported damaged, naming the .gz file.
    let mut files = mnist_files();
    files[3].truncate(files[3].len() / 2);
    let err = Splits::from_files(DatasetKind::Mnist, "served", files)
        .expect_err("a truncated file must fail")
        .to_string();
    assert!(err.contains("served/t10k-labels-idx1-ubyte.gz"), "{err}");
}

#[test]
fn steps_at_a_time_train_exactly_as_whole_epochs() {
    let (train, test) = small_mnist(1000, 500);
    let spec = ModelSpec::new(&[24], Activation::Relu, Loss::Xent);

    let mut whole = Trainer::cpu(spec.clone(), train.clone(), test.clone(), opts()).expect("new");
    let mut seen = Vec::new();
    let records = whole
        .fit(&mut |r: &EpochRecord| seen.push(r.epoch))
        .expect("fit");
    assert_eq!(seen, [1, 2]);
    assert_eq!(whole.outcome(), Some(&Outcome::Completed));

    let mut stepped = Trainer::cpu(spec, train, test, opts()).expect("new");
    assert_eq!(stepped.batch(), (50, 20));
    let mut stepped_records = Vec::new();
    let mut calls = 0;
    loop {
        calls += 1;
        match stepped.steps(7).expect("steps") {
            Progress::Stepped { epoch, step, steps } => {
                assert!(
                    epoch <= 2 && step < steps && step % 7 == 0,
                    "{epoch} {step}"
                );
                let loss = stepped.recent_loss(7).expect("loss").expect("mid-epoch");
                assert!(loss.is_finite() && loss > 0.0, "{loss}");
            }
            Progress::Epoch(r) => stepped_records.push(r),
            Progress::Finished(o) => {
                assert_eq!(o, Outcome::Completed);
                break;
            }
        }
    }
    // 20 steps an epoch in 7, 7, 6, two epochs, one call to hear it is over.
    assert_eq!(calls, 7);
    assert_eq!(stepped_records.len(), 2);
    for (a, b) in records.iter().zip(&stepped_records) {
        assert_eq!(a.train_loss, b.train_loss);
        assert_eq!(a.test_loss, b.test_loss);
        assert_eq!(a.test_accuracy, b.test_accuracy);
    }
    assert_eq!(whole.params().expect("p"), stepped.params().expect("p"));
    // Two epochs of Adam on 1000 samples learn: well above the 10% of chance.
    assert!(records[1].test_accuracy > 0.5, "{:?}", records[1]);
    assert!(records[1].train_loss < records[0].train_loss);
}

/// What a browser does on WebGPU, natively on lavapipe: steps queued, every readback awaited
/// (`steps_async`, `recent_loss_async`, `params_async`), giving what the blocking calls give.
#[test]
fn on_the_gpu_awaited_steps_train_exactly_as_whole_epochs() {
    let (train, test) = small_mnist(600, 300);
    let spec = ModelSpec::new(&[16], Activation::Relu, Loss::Xent);
    let device = descent::Device::gpu().expect("a GPU adapter (lavapipe in CI)");
    let mut whole = Trainer::new(
        spec.clone(),
        train.clone(),
        test.clone(),
        opts(),
        device.clone(),
    )
    .expect("new");
    let records = whole.fit(&mut |_: &EpochRecord| {}).expect("fit");
    let mut stepped = Trainer::new(spec, train, test, opts(), device).expect("new");
    let mut stepped_records = Vec::new();
    loop {
        match pollster::block_on(stepped.steps_async(5)).expect("steps") {
            Progress::Stepped { .. } => {
                let awaited = pollster::block_on(stepped.recent_loss_async(5)).expect("loss");
                let blocking = stepped.recent_loss(5).expect("loss");
                assert!(awaited.is_some_and(f64::is_finite), "{awaited:?}");
                assert_eq!(awaited, blocking);
            }
            Progress::Epoch(r) => stepped_records.push(r),
            Progress::Finished(_) => break,
        }
    }
    assert_eq!(stepped_records.len(), 2);
    for (a, b) in records.iter().zip(&stepped_records) {
        assert_eq!(
            (a.train_loss, a.test_loss, a.test_accuracy),
            (b.train_loss, b.test_loss, b.test_accuracy)
        );
    }
    let params = pollster::block_on(stepped.params_async()).expect("params");
    assert_eq!(params, whole.params().expect("params"));
    assert_eq!(params, stepped.params().expect("params"));
    assert!(records[1].test_accuracy > 0.3, "{:?}", records[1]);
}

#[test]
fn checkpoint_bytes_round_trip_and_bad_input_is_named() {
    let (train, test) = small_mnist(200, 100);
    let spec = ModelSpec::new(&[8], Activation::Tanh, Loss::Xent);
    let mut t = Trainer::cpu(
        spec.clone(),
        train,
        test.clone(),
        TrainerOptions {
            epochs: 1,
            ..opts()
        },
    )
    .expect("new");
    t.fit(&mut |_: &EpochRecord| {}).expect("fit");
    let bytes = t.checkpoint_bytes("model.safetensors").expect("bytes");
    let ck = checkpoint_from_bytes(&bytes, Path::new("model.safetensors"), None, None)
        .expect("read back");
    assert_eq!(ck.spec, spec);
    assert_eq!(ck.params, t.params().expect("params"));
    assert_eq!(ck.dataset, Some(DatasetKind::Mnist));

    // predict = the softmax of the same forward pass the evaluation counts.
    let x: Vec<f32> = (0..3).flat_map(|i| test.row(i)).collect();
    let probs = t.predict(&x).expect("predict");
    assert_eq!(probs.len(), 3);
    for p in &probs {
        assert_eq!(p.len(), 10);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    assert_eq!(
        probs,
        descent::analysis::probabilities(&spec, &ck.params, &x)
    );
    let err = t
        .predict(&x[..100])
        .expect_err("not whole rows")
        .to_string();
    assert!(err.contains("784"), "{err}");

    let err = checkpoint_from_bytes(b"not a checkpoint", Path::new("upload.bin"), None, None)
        .expect_err("garbage")
        .to_string();
    assert!(
        err.contains("upload.bin") && err.contains("not a safetensors"),
        "{err}"
    );

    let other = ModelSpec::with_io(10, &[4], 3, Activation::Relu, Loss::Xent);
    let p = other.init_params(descent::Init::Auto, 0);
    let bytes = checkpoint_bytes(Path::new("x"), &other, &p, None, DatasetKind::Mnist, None)
        .expect("bytes");
    let err = checkpoint_from_bytes(&bytes, Path::new("iris.safetensors"), None, None)
        .expect_err("not MNIST-shaped")
        .to_string();
    assert!(
        err.contains("iris.safetensors") && err.contains("10 inputs"),
        "{err}"
    );

    let err = match Trainer::with_params(
        spec.clone(),
        vec![0.0; 5],
        Dataset::default(),
        Dataset::default(),
        opts(),
        descent::Device::Cpu,
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("5 parameters cannot be a 784-8-10 model"),
    };
    assert!(err.contains("5 parameters"), "{err}");

    let (train, test) = small_mnist(100, 50);
    let bad = TrainerOptions {
        input_dropout: 1.0,
        ..opts()
    };
    let err = match Trainer::cpu(spec, train, test, bad) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("input dropout 1 drops every pixel"),
    };
    assert!(err.contains("--input-dropout 1"), "{err}");
}

/// The example binary, (re)built here when `--test library` ran without the examples: a no-op
/// after a whole `cargo test --release`, which builds them first.
fn example(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_descent"))
        .with_file_name("examples")
        .join(name);
    let mut cargo = std::process::Command::new(env!("CARGO"));
    // The variables cargo sets for this test (CARGO_PKG_NAME and the like) reach build scripts
    // that watch them, which would rebuild their crates from scratch; leave only the user's.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let users = ["CARGO_HOME", "CARGO_TARGET_DIR"].contains(&k.as_str())
            || k.starts_with("CARGO_BUILD_");
        if (k.starts_with("CARGO_") && !users) || k == "OUT_DIR" || k == "RUST_RECURSION_COUNT" {
            cargo.env_remove(&k);
        }
    }
    let status = cargo
        .current_dir(&root)
        .args(["build", "--release", "--example", name])
        .status()
        .expect("cargo build --example");
    assert!(status.success());
    bin
}

#[test]
fn the_train_mnist_example_trains_saves_and_the_cli_reads_it() {
    let bin = example("train_mnist");
    let tmp = tempfile::tempdir().expect("tmp");
    let out = tmp.path().join("ex.safetensors");
    let run = std::process::Command::new(&bin)
        .args(["1", "3000", out.to_str().expect("utf-8")])
        .env("MNIST_MIRROR", common::mnist_mirror())
        .env("DESCENT_DATA_DIR", tmp.path().join("mnist"))
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("epoch 1: train loss"), "{stdout}");
    let acc: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy "))
        .and_then(|s| s.trim_end_matches('%').parse().ok())
        .expect("a test accuracy line");
    assert!(acc > 80.0, "{stdout}");

    let ck = model::load_checkpoint(&out, None, None).expect("checkpoint");
    assert_eq!(ck.spec.sizes, [784, 128, 10]);
    let mirror = common::mnist_mirror();
    let data_dir = tmp.path().join("mnist");
    let (ok, eval, err) = common::descent(&[
        "eval",
        "--json",
        "--checkpoint",
        out.to_str().expect("utf-8"),
        "--device",
        "cpu",
        "--data-dir",
        data_dir.to_str().expect("utf-8"),
        "--mirror",
        &mirror,
    ]);
    assert!(ok, "{eval}{err}");
    let json: serde_json::Value = serde_json::from_str(eval.trim()).expect("eval --json");
    let eval_acc = json["test_accuracy"].as_f64().expect("accuracy");
    assert!((100.0 * eval_acc - acc).abs() < 0.01, "{eval} vs {acc}");
}
