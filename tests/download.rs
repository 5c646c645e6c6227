//! The downloader against an HTTP server on 127.0.0.1: good, corrupt-then-good, 404, cut short.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Reply, serve};
use descent::Error;
use descent::download::{Mirror, fetch_verified};
use descent::files::{FileSpec, sha256_hex};

fn payload() -> (Vec<u8>, FileSpec) {
    // An IDX labels file: the downloader reads a gzip stream only as far as its header says.
    let n = 50_000u32;
    let mut raw: Vec<u8> = vec![0, 0, 8, 1];
    raw.extend(n.to_be_bytes());
    raw.extend((0..n).map(|i| (i * 7 % 10) as u8));
    let sha: &'static str = Box::leak(sha256_hex(&raw).into_boxed_str());
    (
        raw,
        FileSpec {
            name: "train-labels-idx1-ubyte",
            sha256: sha,
        },
    )
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn good_download_lands_verified() {
    let (raw, spec) = payload();
    let gz = common::gzip(&raw);
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let base = serve(move |path, _| {
        h.fetch_add(1, Ordering::SeqCst);
        assert_eq!(path, "/train-labels-idx1-ubyte.gz");
        Reply::Ok(gz.clone())
    });
    let dir = tempfile::tempdir().unwrap();
    let got = fetch_verified(&[Mirror::parse(&base).unwrap()], spec, dir.path(), false).unwrap();
    assert_eq!(got, raw);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(files_in(dir.path()), vec!["train-labels-idx1-ubyte.gz"]);
}

#[test]
fn corrupt_payload_is_rejected_then_retried() {
    let (raw, spec) = payload();
    let gz = common::gzip(&raw);
    let mut bad_raw = raw.clone();
    bad_raw[100] ^= 1;
    let bad = common::gzip(&bad_raw);
    let base = serve(move |_, n| Reply::Ok(if n == 0 { bad.clone() } else { gz.clone() }));
    let dir = tempfile::tempdir().unwrap();
    let got = fetch_verified(&[Mirror::parse(&base).unwrap()], spec, dir.path(), false).unwrap();
    assert_eq!(got, raw);
    assert_eq!(files_in(dir.path()), vec!["train-labels-idx1-ubyte.gz"]);
}

#[test]
fn always_corrupt_payload_fails_with_the_checksum_and_leaves_nothing() {
    let (raw, spec) = payload();
    let mut bad_raw = raw.clone();
    bad_raw[0] ^= 1;
    let bad = common::gzip(&bad_raw);
    let base = serve(move |_, _| Reply::Ok(bad.clone()));
    let dir = tempfile::tempdir().unwrap();
    let err =
        fetch_verified(&[Mirror::parse(&base).unwrap()], spec, dir.path(), false).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("SHA-256"), "{msg}");
    assert!(
        files_in(dir.path()).is_empty(),
        "{:?}",
        files_in(dir.path())
    );
}

#[test]
fn not_found_names_the_url_and_the_escape_hatch() {
    let (_, spec) = payload();
    let base = serve(|_, _| Reply::NotFound);
    let dir = tempfile::tempdir().unwrap();
    let err =
        fetch_verified(&[Mirror::parse(&base).unwrap()], spec, dir.path(), false).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Download { .. }));
    assert!(msg.contains("404"), "{msg}");
    assert!(
        msg.contains(&format!("{base}train-labels-idx1-ubyte.gz")),
        "{msg}"
    );
    assert!(msg.contains("MNIST_MIRROR"), "{msg}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn interrupted_transfer_leaves_nothing_and_falls_through_to_the_next_mirror() {
    let (raw, spec) = payload();
    let gz = common::gzip(&raw);
    let half = gz[..gz.len() / 2].to_vec();
    let claimed = gz.len();
    let cut = serve(move |_, _| Reply::CutShort {
        body: half.clone(),
        claimed,
    });
    let dir = tempfile::tempdir().unwrap();
    let err = fetch_verified(&[Mirror::parse(&cut).unwrap()], spec, dir.path(), false).unwrap_err();
    assert!(
        err.to_string().contains("broke off") || err.to_string().contains("corrupt"),
        "{err}"
    );
    assert!(files_in(dir.path()).is_empty());

    let good = serve(move |_, _| Reply::Ok(gz.clone()));
    let mirrors = [Mirror::parse(&cut).unwrap(), Mirror::parse(&good).unwrap()];
    let got = fetch_verified(&mirrors, spec, dir.path(), false).unwrap();
    assert_eq!(got, raw);
}

#[test]
fn unreachable_mirror_is_a_clear_error() {
    let (_, spec) = payload();
    // Bind then drop, so the port is (almost certainly) closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{port}/");
    let err =
        fetch_verified(&[Mirror::parse(&base).unwrap()], spec, dir.path(), false).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&base) && msg.contains("MNIST_MIRROR"), "{msg}");
}

/// `descent data` end to end over HTTP with the real MNIST files.
#[test]
fn data_subcommand_downloads_mnist_over_http() {
    let src = common::mnist_dir();
    let base = serve(
        move |path, _| match std::fs::read(src.join(path.trim_start_matches('/'))) {
            Ok(b) => Reply::Ok(b),
            Err(_) => Reply::NotFound,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("mnist");
    let (ok, out, err) = common::descent(&[
        "data",
        "--quiet",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--mirror",
        &base,
    ]);
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("60000 training and 10000 test"), "{out}");
    assert_eq!(files_in(&data_dir).len(), 4);
}
