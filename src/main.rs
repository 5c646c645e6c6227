//! The `descent` command line: a thin layer over the library (src/lib.rs), one file per
//! subcommand in src/cli/.

mod cli;

use clap::Parser;

fn main() {
    // llvmpipe (lavapipe) runs compute workgroups on LP_NUM_THREADS threads, one per core by
    // default. Twice that measured 15-20% faster GPU steps on a 2-core machine: every dispatch
    // ends in a join, and spare threads fill the cores while others wait on one. A user's own
    // setting wins; other drivers ignore the variable.
    if std::env::var_os("LP_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: no other thread exists yet, so nothing can read the environment concurrently.
        unsafe { std::env::set_var("LP_NUM_THREADS", (2 * cores).to_string()) };
    }
    // The Vulkan loader prints "XDG_RUNTIME_DIR is invalid or not set" on every start of a
    // headless machine without one; it means nothing to a user, so give it a private directory.
    let runtime_ok =
        std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if !runtime_ok {
        let dir = std::env::temp_dir().join(format!("descent-runtime-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            // SAFETY: still single-threaded, as above.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
    let cli = cli::Cli::parse();
    // Run everything on a rayon worker, so a parallel step wakes one other thread rather than
    // parking this one and waking two (a large share of a 64-sample step otherwise).
    let result = match rayon::ThreadPoolBuilder::new().build() {
        Ok(pool) => pool.install(|| cli::run(cli)),
        Err(_) => cli::run(cli),
    };
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    };
    // Leave without running the C++ static destructors and atexit handlers of the Vulkan driver
    // and LLVM. With Mesa 22.3's lavapipe, roughly one GPU run in a hundred died at exit with
    // "double free or corruption", after all its output; skipping exit-time teardown is the
    // workaround others report for llvmpipe/LLVM teardown races. (Devices dropped mid-run, as
    // `--device auto` does, never crashed.) Every file descent writes is complete by now
    // (written whole, then renamed); flush the streams.
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit ends the process at once; nothing after this line runs.
    unsafe { libc::_exit(code) }
}
