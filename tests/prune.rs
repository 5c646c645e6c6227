//! Pruning and the overfitting experiment: sparsity reached, masks held through fine-tuning,
//! shrinking by units, masked checkpoints, `descent prune`, `train --prune-sparsity` and
//! `descent overfit` end to end, and their bad input.

mod common;

use std::sync::Arc;

use common::{descent, mnist_mirror};
use descent::backend::{Backend, Setup};
use descent::cpu::{self, CpuBackend};
use descent::gpu::verify::synthetic;
use descent::model::{self, Activation, Init, Loss, ModelSpec};
use descent::optim::{OptimConfig, OptimizerKind};
use descent::overfit::{Experiment, Remedy, add_label_noise};
use descent::prune;

fn spec(hidden: &[usize]) -> ModelSpec {
    ModelSpec::new(hidden, Activation::Relu, Loss::Xent)
}

#[test]
fn magnitude_pruning_reaches_the_sparsity_per_layer_and_globally() {
    let s = spec(&[37, 13]);
    let params = s.init_params(Init::Auto, 1);
    for sparsity in [0.0, 0.3, 0.5, 0.9, 0.98] {
        let mask = prune::magnitude_mask(&s, &params, sparsity, false);
        let mut p = params.clone();
        prune::apply(&mut p, &mask);
        for (l, &(zeros, n)) in s.layers().iter().zip(&prune::layer_sparsity(&s, &p)) {
            let want = sparsity * n as f64;
            assert!(
                (zeros as f64 - want).abs() <= 1.0,
                "sparsity {sparsity}: layer {}x{} has {zeros} of {n} zero",
                l.out,
                l.inp
            );
            // Biases are kept, and every pruned weight is smaller than every kept one.
            assert!(mask[l.b_off..l.b_off + l.out].iter().all(|&m| m == 1.0));
            let w = l.w_off..l.w_off + l.inp * l.out;
            let cut = params[w.clone()]
                .iter()
                .zip(&mask[w.clone()])
                .filter(|(_, m)| **m == 0.0)
                .map(|(x, _)| x.abs())
                .fold(0.0f32, f32::max);
            let kept = params[w.clone()]
                .iter()
                .zip(&mask[w])
                .filter(|(_, m)| **m == 1.0)
                .map(|(x, _)| x.abs())
                .fold(f32::INFINITY, f32::min);
            assert!(cut <= kept, "pruned |w| {cut} above kept {kept}");
        }
        let global = prune::magnitude_mask(&s, &params, sparsity, true);
        let mut g = params.clone();
        prune::apply(&mut g, &global);
        let total: usize = s.layers().iter().map(|l| l.inp * l.out).sum();
        let zeros = (prune::weight_sparsity(&s, &g) * total as f64).round();
        assert!((zeros - sparsity * total as f64).abs() <= 1.0);
    }
    for bad in [1.0, -0.1, f64::NAN, 1.5] {
        assert!(prune::check_sparsity("--sparsity", bad).is_err());
    }
}

#[test]
fn the_cubic_schedule_rises_fast_then_slowly_to_the_target() {
    let g = prune::Gradual {
        sparsity: 0.9,
        start_epoch: 2,
        end_epoch: 6,
    };
    assert_eq!(g.sparsity_after(1), None);
    assert_eq!(g.sparsity_after(7), None);
    let s: Vec<f64> = (2..=6).map(|e| g.sparsity_after(e).unwrap()).collect();
    assert!((s[4] - 0.9).abs() < 1e-12);
    // 1 − (1 − 1/5)³ of the target after the first epoch.
    assert!((s[0] - 0.9 * (1.0 - 0.8f64.powi(3))).abs() < 1e-12);
    let steps: Vec<f64> = s.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(steps.iter().all(|&d| d > 0.0));
    assert!(steps.windows(2).all(|w| w[1] < w[0]), "{steps:?}");
}

