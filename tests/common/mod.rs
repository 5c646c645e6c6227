//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// Where the real MNIST files are: $MNIST_MIRROR (a directory or file:// URL), else
/// ../shared/data/mnist, else data/mnist (where `descent data` puts them). Fails loudly rather
/// than skipping: CI must always have the data.
pub fn mnist_mirror() -> String {
    if let Ok(m) = std::env::var("MNIST_MIRROR")
        && !m.trim().is_empty()
    {
        return m;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [root.join("../shared/data/mnist"), root.join("data/mnist")];
    let found = candidates.iter().find(|d| {
        d.join("t10k-labels-idx1-ubyte.gz").is_file() || d.join("t10k-labels-idx1-ubyte").is_file()
    });
    match found {
        Some(d) => format!("file://{}", d.display()),
        None => panic!(
            "MNIST not found: set MNIST_MIRROR to a directory or file:// URL holding the four \
             *-ubyte.gz files, or run `cargo run --release -- data` first (looked in {})",
            candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The directory behind `mnist_mirror()` (for tests that serve it over HTTP).
pub fn mnist_dir() -> PathBuf {
    let m = mnist_mirror();
    PathBuf::from(m.strip_prefix("file://").unwrap_or(&m))
}

/// Runs the `descent` binary; returns (exit success, stdout, stderr).
pub fn descent(args: &[&str]) -> (bool, String, String) {
    descent_env(args, &[])
}

pub fn descent_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_descent"));
    cmd.args(args).env_remove("MNIST_MIRROR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run descent");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What the test HTTP server answers to one request.
pub enum Reply {
    Ok(Vec<u8>),
    NotFound,
    /// Promises `claimed` bytes, sends `body`, then closes the connection.
    CutShort {
        body: Vec<u8>,
        claimed: usize,
    },
}

/// A one-thread HTTP/1.1 server on 127.0.0.1 that answers each request with
/// `handler(path, request_number)`. Returns the base URL.
pub fn serve<F>(handler: F) -> String
where
    F: Fn(&str, usize) -> Reply + Send + 'static,
{
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => {}
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_owned();
            let (status, body, claimed) = match handler(&path, n) {
                Reply::Ok(b) => ("200 OK", b.clone(), b.len()),
                Reply::NotFound => ("404 Not Found", b"not found".to_vec(), 9),
                Reply::CutShort { body, claimed } => ("200 OK", body, claimed),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {claimed}\r\nConnection: close\r\n\r\n"
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
            let _ = stream.flush();
        }
    });
    format!("http://{addr}/")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}
