//! `descent landscape`: optimizers on a 2-D test function, their paths drawn over its contours.

use std::path::PathBuf;

use clap::Args;

use descent::error::{Error, Result};
use descent::landscape::{self, Function, Optimizer, Path};
use descent::plot::landscape::{LandscapeFigure, trimmed};

#[derive(Args, Debug, Clone)]
pub struct LandscapeArgs {
    /// The function to descend.
    #[arg(long, value_enum, default_value = "rosenbrock")]
    pub function: Function,
    /// Where every optimizer starts, `x,y` [default: by function].
    #[arg(long, allow_hyphen_values = true)]
    pub start: Option<String>,
    /// Comma list of sgd (plain), momentum (sgd with momentum 0.9), nesterov (0.9), adam.
    #[arg(long, default_value = "sgd,momentum,nesterov,adam")]
    pub optimizers: String,
    /// One learning rate for all, one per optimizer (`0.001,0.001,0.001,0.05`), or
    /// `adam=0.1,sgd=0.002` [default: by function and optimizer, printed].
    #[arg(long, allow_hyphen_values = true)]
    pub lr: Option<String>,
    /// Steps per optimizer [default: by function].
    #[arg(long)]
    pub steps: Option<usize>,
    /// "Reached" means f − f_min at most this.
    #[arg(long, default_value_t = 1e-4)]
    pub tol: f64,
    /// Draw the paths over the contours to this .png or .svg.
    #[arg(long, value_name = "PATH")]
    pub plot: Option<PathBuf>,
}

pub fn run(args: LandscapeArgs) -> Result<()> {
    let f = args.function;
    let start = match &args.start {
        Some(s) => landscape::parse_start(s)?,
        None => f.default_start(),
    };
    let opts: Vec<Optimizer> = args
        .optimizers
        .split(',')
        .map(Optimizer::parse)
        .collect::<Result<_>>()?;
    if let Some(dup) = opts
        .iter()
        .enumerate()
        .find(|(i, o)| opts[..*i].contains(o))
    {
        return Err(Error::InvalidArg(format!(
            "--optimizers: {} is listed twice",
            dup.1.name()
        )));
    }
    let lrs = match &args.lr {
        Some(s) => landscape::parse_lrs(s, f, &opts)?,
        None => opts.iter().map(|&o| f.default_lr(o)).collect(),
    };
    let steps = args.steps.unwrap_or(f.default_steps());
    if steps == 0 {
        return Err(Error::InvalidArg(
            "--steps 0: give at least one step".into(),
        ));
    }
    if !(args.tol.is_finite() && args.tol > 0.0) {
        return Err(Error::InvalidArg(format!(
            "--tol {}: must be a finite number above 0",
            args.tol
        )));
    }
    if let Some(p) = &args.plot {
        descent::plot::check_picture_path("--plot", p)?;
    }

    let paths: Vec<Path> = opts
        .iter()
        .zip(&lrs)
        .map(|(&o, &lr)| landscape::descend(f, o, lr, start, steps, args.tol))
        .collect();

    let minima: Vec<String> = f
        .minima()
        .iter()
        .map(|m| format!("({}, {})", trim(m[0]), trim(m[1])))
        .collect();
    println!(
        "{}: {}; minimum {} at {}",
        f.name(),
        f.formula(),
        trim(f.min_value()),
        minima.join(", ")
    );
    println!(
        "start ({}, {}), f = {:.4}; {steps} steps; reached = f − f_min ≤ {:e}",
        trim(start[0]),
        trim(start[1]),
        f.value(start[0], start[1]),
        args.tol
    );
    println!(
        "{:<10} {:>8}  {:>24}  {:>11}  {:>9}",
        "optimizer", "lr", "final point", "f(final)", "reached"
    );
    for p in &paths {
        let e = p.end();
        let (point, value, reached) = match p.diverged_at {
            Some(s) => (
                "—".to_owned(),
                "—".to_owned(),
                format!("diverged at step {s}"),
            ),
            None => (
                format!("({:.4}, {:.4})", e[0], e[1]),
                format!("{:.4e}", f.value(e[0], e[1])),
                p.reached_at
                    .map_or("never".to_owned(), |s| format!("step {s}")),
            ),
        };
        println!(
            "{:<10} {:>8}  {point:>24}  {value:>11}  {reached:>9}",
            p.optimizer.name(),
            p.lr
        );
    }
    let diverged: Vec<&Path> = paths.iter().filter(|p| p.diverged_at.is_some()).collect();
    for p in &diverged {
        eprintln!(
            "warning: {} at lr {} diverged at step {} (the point ran off to infinity): the lr is too large for {}; try a smaller --lr",
            p.optimizer.name(),
            p.lr,
            p.diverged_at.unwrap_or(0),
            f.name()
        );
    }
    if diverged.len() == paths.len() {
        return Err(Error::InvalidArg(format!(
            "every optimizer diverged on {}: give a smaller --lr",
            f.name()
        )));
    }
    if let Some(path) = &args.plot {
        let fig = LandscapeFigure {
            function: f,
            paths: &paths,
            start,
            tol: args.tol,
            title: vec![
                format!("Gradient descent on {}", f.name()),
                format!(
                    "{} · start ({}, {}) · {steps} steps",
                    f.formula(),
                    trim(start[0]),
                    trim(start[1])
                ),
            ],
        };
        descent::plot::render(&fig, path)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn trim(v: f64) -> String {
    trimmed(v, 6)
}
