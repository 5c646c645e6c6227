//! stub
use clap::Args;
use crate::error::Result;
#[derive(Args, Debug, Clone)]
pub struct ModesArgs {}
pub fn run(_a: ModesArgs) -> Result<()> { Ok(()) }
