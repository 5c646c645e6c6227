//! The IDX loader and the local half of the data source: round trips and every bad file.

mod common;

use std::path::Path;

use descent::Error;
use descent::data::{DataSource, Dataset, DatasetKind, PIXELS, parse_idx};
use descent::download::Mirror;

fn sample(n: usize) -> Dataset {
    Dataset::pixels(
        (0..n * PIXELS).map(|i| (i * 31 % 256) as u8).collect(),
        (0..n).map(|i| (i % 10) as u8).collect(),
    )
}

fn load(images: &[u8], labels: &[u8]) -> descent::Result<Dataset> {
    Dataset::from_idx(
        "test",
        images,
        Path::new("images"),
        labels,
        Path::new("labels"),
    )
}

#[test]
fn idx_round_trip() {
    let d = sample(17);
    let (images, labels) = d.to_idx();
    let back = load(&images, &labels).expect("round trip");
    assert_eq!(back.images, d.images);
    assert_eq!(back.labels, d.labels);
}

#[test]
fn gz_and_raw_files_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = sample(3).to_idx();
    std::fs::write(dir.path().join("raw"), &images).unwrap();
    std::fs::write(dir.path().join("packed.gz"), common::gzip(&images)).unwrap();
    let raw = descent::files::read_maybe_gz(&dir.path().join("raw")).unwrap();
    let gz = descent::files::read_maybe_gz(&dir.path().join("packed.gz")).unwrap();
    assert_eq!(raw, images);
    assert_eq!(gz, images);
}

#[test]
fn truncated_file_is_an_error() {
    let (images, labels) = sample(5).to_idx();
    for cut in [0, 3, 10, images.len() - 1] {
        let err = load(&images[..cut], &labels).unwrap_err();
        assert!(matches!(err, Error::Truncated { .. }), "cut {cut}: {err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }
}

#[test]
fn wrong_magic_is_an_error() {
    let (images, labels) = sample(2).to_idx();
    // Labels where images belong, and a random header.
    let err = load(&labels, &images).unwrap_err();
    assert!(matches!(err, Error::BadMagic { .. }), "{err}");
    let mut junk = images.clone();
    junk[..4].copy_from_slice(b"PK\x03\x04");
    let err = load(&junk, &labels).unwrap_err();
    assert!(err.to_string().contains("magic number"), "{err}");
}

#[test]
fn count_mismatch_is_an_error() {
    let (images, _) = sample(4).to_idx();
    let (_, labels) = sample(3).to_idx();
    let err = load(&images, &labels).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CountMismatch {
                images: 4,
                labels: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn trailing_bytes_bad_labels_and_odd_image_sizes_are_errors() {
    let (mut images, labels) = sample(2).to_idx();
    let mut long = labels.clone();
    long.push(0);
    assert!(matches!(
        load(&images, &long).unwrap_err(),
        Error::Corrupt { .. }
    ));
    let mut bad = labels.clone();
    *bad.last_mut().unwrap() = 10;
    assert!(
        load(&images, &bad)
            .unwrap_err()
            .to_string()
            .contains("label 10")
    );
    images[11] = 27; // 28x27 images
    assert!(matches!(
        load(&images, &labels).unwrap_err(),
        Error::Corrupt { .. }
    ));
    let (ok_images, ok_labels) = sample(1).to_idx();
    let (dims, payload) = parse_idx(&ok_images, Path::new("x"), "images", 0x803).unwrap();
    assert_eq!(dims, vec![1, 28, 28]);
    assert_eq!(payload.len(), PIXELS);
    assert!(parse_idx(&ok_labels, Path::new("x"), "images", 0x803).is_err());
}

#[test]
fn corrupt_gzip_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (images, _) = sample(3).to_idx();
    let gz = common::gzip(&images);
    let path = dir.path().join("cut.gz");
    std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
    let err = descent::files::read_maybe_gz(&path).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

/// A data dir whose files fail their checksum, with a mirror that lacks them: the error names the
/// mirror and the MNIST_MIRROR escape hatch, and nothing is written.
#[test]
fn corrupt_local_file_without_a_good_mirror_is_an_error() {
    let data = tempfile::tempdir().unwrap();
    let empty_mirror = tempfile::tempdir().unwrap();
    let (images, _) = sample(3).to_idx();
    std::fs::write(data.path().join("train-images-idx3-ubyte"), &images).unwrap();
    let src = DataSource {
        kind: DatasetKind::Mnist,
        dir: data.path().to_owned(),
        mirror: Some(Mirror::Dir(empty_mirror.path().to_owned())),
        progress: false,
    };
    let err = src.load().unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Download { .. }), "{msg}");
    assert!(msg.contains("MNIST_MIRROR"), "{msg}");
    assert!(
        msg.contains(&empty_mirror.path().display().to_string()),
        "{msg}"
    );
    let names: Vec<_> = std::fs::read_dir(data.path()).unwrap().collect();
    assert_eq!(names.len(), 1, "no new or partial files");
}

/// The real MNIST through a directory mirror: fetched, verified, and parsed.
#[test]
fn mnist_loads_from_a_directory_mirror_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let src = DataSource {
        kind: DatasetKind::Mnist,
        dir: dir.path().join("mnist"),
        mirror: Some(Mirror::parse(&common::mnist_mirror()).unwrap()),
        progress: false,
    };
    let splits = src.load().expect("load MNIST");
    assert_eq!(splits.train.len(), 60_000);
    assert_eq!(splits.test.len(), 10_000);
    assert_eq!(splits.train.images.len(), 60_000 * PIXELS);
    // Labels are roughly balanced: each class is 9–11% of the test set.
    for c in 0..10u8 {
        let k = splits.test.labels.iter().filter(|&&l| l == c).count();
        assert!((850..1_150).contains(&k), "class {c}: {k}");
    }
    // A second load reads the verified local copies; a corrupted one is replaced from the mirror.
    let local = dir.path().join("mnist/t10k-labels-idx1-ubyte.gz");
    std::fs::write(&local, b"garbage").unwrap();
    let again = src.load().expect("reload repairs the corrupt file");
    assert_eq!(again.test.labels, splits.test.labels);
}

#[test]
fn mirror_strings_parse() {
    assert_eq!(
        Mirror::parse("http://h/x").unwrap(),
        Mirror::Http("http://h/x/".into())
    );
    assert_eq!(
        Mirror::parse("file:///a/b").unwrap(),
        Mirror::Dir("/a/b".into())
    );
    assert_eq!(
        Mirror::parse("some/dir").unwrap(),
        Mirror::Dir("some/dir".into())
    );
    assert!(Mirror::parse("ftp://x").is_err());
    assert!(Mirror::parse("").is_err());
}

/// A gzip stream that inflates far beyond what its IDX header declares is read only as far as
/// the header says (plus a byte, to report the trailing data): a 100 MB bomb costs nothing.
#[test]
fn a_gzip_bomb_is_read_only_as_far_as_its_header_declares() {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = vec![0u8, 0, 8, 1, 0, 0, 0, 10];
    raw.extend([3u8; 10]);
    raw.resize(raw.len() + 100_000_000, 0);
    let path = dir.path().join("bomb-labels-idx1-ubyte.gz");
    std::fs::write(&path, common::gzip(&raw)).unwrap();
    drop(raw);
    let bytes = descent::files::read_maybe_gz(&path).unwrap();
    assert_eq!(bytes.len(), 8 + 10 + 1, "read past the header's promise");
    let err = parse_idx(&bytes, &path, "labels", 0x0000_0801).unwrap_err();
    assert!(err.to_string().contains("data after the 18 bytes"), "{err}");
}
