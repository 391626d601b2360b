//! The library's error type: each variant says what happened and names the file, option, source,
//! output, thread or operator involved.
//!
//! [`Error::Option`] is for values given by the user that cannot work (parsing and checking
//! arguments, before anything runs); failures while running (a stream lost or stalled, a thread
//! that died, an output that cannot be written) have their own variants.

use std::path::PathBuf;

/// Errors callers may want to match on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file (or stdout) could not be written.
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// A model card is malformed.
    #[error("model card {path}: {reason}")]
    Card { path: PathBuf, reason: String },
    /// A model cannot be loaded or run.
    #[error("model {model}: {reason}")]
    Model { model: String, reason: String },
    /// An image cannot be decoded.
    #[error("image {path}: {reason}")]
    Image { path: PathBuf, reason: String },
    /// A model's outputs do not have the layout of their family.
    #[error("decoding outputs of family {family}: {reason}")]
    Decode { family: String, reason: String },
    /// A command-line option (or the equivalent library setting) has a value that cannot work.
    #[error("invalid value for {option}: {reason}")]
    Option { option: String, reason: String },
    /// A source (file, folder, stream, camera) cannot be opened.
    #[error("cannot open source {source_name}: {reason}")]
    SourceOpen { source_name: String, reason: String },
    /// A source failed while running: the stream ended with an error, the camera was unplugged.
    #[error("source {source_name} lost: {reason}")]
    SourceLost { source_name: String, reason: String },
    /// A live source delivered no frame for too long; its capture was stopped.
    #[error("source {source_name} stalled, no frame for {seconds} s ({stopped} stopped)")]
    SourceStalled {
        source_name: String,
        seconds: u64,
        stopped: String,
    },
    /// An external program vigia runs (ffmpeg, rpicam-vid, gst-launch-1.0) cannot be started.
    #[error("{reason}")]
    Program { program: String, reason: String },
    /// An output (file, folder, video encoder, socket) cannot be created or written while running.
    #[error("output {output}: {reason}")]
    Output { output: String, reason: String },
    /// A thread of the pipeline (capture, inference worker, output) failed or could not start.
    #[error("{thread} thread failed: {reason}")]
    Thread { thread: String, reason: String },
    /// An engine that cannot run on this machine: no GPU, no driver, a library missing.
    #[error("engine {engine} cannot run here: {reason}")]
    EngineUnavailable {
        engine: &'static str,
        reason: String,
    },
    /// Something this build of vigia leaves out; rebuilding with `feature` adds it.
    #[error("{what} needs the `{feature}` feature, which this vigia was built without; rebuild with `cargo build --release -p vigia-cli --features {feature}`")]
    FeatureMissing { feature: &'static str, what: String },
}

impl Error {
    /// An [`Error::Option`] for `option`.
    pub fn option(option: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Option {
            option: option.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Thread`] for a thread that could not be started.
    pub fn thread_spawn(thread: &str, error: std::io::Error) -> Self {
        Error::Thread {
            thread: thread.to_string(),
            reason: format!("cannot start it: {error}"),
        }
    }

    /// An [`Error::Thread`] for a thread that panicked.
    pub fn thread_panicked(thread: &str) -> Self {
        Error::Thread {
            thread: thread.to_string(),
            reason: "it panicked".to_string(),
        }
    }

    /// An [`Error::Output`] for `output` (an option and its path, or a device).
    pub fn output(output: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Output {
            output: output.into(),
            reason: reason.into(),
        }
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
