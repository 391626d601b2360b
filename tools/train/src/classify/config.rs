//! The classifier's training recipe, saved with every checkpoint.

use anyhow::{bail, Result};
use burn::optim::ModuleOptimizer;
use serde::{Deserialize, Serialize};

use super::model::{Arch, NetConfig, CNN_LAYERS};
use crate::common::fit::check_batches;
use crate::common::optim::OptimSettings;

/// A full training recipe (saved with every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The network.
    pub net: NetConfig,
    /// Optimizer and learning-rate schedule (stored as top-level keys).
    #[serde(flatten)]
    pub optim: OptimSettings,
    /// Samples per batch.
    pub batch_size: usize,
    /// Epochs to run in total.
    pub epochs: usize,
    /// Seed of initialisation, shuffling, dropout and augmentation.
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many epochs (0 = never).
    pub patience: usize,
    /// Random translation of training images by up to this many pixels (0 = none).
    pub shift: usize,
    /// Layers of the CNN kept fixed, in the order conv1, conv2, fc1 (0 = train all).
    #[serde(default)]
    pub freeze: usize,
}

impl TrainConfig {
    /// Checks the numbers that would otherwise fail deep inside burn.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        self.optim.validate()?;
        check_batches(self.batch_size, self.epochs)?;
        if self.freeze > 0 && self.net.arch != Arch::Cnn {
            bail!("--freeze applies to the CNN only (--arch cnn)");
        }
        if self.freeze > CNN_LAYERS.len() {
            bail!(
                "--freeze must be at most {} (conv1, conv2, fc1), got {}",
                CNN_LAYERS.len(),
                self.freeze
            );
        }
        Ok(())
    }

    /// Learning rate of `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.optim.lr_at(epoch, self.epochs)
    }

    /// The configured optimizer.
    pub fn optimizer(&self) -> ModuleOptimizer {
        self.optim.optimizer()
    }
}
