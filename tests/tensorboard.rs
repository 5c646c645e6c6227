//! `TensorBoard` event files read back by a small independent reader: TFRecord framing (length,
//! masked CRC-32C of the length and of the data) and the Event/Summary protobuf fields.

mod common;

use descent::tensorboard::TensorBoard;

/// What one Event record holds, as far as descent writes it.
#[derive(Debug, Default, PartialEq)]
struct Event {
    wall_time: f64,
    step: u64,
    file_version: Option<String>,
    /// (tag, simple_value)
    values: Vec<(String, f32)>,
}

fn masked(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Splits a file into records, checking both CRCs of each.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        assert_eq!(
            len_crc,
            masked(len_bytes),
            "length CRC of the record at {at}"
        );
        let data = &bytes[at + 12..at + 12 + len];
        let data_crc = u32::from_le_bytes(bytes[at + 12 + len..at + 16 + len].try_into().unwrap());
        assert_eq!(data_crc, masked(data), "data CRC of the record at {at}");
        out.push(data.to_vec());
        at += 16 + len;
    }
    out
}

fn varint(b: &[u8], at: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*at];
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// (field, wire type, payload) for each field of a protobuf message.
fn fields(b: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at);
        let (field, wire) = (key >> 3, key & 7);
        let payload = match wire {
            0 => {
                let v = varint(b, &mut at);
                v.to_le_bytes().to_vec()
            }
            1 => {
                at += 8;
                b[at - 8..at].to_vec()
            }
            2 => {
                let n = varint(b, &mut at) as usize;
                at += n;
                b[at - n..at].to_vec()
            }
            5 => {
                at += 4;
                b[at - 4..at].to_vec()
            }
            w => panic!("unexpected wire type {w}"),
        };
        out.push((field, wire, payload));
    }
    out
}

fn decode(data: &[u8]) -> Event {
    let mut e = Event::default();
    for (field, _, p) in fields(data) {
        match field {
            1 => e.wall_time = f64::from_le_bytes(p[..8].try_into().unwrap()),
            2 => e.step = u64::from_le_bytes(p[..8].try_into().unwrap()),
            3 => e.file_version = Some(String::from_utf8(p).unwrap()),
            5 => {
                for (f, _, value) in fields(&p) {
                    assert_eq!(f, 1, "Summary has only `value` fields");
                    let mut tag = String::new();
                    let mut simple = f32::NAN;
                    for (vf, _, vp) in fields(&value) {
                        match vf {
                            1 => tag = String::from_utf8(vp).unwrap(),
                            2 => simple = f32::from_le_bytes(vp[..4].try_into().unwrap()),
                            other => panic!("unexpected Value field {other}"),
                        }
                    }
                    e.values.push((tag, simple));
                }
            }
            other => panic!("unexpected Event field {other}"),
        }
    }
    e
}

#[test]
fn scalars_round_trip_through_the_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run1");
    let mut tb = TensorBoard::new(&run).unwrap();
    let path = tb.path().to_owned();
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.starts_with("events.out.tfevents."), "{name}");
    let written: Vec<(&str, u64, f32)> = vec![
        ("loss/train", 100, 0.75),
        ("loss/test", 100, 0.5),
        ("accuracy/test", 100, 0.9125),
        ("lr", 100, 0.03),
        ("loss/train", 200, 0.25),
        ("loss/train", 300_000, -1.5e-7),
    ];
    for &(tag, step, v) in &written {
        tb.scalar(tag, step, v).unwrap();
    }
    tb.flush().unwrap();
    // Flushed, so a live reader sees everything while the writer is still open.
    let events: Vec<Event> = records(&std::fs::read(&path).unwrap())
        .iter()
        .map(|r| decode(r))
        .collect();
    drop(tb);
    assert_eq!(events.len(), 1 + written.len());
    assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for (e, &(tag, step, v)) in events[1..].iter().zip(&written) {
        assert_eq!(e.step, step);
        assert_eq!(e.values, vec![(tag.to_owned(), v)]);
        assert!(
            (now - e.wall_time).abs() < 60.0,
            "wall time {}",
            e.wall_time
        );
    }

    // A second writer in the same directory gets its own file.
    let tb2 = TensorBoard::new(&run).unwrap();
    assert_ne!(tb2.path(), path);
}

#[test]
fn a_flipped_byte_fails_the_reader_check() {
    let framed = descent::tensorboard::frame_record(b"hello");
    assert_eq!(records(&framed), vec![b"hello".to_vec()]);
    let mut bad = framed.clone();
    bad[13] ^= 1;
    assert!(std::panic::catch_unwind(|| records(&bad)).is_err());
}

#[test]
fn a_file_where_the_directory_should_be_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").unwrap();
    let err = TensorBoard::new(&file).err().unwrap().to_string();
    assert!(err.contains("not a directory"), "{err}");
}

/// `train --tensorboard` (with `--log-every`) and `--plot`, end to end: the event file holds every
/// epoch's scalars at the global step, equal to the metrics file's, plus the per-step losses; the
/// plot is a PNG of the expected size, and an SVG works too.
#[test]
fn train_writes_tensorboard_scalars_and_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let tb = dir.path().join("tb");
    let png = dir.path().join("run.png");
    let svg = dir.path().join("run.svg");
    let m = dir.path().join("m.jsonl");
    for plot in [&png, &svg] {
        let (ok, out, err) = common::descent(&[
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--limit",
            "640",
            "--val",
            "128",
            "--epochs",
            "3",
            "--log-every",
            "4",
            "--hidden",
            "16",
            "--tensorboard",
            tb.to_str().unwrap(),
            "--plot",
            plot.to_str().unwrap(),
            "--metrics",
            m.to_str().unwrap(),
            "--mirror",
            &common::mnist_mirror(),
            "--data-dir",
            dir.path().join("data").to_str().unwrap(),
        ]);
        assert!(ok, "{out}\n{err}");
    }
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (1200, 520));
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        svg_text.starts_with("<svg") && svg_text.contains("accuracy"),
        "{}",
        &svg_text[..200.min(svg_text.len())]
    );

    // The last run's event file (two runs wrote two files).
    let mut files: Vec<_> = std::fs::read_dir(&tb)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    files.sort();
    let events: Vec<Event> = records(&std::fs::read(&files[1]).unwrap())
        .iter()
        .map(|r| decode(r))
        .collect();
    assert!(events[0].file_version.is_some());
    let find = |tag: &str| -> Vec<(u64, f32)> {
        events
            .iter()
            .flat_map(|e| {
                e.values
                    .iter()
                    .filter(|(t, _)| t == tag)
                    .map(move |(_, v)| (e.step, *v))
            })
            .collect()
    };
    let metrics: Vec<serde_json::Value> = std::fs::read_to_string(&m)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // 512 training samples at batch 64: 8 steps per epoch.
    for (tag, key) in [
        ("train/loss", "train_loss"),
        ("test/accuracy", "test_accuracy"),
        ("val/loss", "val_loss"),
    ] {
        let got = find(tag);
        assert_eq!(got.len(), 3, "{tag}: {got:?}");
        for (i, (step, v)) in got.iter().enumerate() {
            assert_eq!(*step, 8 * (i as u64 + 1), "{tag}");
            let want = metrics[i][key].as_f64().unwrap() as f32;
            assert_eq!(*v, want, "{tag} at epoch {}", i + 1);
        }
    }
    let steps: Vec<u64> = find("train/step_loss").iter().map(|s| s.0).collect();
    assert_eq!(steps, vec![4, 8, 12, 16, 20, 24]);
    assert!(find("samples_per_second").iter().all(|(_, v)| *v > 0.0));
}
