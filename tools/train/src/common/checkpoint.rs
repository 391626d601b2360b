//! Checkpoint folders: latest and best weights, optimizer state and `state.toml` (recipe and
//! history), written after every epoch and read back to resume or export.

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::optim::ModuleOptimizer;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Paths inside a checkpoint folder.
pub struct CheckpointPaths {
    /// Latest weights.
    pub model: PathBuf,
    /// Latest optimizer state.
    pub optim: PathBuf,
    /// Recipe and history.
    pub state: PathBuf,
    /// Weights of the best epoch.
    pub best: PathBuf,
}

impl CheckpointPaths {
    /// The files of checkpoint folder `dir`.
    pub fn new(dir: &Path) -> Self {
        CheckpointPaths {
            model: dir.join("model.bpk"),
            optim: dir.join("optim.bpk"),
            state: dir.join("state.toml"),
            best: dir.join("best.bpk"),
        }
    }

    /// The weights to export: the best epoch's or the latest.
    pub fn weights(&self, best: bool) -> &Path {
        if best {
            &self.best
        } else {
            &self.model
        }
    }
}

/// A checkpoint's `state.toml`: the recipe's network and the epochs completed.
pub trait TrainState: Serialize + DeserializeOwned {
    /// The network description a checkpoint must match to be resumed.
    type Net: PartialEq + Debug;
    /// The network of the recipe.
    fn net(&self) -> &Self::Net;
    /// Epochs completed.
    fn epochs_done(&self) -> usize;
}

fn record_err(what: &str, path: &Path, e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{what} {}: {e}", path.display())
}

/// Loads module weights (`.bpk`) into `fresh`, naming the file on failure.
pub fn load_module<M: Module>(fresh: M, path: &Path) -> Result<M> {
    fresh
        .try_load_file(path)
        .map_err(|e| record_err("cannot load weights", path, e))
}

/// Reads a checkpoint's `state.toml` as `S`, naming the file when it is missing or foreign.
pub fn read_state<S: DeserializeOwned>(path: &Path) -> Result<S> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read checkpoint state {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("{} is not a vigia-train checkpoint state", path.display()))
}

/// Loads the optimizer state of checkpoint folder `dir` into `fresh`.
pub fn load_optimizer(fresh: ModuleOptimizer, dir: &Path) -> Result<ModuleOptimizer> {
    let p = CheckpointPaths::new(dir);
    fresh
        .load(&p.optim)
        .map_err(|e| record_err("cannot load optimizer state", &p.optim, e))
}

/// Resumes checkpoint `dir` into `fresh` and `optim`; a checkpoint of another network is refused.
pub fn resume<S: TrainState, M: Module>(
    dir: &Path,
    net: &S::Net,
    fresh: M,
    optim: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, S)> {
    let p = CheckpointPaths::new(dir);
    let state: S = read_state(&p.state)?;
    if state.net() != net {
        bail!(
            "checkpoint {} was made for another network: it holds {:?}, this run builds {:?}",
            dir.display(),
            state.net(),
            net
        );
    }
    let model = fresh
        .try_load_file(&p.model)
        .map_err(|e| record_err("cannot load checkpoint weights", &p.model, e))?;
    let optim = load_optimizer(optim, dir)?;
    eprintln!(
        "vigia-train: resumed {} after epoch {}",
        dir.display(),
        state.epochs_done()
    );
    Ok((model, optim, state))
}

/// Writes checkpoint `dir`: weights (also as `best.bpk` when `best`), optimizer and `state.toml`.
pub fn save_checkpoint<M: Module, S: Serialize>(
    dir: &Path,
    model: &M,
    optim: &ModuleOptimizer,
    state: &S,
    best: bool,
) -> Result<()> {
    let p = CheckpointPaths::new(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    model
        .clone()
        .save_file(&p.model)
        .map_err(|e| record_err("cannot write", &p.model, e))?;
    if best {
        model
            .clone()
            .save_file(&p.best)
            .map_err(|e| record_err("cannot write", &p.best, e))?;
    }
    optim
        .save(&p.optim)
        .map_err(|e| record_err("cannot write", &p.optim, e))?;
    let text = toml::to_string_pretty(state).context("cannot serialise checkpoint state")?;
    std::fs::write(&p.state, text).with_context(|| format!("cannot write {}", p.state.display()))
}

/// The model card's notes for weights exported from a checkpoint.
pub fn export_notes(weights: &Path, epochs_done: usize) -> String {
    format!(
        "exported from {} after {epochs_done} epochs",
        weights.display()
    )
}
