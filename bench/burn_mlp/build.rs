//! Records the resolved versions of burn, cubecl-wgpu and wgpu (from Cargo.lock) so the
//! benchmark can print exactly what it was built against.

use std::{env, fs, path::Path};

fn locked_version(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\n");
    let mut versions: Vec<&str> = Vec::new();
    let mut rest = lock;
    while let Some(pos) = rest.find(&needle) {
        rest = &rest[pos + needle.len()..];
        if let Some(line) = rest.lines().next()
            && let Some(v) = line.strip_prefix("version = \"")
        {
            versions.push(v.trim_end_matches('"'));
        }
    }
    if versions.is_empty() {
        "unknown".to_string()
    } else {
        versions.join("+")
    }
}

fn main() {
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap();
    let lock_path = Path::new(&dir).join("Cargo.lock");
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = fs::read_to_string(&lock_path).unwrap_or_default();
    for (name, var) in [
        ("burn", "BENCH_BURN_VERSION"),
        ("cubecl-wgpu", "BENCH_CUBECL_WGPU_VERSION"),
        ("wgpu", "BENCH_WGPU_VERSION"),
    ] {
        println!("cargo:rustc-env={var}={}", locked_version(&lock, name));
    }
}
