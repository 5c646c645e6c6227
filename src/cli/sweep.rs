//! `descent sweep`: a grid of short training runs over one or two hyperparameters, each cell
//! through the same library path as `descent train`, recorded as it finishes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use clap::Args;
use serde::{Deserialize, Serialize};

use super::args::{DataArgs, DeviceArgs, check_output_file, load_data, make_backend};
use super::train::mode_defaults;
use descent::backend::Setup;
use descent::data::Dataset;
use descent::error::{Error, Result};
use descent::model::{self, Activation, Init, Loss, ModelSpec};
use descent::optim::{OptimConfig, OptimizerKind, Schedule};
use descent::plot::sweep::{CellView, SweepFigure};
use descent::train::{self, BatchSize, EpochRecord, Mode, Observer, Position, TrainConfig};

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Learning rates, e.g. `0.01,0.05,0.2` [default: each cell's mode and optimizer default].
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<String>,
    /// Batch sizes, e.g. `16,64,256,full`.
    #[arg(long, default_value = "64")]
    pub batch_size: String,
    /// Epochs per cell, e.g. `1,2,4`.
    #[arg(long, default_value = "2")]
    pub epochs: String,
    /// Hidden layers per cell, layers joined by `x`: `32,128,256x128,none`.
    #[arg(long, default_value = "128")]
    pub hidden: String,
    /// Optimizers, e.g. `sgd,adam` [default: each cell's mode default].
    #[arg(long)]
    pub optimizer: Option<String>,
    #[arg(long, value_enum, default_value = "relu")]
    pub activation: Activation,
    #[arg(long, value_enum, default_value = "xent")]
    pub loss: Loss,
    #[arg(long, value_enum, default_value = "auto")]
    pub init: Init,
    /// Train each cell on the first N training samples (short runs are the point).
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u32,
    /// Cells run at once. On the CPU the cores are shared out among them (each cell gets its
    /// own thread pool): meant for small batches, where one cell cannot use every core.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Append each finished cell to this JSON lines file.
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    /// Keep the cells already in --out and run only the others.
    #[arg(long, requires = "out")]
    pub resume: bool,
    /// Draw the accuracy heatmap to this .png or .svg.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Everything that decides a cell's result: a finished cell is matched on all of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    pub dataset: String,
    pub limit: usize,
    pub seed: u32,
    pub hidden: String,
    pub activation: String,
    pub loss: String,
    pub init: String,
    /// A number or "full".
    pub batch_size: String,
    pub epochs: usize,
    pub optimizer: String,
    pub lr: f32,
}

/// One line of `--out`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: Cell,
    /// "ok" or "diverged".
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub test_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub test_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub train_loss: Option<f64>,
    /// Training seconds (evaluation excluded).
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub diverged_epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub diverged_step: Option<usize>,
}

/// A swept flag: its name and the values given (as written).
#[derive(Clone, Debug)]
struct Axis {
    flag: &'static str,
    values: Vec<String>,
}

fn split_list(flag: &str, s: &str) -> Result<Vec<String>> {
    let v: Vec<String> = s.split(',').map(|p| p.trim().to_owned()).collect();
    if v.iter().any(String::is_empty) {
        return Err(Error::InvalidArg(format!(
            "{flag} `{s}`: an empty value in the list; give comma-separated values like 1,2,4"
        )));
    }
    for (i, x) in v.iter().enumerate() {
        if v[..i].contains(x) {
            return Err(Error::InvalidArg(format!("{flag}: {x} is listed twice")));
        }
    }
    Ok(v)
}

/// The parsed grid: every list, with the swept ones (more than one value) as axes.
struct Grid {
    lr: Vec<Option<f32>>,
    batch: Vec<String>,
    epochs: Vec<usize>,
    hidden: Vec<String>,
    optimizer: Vec<Option<OptimizerKind>>,
    axes: Vec<Axis>,
}

