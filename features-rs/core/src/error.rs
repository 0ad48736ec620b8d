//! The one error type of the feature crate.

use std::path::PathBuf;

/// Everything that can go wrong in the feature crate. Market-data problems are never errors of
/// this type: they are counted and skipped by the pipeline (see [`crate::pipeline::Stats`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {origin}: {message}")]
    Config { origin: String, message: String },
    #[error("{path}:{line}: {message}")]
    Capture {
        path: PathBuf,
        line: u64,
        message: String,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn config(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
