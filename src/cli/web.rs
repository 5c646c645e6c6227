//! `descent web`: serves the browser page (built by `web/build.sh`) on 127.0.0.1, so it opens
//! with nothing else installed. A static file server and no more: GET and HEAD, one thread per
//! connection, nothing outside the folder.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};

use clap::Args;

use descent::error::{Error, Result};

#[derive(Args, Debug)]
pub struct WebArgs {
    /// The folder `web/build.sh` wrote.
    #[arg(long, default_value = "web/dist")]
    pub dir: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
}

pub fn run(args: WebArgs) -> Result<()> {
    if !args.dir.join("index.html").is_file() {
        return Err(Error::InvalidArg(format!(
            "--dir {}: no index.html there; build the page first with web/build.sh",
            args.dir.display()
        )));
    }
    let listener = TcpListener::bind(("127.0.0.1", args.port)).map_err(|e| {
        Error::InvalidArg(format!(
            "--port {}: cannot listen on 127.0.0.1 ({e})",
            args.port
        ))
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::InvalidArg(format!("--port {}: {e}", args.port)))?;
    println!(
        "serving {} at http://{addr}/ (Ctrl-C stops)",
        args.dir.display()
    );
    // Tests read the address from a pipe.
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        let dir = args.dir.clone();
        std::thread::spawn(move || {
            // A client that hangs up mid-answer is no error of ours.
            let _ = answer(stream, &dir);
        });
    }
    Ok(())
}

/// Answers one request: the file under `dir` that the path names, or 404.
fn answer(mut stream: TcpStream, dir: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut parts = request.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    if method != "GET" && method != "HEAD" {
        return reply(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only",
            true,
        );
    }
    let body = resolve(dir, target).and_then(|p| std::fs::read(&p).ok().map(|b| (p, b)));
    match body {
        Some((path, bytes)) => reply(
            &mut stream,
            "200 OK",
            content_type(&path),
            &bytes,
            method == "GET",
        ),
        None => reply(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"not found",
            true,
        ),
    }
}

/// The file a request path names inside `dir`; `None` for anything that would leave it.
fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    let mut out = dir.to_path_buf();
    for part in Path::new(path.trim_start_matches('/')).components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if out.is_dir() {
        out.push("index.html");
    }
    out.is_file().then_some(out)
}

/// The browser compiles a module streamed as application/wasm; the .gz files go as they are
/// (no Content-Encoding, or the browser would gunzip what the page gunzips itself).
fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("wasm") => "application/wasm",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn reply(
    stream: &mut TcpStream,
    status: &str,
    kind: &str,
    body: &[u8],
    with_body: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if with_body {
        stream.write_all(body)?;
    }
    stream.flush()
}