fn parse_grid(a: &SweepArgs) -> Result<Grid> {
    let mut axes = Vec::new();
    let mut note = |flag: &'static str, values: &[String]| {
        if values.len() > 1 {
            axes.push(Axis {
                flag,
                values: values.to_vec(),
            });
        }
    };
    let lr_s = match &a.lr {
        Some(s) => split_list("--lr", s)?,
        None => vec![],
    };
    let lr = if lr_s.is_empty() {
        vec![None]
    } else {
        lr_s.iter()
            .map(|v| match v.parse::<f32>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(Error::InvalidArg(format!(
                    "--lr `{v}`: a learning rate must be a finite number above 0"
                ))),
            })
            .collect::<Result<_>>()?
    };
    note("--lr", &lr_s);
    let batch = split_list("--batch-size", &a.batch_size)?;
    for b in &batch {
        BatchSize::parse(b)?;
    }
    note("--batch-size", &batch);
    let ep_s = split_list("--epochs", &a.epochs)?;
    let epochs = ep_s
        .iter()
        .map(|v| match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::InvalidArg(format!(
                "--epochs `{v}`: give whole numbers of epochs, at least 1"
            ))),
        })
        .collect::<Result<_>>()?;
    note("--epochs", &ep_s);
    let hidden = split_list("--hidden", &a.hidden)?;
    for h in &hidden {
        model::parse_hidden(&h.replace('x', ","))?;
    }
    note("--hidden", &hidden);
    let opt_s = match &a.optimizer {
        Some(s) => split_list("--optimizer", s)?,
        None => vec![],
    };
    let optimizer = if opt_s.is_empty() {
        vec![None]
    } else {
        opt_s
            .iter()
            .map(|v| {
                OptimizerKind::parse(v).map(Some).ok_or_else(|| {
                    Error::InvalidArg(format!(
                        "--optimizer `{v}`: unknown (choose from sgd, nesterov, adam, adamw)"
                    ))
                })
            })
            .collect::<Result<_>>()?
    };
    note("--optimizer", &opt_s);
    match axes.len() {
        1 | 2 => {}
        0 => {
            return Err(Error::InvalidArg(
                "nothing to sweep: give two values or more to one or two of --lr, --batch-size, --epochs, --hidden, --optimizer (e.g. --lr 0.01,0.1 --batch-size 16,64)".into(),
            ));
        }
        n => {
            return Err(Error::InvalidArg(format!(
                "{n} flags have lists ({}): a sweep is a grid over two at most",
                axes.iter().map(|a| a.flag).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(Grid {
        lr,
        batch,
        epochs,
        hidden,
        optimizer,
        axes,
    })
}

impl Grid {
    /// Every cell, with unset settings resolved from the cell's mode defaults.
    fn cells(&self, a: &SweepArgs) -> Vec<Cell> {
        let mut out = Vec::new();
        for h in &self.hidden {
            for b in &self.batch {
                for &e in &self.epochs {
                    for &o in &self.optimizer {
                        for &lr in &self.lr {
                            let mode = BatchSize::parse(b).map(Mode::of).unwrap_or(Mode::MiniBatch);
                            let d = mode_defaults(mode, o);
                            out.push(Cell {
                                dataset: a.data.dataset.name().into(),
                                limit: a.limit,
                                seed: a.seed,
                                hidden: h.clone(),
                                activation: a.activation.name().into(),
                                loss: a.loss.name().into(),
                                init: format!("{:?}", a.init).to_lowercase(),
                                batch_size: b.clone(),
                                epochs: e,
                                optimizer: d.optimizer.name().into(),
                                lr: lr.unwrap_or(d.lr),
                            });
                        }
                    }
                }
            }
        }
        out
    }
}

/// The value a cell has for a swept flag, as the user wrote it.
fn value_of(cell: &Cell, flag: &str, grid: &Grid) -> String {
    match flag {
        "--lr" => grid
            .lr
            .iter()
            .flatten()
            .find(|&&v| v == cell.lr)
            .map_or(cell.lr.to_string(), |v| v.to_string()),
        "--batch-size" => cell.batch_size.clone(),
        "--epochs" => cell.epochs.to_string(),
        "--hidden" => cell.hidden.clone(),
        _ => cell.optimizer.clone(),
    }
}

pub fn run(args: SweepArgs) -> Result<()> {
    let grid = parse_grid(&args)?;
    if args.jobs == 0 {
        return Err(Error::InvalidArg(
            "--jobs 0: run at least one cell at a time".into(),
        ));
    }
    if args.limit == 0 {
        return Err(Error::InvalidArg(
            "--limit 0: no samples to train on".into(),
        ));
    }
    if let Some(p) = &args.out {
        check_output_file("--out", p)?;
    }
    if let Some(p) = &args.plot {
        descent::plot::check_picture_path("--plot", p)?;
    }
    let cells = grid.cells(&args);
    let mut done: Vec<CellResult> = match (&args.out, args.resume) {
        (Some(p), true) => read_results(p)?,
        _ => Vec::new(),
    };
    // Only this grid's cells are kept from a resumed file; others (another grid) are dropped.
    done.retain(|r| cells.contains(&r.cell));
    let todo: Vec<Cell> = cells
        .iter()
        .filter(|c| !done.iter().any(|r| r.cell == **c))
        .cloned()
        .collect();
    let axes: Vec<&str> = grid.axes.iter().map(|a| a.flag).collect();
    let kept = match &args.out {
        Some(p) => format!("{} already in {}", done.len(), p.display()),
        None => "no --out file".into(),
    };
    println!(
        "sweep over {}: {} cells ({kept}, {} to run), {} samples each, {} at a time",
        axes.join(" × "),
        cells.len(),
        todo.len(),
        args.limit,
        args.jobs.min(todo.len().max(1))
    );

    if !todo.is_empty() {
        let splits = load_data(&args.data)?;
        let mut train_set = splits.train;
        train_set.truncate(args.limit);
        let data = (Arc::new(train_set), Arc::new(splits.test));
        let log = Mutex::new(done);
        if let Some(p) = &args.out {
            write_results(p, &log.lock().map_err(poisoned)?)?;
        }
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = args.jobs.min(todo.len());
        let per_cell = (threads / jobs).max(1);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..jobs {
                s.spawn(|| {
                    let pool = match rayon::ThreadPoolBuilder::new()
                        .num_threads(per_cell)
                        .build()
                    {
                        Ok(p) => p,
                        Err(e) => {
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(Error::InvalidArg(format!("thread pool: {e}")));
                            }
                            return;
                        }
                    };
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(cell) = todo.get(i) else { break };
                        if first_error.lock().map(|f| f.is_some()).unwrap_or(true) {
                            break;
                        }
                        let res = pool.install(|| run_cell(&args, cell, &data.0, &data.1));
                        let step = res.and_then(|r| {
                            println!("{}", describe(&r, &grid));
                            let mut all = log.lock().map_err(poisoned)?;
                            all.push(r);
                            match &args.out {
                                Some(p) => write_results(p, &all),
                                None => Ok(()),
                            }
                        });
                        if let Err(e) = step {
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().map_err(poisoned)? {
            return Err(e);
        }
        done = log.into_inner().map_err(poisoned)?;
    }
    let fig = table(&grid, &cells, &done, &args);
    if let Some(p) = &args.plot {
        descent::plot::render(&fig, p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn poisoned<T>(_: T) -> Error {
    Error::InvalidArg("a sweep worker panicked".into())
}

/// Trains one cell; divergence is a result, not an error.
fn run_cell(
    args: &SweepArgs,
    cell: &Cell,
    train_set: &Arc<Dataset>,
    test: &Arc<Dataset>,
) -> Result<CellResult> {
    let hidden = model::parse_hidden(&cell.hidden.replace('x', ","))?;
    let spec = ModelSpec::new(&hidden, args.activation, args.loss);
    let n = train_set.len();
    let bs = BatchSize::parse(&cell.batch_size)?;
    let batch = bs.resolve(n);
    let kind = OptimizerKind::parse(&cell.optimizer).unwrap_or(OptimizerKind::Sgd);
    let d = mode_defaults(Mode::of(bs), Some(kind));
    let optim = OptimConfig {
        kind,
        momentum: d.momentum,
        ..OptimConfig::sgd(0.0)
    };
    let steps = n.div_ceil(batch);
    let schedule = Schedule {
        kind: d.schedule,
        lr: cell.lr,
        min_lr: 0.0,
        warmup_steps: 0,
        step_every: steps as u64,
        gamma: 0.1,
        total_steps: (cell.epochs * steps) as u64,
    };
    schedule.check()?;
    let setup = Setup {
        spec: spec.clone(),
        params: spec.init_params(args.init, args.seed),
        train: train_set.clone(),
        test: test.clone(),
        val: None,
        batch,
        optim,
        dropout: 0.0,
        input_dropout: 0.0,
        seed: args.seed,
    };
    let mut backend = make_backend(&args.device, setup)?;
    let cfg = TrainConfig::new(
        spec.classes(),
        cell.epochs,
        batch,
        optim,
        schedule,
        args.seed,
    );
    let mut rec = Records {
        records: Vec::new(),
        n,
        batch,
        first: None,
        blowup: None,
    };
    let base = CellResult {
        cell: cell.clone(),
        status: "ok".into(),
        test_accuracy: None,
        test_loss: None,
        train_loss: None,
        seconds: 0.0,
        diverged_epoch: None,
        diverged_step: None,
    };
    match train::train(backend.as_mut(), &cfg, n, &mut rec) {
        Ok((records, _)) => {
            let last = records.last();
            let chance = 1.5 / descent::data::CLASSES as f64;
            let blown = rec
                .blowup
                .filter(|_| last.is_some_and(|r| r.test_accuracy < chance));
            Ok(CellResult {
                status: if blown.is_some() { "diverged" } else { "ok" }.into(),
                test_accuracy: last.map(|r| r.test_accuracy),
                test_loss: last.map(|r| r.test_loss),
                train_loss: last.map(|r| r.train_loss),
                seconds: last.map_or(0.0, |r| r.elapsed_seconds),
                diverged_epoch: blown.map(|b| b.0),
                diverged_step: blown.map(|b| b.1),
                ..base
            })
        }
        Err(Error::Diverged { epoch, step, .. }) => Ok(CellResult {
            status: "diverged".into(),
            seconds: rec.records.last().map_or(0.0, |r| r.elapsed_seconds),
            diverged_epoch: Some(epoch),
            diverged_step: Some(step),
            ..base
        }),
        Err(e) => Err(e),
    }
}

/// The epochs a cell finished, and where its loss blew up: the first step whose batch loss
/// exceeded [`BLOWUP`] times the first step's.
struct Records {
    records: Vec<EpochRecord>,
    n: usize,
    batch: usize,
    first: Option<f64>,
    blowup: Option<(usize, usize)>,
}

/// A loss this many times its starting value has left the basin: with the run ending at chance
/// accuracy, the cell counts as diverged (cross-entropy's stable softmax keeps the loss finite,
/// so a too-large lr often shows as this rather than as NaN).
const BLOWUP: f64 = 2.0;

impl Observer for Records {
    fn on_epoch(
        &mut self,
        r: &EpochRecord,
        backend: &mut dyn descent::backend::Backend,
        _: &Position,
    ) -> Result<()> {
        if self.blowup.is_none() {
            for (step, &sum) in backend.step_loss_sums()?.iter().enumerate() {
                let len = self.batch.min(self.n - step * self.batch).max(1);
                let loss = sum as f64 / len as f64;
                let first = *self.first.get_or_insert(loss);
                if loss > BLOWUP * first {
                    self.blowup = Some((r.epoch, step));
                    break;
                }
            }
        }
        self.records.push(r.clone());
        Ok(())
    }
}

fn describe(r: &CellResult, grid: &Grid) -> String {
    let at: Vec<String> = grid
        .axes
        .iter()
        .map(|a| format!("{} {}", a.flag, value_of(&r.cell, a.flag, grid)))
        .collect();
    match (r.diverged_epoch, r.test_accuracy) {
        (Some(e), _) => format!(
            "{}: diverged at epoch {e}, step {} (lr {} too large for it)",
            at.join(" "),
            r.diverged_step.unwrap_or(0),
            r.cell.lr
        ),
        (None, Some(a)) => format!(
            "{}: test accuracy {:.2}%, {:.1} s",
            at.join(" "),
            100.0 * a,
            r.seconds
        ),
        (None, None) => format!("{}: no epochs", at.join(" ")),
    }
}

fn read_results(path: &Path) -> Result<Vec<CellResult>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Metrics {
                path: path.to_owned(),
                line: i + 1,
                msg: format!("not a sweep result ({e}); remove the line or drop --resume"),
            })
        })
        .collect()
}

fn write_results(path: &Path, results: &[CellResult]) -> Result<()> {
    let mut s = String::new();
    for r in results {
        let line =
            serde_json::to_string(r).map_err(|e| Error::InvalidArg(format!("--out: {e}")))?;
        s.push_str(&line);
        s.push('\n');
    }
    descent::write_atomic(path, s.as_bytes())
}

/// Prints the grid as a table and returns it as a heatmap.
fn table(grid: &Grid, cells: &[Cell], done: &[CellResult], args: &SweepArgs) -> SweepFigure {
    let x = &grid.axes[0];
    let y = grid.axes.get(1);
    let y_values = y.map_or(vec![String::new()], |a| a.values.clone());
    let view = |c: &Cell| match done.iter().find(|r| &r.cell == c) {
        Some(r) => match (r.diverged_epoch, r.test_accuracy) {
            (Some(e), _) => CellView::Diverged {
                epoch: e,
                step: r.diverged_step.unwrap_or(0),
            },
            (None, Some(a)) => CellView::Done {
                accuracy: a,
                seconds: r.seconds,
            },
            _ => CellView::Missing,
        },
        None => CellView::Missing,
    };
    let find = |xv: &str, yv: &str| {
        cells.iter().find(|c| {
            value_of(c, x.flag, grid) == *xv && y.is_none_or(|a| value_of(c, a.flag, grid) == *yv)
        })
    };
    let rows: Vec<Vec<CellView>> = y_values
        .iter()
        .map(|yv| {
            x.values
                .iter()
                .map(|xv| find(xv, yv).map_or(CellView::Missing, view))
                .collect()
        })
        .collect();
    let label_w = 14;
    println!();
    println!(
        "test accuracy (training seconds); rows {}, columns {}",
        y.map_or("-", |a| a.flag),
        x.flag
    );
    let mut head = format!("{:<label_w$}", "");
    for v in &x.values {
        head.push_str(&format!("{v:>26}"));
    }
    println!("{head}");
    for (yv, row) in y_values.iter().zip(&rows) {
        let mut line = format!("{yv:<label_w$}");
        for c in row {
            let s = match c {
                CellView::Done { accuracy, seconds } => {
                    format!("{:.2}% ({seconds:.1} s)", 100.0 * accuracy)
                }
                CellView::Diverged { epoch, step } => format!("diverged e{epoch} s{step}"),
                CellView::Missing => "not run".into(),
            };
            line.push_str(&format!("{s:>26}"));
        }
        println!("{line}");
    }
    let fixed = format!(
        "{} · {} samples · hidden {} · batch {} · epochs {}{}",
        args.data.dataset.name(),
        args.limit,
        if x.flag == "--hidden" || y.is_some_and(|a| a.flag == "--hidden") {
            "swept".to_owned()
        } else {
            grid.hidden[0].clone()
        },
        if x.flag == "--batch-size" || y.is_some_and(|a| a.flag == "--batch-size") {
            "swept".to_owned()
        } else {
            grid.batch[0].clone()
        },
        if x.flag == "--epochs" || y.is_some_and(|a| a.flag == "--epochs") {
            "swept".to_owned()
        } else {
            grid.epochs[0].to_string()
        },
        if args.lr.is_none() {
            " · lr, optimizer and schedule: each mode's defaults unless swept"
        } else {
            ""
        }
    );
    SweepFigure {
        title: vec![
            format!(
                "Sensitivity: test accuracy over {}",
                grid.axes
                    .iter()
                    .map(|a| a.flag.trim_start_matches("--"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            fixed,
        ],
        x_name: x.flag.trim_start_matches("--").into(),
        x_values: x.values.clone(),
        y_name: y.map_or(String::new(), |a| a.flag.trim_start_matches("--").into()),
        y_values,
        cells: rows,
    }
}
