//! The library's error type: each variant names the file, option or operator involved.

use std::path::PathBuf;

/// Errors callers may want to match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("model card {path}: {reason}")]
    Card { path: PathBuf, reason: String },
    #[error("model {model}: {reason}")]
    Model { model: String, reason: String },
    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    #[error("decoding outputs of family {family}: {reason}")]
    Decode { family: String, reason: String },
    #[error("invalid value for {option}: {reason}")]
    Option { option: String, reason: String },
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
