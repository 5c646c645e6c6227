//! One typed error for the whole crate: every bad input ends here, with a message a user can act on.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "{path}: not an IDX {what} file (magic number {found:#010x}, expected {expected:#010x})"
    )]
    BadMagic {
        path: PathBuf,
        what: &'static str,
        found: u32,
        expected: u32,
    },

    #[error("{path}: truncated: the header promises {expected} bytes, the file holds {found}")]
    Truncated {
        path: PathBuf,
        expected: usize,
        found: usize,
    },

    #[error("{path}: corrupt: {msg}")]
    Corrupt { path: PathBuf, msg: String },

    /// A user's data file (`--data`, `--test`, `predict --csv`) that cannot be used as it is.
    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },

    #[error("{split} set: {images} images but {labels} labels")]
    CountMismatch {
        split: &'static str,
        images: usize,
        labels: usize,
    },

    #[error("{file}: SHA-256 of the decompressed bytes is {found}, expected {expected}")]
    Checksum {
        file: String,
        expected: String,
        found: String,
    },

    #[error(
        "could not fetch {file}:\n{tried}\nPoint MNIST_MIRROR (or --mirror) at a base URL (http://, https://, file://) or a directory that holds the file"
    )]
    Download { file: String, tried: String },

    #[error("invalid argument: {0}")]
    InvalidArg(String),

    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },

    #[error(
        "training diverged: the loss became {value} at epoch {epoch}, step {step}; try a smaller --lr"
    )]
    Diverged {
        epoch: usize,
        step: usize,
        value: f32,
    },

    #[error(
        "no GPU adapter found{detail}. Install a GPU driver, or Mesa's software Vulkan (`apt-get install mesa-vulkan-drivers`) for lavapipe; `--device cpu` trains without one"
    )]
    NoAdapter { detail: String },

    #[error("GPU adapter {adapter} lacks what descent needs: {msg}")]
    AdapterLimits { adapter: String, msg: String },

    #[error("GPU error: {0}")]
    Gpu(String),

    #[error(
        "interrupted: wrote a resumable checkpoint to {path}; continue with the same flags and --resume {path}"
    )]
    Interrupted { path: PathBuf },

    #[error("{path}: {msg}")]
    Image { path: PathBuf, msg: String },

    #[error("{path}, line {line}: {msg}")]
    Metrics {
        path: PathBuf,
        line: usize,
        msg: String,
    },

    #[error("drawing {path}: {msg}")]
    Plot { path: PathBuf, msg: String },

    #[error("{failed} of {total} images could not be classified (see above)")]
    SomeImagesFailed { failed: usize, total: usize },
}

impl Error {
    /// The process exit status for this error: 130 for an interrupted run, as shells report
    /// SIGINT, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { .. } => 130,
            _ => 1,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
