//! Command-line interface: one file per subcommand, the argument groups they share in `args.rs`.

mod args;
mod bench;
mod data;
mod eval;
pub mod explain;
pub mod landscape;
pub mod modes;
mod overfit;
mod pictures;
mod plot;
mod predict;
pub(crate) mod prune;
pub mod sweep;
mod train;
mod verify;
mod web;
mod weights;

use clap::{Parser, Subcommand};

use descent::error::Result;

#[derive(Parser, Debug)]
#[command(
    name = "descent",
    version,
    about = "Train multilayer perceptrons on MNIST or your own data with backprop and gradient descent, on the CPU or on a GPU through WGSL"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an MLP and report loss and accuracy per epoch.
    Train(Box<train::TrainArgs>),
    /// Evaluate a checkpoint on the test set.
    Eval(eval::EvalArgs),
    /// Download (if needed) and verify the dataset, without training; `data inspect SOURCE`
    /// describes your own data.
    Data(data::DataCmd),
    /// Measure training throughput (samples/s) at several batch sizes.
    Bench(bench::BenchArgs),
    /// Check every GPU kernel and whole training steps against the CPU on this adapter.
    Verify(verify::VerifyArgs),
    /// Draw the loss and accuracy curves of one or more `train --metrics` files.
    Plot(plot::PlotArgs),
    /// Draw a checkpoint's first-layer weights, one 28×28 image per unit.
    Weights(weights::WeightsArgs),
    /// Classify image files (handwritten digits) or CSV rows (--csv) with a checkpoint.
    Predict(predict::PredictArgs),
    /// Train the same model by batch, stochastic and mini-batch gradient descent and compare.
    Modes(Box<modes::ModesArgs>),
    /// Run optimizers on a 2-D test function and draw their paths over its contours.
    Landscape(landscape::LandscapeArgs),
    /// Train a grid of short runs over two hyperparameters and tabulate test accuracy.
    Sweep(Box<sweep::SweepArgs>),
    /// Walk backprop through a tiny network, stage by stage, with the numbers.
    Explain(explain::ExplainArgs),
    /// Prune a checkpoint: zero its smallest weights (magnitude) or remove hidden units, then
    /// optionally fine-tune with the pruned weights held at zero.
    Prune(Box<prune::PruneArgs>),
    /// Watch a network overfit a small training set, and each remedy narrow the gap.
    Overfit(Box<overfit::OverfitArgs>),
    /// Serve the browser page (built by web/build.sh) on 127.0.0.1 and print its address.
    Web(web::WebArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train::run(*a),
        Command::Eval(a) => eval::run(a),
        Command::Data(a) => data::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Verify(a) => verify::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Weights(a) => weights::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Modes(a) => modes::run(*a),
        Command::Landscape(a) => landscape::run(a),
        Command::Sweep(a) => sweep::run(*a),
        Command::Explain(a) => explain::run(a),
        Command::Prune(a) => prune::run(*a),
        Command::Overfit(a) => overfit::run(*a),
        Command::Web(a) => web::run(a),
    }
}