#[test]
fn a_units_pruned_network_computes_what_the_full_one_does_without_those_units() {
    let s = spec(&[40, 24]);
    let params = s.init_params(Init::Auto, 5);
    let keep = vec![
        vec![0, 3, 4, 17, 39],
        (0..24).step_by(3).collect::<Vec<_>>(),
    ];
    let (small, sp, _) = prune::shrink(&s, &params, None, &keep);
    assert_eq!(small.sizes, vec![784, 5, 8, 10]);
    assert_eq!(sp.len(), small.num_params());
    // The full network with the removed units' outgoing weights zeroed.
    let mut zeroed = params.clone();
    let layers = s.layers();
    for (h, kept) in keep.iter().enumerate() {
        let next = layers[h + 1];
        for j in (0..s.hidden()[h]).filter(|j| !kept.contains(j)) {
            for o in 0..next.out {
                zeroed[next.w_off + o * next.inp + j] = 0.0;
            }
        }
    }
    let data = synthetic(37, 9);
    let x: Vec<f32> = data.images.iter().map(|&p| p as f32 / 255.0).collect();
    let labels: Vec<u32> = data.labels.iter().map(|&l| l as u32).collect();
    let logits = |spec: &ModelSpec, p: &[f32]| {
        let mut ws = cpu::Workspace::new(spec, 37);
        ws.activations[0].copy_from_slice(&x);
        ws.labels.copy_from_slice(&labels);
        cpu::forward(spec, p, &mut ws, 37, None);
        ws.activations.last().unwrap().clone()
    };
    let (a, b) = (logits(&small, &sp), logits(&s, &zeroed));
    for (i, (u, v)) in a.iter().zip(&b).enumerate() {
        assert!(
            (u - v).abs() <= 1e-5 + 1e-5 * v.abs(),
            "logit {i}: {u} vs {v}"
        );
    }
    // Ranking by norm keeps the strongest units.
    let scores = prune::norm_importance(&s, &params);
    assert_eq!(scores[0].len(), 40);
    let top = prune::top_units(&scores[0], 5);
    let worst_kept = top
        .iter()
        .map(|&i| scores[0][i])
        .fold(f32::INFINITY, f32::min);
    let best_dropped = (0..40)
        .filter(|i| !top.contains(i))
        .map(|i| scores[0][i])
        .fold(0.0f32, f32::max);
    assert!(worst_kept >= best_dropped);
    let act = prune::activation_importance(&s, &params, &data, 20);
    assert_eq!(act.iter().map(Vec::len).collect::<Vec<_>>(), vec![40, 24]);
    assert!(act[0].iter().all(|&a| a >= 0.0) && act[0].iter().any(|&a| a > 0.0));
}

#[test]
fn fine_tuning_keeps_every_pruned_weight_and_its_optimizer_state_at_zero_on_the_cpu() {
    let cpu = |s: Setup| -> Box<dyn Backend> { Box::new(CpuBackend::new(s)) };
    for kind in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let (p, st, mask, start) = common::masked_finetune(&cpu, kind);
        common::assert_mask_held(&p, &st, &mask, &start);
    }
}

