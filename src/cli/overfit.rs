//! `descent overfit`: the disease and its cures on the same data. One network trains on a small
//! training subset long enough to overfit, from the same initial weights, once per remedy; a
//! table compares them and `--plot` draws train and test loss per epoch, a panel per remedy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::args::{DataArgs, DeviceArgs, load_data, open_gpu, resident_bytes};
use descent::data::{Dataset, Splits};
use descent::error::{Error, Result};
use descent::model::{self, Activation, Loss, ModelSpec};
use descent::optim::{OptimConfig, OptimizerKind, Schedule};
use descent::overfit::{Experiment, REMEDY_NAMES, Remedy, add_label_noise};
use descent::plot::overfit::OverfitFigure;
use descent::prune;

#[derive(Args, Debug, Clone)]
pub struct OverfitArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Train on the first N training samples: few enough to memorise.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Give this fraction of the training (and validation) samples a wrong label, a random other
    /// class: noise a big network memorises and the remedies resist, as with real labels. The
    /// test set stays clean. At 0 (the labels as given) pruning and the smaller network widen
    /// the accuracy gap: 1,000 clean samples are easy to memorise even with fewer weights.
    #[arg(long, default_value_t = 0.3, value_name = "F")]
    pub label_noise: f64,
    /// Evaluate on the first N test samples [default: all].
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Hidden layer sizes of the network every remedy but `smaller` trains.
    #[arg(long, default_value = "256")]
    pub hidden: String,
    #[arg(long, value_enum, default_value = "relu")]
    pub activation: Activation,
    /// The epoch budget of every run.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// The update rule (momentum 0.9 for sgd and nesterov). Adam by default: at SGD's rate the
    /// pruned network memorises the wrong labels as fully as the plain one.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// The learning rate, constant [default: 0.001 for adam and adamw, 0.05 for sgd and nesterov].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Which runs, comma separated: none, dropout, weight-decay, early-stopping, prune, smaller.
    #[arg(
        long,
        default_value = "none,dropout,weight-decay,early-stopping,prune,smaller"
    )]
    pub remedies: String,
    /// dropout: the probability on every hidden layer.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f32,
    /// weight-decay: λ (L2 added to the gradient).
    #[arg(long, default_value_t = 0.01)]
    pub weight_decay: f32,
    /// early-stopping: epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 3)]
    pub patience: usize,
    /// early-stopping: validation samples, taken from the training set after the --limit ones
    /// (so every run trains on the same samples).
    #[arg(long, default_value_t = 1000)]
    pub val: usize,
    /// prune: the sparsity gradual magnitude pruning reaches halfway through the run.
    #[arg(long, default_value_t = 0.95)]
    pub prune_sparsity: f64,
    /// smaller: units per hidden layer.
    #[arg(long, default_value_t = 16)]
    pub smaller: usize,
    /// Initial weights (the same for every run of one architecture), shuffling, dropout.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Draw train and test loss per epoch, one panel per remedy (.png or .svg).
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

fn remedies(args: &OverfitArgs) -> Result<Vec<Remedy>> {
    let mut out = Vec::new();
    for name in args.remedies.split(',').map(str::trim) {
        let r = match name {
            "none" => Remedy::None,
            "dropout" => Remedy::Dropout(args.dropout),
            "weight-decay" => Remedy::WeightDecay(args.weight_decay),
            "early-stopping" => Remedy::EarlyStopping(args.patience),
            "prune" => Remedy::Prune(args.prune_sparsity),
            "smaller" => Remedy::Smaller(args.smaller),
            _ => {
                return Err(Error::InvalidArg(format!(
                    "--remedies: unknown remedy `{name}`; choose from {}",
                    REMEDY_NAMES.join(", ")
                )));
            }
        };
        if out.iter().any(|o: &Remedy| o.name() == r.name()) {
            return Err(Error::InvalidArg(format!(
                "--remedies: `{name}` is listed twice"
            )));
        }
        out.push(r);
    }
    Ok(out)
}

fn check(args: &OverfitArgs, spec: &ModelSpec) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidArg(m));
    if args.limit == 0 {
        return bad("--limit 0: no samples to train on".into());
    }
    if args.test_limit == Some(0) {
        return bad("--test-limit 0: no samples to test on".into());
    }
    if !(args.label_noise.is_finite() && (0.0..1.0).contains(&args.label_noise)) {
        return bad(format!(
            "--label-noise {}: must be at least 0 and below 1",
            args.label_noise
        ));
    }
    if args.epochs == 0 {
        return bad("--epochs 0: nothing to train".into());
    }
    if args.batch_size == 0 {
        return bad("--batch-size 0: a step needs at least one sample".into());
    }
    if spec.hidden().is_empty() {
        return bad(
            "--hidden none: overfitting needs capacity, and dropout and `smaller` need a hidden layer"
                .into(),
        );
    }
    if !(args.dropout.is_finite() && args.dropout > 0.0 && args.dropout < 1.0) {
        return bad(format!(
            "--dropout {}: must be above 0 and below 1",
            args.dropout
        ));
    }
    if !(args.weight_decay.is_finite() && args.weight_decay > 0.0) {
        return bad(format!(
            "--weight-decay {}: must be above 0",
            args.weight_decay
        ));
    }
    if args.patience == 0 {
        return bad("--patience 0: give at least 1 epoch".into());
    }
    if args.val == 0 {
        return bad("--val 0: early stopping needs validation samples".into());
    }
    prune::check_sparsity("--prune-sparsity", args.prune_sparsity)?;
    if args.smaller == 0 {
        return bad("--smaller 0: a layer needs at least one unit".into());
    }
    Schedule::constant(lr(args)).check_rates()?;
    Ok(())
}

