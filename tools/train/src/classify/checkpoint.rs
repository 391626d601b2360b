//! What a classifier checkpoint holds besides the weights: the recipe and the per-epoch history.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::config::TrainConfig;
use super::model::NetConfig;
use crate::common::checkpoint::{read_state, TrainState};

/// Metrics of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (with dropout and augmentation active).
    pub train_acc: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation accuracy.
    pub val_acc: f64,
    /// Seconds spent training this epoch.
    pub seconds: f64,
}

/// What a checkpoint folder holds besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// The recipe.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Per-epoch history.
    pub history: Vec<EpochStats>,
    /// Best validation loss so far and its epoch.
    pub best_val_loss: f64,
    /// Epoch (1-based) of the best validation loss.
    pub best_epoch: usize,
}

impl CheckpointState {
    /// Reads `state.toml` of a checkpoint folder, naming the file when it is missing or foreign.
    pub fn read(path: &Path) -> Result<Self> {
        read_state(path)
    }
}

impl TrainState for CheckpointState {
    type Net = NetConfig;

    fn net(&self) -> &NetConfig {
        &self.config.net
    }

    fn epochs_done(&self) -> usize {
        self.epochs_done
    }
}
