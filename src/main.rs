use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = descent::cli::Cli::parse();
    // Run everything on a rayon worker, so a parallel step wakes one other thread rather than
    // parking this one and waking two (a large share of a 64-sample step otherwise).
    let result = match rayon::ThreadPoolBuilder::new().build() {
        Ok(pool) => pool.install(|| descent::cli::run(cli)),
        Err(_) => descent::cli::run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
