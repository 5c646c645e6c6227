//! `descent eval`: a checkpoint's loss and accuracy on the test set.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;

use super::args::{DataArgs, DeviceArgs, eval_backend, load_data};
use crate::backend::Split;
use crate::data::Splits;
use crate::error::Result;
use crate::model::{self, Activation, Loss};

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A safetensors checkpoint (from `train --save`, or PyTorch with the same tensor names).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Activation, when the checkpoint's metadata does not name one [default: relu].
    #[arg(long, value_enum)]
    pub activation: Option<Activation>,
    /// Loss to report, when the metadata does not name one [default: xent].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let ck = model::load_checkpoint(&args.checkpoint, args.activation, args.loss)?;
    if let Some(ds) = ck.dataset
        && ds != args.data.dataset
    {
        eprintln!(
            "note: the checkpoint was trained on {}, evaluating on {}",
            ds.name(),
            args.data.dataset.name()
        );
    }
    let Splits { test, .. } = load_data(&args.data)?;
    let test = Arc::new(test);
    let mut backend = eval_backend(&args.device, &ck.spec, ck.params, test)?;
    let e = backend.evaluate(Split::Test)?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "test_accuracy": e.accuracy,
                "test_loss": e.loss,
                "samples": e.samples,
                "model": ck.spec.describe(),
                "device": backend.device(),
            })
        );
    } else {
        println!(
            "{}: test loss {:.4}  test acc {:.2}%  ({} samples, {})",
            ck.spec.describe(),
            e.loss,
            100.0 * e.accuracy,
            e.samples,
            backend.device()
        );
    }
    Ok(())
}
