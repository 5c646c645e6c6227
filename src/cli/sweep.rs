//! stub
use clap::Args;
use crate::error::Result;
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {}
pub fn run(_a: SweepArgs) -> Result<()> { Ok(()) }
