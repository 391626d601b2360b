//! The detector's training loop: seeded augmentation, warm-up then the shared schedule, mAP@0.5
//! on the validation split after every epoch, checkpoints (the classifier's format) and resume.

use std::path::Path;

use anyhow::{bail, Result};
use burn::module::Module;
use burn::optim::GradientsParams;
use serde::{Deserialize, Serialize};

use super::data::{batch, Augment, DetSet};
use super::eval::evaluate;
use super::loss::detection_loss;
use super::model::{DetNetConfig, YoloNet};
use crate::common::checkpoint::{read_state, resume, save_checkpoint, CheckpointPaths, TrainState};
use crate::common::fit::{check_batches, check_loss, Epoch, RunOptions};
use crate::common::optim::OptimSettings;

/// A detector training recipe (saved with every checkpoint).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetTrainConfig {
    /// The network.
    pub net: DetNetConfig,
    /// Optimizer and schedule.
    pub optim: OptimSettings,
    /// Images per batch.
    pub batch_size: usize,
    /// Epochs in total.
    pub epochs: usize,
    /// Seed of initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Augmentation of training images.
    pub augment: Augment,
    /// Optimizer steps with a linearly rising learning rate at the start.
    pub warmup_steps: usize,
}

impl DetTrainConfig {
    /// Checks the recipe, naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        self.net.validate()?;
        self.optim.validate()?;
        check_batches(self.batch_size, self.epochs)?;
        let a = &self.augment;
        if !(0.0..=1.0).contains(&a.flip) {
            bail!("--flip must be a probability in [0, 1], got {}", a.flip);
        }
        if !(0.0..0.9).contains(&a.scale) {
            bail!("--scale-jitter must be in [0, 0.9), got {}", a.scale);
        }
        if !(0.0..1.0).contains(&a.color) {
            bail!("--color-jitter must be in [0, 1), got {}", a.color);
        }
        Ok(())
    }
}

/// Metrics of one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DetEpochStats {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Learning rate after warm-up.
    pub lr: f64,
    /// Mean training loss (weighted sum).
    pub train_loss: f64,
    /// Mean `1 - CIoU` of assigned cells (training).
    pub box_loss: f64,
    /// Mean objectness loss (training).
    pub obj_loss: f64,
    /// Mean class loss (training).
    pub cls_loss: f64,
    /// Validation loss.
    pub val_loss: f64,
    /// Validation mAP@0.5.
    pub val_map50: f64,
    /// Seconds spent training this epoch.
    pub seconds: f64,
}

/// What a detector checkpoint folder holds besides the weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DetCheckpointState {
    /// The recipe.
    pub config: DetTrainConfig,
    /// Class names.
    pub names: Vec<String>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub steps_done: usize,
    /// Per-epoch history.
    pub history: Vec<DetEpochStats>,
    /// Best validation mAP@0.5 so far.
    pub best_map50: f64,
    /// Its epoch (1-based).
    pub best_epoch: usize,
}

impl DetCheckpointState {
    /// Reads `state.toml` of a detector checkpoint folder.
    pub fn read(dir: &Path) -> Result<Self> {
        read_state(&CheckpointPaths::new(dir).state)
    }
}

impl TrainState for DetCheckpointState {
    type Net = DetNetConfig;

    fn net(&self) -> &DetNetConfig {
        &self.config.net
    }

    fn epochs_done(&self) -> usize {
        self.epochs_done
    }
}

/// The result of a training run.
pub struct DetTrained {
    /// The model after the last epoch.
    pub model: YoloNet,
    /// Per-epoch metrics, including resumed epochs.
    pub history: Vec<DetEpochStats>,
}

