//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Where the real MNIST files are: $MNIST_MIRROR (a directory or file:// URL), else
/// ../shared/data/mnist, else data/mnist (where `descent data` puts them). Fails loudly rather
/// than skipping: CI must always have the data.
pub fn mnist_mirror() -> String {
    if let Ok(m) = std::env::var("MNIST_MIRROR")
        && !m.trim().is_empty()
    {
        return m;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [root.join("../shared/data/mnist"), root.join("data/mnist")];
    let found = candidates.iter().find(|d| {
        d.join("t10k-labels-idx1-ubyte.gz").is_file() || d.join("t10k-labels-idx1-ubyte").is_file()
    });
    match found {
        Some(d) => format!("file://{}", d.display()),
        None => panic!(
            "MNIST not found: set MNIST_MIRROR to a directory or file:// URL holding the four \
             *-ubyte.gz files, or run `cargo run --release -- data` first (looked in {})",
            candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The directory behind `mnist_mirror()` (for tests that serve it over HTTP).
pub fn mnist_dir() -> PathBuf {
    let m = mnist_mirror();
    PathBuf::from(m.strip_prefix("file://").unwrap_or(&m))
}

/// Runs the `descent` binary; returns (exit success, stdout, stderr).
pub fn descent(args: &[&str]) -> (bool, String, String) {
    descent_env(args, &[])
}

pub fn descent_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_descent"));
    cmd.args(args).env_remove("MNIST_MIRROR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run descent");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the test HTTP server answers to one request.
pub enum Reply {
    Ok(Vec<u8>),
    NotFound,
    /// Promises `claimed` bytes, sends `body`, then closes the connection.
    CutShort {
        body: Vec<u8>,
        claimed: usize,
    },
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 that answers each request with
/// `handler(path, request_number)`. Returns the base URL.
pub fn serve<F>(handler: F) -> String
where
    F: Fn(&str, usize) -> Reply + Send + 'static,
{
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let (status, body, claimed) = match handler(&path, n) {
                Reply::Ok(b) => ("200 OK", b.clone(), b.len()),
                Reply::NotFound => ("404 Not Found", b"not found".to_vec(), 9),
                Reply::CutShort { body, claimed } => ("200 OK", body, claimed),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
    });
    format!("http://{addr}/")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// Runs `epochs` epochs of a small model straight through, and again stopped after
/// `stop_after` epochs (through the interrupt flag, as Ctrl-C does), saved to a resumable
/// checkpoint, loaded into a fresh backend from `make`, and finished. Returns the two runs'
/// final parameters and optimizer states, and the epoch records of the resumed half.
#[allow(clippy::type_complexity)]
pub fn straight_and_resumed(
    make: &dyn Fn(descent::backend::Setup) -> Box<dyn descent::backend::Backend>,
    optim: descent::optim::OptimConfig,
    (dropout, input_dropout): (f32, f32),
    epochs: usize,
    stop_after: usize,
) -> ((Vec<f32>, Vec<Vec<f32>>), (Vec<f32>, Vec<Vec<f32>>)) {
    use descent::backend::{Backend, Setup};
    use descent::model::{Activation, Init, Loss, ModelSpec};
    use descent::optim::{Schedule, ScheduleKind};
    use descent::train::{EpochRecord, Observer, Outcome, Position, TrainConfig, train};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    struct StopAt(usize, Arc<AtomicBool>);
    impl Observer for StopAt {
        fn on_epoch(
            &mut self,
            r: &EpochRecord,
            _: &mut dyn Backend,
            _: &Position,
        ) -> descent::Result<()> {
            if r.epoch == self.0 {
                self.1.store(true, Ordering::SeqCst);
            }
            Ok(())
        }
    }

    let spec = ModelSpec::new(&[32], Activation::Relu, Loss::Xent);
    let setup = Setup {
        spec: spec.clone(),
        params: spec.init_params(Init::Auto, 3),
        train: Arc::new(descent::gpu::verify::synthetic(250, 1)),
        test: Arc::new(descent::gpu::verify::synthetic(40, 2)),
        val: Some(Arc::new(descent::gpu::verify::synthetic(30, 3))),
        batch: 32,
        optim,
        dropout,
        input_dropout,
        seed: 7,
    };
    let steps = 250usize.div_ceil(32);
    let cfg = |interrupt: Option<Arc<AtomicBool>>, start: Position| TrainConfig {
        classes: 10,
        epochs,
        batch: 32,
        optim,
        schedule: Schedule {
            kind: ScheduleKind::Cosine,
            lr: if optim.kind.is_adam() { 0.003 } else { 0.05 },
            min_lr: 0.0,
            warmup_steps: 3,
            step_every: u64::MAX,
            gamma: 1.0,
            total_steps: (epochs * steps) as u64,
        },
        seed: 7,
        progress: false,
        log_every: None,
        val: true,
        patience: None,
        target_accuracy: None,
        start,
        interrupt,
    };
    let mut a = make(setup.clone());
    let mut never = StopAt(0, Arc::new(AtomicBool::new(false)));
    let (_, outcome) = train(a.as_mut(), &cfg(None, Position::default()), 250, &mut never).unwrap();
    assert_eq!(outcome, Outcome::Completed);
    let straight = (a.params().unwrap(), a.optimizer_state().unwrap());

    let flag = Arc::new(AtomicBool::new(false));
    let mut b = make(setup.clone());
    let mut stop = StopAt(stop_after, flag.clone());
    let (_, outcome) = train(
        b.as_mut(),
        &cfg(Some(flag), Position::default()),
        250,
        &mut stop,
    )
    .unwrap();
    let Outcome::Interrupted { next } = outcome else {
        panic!("expected an interruption, got {outcome:?}");
    };
    assert_eq!((next.epoch, next.step), (stop_after + 1, 0));
    // Through a real checkpoint file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let resume = descent::model::ResumeState {
        optimizer: optim.kind,
        state: b.optimizer_state().unwrap(),
        position: next,
        config: "{}".into(),
    };
    descent::model::save_checkpoint(
        &path,
        &spec,
        &b.params().unwrap(),
        descent::data::DatasetKind::Mnist,
        Some(&resume),
    )
    .unwrap();
    drop(b);
    let ck = descent::model::load_checkpoint(&path, None, None).unwrap();
    let rs = ck.resume.unwrap();
    let mut c = make(Setup {
        params: ck.params,
        ..setup
    });
    c.set_optimizer_state(&rs.state).unwrap();
    let (records, outcome) = train(c.as_mut(), &cfg(None, rs.position), 250, &mut never).unwrap();
    assert_eq!(outcome, Outcome::Completed);
    assert_eq!(records.first().map(|r| r.epoch), Some(stop_after + 1));
    let resumed = (c.params().unwrap(), c.optimizer_state().unwrap());
    (straight, resumed)
}

struct Quiet;
impl descent::train::Observer for Quiet {
    fn on_epoch(
        &mut self,
        _: &descent::train::EpochRecord,
        _: &mut dyn descent::backend::Backend,
        _: &descent::train::Position,
    ) -> descent::Result<()> {
        Ok(())
    }
}

/// Trains a pruned network two epochs with the mask held and returns (params, optimizer state,
/// mask, starting params).
pub fn masked_finetune(
    make: &dyn Fn(descent::backend::Setup) -> Box<dyn descent::backend::Backend>,
    kind: descent::optim::OptimizerKind,
) -> (Vec<f32>, Vec<Vec<f32>>, Vec<f32>, Vec<f32>) {
    use descent::backend::Setup;
    use descent::gpu::verify::synthetic;
    use descent::model::{Activation, Init, Loss, ModelSpec};
    use descent::optim::{OptimConfig, Schedule};
    use descent::prune;
    use descent::train::{self, TrainConfig};
    use std::sync::Arc;
    let s = ModelSpec::new(&[32], Activation::Relu, Loss::Xent);
    let params = s.init_params(Init::Auto, 2);
    let mask = prune::magnitude_mask(&s, &params, 0.8, false);
    let optim = OptimConfig {
        kind,
        weight_decay: 1e-3,
        ..OptimConfig::sgd(0.9)
    };
    let setup = Setup {
        spec: s.clone(),
        params: params.clone(),
        train: Arc::new(synthetic(200, 1)),
        test: Arc::new(synthetic(40, 2)),
        val: None,
        batch: 16,
        optim,
        dropout: 0.2,
        input_dropout: 0.0,
        seed: 3,
    };
    let mut b = make(setup);
    b.set_mask(Some(&mask)).unwrap();
    let lr = if kind.is_adam() { 1e-3 } else { 0.05 };
    let cfg = TrainConfig::new(10, 2, 16, optim, Schedule::constant(lr), 3);
    train::train(b.as_mut(), &cfg, 200, &mut Quiet).unwrap();
    (
        b.params().unwrap(),
        b.optimizer_state().unwrap(),
        mask,
        params,
    )
}

pub fn assert_mask_held(p: &[f32], state: &[Vec<f32>], mask: &[f32], start: &[f32]) {
    let mut moved = 0;
    for (i, &m) in mask.iter().enumerate() {
        if m == 0.0 {
            assert_eq!(p[i].to_bits(), 0, "pruned weight {i} is {}", p[i]);
            for s in state {
                assert_eq!(s[i].to_bits(), 0, "optimizer state of pruned weight {i}");
            }
        } else if p[i] != start[i] {
            moved += 1;
        }
    }
    assert!(moved > mask.len() / 10, "only {moved} kept weights trained");
}