fn lr(args: &OverfitArgs) -> f32 {
    args.lr
        .unwrap_or(if args.optimizer.is_adam() { 1e-3 } else { 0.05 })
}

pub fn run(args: OverfitArgs) -> Result<()> {
    let spec = ModelSpec::new(
        &model::parse_hidden(&args.hidden)?,
        args.activation,
        Loss::Xent,
    );
    check(&args, &spec)?;
    let remedies = remedies(&args)?;
    if let Some(p) = &args.plot {
        descent::plot::check_picture_path("--plot", p)?;
    }
    let Splits {
        train: all,
        mut test,
    } = load_data(&args.data)?;
    if all.len() <= args.limit {
        return Err(Error::InvalidArg(format!(
            "--limit {}: the training set has {} samples; overfit needs some left over for --val",
            args.limit,
            all.len()
        )));
    }
    let mut train = slice(&all, 0, args.limit);
    let mut val = slice(&all, args.limit, (args.limit + args.val).min(all.len()));
    let changed = add_label_noise(&mut train, args.label_noise, args.seed, 0);
    let noisy = train.select(&changed);
    let wrong = noisy.len();
    add_label_noise(&mut val, args.label_noise, args.seed, 1);
    if let Some(n) = args.test_limit {
        test.truncate(n);
    }
    let (train, test, val) = (Arc::new(train), Arc::new(test), Arc::new(val));
    let gpu = open_gpu(&args.device, resident_bytes(&train, &test))?;
    let exp = Experiment {
        spec: spec.clone(),
        epochs: args.epochs,
        batch: args.batch_size,
        optim: OptimConfig {
            kind: args.optimizer,
            ..OptimConfig::sgd(0.9)
        },
        lr: lr(&args),
        seed: args.seed,
        train,
        test,
        val,
        noisy: Arc::new(noisy),
    };
    println!(
        "overfit: {} on {} {} training samples, {} ({} test, {} validation for early stopping) | {}, lr {} constant, batch {} | {} epochs | {}",
        spec.describe(),
        exp.train.len(),
        args.data.dataset.name(),
        noise_words(args.label_noise, wrong),
        exp.test.len(),
        exp.val.len(),
        exp.optim.describe(),
        exp.lr,
        exp.batch.min(exp.train.len()),
        args.epochs,
        if gpu.is_some() { "gpu" } else { "cpu" }
    );
    let t0 = Instant::now();
    let mut runs = Vec::new();
    for r in &remedies {
        let t = Instant::now();
        let run = exp.run(*r, gpu.as_ref())?;
        if !args.data.quiet {
            println!(
                "  {:<15} {:<26} test acc {:.2}%  {:.1}s",
                r.name(),
                r.strength(),
                100.0 * run.final_test.accuracy,
                t.elapsed().as_secs_f64()
            );
        }
        runs.push(run);
    }
    println!(
        "\n| remedy | strength | final test acc | best test acc | final train acc | accuracy gap | loss gap | wrong labels learnt | lowest test loss at epoch | parameters (non-zero) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for run in &runs {
        let stop = run
            .stopped_at
            .map(|e| format!(" (stopped at {}, kept epoch {e})", run.points.len()))
            .unwrap_or_default();
        println!(
            "| {} | {} | {:.2}% | {:.2}% | {:.2}% | {:.1} pp | {:.3} | {} | {}{stop} | {} |",
            run.remedy.name(),
            run.remedy.strength(),
            100.0 * run.final_test.accuracy,
            100.0 * run.best_test_accuracy(),
            100.0 * run.final_train.accuracy,
            100.0 * run.gap(),
            run.loss_gap(),
            run.memorised
                .map_or("–".into(), |m| format!("{:.1}%", 100.0 * m)),
            run.best_test_loss_epoch(),
            prune::nonzero(&run.final_params),
        );
    }
    // The gaps, defined once where they are read.
    let labels = if wrong > 0 {
        "the training labels as given, wrong ones included"
    } else {
        "the training labels"
    };
    println!(
        "gaps, at the end of each run (early stopping: its restored best weights):\n  \
         accuracy gap = train accuracy (on {labels}) − test accuracy\n  \
         loss gap = test loss − train loss\n  \
         wrong labels learnt = the wrongly labelled training samples predicted as labelled\n\
         a remedy with smaller gaps than `none`'s cut the overfitting; a gap below zero (fewer training \
         labels fitted than test digits right) is what learning the digits and not the wrong labels looks like"
    );
    println!("({:.1}s in all)", t0.elapsed().as_secs_f64());
    if let Some(path) = &args.plot {
        let fig = OverfitFigure {
            runs: &runs,
            title: format!(
                "Overfitting and its remedies · {} · {} {} training samples, {}",
                spec.describe(),
                exp.train.len(),
                args.data.dataset.name(),
                noise_words(args.label_noise, wrong)
            ),
            epochs: args.epochs,
        };
        descent::plot::render(&fig, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The label noise in words, as the header and the picture's title show it.
fn noise_words(fraction: f64, wrong: usize) -> String {
    if wrong == 0 {
        "labels as given".into()
    } else {
        format!("{:.0}% of labels wrong", 100.0 * fraction)
    }
}

/// Samples `from..to` of `d`.
fn slice(d: &Dataset, from: usize, to: usize) -> Dataset {
    let idx: Vec<u32> = (from as u32..to as u32).collect();
    d.select(&idx)
}
