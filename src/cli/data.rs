//! `descent data`: download what is missing and verify the four files; `descent data inspect
//! SOURCE`: what a source of your own holds, before training on it.

use clap::{Args, Subcommand};

use super::args::DataArgs;
use descent::error::{Error, Result};

#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DataCmd {
    #[command(subcommand)]
    pub action: Option<DataAction>,
    #[command(flatten)]
    pub args: DataArgs,
}

#[derive(Subcommand, Debug, Clone)]
pub enum DataAction {
    /// Print what a source holds: rows, features, classes with their counts and names, the
    /// label column, value ranges, missing values and the train/test split sizes.
    Inspect(InspectArgs),
}

#[derive(Args, Debug, Clone)]
pub struct InspectArgs {
    /// csv:PATH, idx:PREFIX (or idx:IMAGES,LABELS[,TEST_IMAGES,TEST_LABELS]) or images:DIR.
    #[arg(value_name = "SOURCE")]
    pub source: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub args: DataArgs,
}

pub fn run(cmd: DataCmd) -> Result<()> {
    if let Some(DataAction::Inspect(a)) = cmd.action {
        return inspect(a);
    }
    let args = cmd.args;
    if args.data.is_some() {
        return Err(Error::InvalidArg(
            "descent data --data: to look at your own data, run `descent data inspect SOURCE`"
                .into(),
        ));
    }
    let src = args.source()?;
    let splits = src.load()?;
    println!(
        "{}: {} training and {} test samples in {}, checksums verified",
        src.kind.name(),
        splits.train.len(),
        splits.test.len(),
        src.dir.display()
    );
    Ok(())
}

fn inspect(a: InspectArgs) -> Result<()> {
    let req = a
        .args
        .request(Some(&a.source))?
        .ok_or_else(|| Error::InvalidArg("give a SOURCE to inspect".into()))?;
    let (text, json) = descent::sources::inspect::report(&req)?;
    if a.json {
        println!("{json}");
    } else {
        print!("{text}");
    }
    Ok(())
}
