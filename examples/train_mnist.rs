//! Trains a 784-128-10 network on MNIST with the library alone, no command line: load the data,
//! describe the model, train with a callback per epoch, evaluate, predict, save and load back.
//!
//! ```sh
//! MNIST_MIRROR=file:///path/to/mnist cargo run --release --example train_mnist -- [EPOCHS] [LIMIT] [OUT]
//! ```
//!
//! The data is read from `data/mnist` (fetched from `$MNIST_MIRROR`, else the public mirrors,
//! when missing); LIMIT trains on the first LIMIT training samples; OUT (default
//! `mnist.safetensors`) is the checkpoint, which `descent eval --checkpoint OUT` reads.

use descent::data::{DataSource, DatasetKind};
use descent::{Activation, EpochRecord, Loss, ModelSpec, Trainer, TrainerOptions};

fn main() -> descent::Result<()> {
    let mut args = std::env::args().skip(1);
    let number = |s: Option<String>, default: usize| -> descent::Result<usize> {
        s.map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| descent::Error::InvalidArg(format!("`{s}` is not a number")))
        })
    };
    let epochs = number(args.next(), 1)?;
    let limit = number(args.next(), usize::MAX)?;
    let out = args.next().unwrap_or_else(|| "mnist.safetensors".into());
    // Check the output path before the long work.
    descent::check_output_file("OUT", out.as_ref())?;

    let dir = std::env::var("DESCENT_DATA_DIR").unwrap_or_else(|_| "data/mnist".into());
    let mut splits = DataSource::new(DatasetKind::Mnist, dir)?.load()?;
    splits.train.truncate(limit);
    let (first, label) = (splits.test.row(0), splits.test.labels[0]);

    let spec = ModelSpec::new(&[128], Activation::Relu, Loss::Xent);
    let opts = TrainerOptions {
        epochs,
        ..TrainerOptions::default()
    };
    let mut trainer = Trainer::cpu(spec, splits.train, splits.test, opts)?;
    println!("{} on {}", trainer.spec().describe(), trainer.device());
    trainer.fit(&mut |r: &EpochRecord| {
        println!(
            "epoch {}: train loss {:.4}, test loss {:.4}, test accuracy {:.2}%, {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.test_loss,
            100.0 * r.test_accuracy,
            r.samples_per_second
        );
    })?;

    let eval = trainer.evaluate()?;
    println!("test accuracy {:.2}%", 100.0 * eval.accuracy);
    let probs = &trainer.predict(&first)?[0];
    let best = (0..probs.len())
        .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
        .unwrap_or(0);
    println!(
        "first test image: label {}, predicted {best} ({:.1}%)",
        label,
        100.0 * probs[best]
    );

    trainer.save(&out)?;
    let back = descent::model::load_checkpoint(out.as_ref(), None, None)?;
    println!("saved {out}: {}", back.spec.describe());
    Ok(())
}
