//! Validation of the detector: detections per image (best class, score threshold, NMS), the
//! validation loss and mAP@0.5 in input pixels.

use burn::tensor::Device;
use vigia::{BBox, Detection};

use super::data::{batch, DetSet};
use super::loss::detection_loss;
use super::metrics::{mean_average_precision, GroundTruth, MapReport, Prediction};
use super::model::{decode, DetNetConfig, YoloNet};
use crate::common::tensor::host;

/// Score threshold of the detections that enter the mAP (low, as COCO/VOC evaluations use).
pub const EVAL_CONF: f32 = 0.001;
/// NMS IoU threshold of the evaluation.
pub const EVAL_NMS_IOU: f32 = 0.6;
/// Detections kept per image in the evaluation.
pub const EVAL_MAX_DET: usize = 300;

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
        let out = host(decode(raw, net));
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