#[test]
fn a_masked_checkpoint_round_trips_and_a_bad_mask_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(&[16]);
    let params = s.init_params(Init::Auto, 4);
    let mask = prune::magnitude_mask(&s, &params, 0.7, false);
    let mut p = params.clone();
    prune::apply(&mut p, &mask);
    let path = dir.path().join("pruned.safetensors");
    model::save_checkpoint_masked(
        &path,
        &s,
        &p,
        Some(&mask),
        descent::data::DatasetKind::Mnist,
        None,
    )
    .unwrap();
    let ck = model::load_checkpoint(&path, None, None).unwrap();
    assert_eq!(ck.spec, s);
    assert_eq!(ck.params, p);
    assert_eq!(ck.mask.as_deref(), Some(&mask[..]));

    // A mask of the wrong shape, and one holding something other than 0 and 1.
    let l = s.layers()[0];
    let w = &p[l.w_off..l.w_off + l.inp * l.out];
    let b = &p[l.b_off..l.b_off + l.out];
    let l1 = s.layers()[1];
    let w1 = &p[l1.w_off..l1.w_off + l1.inp * l1.out];
    let b1 = &p[l1.b_off..l1.b_off + l1.out];
    let write = |name: &str, mask_shape: Vec<usize>, mask_data: Vec<f32>| {
        let path = dir.path().join(name);
        fn view(shape: Vec<usize>, d: &[f32]) -> safetensors::tensor::TensorView<'_> {
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                shape,
                bytemuck::cast_slice(d),
            )
            .unwrap()
        }
        let tensors = vec![
            ("layers.0.weight".to_string(), view(vec![16, 784], w)),
            ("layers.0.bias".to_string(), view(vec![16], b)),
            (
                "layers.0.weight_mask".to_string(),
                view(mask_shape, &mask_data),
            ),
            ("layers.1.weight".to_string(), view(vec![10, 16], w1)),
            ("layers.1.bias".to_string(), view(vec![10], b1)),
        ];
        std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
        path
    };
    let wrong = write("wrong.safetensors", vec![784, 16], vec![1.0; 784 * 16]);
    let e = model::load_checkpoint(&wrong, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wrong.safetensors") && e.contains("layers.0.weight_mask"),
        "{e}"
    );
    let half = write("half.safetensors", vec![16, 784], vec![0.5; 784 * 16]);
    let e = model::load_checkpoint(&half, None, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("half.safetensors") && e.contains("0.5"), "{e}");
    let (ok, _, err) = descent(&[
        "prune",
        "--checkpoint",
        wrong.to_str().unwrap(),
        "--sparsity",
        "0.5",
        "--out",
        dir.path().join("o.safetensors").to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("wrong.safetensors"), "{err}");
}

fn s(p: &std::path::Path) -> String {
    p.to_str().unwrap().to_owned()
}

/// A small MNIST model trained once for the CLI tests: (dir, checkpoint, data dir).
fn trained() -> &'static (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    static T: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf, std::path::PathBuf)> =
        std::sync::OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let ck = dir.path().join("dense.safetensors");
        let (ok, out, err) = descent(&[
            "train",
            "--quiet",
            "--device",
            "cpu",
            "--limit",
            "3000",
            "--epochs",
            "2",
            "--hidden",
            "48,24",
            "--data-dir",
            &s(&data),
            "--mirror",
            &mnist_mirror(),
            "--save",
            &s(&ck),
        ]);
        assert!(ok, "{out}\n{err}");
        (dir, ck, data)
    })
}

fn accuracy_of(out: &str) -> f64 {
    let i = out.find("test acc ").expect("an accuracy") + 9;
    out[i..].split('%').next().unwrap().trim().parse().unwrap()
}