/// Trains `cfg.net` on `train`, reporting mAP@0.5 on `val` after every epoch.
pub fn train_detector(
    cfg: &DetTrainConfig,
    names: &[String],
    train: &DetSet,
    val: &DetSet,
    opts: RunOptions,
) -> Result<DetTrained> {
    cfg.validate()?;
    if train.is_empty() {
        bail!("the training split has no image");
    }
    let (device, eval_device) = opts.devices(cfg.seed);
    let (mut model, mut optim, mut state) = match opts.resume {
        Some(dir) => resume::<DetCheckpointState, _>(
            dir,
            &cfg.net,
            cfg.net.init(&device),
            cfg.optim.optimizer(),
        )?,
        None => (
            cfg.net.init(&device),
            cfg.optim.optimizer(),
            DetCheckpointState {
                config: cfg.clone(),
                names: names.to_vec(),
                epochs_done: 0,
                steps_done: 0,
                history: vec![],
                best_map50: f64::NEG_INFINITY,
                best_epoch: 0,
            },
        ),
    };
    state.config = cfg.clone();
    for epoch in state.epochs_done..cfg.epochs {
        let mut ep = Epoch::start(
            &device,
            cfg.seed,
            epoch,
            cfg.epochs,
            train.len(),
            cfg.batch_size,
            opts.progress,
        );
        let lr = cfg.optim.lr_at(epoch, cfg.epochs);
        let (mut sum, mut sbox, mut sobj, mut scls, mut seen) = (0f64, 0f64, 0f64, 0f64, 0usize);
        for chunk in ep.order.chunks(cfg.batch_size) {
            let (x, targets) = batch(train, chunk, &device, Some((&cfg.augment, &mut ep.rng)));
            let raw = model.forward_raw(x);
            let parts = detection_loss(raw, &cfg.net, &targets);
            let lv = parts.total.clone().into_scalar::<f32>() as f64;
            check_loss(lv, epoch)?;
            let warm = if cfg.warmup_steps > 0 {
                ((state.steps_done + 1) as f64 / cfg.warmup_steps as f64).min(1.0)
            } else {
                1.0
            };
            let grads = GradientsParams::from_grads(parts.total.backward(), &model);
            model = optim.step(lr * warm, model, grads);
            state.steps_done += 1;
            sum += lv;
            sbox += parts.box_loss as f64;
            sobj += parts.obj_loss as f64;
            scls += parts.cls_loss as f64;
            seen += 1;
            ep.bar.inc(1);
            ep.bar.set_message(format!(
                "loss {:.4} (box {:.3} obj {:.4})",
                sum / seen as f64,
                sbox / seen as f64,
                sobj / seen as f64
            ));
        }
        let seconds = ep.finish();
        let ev = (!val.is_empty()).then(|| {
            evaluate(
                &model.valid().fork(&eval_device),
                &cfg.net,
                val,
                &eval_device,
                cfg.batch_size.max(8),
            )
        });
        let k = seen.max(1) as f64;
        let stats = DetEpochStats {
            epoch: epoch + 1,
            lr,
            train_loss: sum / k,
            box_loss: sbox / k,
            obj_loss: sobj / k,
            cls_loss: scls / k,
            val_loss: ev.as_ref().map(|e| e.loss).unwrap_or(f64::NAN),
            val_map50: ev.as_ref().map(|e| e.map.map).unwrap_or(f64::NAN),
            seconds,
        };
        eprintln!(
            "epoch {:>3}/{}  lr {:.2e}  train loss {:.4} (box {:.3} obj {:.4} cls {:.4})  val loss {:.4} mAP@0.5 {:.4}  {:.1}s",
            stats.epoch,
            cfg.epochs,
            lr,
            stats.train_loss,
            stats.box_loss,
            stats.obj_loss,
            stats.cls_loss,
            stats.val_loss,
            stats.val_map50,
            seconds
        );
        state.history.push(stats);
        state.epochs_done = epoch + 1;
        let improved = stats.val_map50 > state.best_map50;
        if improved {
            state.best_map50 = stats.val_map50;
            state.best_epoch = epoch + 1;
        }
        if let Some(dir) = opts.checkpoint {
            save_checkpoint(dir, &model, &optim, &state, improved)?;
        }
    }
    Ok(DetTrained {
        model,
        history: state.history,
    })
}
