//! Optimizers and learning-rate schedules, shared by every training command.

use anyhow::{bail, Result};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdaGradConfig, AdamConfig, ModuleOptimizer, RmsPropConfig, SgdConfig};
use serde::{Deserialize, Serialize};

/// Optimizer family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Stochastic gradient descent (with `--momentum`).
    Sgd,
    /// Adam.
    Adam,
    /// RMSProp.
    Rmsprop,
    /// Adagrad.
    Adagrad,
}

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// The same rate every epoch.
    Constant,
    /// Multiply by `--lr-gamma` every `--lr-step` epochs.
    Step,
    /// Cosine decay from the base rate to zero over the run.
    Cosine,
}

/// Optimizer and learning-rate schedule of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimSettings {
    /// Optimizer family.
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (0 = none) and RMSProp momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Epochs between step decays.
    pub lr_step: usize,
    /// Step-decay factor.
    pub lr_gamma: f64,
}

impl OptimSettings {
    /// Checks the numbers, naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr must be a positive number, got {}", self.lr);
        }
        if !(0.0..1.0).contains(&self.momentum) {
            bail!("--momentum must be in [0, 1), got {}", self.momentum);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay must be >= 0, got {}", self.weight_decay);
        }
        if self.schedule == Schedule::Step && self.lr_step == 0 {
            bail!("--lr-step must be at least 1");
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0) {
            bail!("--lr-gamma must be positive, got {}", self.lr_gamma);
        }
        Ok(())
    }

    /// Learning rate of `epoch` (0-based) in a run of `epochs` epochs.
    pub fn lr_at(&self, epoch: usize, epochs: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Step => self.lr * self.lr_gamma.powi((epoch / self.lr_step.max(1)) as i32),
            Schedule::Cosine => {
                let t = epoch as f64 / epochs.max(1) as f64;
                self.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// The configured optimizer.
    pub fn optimizer(&self) -> ModuleOptimizer {
        let wd =
            (self.weight_decay > 0.0).then(|| WeightDecayConfig::new(self.weight_decay as f32));
        match self.optimizer {
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum((self.momentum > 0.0).then(|| {
                    MomentumConfig::new()
                        .with_momentum(self.momentum)
                        .with_dampening(0.0)
                }))
                .with_weight_decay(wd)
                .init(),
            OptimizerKind::Adam => AdamConfig::new().with_weight_decay(wd).init(),
            OptimizerKind::Rmsprop => RmsPropConfig::new()
                .with_momentum(self.momentum as f32)
                .with_weight_decay(wd)
                .init(),
            OptimizerKind::Adagrad => AdaGradConfig::new().with_weight_decay(wd).init(),
        }
    }
}