#[test]
fn prune_cli_magnitude_and_units_write_checkpoints_that_eval_and_predict() {
    let (dir, ck, data) = trained();
    let mirror = mnist_mirror();
    let common = [
        "--device",
        "cpu",
        "--quiet",
        "--limit",
        "3000",
        "--data-dir",
        &s(data),
        "--mirror",
        &mirror,
    ];
    // Magnitude, fine-tuned: the checkpoint keeps its shape and records the masks.
    let mag = dir.path().join("mag.safetensors");
    let mut args = vec![
        "prune",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--sparsity",
        "0.9",
        "--finetune-epochs",
        "1",
    ];
    let mag_s = s(&mag);
    args.extend(["--out", &mag_s]);
    args.extend(common);
    let (ok, out, err) = descent(&args);
    assert!(ok, "{out}\n{err}");
    let m = model::load_checkpoint(&mag, None, None).unwrap();
    let mask = m.mask.expect("a mask");
    assert_eq!(m.spec.sizes, vec![784, 48, 24, 10]);
    for (zeros, n) in prune::layer_sparsity(&m.spec, &m.params) {
        assert!(
            (zeros as f64 - 0.9 * n as f64).abs() <= 1.0,
            "{zeros} of {n}"
        );
    }
    assert!(
        m.params
            .iter()
            .zip(&mask)
            .all(|(&p, &k)| k == 1.0 || p == 0.0)
    );
    // Units: a genuinely smaller network.
    let units = dir.path().join("units.safetensors");
    let units_s = s(&units);
    let mut args = vec![
        "prune",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--method",
        "units",
        "--keep",
        "12,6",
        "--importance",
        "activation",
        "--calibration",
        "300",
        "--finetune-epochs",
        "1",
        "--out",
        &units_s,
    ];
    args.extend(common);
    let (ok, out, err) = descent(&args);
    assert!(ok, "{out}\n{err}");
    let u = model::load_checkpoint(&units, None, None).unwrap();
    assert_eq!(u.spec.sizes, vec![784, 12, 6, 10]);
    assert!(u.mask.is_none());
    // Both evaluate, and the eval agrees with what prune reported.
    for (path, report) in [(&mag, None), (&units, Some(&out))] {
        let (ok, eout, err) = descent(&[
            "eval",
            "--checkpoint",
            &s(path),
            "--device",
            "cpu",
            "--data-dir",
            &s(data),
            "--mirror",
            &mirror,
        ]);
        assert!(ok, "{err}");
        assert!(accuracy_of(&eout) > 30.0, "{eout}");
        if let Some(r) = report {
            let row = r
                .lines()
                .find(|l| l.starts_with("| 7"))
                .expect("the result row");
            let pruned: f64 = row
                .split('|')
                .nth(5)
                .unwrap()
                .trim()
                .trim_end_matches('%')
                .parse()
                .unwrap();
            assert!(
                (pruned - accuracy_of(&eout)).abs() < 0.011,
                "{row} vs {eout}"
            );
        }
    }
    // And predict classifies an image with the pruned model.
    // A hand-drawn 1: a thick light stroke on black.
    let img = dir.path().join("digit.png");
    let one = image::GrayImage::from_fn(28, 28, |x, y| {
        image::Luma([if (12..16).contains(&x) && (5..23).contains(&y) {
            255
        } else {
            0
        }])
    });
    one.save(&img).unwrap();
    for path in [&mag, &units] {
        let (ok, pout, err) = descent(&["predict", "--checkpoint", &s(path), &s(&img)]);
        assert!(ok && !pout.trim().is_empty(), "{err}");
    }
}

#[test]
fn prune_sweep_prints_a_row_per_sparsity_and_draws_the_plot() {
    let (dir, ck, data) = trained();
    let mirror = mnist_mirror();
    let plot = dir.path().join("sweep.png");
    let (ok, out, err) = descent(&[
        "prune",
        "--checkpoint",
        &s(ck),
        "--sweep",
        "0.5,0.9",
        "--finetune-epochs",
        "1",
        "--limit",
        "1000",
        "--plot",
        &s(&plot),
        "--device",
        "cpu",
        "--quiet",
        "--data-dir",
        &s(data),
        "--mirror",
        &mirror,
    ]);
    assert!(ok, "{out}\n{err}");
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| 50.0%") || l.starts_with("| 90.0%"))
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    for r in rows {
        let cells: Vec<&str> = r.split('|').map(str::trim).collect();
        let before: f64 = cells[4].trim_end_matches('%').parse().unwrap();
        let after: f64 = cells[5].trim_end_matches('%').parse().unwrap();
        assert!(before > 10.0 && after > 10.0, "{r}");
    }
    let img = image::open(&plot).unwrap();
    assert!(img.width() > 400);
}

#[test]
fn train_prune_sparsity_prunes_gradually_and_saves_the_masks() {
    let (dir, _, data) = trained();
    let mirror = mnist_mirror();
    let out_ck = dir.path().join("gradual.safetensors");
    let (ok, out, err) = descent(&[
        "train",
        "--quiet",
        "--device",
        "cpu",
        "--limit",
        "2000",
        "--epochs",
        "3",
        "--hidden",
        "32",
        "--prune-sparsity",
        "0.8",
        "--prune-end-epoch",
        "2",
        "--data-dir",
        &s(data),
        "--mirror",
        &mirror,
        "--save",
        &s(&out_ck),
    ]);
    assert!(ok, "{out}\n{err}");
    let steps: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("pruned to sparsity"))
        .collect();
    assert_eq!(steps.len(), 2, "{out}");
    assert!(steps[1].contains("80.0%"));
    let m = model::load_checkpoint(&out_ck, None, None).unwrap();
    assert!(m.mask.is_some());
    for (zeros, n) in prune::layer_sparsity(&m.spec, &m.params) {
        assert!(
            (zeros as f64 - 0.8 * n as f64).abs() <= 1.0,
            "{zeros} of {n}"
        );
    }
    let (ok, _, err) = descent(&["train", "--prune-sparsity", "1.0", "--epochs", "2"]);
    assert!(!ok && err.contains("--prune-sparsity"), "{err}");
    let (ok, _, err) = descent(&[
        "train",
        "--prune-sparsity",
        "0.5",
        "--epochs",
        "2",
        "--prune-end-epoch",
        "5",
    ]);
    assert!(!ok && err.contains("--prune-end-epoch"), "{err}");
}

