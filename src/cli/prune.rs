//! `descent prune`: make a trained network smaller, by magnitude (zeroed weights, held at zero
//! by a mask) or by whole hidden units (a genuinely smaller network), optionally fine-tuned with
//! the mask held; `--sweep` tries several sparsities and `--plot` draws accuracy against them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};

use super::args::{DataArgs, DeviceArgs, check_output_file, load_data, open_gpu, resident_bytes};
use descent::backend::{Backend, Setup, Split};
use descent::cpu::CpuBackend;
use descent::data::{Dataset, Splits};
use descent::error::{Error, Result};
use descent::gpu::{Gpu, GpuBackend};
use descent::model::{self, ModelSpec};
use descent::optim::{OptimConfig, OptimizerKind, Schedule, ScheduleKind};
use descent::plot::prune::{SweepFigure, SweepPoint};
use descent::prune::{self, Importance};
use descent::train::{self, EpochRecord, Observer, Position, TrainConfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Zero the weights of smallest |w| (unstructured); a mask keeps them zero.
    Magnitude,
    /// Remove whole hidden units: a smaller, faster dense network.
    Units,
}

#[derive(Args, Debug, Clone)]
pub struct PruneArgs {
    /// The trained checkpoint to prune (from `train --save`).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Where to write the pruned checkpoint (not needed with --sweep).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "magnitude")]
    pub method: Method,
    /// magnitude: the fraction of weights to remove, in [0, 1).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub sparsity: Option<f64>,
    /// magnitude: rank all layers' weights together instead of each layer on its own.
    #[arg(long)]
    pub global: bool,
    /// units: hidden units to keep, one number for every hidden layer or one per layer
    /// (`200` or `200,50`).
    #[arg(long, value_name = "K")]
    pub keep: Option<String>,
    /// units: the fraction of each hidden layer's units to keep, in (0, 1].
    #[arg(
        long,
        value_name = "F",
        conflicts_with = "keep",
        allow_negative_numbers = true
    )]
    pub keep_fraction: Option<f64>,
    /// units: how a unit's importance is measured.
    #[arg(long, value_enum, default_value = "norm")]
    pub importance: Importance,
    /// units with --importance activation: training samples to measure activations on.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub calibration: usize,
    /// Retrain this many epochs after pruning, with pruned weights held at zero.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub finetune_epochs: usize,
    /// Fine-tuning: samples per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Fine-tuning: the update rule.
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// Fine-tuning: the peak learning rate, annealed by a cosine to 0 [default: 0.01 for sgd and
    /// nesterov, 1e-4 for adam and adamw].
    #[arg(long, allow_negative_numbers = true)]
    pub lr: Option<f32>,
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub momentum: f32,
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub weight_decay: f32,
    /// Seed for the fine-tuning's shuffling.
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Fine-tune on the first N training samples only.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Try each sparsity (for units: the fraction of units removed), e.g. 0.5,0.8,0.9,0.95,0.98,
    /// and print accuracy before and after fine-tuning, non-zero parameters, size and speed.
    #[arg(long, value_name = "LIST")]
    pub sweep: Option<String>,
    /// With --sweep: draw test accuracy against sparsity (.png or .svg).
    #[arg(long, value_name = "PATH", requires = "sweep")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// `descent train --prune-sparsity S`: gradual magnitude pruning along Zhu & Gupta's cubic.
#[derive(Args, Debug, Clone)]
pub struct GradualArgs {
    /// Prune gradually during training to this weight sparsity in [0, 1) (per layer unless
    /// --prune-global, by magnitude, along Zhu & Gupta's cubic schedule, once per epoch); the saved checkpoint
    /// records the masks.
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    pub prune_sparsity: Option<f64>,
    /// The first epoch after which to prune.
    #[arg(
        long,
        value_name = "E",
        default_value_t = 1,
        requires = "prune_sparsity"
    )]
    pub prune_start_epoch: usize,
    /// The epoch after which the sparsity reaches --prune-sparsity [default: three quarters of
    /// --epochs]; the epochs after it fine-tune at that sparsity.
    #[arg(long, value_name = "E", requires = "prune_sparsity")]
    pub prune_end_epoch: Option<usize>,
    /// Rank all layers' weights together instead of pruning each layer to the sparsity.
    #[arg(long, requires = "prune_sparsity")]
    pub prune_global: bool,
}

