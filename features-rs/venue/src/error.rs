//! The one error type of the venue crate (the binary wraps it in `anyhow`).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Capture(#[from] twinfeed_features::Error),
    #[error("{path}: {message}")]
    EmptyCapture { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid option {name}: {message}")]
    Option { name: &'static str, message: String },
}

pub type Result<T> = std::result::Result<T, Error>;