#[test]
fn prune_refuses_bad_input_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ck, _) = trained();
    let ck = s(ck);
    let out = s(&dir.path().join("o.safetensors"));
    let softmax = dir.path().join("softmax.safetensors");
    let sm = spec(&[]);
    model::save_checkpoint(
        &softmax,
        &sm,
        &sm.init_params(Init::Auto, 0),
        descent::data::DatasetKind::Mnist,
        None,
    )
    .unwrap();
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"not a checkpoint at all").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--sparsity", "1.0"], "--sparsity"),
        (vec!["--sparsity", "-0.2"], "--sparsity"),
        (vec!["--method", "units", "--keep", "0"], "--keep"),
        (vec!["--method", "units", "--keep", "49"], "--keep"),
        (vec!["--method", "units", "--keep", "4,4,4"], "--keep"),
        (
            vec!["--method", "units", "--keep-fraction", "0"],
            "--keep-fraction",
        ),
        (vec!["--method", "pencil", "--sparsity", "0.5"], "--method"),
        (vec!["--method", "units"], "--keep"),
        (vec!["--sweep", "0.5,1.2"], "--sweep"),
        (vec![], "--sparsity"),
    ];
    for (extra, flag) in cases {
        let mut args = vec!["prune", "--checkpoint", &ck, "--out", &out];
        args.extend(extra.iter());
        let (ok, _, err) = descent(&args);
        assert!(!ok && err.contains(flag), "{extra:?}: {err}");
    }
    let (ok, _, err) = descent(&[
        "prune",
        "--checkpoint",
        &s(&softmax),
        "--method",
        "units",
        "--keep",
        "3",
        "--out",
        &out,
    ]);
    assert!(!ok && err.contains("no hidden layer"), "{err}");
    let (ok, _, err) = descent(&[
        "prune",
        "--checkpoint",
        &s(&junk),
        "--sparsity",
        "0.5",
        "--out",
        &out,
    ]);
    assert!(!ok && err.contains("junk.safetensors"), "{err}");
    assert!(!std::path::Path::new(&out).exists());
}

#[test]
fn label_noise_changes_exactly_the_fraction_asked_each_to_another_class() {
    let clean = synthetic(1001, 7);
    let mut noisy = clean.clone();
    let changed = add_label_noise(&mut noisy, 0.3, 5, 0);
    assert_eq!(changed.len(), 300); // round(0.3 · 1001)
    let differ: Vec<u32> = (0..clean.len() as u32)
        .filter(|&i| clean.labels[i as usize] != noisy.labels[i as usize])
        .collect();
    // Every chosen sample got a different class, and no other sample changed.
    assert_eq!(differ, changed);
    assert!(noisy.labels.iter().all(|&l| (l as usize) < noisy.classes));
    assert_eq!(noisy.images, clean.images);
    // Every wrong class turns up: the new label is drawn over the other nine, not shifted by one.
    let mut seen = [false; 10];
    for &i in &changed {
        let i = i as usize;
        seen[(noisy.labels[i] as usize + 10 - clean.labels[i] as usize) % 10] = true;
    }
    assert_eq!(
        seen,
        [false, true, true, true, true, true, true, true, true, true]
    );
    // Seeded: the same call gives the same labels, another seed others.
    let mut again = clean.clone();
    assert_eq!(add_label_noise(&mut again, 0.3, 5, 0), changed);
    assert_eq!(again.labels, noisy.labels);
    let mut other = clean.clone();
    assert_ne!(add_label_noise(&mut other, 0.3, 6, 0), changed);
    let mut none = clean.clone();
    assert!(add_label_noise(&mut none, 0.0, 5, 0).is_empty());
    assert_eq!(none.labels, clean.labels);
}

