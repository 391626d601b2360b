//! JSON lines: one object per frame, flushed as written so a crash loses at most the frame in flight.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// A JSON-lines writer to a file or stdout.
pub struct JsonLinesWriter {
    out: Box<dyn Write + Send>,
    name: String,
}

impl JsonLinesWriter {
    /// Writes to `path` (`-` = stdout), creating its folder; errors name `option`.
    pub fn create(path: &Path, option: &str) -> Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self::stdout());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::Option {
                option: option.into(),
                reason: format!("{}: cannot create folder: {e}", dir.display()),
            })?;
        }
        let f = File::create(path).map_err(|e| Error::Option {
            option: option.into(),
            reason: format!("{}: cannot write: {e}", path.display()),
        })?;
        Ok(JsonLinesWriter {
            out: Box::new(BufWriter::new(f)),
            name: path.display().to_string(),
        })
    }

    /// Writes to standard output.
    pub fn stdout() -> Self {
        JsonLinesWriter {
            out: Box::new(std::io::stdout()),
            name: "stdout".into(),
        }
    }

    /// Writes one value as a line and flushes it.
    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        let io = |e: std::io::Error| Error::Io {
            path: self.name.clone().into(),
            source: e,
        };
        serde_json::to_writer(&mut self.out, value).map_err(|e| io(e.into()))?;
        self.out.write_all(b"\n").map_err(io)?;
        self.out.flush().map_err(io)
    }
}