impl GradualArgs {
    /// The schedule for a run of `epochs` epochs, checked.
    pub fn schedule(&self, epochs: usize) -> Result<Option<prune::Gradual>> {
        let Some(s) = self.prune_sparsity else {
            return Ok(None);
        };
        prune::check_sparsity("--prune-sparsity", s)?;
        let end = self
            .prune_end_epoch
            .unwrap_or((epochs * 3).div_ceil(4).max(self.prune_start_epoch));
        if self.prune_start_epoch == 0 {
            return Err(Error::InvalidArg(
                "--prune-start-epoch 0: epochs count from 1".into(),
            ));
        }
        if end < self.prune_start_epoch || end > epochs {
            return Err(Error::InvalidArg(format!(
                "--prune-end-epoch {end}: must be from --prune-start-epoch {} to --epochs {epochs}",
                self.prune_start_epoch
            )));
        }
        Ok(Some(prune::Gradual {
            sparsity: s,
            start_epoch: self.prune_start_epoch,
            end_epoch: end,
        }))
    }
}

/// How much to prune, as resolved from the flags.
#[derive(Clone, Debug, PartialEq)]
enum Target {
    Sparsity(f64),
    /// Units to keep per hidden layer: one for all, or one each.
    Keep(Vec<usize>),
    KeepFraction(f64),
}

/// What one pruning produced.
struct Pruned {
    spec: ModelSpec,
    params: Vec<f32>,
    /// mask: [num_params], for magnitude pruning (and a units-pruned masked checkpoint).
    mask: Option<Vec<f32>>,
    what: String,
}

fn parse_list(flag: &str, s: &str) -> Result<Vec<f64>> {
    s.split(',')
        .map(|p| {
            p.trim().parse::<f64>().map_err(|_| {
                Error::InvalidArg(format!("{flag}: `{p}` is not a number (e.g. 0.5,0.9,0.95)"))
            })
        })
        .collect()
}

