//! Errors of the ring crate. Each says which file, and for a header mismatch which field with
//! both values, so a reader started against the wrong ingest fails with an actionable message.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ring name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("ring {path}: no such ring (is the ingest running with this --ring name?)")]
    NotFound { path: PathBuf },

    #[error("ring {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("ring {path}: header field {field} mismatch: expected {expected}, found {found}")]
    Mismatch {
        path: PathBuf,
        field: &'static str,
        expected: String,
        found: String,
    },

    #[error("ring {path}: {message}")]
    Invalid { path: PathBuf, message: String },

    #[error(
        "ring {path}: the ring file shrank while mapped (mapped {mapped} bytes, the file is now \
         {now}): something truncated it; no more records can be read from it (reopen the ring)"
    )]
    Shrunk {
        path: PathBuf,
        mapped: usize,
        now: String,
    },

    #[error("ring {path}: in use by a running writer (pid {pid})")]
    InUse { path: PathBuf, pid: u32 },
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether trying again later can succeed (the writer may not have created the ring yet,
    /// or may be replacing it); a mismatch or an invalid name never heals by itself.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::InUse { .. })
    }
}

pub type Result<T> = std::result::Result<T, Error>;
