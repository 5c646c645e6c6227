//! `descent data`: download what is missing and verify the four files.

use super::args::DataArgs;
use crate::error::Result;

pub fn run(args: DataArgs) -> Result<()> {
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