/// Every check on the flags alone, before the checkpoint or the data are read.
fn targets(args: &PruneArgs) -> Result<Vec<Target>> {
    let magnitude = args.method == Method::Magnitude;
    let bad = |m: String| Err(Error::InvalidArg(m));
    if magnitude && (args.keep.is_some() || args.keep_fraction.is_some()) {
        return bad("--keep and --keep-fraction are for --method units; --method magnitude takes --sparsity".into());
    }
    if !magnitude && args.global {
        return bad(
            "--global is for --method magnitude: units are ranked within their layer".into(),
        );
    }
    if args.batch_size == 0 {
        return bad("--batch-size 0: a step needs at least one sample".into());
    }
    if args.limit == Some(0) {
        return bad("--limit 0: no samples to fine-tune on".into());
    }
    if args.calibration == 0 {
        return bad("--calibration 0: give at least one sample".into());
    }
    if let Some(s) = &args.sweep {
        if args.sparsity.is_some() || args.keep.is_some() || args.keep_fraction.is_some() {
            return bad(
                "--sweep replaces --sparsity, --keep and --keep-fraction; give one or the other"
                    .into(),
            );
        }
        let list = parse_list("--sweep", s)?;
        for &v in &list {
            prune::check_sparsity("--sweep", v)?;
        }
        return Ok(list.into_iter().map(Target::Sparsity).collect());
    }
    if args.out.is_none() {
        return bad(
            "--out PATH: where to write the pruned checkpoint (or --sweep to compare sparsities)"
                .into(),
        );
    }
    match (args.method, args.sparsity, &args.keep, args.keep_fraction) {
        (Method::Magnitude, Some(s), _, _) => {
            prune::check_sparsity("--sparsity", s)?;
            Ok(vec![Target::Sparsity(s)])
        }
        (Method::Magnitude, None, _, _) => {
            bad("--method magnitude needs --sparsity S in [0, 1)".into())
        }
        (Method::Units, Some(_), _, _) => bad(
            "--method units takes --keep K or --keep-fraction F, not --sparsity (or use --sweep)"
                .into(),
        ),
        (Method::Units, None, Some(k), _) => {
            let keep = k
                .split(',')
                .map(|p| match p.trim().parse::<usize>() {
                    Ok(0) => Err(Error::InvalidArg(
                        "--keep 0: a layer needs at least one unit".into(),
                    )),
                    Ok(n) => Ok(n),
                    Err(_) => Err(Error::InvalidArg(format!(
                        "--keep: `{p}` is not a number of units (e.g. 200 or 200,50)"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(vec![Target::Keep(keep)])
        }
        (Method::Units, None, None, Some(f)) => {
            if !(f.is_finite() && f > 0.0 && f <= 1.0) {
                return bad(format!(
                    "--keep-fraction {f}: the fraction of units kept, above 0 and at most 1"
                ));
            }
            Ok(vec![Target::KeepFraction(f)])
        }
        (Method::Units, None, None, None) => {
            bad("--method units needs --keep K or --keep-fraction F".into())
        }
    }
}

/// Units kept in each hidden layer; errors name the flag.
fn units_to_keep(spec: &ModelSpec, target: &Target) -> Result<Vec<usize>> {
    let hidden = spec.hidden();
    if hidden.is_empty() {
        return Err(Error::InvalidArg(format!(
            "--method units: {} has no hidden layer to remove units from",
            spec.describe()
        )));
    }
    let frac = |f: f64| -> Vec<usize> {
        hidden
            .iter()
            .map(|&w| ((w as f64 * f).round() as usize).clamp(1, w))
            .collect()
    };
    let keep = match target {
        Target::Keep(k) if k.len() == 1 => vec![k[0]; hidden.len()],
        Target::Keep(k) if k.len() == hidden.len() => k.clone(),
        Target::Keep(k) => {
            return Err(Error::InvalidArg(format!(
                "--keep: {} numbers for {} hidden layers; give one for all or one per layer",
                k.len(),
                hidden.len()
            )));
        }
        Target::KeepFraction(f) => frac(*f),
        Target::Sparsity(s) => frac(1.0 - s),
    };
    for (i, (&k, &w)) in keep.iter().zip(hidden).enumerate() {
        if k > w {
            return Err(Error::InvalidArg(format!(
                "--keep {k}: hidden layer {} has only {w} units",
                i + 1
            )));
        }
    }
    Ok(keep)
}

pub fn run(args: PruneArgs) -> Result<()> {
    let targets = targets(&args)?;
    if let Some(p) = &args.out {
        check_output_file("--out", p)?;
    }
    if let Some(p) = &args.plot {
        descent::plot::check_picture_path("--plot", p)?;
    }
    let ck = model::load_checkpoint(&args.checkpoint, None, None)?;
    let spec = ck.spec.clone();
    if args.method == Method::Units {
        for t in &targets {
            units_to_keep(&spec, t)?;
        }
    }
    let optim = OptimConfig {
        kind: args.optimizer,
        weight_decay: args.weight_decay,
        ..OptimConfig::sgd(args.momentum)
    };
    optim.check()?;
    let lr = args
        .lr
        .unwrap_or(if optim.kind.is_adam() { 1e-4 } else { 0.01 });
    Schedule::constant(lr).check_rates()?;

    let Splits { mut train, test } = load_data(&args.data)?;
    if let Some(n) = args.limit {
        train.truncate(n);
    }
    let (train, test) = (Arc::new(train), Arc::new(test));
    let gpu = open_gpu(&args.device, resident_bytes(&train, &test))?;
    let ctx = Ctx {
        args: &args,
        gpu,
        train,
        test,
        optim,
        lr,
    };
    let mut dense = ctx.backend(&spec, ck.params.clone(), None, 1)?;
    let dense_acc = dense.evaluate(Split::Test)?.accuracy;
    let dense_rate = ctx.inference_rate(dense.as_mut())?;
    println!(
        "{}: {} on {} | test acc {:.2}% | {} non-zero parameters, weight sparsity {:.1}% | inference {:.0} samples/s",
        args.checkpoint.display(),
        spec.describe(),
        dense.device(),
        100.0 * dense_acc,
        prune::nonzero(&ck.params),
        100.0 * prune::weight_sparsity(&spec, &ck.params),
        dense_rate
    );
    drop(dense);
    let units = args.method == Method::Units;
    if units {
        println!("unit importance: {}", args.importance.name());
    }
    println!(
        "| {} | model | non-zero params | test acc pruned | test acc fine-tuned ({} epoch{}) | inference samples/s | training samples/s |",
        if units { "units removed" } else { "sparsity" },
        args.finetune_epochs,
        if args.finetune_epochs == 1 { "" } else { "s" }
    );
    println!("|---|---|---|---|---|---|---|");
    let mut points = Vec::new();
    let mut last = None;
    for t in &targets {
        let p = ctx.prune(&ck, t)?;
        let mut b = ctx.backend(
            &p.spec,
            p.params.clone(),
            p.mask.as_deref(),
            args.batch_size,
        )?;
        let before = b.evaluate(Split::Test)?.accuracy;
        let (after, train_rate) = if args.finetune_epochs > 0 {
            let (acc, rate) = ctx.finetune(b.as_mut())?;
            (Some(acc), Some(rate))
        } else {
            (None, None)
        };
        let rate = ctx.inference_rate(b.as_mut())?;
        let params = b.params()?;
        let s = match t {
            Target::Sparsity(s) => *s,
            _ => {
                1.0 - p.spec.hidden().iter().sum::<usize>() as f64
                    / spec.hidden().iter().sum::<usize>() as f64
            }
        };
        println!(
            "| {:.1}% | {} | {} | {:.2}% | {} | {:.0} ({:.1}×) | {} |",
            100.0 * s,
            p.what,
            prune::nonzero(&params),
            100.0 * before,
            after.map_or("–".into(), |a| format!("{:.2}%", 100.0 * a)),
            rate,
            rate / dense_rate.max(1e-9),
            train_rate.map_or("–".into(), |r| format!("{r:.0}")),
        );
        points.push(SweepPoint {
            sparsity: s,
            pruned: before,
            finetuned: after,
        });
        last = Some((p, params));
    }
    if let Some(path) = &args.plot {
        let fig = SweepFigure {
            points: &points,
            dense: dense_acc,
            title: format!(
                "{} pruning of {} · {}",
                if units { "unit" } else { "magnitude" },
                spec.describe(),
                args.data.dataset.name()
            ),
            units,
            finetune_epochs: args.finetune_epochs,
        };
        descent::plot::render(&fig, path)?;
        println!("wrote {}", path.display());
    }
    if let (Some(path), Some((p, params))) = (&args.out, last)
        && args.sweep.is_none()
    {
        // The pruned model keeps what it was trained on, own data's preprocessing included.
        let trained_on = match &ck.preprocess {
            Some(pre) => model::TrainedOn::Own(Box::new(pre.clone())),
            None => ck.dataset.unwrap_or(args.data.dataset).into(),
        };
        model::save_checkpoint_masked(path, &p.spec, &params, p.mask.as_deref(), trained_on, None)?;
        println!("saved {} ({})", path.display(), p.spec.describe());
    }
    Ok(())
}

/// What every pruning of one run shares.
struct Ctx<'a> {
    args: &'a PruneArgs,
    gpu: Option<Arc<Gpu>>,
    train: Arc<Dataset>,
    test: Arc<Dataset>,
    optim: OptimConfig,
    lr: f32,
}

impl Ctx<'_> {
    /// A backend on the device asked for (the GPU opened once for the whole sweep), holding
    /// `mask` when given.
    fn backend(
        &self,
        spec: &ModelSpec,
        params: Vec<f32>,
        mask: Option<&[f32]>,
        batch: usize,
    ) -> Result<Box<dyn Backend>> {
        let setup = Setup {
            spec: spec.clone(),
            params,
            train: self.train.clone(),
            test: self.test.clone(),
            val: None,
            batch: batch.min(self.train.len()).max(1),
            optim: self.optim,
            dropout: 0.0,
            input_dropout: 0.0,
            seed: self.args.seed,
        };
        let mut b: Box<dyn Backend> = match &self.gpu {
            Some(g) => Box::new(GpuBackend::new(g.clone(), &setup)?),
            None => Box::new(CpuBackend::new(setup)),
        };
        if mask.is_some() {
            b.set_mask(mask)?;
        }
        Ok(b)
    }

    fn prune(&self, ck: &model::Checkpoint, t: &Target) -> Result<Pruned> {
        let spec = &ck.spec;
        if self.args.method == Method::Magnitude {
            let Target::Sparsity(s) = *t else {
                return Err(Error::InvalidArg(
                    "--method magnitude takes --sparsity".into(),
                ));
            };
            let mask = prune::magnitude_mask(spec, &ck.params, s, self.args.global);
            let mut params = ck.params.clone();
            prune::apply(&mut params, &mask);
            let per_layer: Vec<String> = prune::layer_sparsity(spec, &params)
                .iter()
                .map(|&(z, n)| format!("{:.1}%", 100.0 * z as f64 / n.max(1) as f64))
                .collect();
            return Ok(Pruned {
                spec: spec.clone(),
                params,
                mask: Some(mask),
                what: format!("{} (layers {})", sizes(spec), per_layer.join(" / ")),
            });
        }
        let keep = units_to_keep(spec, t)?;
        let scores = match self.args.importance {
            Importance::Norm => prune::norm_importance(spec, &ck.params),
            Importance::Activation => {
                prune::activation_importance(spec, &ck.params, &self.train, self.args.calibration)
            }
        };
        let kept: Vec<Vec<usize>> = scores
            .iter()
            .zip(&keep)
            .map(|(s, &k)| prune::top_units(s, k))
            .collect();
        let (small, params, mask) = prune::shrink(spec, &ck.params, ck.mask.as_deref(), &kept);
        Ok(Pruned {
            what: format!("{} ({} params)", sizes(&small), small.num_params()),
            spec: small,
            params,
            mask,
        })
    }

    /// Fine-tunes, with the mask the backend holds; returns the final test accuracy and the mean
    /// training samples/s.
    fn finetune(&self, b: &mut dyn Backend) -> Result<(f64, f64)> {
        let n = self.train.len();
        let batch = self.args.batch_size.min(n).max(1);
        let epochs = self.args.finetune_epochs;
        let steps = n.div_ceil(batch);
        let schedule = Schedule {
            kind: ScheduleKind::Cosine,
            lr: self.lr,
            min_lr: 0.0,
            warmup_steps: 0,
            step_every: u64::MAX,
            gamma: 1.0,
            total_steps: (epochs * steps) as u64,
        };
        let cfg = TrainConfig {
            progress: !self.args.data.quiet,
            ..TrainConfig::new(
                self.train.classes,
                epochs,
                batch,
                self.optim,
                schedule,
                self.args.seed,
            )
        };
        let mut obs = FinetuneLog {
            quiet: self.args.data.quiet,
        };
        let (records, _) = train::train(b, &cfg, n, &mut obs)?;
        let acc = records.last().map_or(0.0, |r| r.test_accuracy);
        let rate =
            records.iter().map(|r| r.samples_per_second).sum::<f64>() / records.len().max(1) as f64;
        Ok((acc, rate))
    }

    /// Test-set samples/s of a forward pass: the median of three evaluations after a warm-up.
    fn inference_rate(&self, b: &mut dyn Backend) -> Result<f64> {
        b.evaluate(Split::Test)?;
        let mut rates = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let s = b.evaluate(Split::Test)?;
            rates.push(s.samples as f64 / t0.elapsed().as_secs_f64().max(1e-9));
        }
        rates.sort_by(f64::total_cmp);
        Ok(rates[1])
    }
}

fn sizes(spec: &ModelSpec) -> String {
    let s: Vec<String> = spec.sizes.iter().map(|s| s.to_string()).collect();
    s.join("-")
}

/// Prints each fine-tuning epoch.
struct FinetuneLog {
    quiet: bool,
}

impl Observer for FinetuneLog {
    fn on_epoch(&mut self, r: &EpochRecord, _: &mut dyn Backend, _: &Position) -> Result<()> {
        if !self.quiet {
            println!(
                "  fine-tune epoch {:>3}  train loss {:.4}  test loss {:.4}  test acc {:.2}%  {:.0} samples/s",
                r.epoch,
                r.train_loss,
                r.test_loss,
                100.0 * r.test_accuracy,
                r.samples_per_second
            );
        }
        Ok(())
    }
}
