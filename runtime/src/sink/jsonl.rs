//! JSON lines: one object per frame, flushed as written so a crash loses at most the frame in flight.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::create_error;
use crate::error::{Error, Result};

/// A file that only ever holds whole records: each record goes out in one write, and a write
/// that fails part-way (disk full, file size limit) is cut back to the last whole record.
pub struct RecordFile {
    file: File,
    len: u64,
    path: PathBuf,
}

impl RecordFile {
    /// Creates (truncates) `path`.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(RecordFile {
            file: File::create(path)?,
            len: 0,
            path: path.to_path_buf(),
        })
    }

    /// Appends one whole record; on failure the file keeps only the records before it.
    pub fn append(&mut self, record: &[u8]) -> Result<()> {
        match self.file.write_all(record) {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(error) => {
                let _ = self.file.set_len(self.len);
                Err(Error::Write {
                    path: self.path.clone(),
                    error,
                })
            }
        }
    }
}

/// Where JSON lines go.
enum Out {
    File(RecordFile),
    Stdout(std::io::Stdout),
}

/// A JSON-lines writer to a file or stdout.
pub struct JsonLinesWriter {
    out: Out,
    name: String,
    line: Vec<u8>,
}

impl JsonLinesWriter {
    /// Writes to `path` (`-` = stdout), creating its folder; errors name `option`.
    pub fn create(path: &Path, option: &str) -> Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Self::stdout());
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| create_error(option, dir, "cannot create folder", e))?;
        }
        let f =
            RecordFile::create(path).map_err(|e| create_error(option, path, "cannot write", e))?;
        Ok(JsonLinesWriter {
            out: Out::File(f),
            name: path.display().to_string(),
            line: Vec::new(),
        })
    }

    /// Writes to standard output.
    pub fn stdout() -> Self {
        JsonLinesWriter {
            out: Out::Stdout(std::io::stdout()),
            name: "stdout".into(),
            line: Vec::new(),
        }
    }

    /// Writes one value as a whole line (one write, so a failure never leaves half a line).
    pub fn write<T: serde::Serialize>(&mut self, value: &T) -> Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).map_err(|e| Error::Write {
            path: self.name.clone().into(),
            error: e.into(),
        })?;
        self.line.push(b'\n');
        match &mut self.out {
            Out::File(f) => f.append(&self.line),
            Out::Stdout(s) => {
                let mut lock = s.lock();
                lock.write_all(&self.line)
                    .and_then(|()| lock.flush())
                    .map_err(|error| Error::Write {
                        path: self.name.clone().into(),
                        error,
                    })
            }
        }
    }
}