#[test]
fn overfit_runs_each_remedy_from_the_same_weights_and_the_plain_run_overfits() {
    // The library: identical initial weights for every run of one architecture.
    let mut train = synthetic(120, 1);
    let wrong = add_label_noise(&mut train, 0.25, 4, 0);
    let noisy = train.select(&wrong);
    let exp = Experiment {
        spec: spec(&[24]),
        epochs: 3,
        batch: 16,
        optim: OptimConfig::sgd(0.9),
        lr: 0.05,
        seed: 4,
        train: Arc::new(train),
        test: Arc::new(synthetic(60, 2)),
        val: Arc::new(synthetic(30, 3)),
        noisy: Arc::new(noisy),
    };
    let remedies = [
        Remedy::None,
        Remedy::Dropout(0.5),
        Remedy::WeightDecay(0.01),
        Remedy::EarlyStopping(1),
        Remedy::Prune(0.5),
        Remedy::Smaller(8),
    ];
    let runs: Vec<_> = remedies
        .iter()
        .map(|&r| exp.run(r, None).unwrap())
        .collect();
    for r in &runs[1..5] {
        assert_eq!(r.initial, runs[0].initial, "{}", r.remedy.name());
    }
    assert_eq!(runs[5].spec.sizes, vec![784, 8, 10]);
    assert_eq!(runs[5].initial, runs[5].spec.init_params(Init::Auto, 4));
    for r in &runs {
        assert!(!r.points.is_empty() && r.points.len() <= 3);
        assert!(r.memorised.is_some_and(|m| (0.0..=1.0).contains(&m)));
    }
    assert!(prune::weight_sparsity(&runs[4].spec, &runs[4].final_params) >= 0.49);

    // The CLI on real MNIST: a row and a panel per remedy, and the plain run overfits.
    let dir = tempfile::tempdir().unwrap();
    let plot = dir.path().join("overfit.png");
    let (ok, out, err) = descent(&[
        "overfit",
        "--quiet",
        "--device",
        "cpu",
        "--limit",
        "200",
        "--epochs",
        "12",
        "--test-limit",
        "1000",
        "--val",
        "200",
        "--hidden",
        "64",
        "--plot",
        &s(&plot),
        "--data-dir",
        &s(&dir.path().join("data")),
        "--mirror",
        &mnist_mirror(),
    ]);
    assert!(ok, "{out}\n{err}");
    let rows: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| remedy"))
        .map(|l| l.split('|').map(|c| c.trim().to_owned()).collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(
        names,
        [
            "none",
            "dropout",
            "weight-decay",
            "early-stopping",
            "prune",
            "smaller"
        ]
    );
    let pct = |c: &str| c.trim_end_matches('%').parse::<f64>().unwrap();
    let (test, train) = (pct(&rows[0][3]), pct(&rows[0][5]));
    assert!(
        train > test + 5.0,
        "plain run: train {train}% vs test {test}%"
    );
    let img = image::open(&plot).unwrap();
    // Three panels across, two rows.
    assert_eq!((img.width(), img.height()), (3 * 420, 2 * 300 + 80));

    assert!(out.contains("30% of labels wrong"), "{out}");
    // The memorised noise: a percentage in every row.
    assert!(rows.iter().all(|r| r[8].ends_with('%')), "{out}");

    let (ok, _, err) = descent(&["overfit", "--label-noise", "1"]);
    assert!(!ok && err.contains("--label-noise 1"), "{err}");
    let (ok, _, err) = descent(&["overfit", "--remedies", "none,garlic"]);
    assert!(
        !ok && err.contains("--remedies") && err.contains("garlic"),
        "{err}"
    );
}
