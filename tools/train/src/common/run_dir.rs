//! The run folder (`--out`): `checkpoint/`, `final.bpk`, `history.csv`, the charts and the
//! default `model.onnx`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;

/// A run folder, created on demand.
pub struct RunDir(PathBuf);

impl RunDir {
    /// Creates folder `out` (and its parents).
    pub fn create(out: &Path) -> Result<RunDir> {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        Ok(RunDir(out.to_path_buf()))
    }

    /// `path` inside the run folder.
    pub fn join(&self, path: &str) -> PathBuf {
        self.0.join(path)
    }

    /// The checkpoint folder, written after every epoch.
    pub fn checkpoint(&self) -> PathBuf {
        self.join("checkpoint")
    }

    /// The ONNX to write: `export` when given, else `model.onnx` in the run folder.
    pub fn onnx(&self, export: Option<&Path>) -> PathBuf {
        export
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.join("model.onnx"))
    }

    /// Saves the weights after the last epoch as `final.bpk` and returns its path.
    pub fn save_final<M: Module>(&self, model: &M) -> Result<PathBuf> {
        let path = self.join("final.bpk");
        model
            .clone()
            .save_file(&path)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Writes `history.csv`: the `header` line, then one line per epoch.
    pub fn write_history(
        &self,
        header: &str,
        rows: impl Iterator<Item = String>,
    ) -> Result<PathBuf> {
        let mut csv = format!("{header}\n");
        for row in rows {
            csv += &row;
            csv.push('\n');
        }
        let path = self.join("history.csv");
        std::fs::write(&path, csv).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(path)
    }

    /// The folder itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
}
