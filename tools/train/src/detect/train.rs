//! The detector's training loop: seeded augmentation, warm-up then the shared schedule, mAP@0.5
//! on the validation split after every epoch, checkpoints (the classifier's format) and resume.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Result};
use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use vigia::{BBox, Detection};

use super::data::{batch, Augment, DetSet};
use super::loss::detection_loss;
use super::metrics::{mean_average_precision, GroundTruth, MapReport, Prediction};
use super::model::{DetNetConfig, YoloNet};
use crate::data::Rng;
use crate::train::{
    epoch_bar, load_module, load_optimizer, read_state, save_checkpoint_files, CheckpointPaths,
    OptimSettings, RunOptions,
};

/// Score threshold of the detections that enter the mAP (low, as COCO/VOC evaluations use).
pub const EVAL_CONF: f32 = 0.001;
/// NMS IoU threshold of the evaluation.
pub const EVAL_NMS_IOU: f32 = 0.6;
/// Detections kept per image in the evaluation.
pub const EVAL_MAX_DET: usize = 300;

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
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
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

/// The result of a training run.
pub struct DetTrained {
    /// The model after the last epoch.
    pub model: YoloNet,
    /// Per-epoch metrics, including resumed epochs.
    pub history: Vec<DetEpochStats>,
}

/// Loads trained weights (`.bpk`) into a fresh detector on `device`.
pub fn load_detector(net: &DetNetConfig, path: &Path, device: &Device) -> Result<YoloNet> {
    load_module(net.init(device), path)
}

/// Host copy of a float tensor.
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data_as::<f32>()
        .as_slice::<f32>()
        .map(|s| s.to_vec())
        .unwrap_or_default()
}

/// Detections of one image from its decoded output `[4 + C, N]` (row-major): best class per
/// cell, score >= `conf`, per-class NMS at `iou`, at most `max_det`.
pub fn detections_from(
    out: &[f32],
    classes: usize,
    n: usize,
    conf: f32,
    iou: f32,
    max_det: usize,
) -> Vec<Detection> {
    let mut dets = Vec::new();
    for j in 0..n {
        let (mut best, mut k) = (f32::NEG_INFINITY, 0);
        for c in 0..classes {
            let s = out[(4 + c) * n + j];
            if s > best {
                best = s;
                k = c;
            }
        }
        if best >= conf {
            let b = BBox::from_cxcywh(out[j], out[n + j], out[2 * n + j], out[3 * n + j]);
            dets.push(Detection {
                bbox: b,
                score: best,
                class_id: k,
            });
        }
    }
    vigia::nms::nms(&mut dets, iou, false, max_det);
    dets
}

/// Validation of a model: mean loss and mAP@0.5 (boxes in input pixels).
pub struct DetEvaluation {
    /// Mean loss per batch.
    pub loss: f64,
    /// mAP@0.5 and per-class AP.
    pub map: MapReport,
    /// Detections per image (input pixels), for reports.
    pub detections: Vec<Vec<Detection>>,
}

/// Runs `model` (inference mode) over `set` and scores it.
pub fn evaluate(
    model: &YoloNet,
    net: &DetNetConfig,
    set: &DetSet,
    device: &Device,
    batch_size: usize,
) -> DetEvaluation {
    let n = net.cells();
    let c = net.classes;
    let idx: Vec<usize> = (0..set.len()).collect();
    let (mut preds, mut gts, mut all) = (Vec::new(), Vec::new(), Vec::new());
    let (mut loss, mut batches) = (0.0f64, 0usize);
    for chunk in idx.chunks(batch_size.max(1)) {
        let (x, targets) = batch(set, chunk, device, None);
        let raw = model.forward_raw(x);
        let parts = detection_loss(raw.clone(), net, &targets);
        loss += parts.total.into_scalar::<f32>() as f64;
        batches += 1;
        let out = host(super::model::decode(raw, net));
        let per = (4 + c) * n;
        for (k, &i) in chunk.iter().enumerate() {
            let dets = detections_from(
                &out[k * per..(k + 1) * per],
                c,
                n,
                EVAL_CONF,
                EVAL_NMS_IOU,
                EVAL_MAX_DET,
            );
            preds.extend(dets.iter().map(|d| Prediction {
                image: i,
                class: d.class_id,
                score: d.score,
                bbox: d.bbox,
            }));
            gts.extend(targets[k].iter().map(|t| GroundTruth {
                image: i,
                class: t.class,
                bbox: BBox::from_cxcywh(t.cx, t.cy, t.w, t.h),
            }));
            all.push(dets);
        }
    }
    DetEvaluation {
        loss: loss / batches.max(1) as f64,
        map: mean_average_precision(&preds, &gts, c, 0.5),
        detections: all,
    }
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
    let device = opts.device.clone().autodiff();
    let eval_device = opts.device.clone();
    device.seed(cfg.seed);
    let (mut model, mut optim, mut state) = match opts.resume {
        Some(dir) => {
            let state = DetCheckpointState::read(dir)?;
            if state.config.net != cfg.net {
                bail!(
                    "checkpoint {} was made for another network: it holds {:?}, this run builds {:?}",
                    dir.display(),
                    state.config.net,
                    cfg.net
                );
            }
            let model = load_module(cfg.net.init(&device), &CheckpointPaths::new(dir).model)?;
            let optim = load_optimizer(cfg.optim.optimizer(), dir)?;
            eprintln!(
                "vigia-train: resumed {} after epoch {}",
                dir.display(),
                state.epochs_done
            );
            (model, optim, state)
        }
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
    let steps = train.len().div_ceil(cfg.batch_size);
    for epoch in state.epochs_done..cfg.epochs {
        // Per-epoch seeded streams: a resumed run continues as an uninterrupted one.
        device.seed(cfg.seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
        let mut rng = Rng::new(cfg.seed.wrapping_add(0x9E37 * (epoch as u64 + 1)));
        let mut order: Vec<usize> = (0..train.len()).collect();
        rng.shuffle(&mut order);
        let lr = cfg.optim.lr_at(epoch, cfg.epochs);
        let bar = epoch_bar(steps, epoch, cfg.epochs, opts.progress);
        let t0 = Instant::now();
        let (mut sum, mut sbox, mut sobj, mut scls, mut seen) = (0f64, 0f64, 0f64, 0f64, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let (x, targets) = batch(train, chunk, &device, Some((&cfg.augment, &mut rng)));
            let raw = model.forward_raw(x);
            let parts = detection_loss(raw, &cfg.net, &targets);
            let lv = parts.total.clone().into_scalar::<f32>() as f64;
            if !lv.is_finite() {
                bail!(
                    "training diverged at epoch {} (loss {lv}); lower --lr",
                    epoch + 1
                );
            }
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
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} (box {:.3} obj {:.4})",
                sum / seen as f64,
                sbox / seen as f64,
                sobj / seen as f64
            ));
        }
        let seconds = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
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
            save_checkpoint_files(dir, &model, &optim, &state, improved)?;
        }
    }
    Ok(DetTrained {
        model,
        history: state.history,
    })
}
