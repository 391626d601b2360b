//! Target assignment and the detection loss: CIoU on the boxes of assigned cells, BCE on
//! objectness (target: the detached IoU of the cell's box, 0 elsewhere) and on the classes of
//! assigned cells.
//!
//! Assignment: a box goes to one level chosen by its longer side `m` in input pixels (stride 8 when
//! `m <= 64`, 16 when `m <= 128`, else 32), and there to the cell holding its centre plus the two
//! neighbouring cells nearest to the centre (left or right, above or below; YOLOv5-style), which
//! the `2 sigmoid - 0.5` offsets can still reach. A cell claimed by two boxes keeps the smaller.

use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::model::{DetNetConfig, STRIDES};
use crate::common::tensor::host;

/// Box weight (YOLOv5 gains at a 320-pixel input: box 0.05, objectness 0.25, classes 0.125).
pub const BOX_GAIN: f32 = 0.05;
/// Objectness weight.
pub const OBJ_GAIN: f32 = 0.25;
/// Class weight.
pub const CLS_GAIN: f32 = 0.125;
/// Objectness weight of each level (stride 8, 16, 32): fine levels have more, harder cells.
pub const OBJ_BALANCE: [f32; 3] = [4.0, 1.0, 0.4];

/// A ground-truth box in input pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TargetBox {
    /// Class index.
    pub class: usize,
    /// Centre x.
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// The level (index into [`STRIDES`]) a box of this size is assigned to.
pub fn level_for(w: f32, h: f32) -> usize {
    let m = w.max(h);
    if m <= 64.0 {
        0
    } else if m <= 128.0 {
        1
    } else {
        2
    }
}

/// Assigned cells of one batch.
#[derive(Debug, Clone, Default)]
pub struct Assignment {
    /// Flat index `b * N + cell` of each positive.
    pub index: Vec<i64>,
    /// Its target box (cx, cy, w, h).
    pub boxes: Vec<[f32; 4]>,
    /// Its class.
    pub classes: Vec<usize>,
}

/// Assigns the boxes of each image of a batch to cells (see the module notes).
pub fn assign(net: &DetNetConfig, targets: &[Vec<TargetBox>]) -> Assignment {
    let n = net.cells();
    let grids = net.grids();
    let offsets = net.level_offsets();
    let mut out = Assignment::default();
    for (b, boxes) in targets.iter().enumerate() {
        // cell -> (area, box)
        let mut claimed: std::collections::BTreeMap<usize, (f32, TargetBox)> = Default::default();
        for t in boxes {
            if !(t.w > 0.0 && t.h > 0.0) {
                continue;
            }
            let l = level_for(t.w, t.h);
            let s = STRIDES[l] as f32;
            let (gw, gh) = grids[l];
            let (fx, fy) = (t.cx / s, t.cy / s);
            let (gx, gy) = (fx.floor() as i64, fy.floor() as i64);
            let nx = if fx - (gx as f32) < 0.5 {
                gx - 1
            } else {
                gx + 1
            };
            let ny = if fy - (gy as f32) < 0.5 {
                gy - 1
            } else {
                gy + 1
            };
            for (x, y) in [(gx, gy), (nx, gy), (gx, ny)] {
                if x < 0 || y < 0 || x >= gw as i64 || y >= gh as i64 {
                    continue;
                }
                let cell = offsets[l] + y as usize * gw + x as usize;
                let area = t.w * t.h;
                match claimed.get(&cell) {
                    Some((a, _)) if *a <= area => {}
                    _ => {
                        claimed.insert(cell, (area, *t));
                    }
                }
            }
        }
        for (cell, (_, t)) in claimed {
            out.index.push((b * n + cell) as i64);
            out.boxes.push([t.cx, t.cy, t.w, t.h]);
            out.classes.push(t.class);
        }
    }
    out
}

/// Complete IoU of box pairs `[P, 4]` (cx, cy, w, h) and their plain IoU, both `[P]`.
/// `CIoU = IoU - d^2 / c^2 - alpha v` (Zheng et al. 2020), alpha treated as a constant.
pub fn ciou(pred: Tensor<2>, target: Tensor<2>) -> (Tensor<1>, Tensor<1>) {
    let eps = 1e-7;
    let [p, _] = pred.dims();
    let col = |t: &Tensor<2>, k: usize| t.clone().slice([0..p, k..k + 1]).reshape([p]);
    let (pcx, pcy, pw, ph) = (col(&pred, 0), col(&pred, 1), col(&pred, 2), col(&pred, 3));
    let (tcx, tcy, tw, th) = (
        col(&target, 0),
        col(&target, 1),
        col(&target, 2),
        col(&target, 3),
    );
    let half =
        |c: &Tensor<1>, s: &Tensor<1>| (c.clone() - s.clone() * 0.5, c.clone() + s.clone() * 0.5);
    let (px1, px2) = half(&pcx, &pw);
    let (py1, py2) = half(&pcy, &ph);
    let (tx1, tx2) = half(&tcx, &tw);
    let (ty1, ty2) = half(&tcy, &th);
    let iw = (px2.clone().min_pair(tx2.clone()) - px1.clone().max_pair(tx1.clone())).clamp_min(0.0);
    let ih = (py2.clone().min_pair(ty2.clone()) - py1.clone().max_pair(ty1.clone())).clamp_min(0.0);
    let inter = iw * ih;
    let union = pw.clone() * ph.clone() + tw.clone() * th.clone() - inter.clone() + eps;
    let iou = inter / union;
    let cw = px2.max_pair(tx2) - px1.min_pair(tx1);
    let ch = py2.max_pair(ty2) - py1.min_pair(ty1);
    let c2 = cw.clone() * cw + ch.clone() * ch + eps;
    let dx = pcx - tcx;
    let dy = pcy - tcy;
    let rho2 = dx.clone() * dx + dy.clone() * dy;
    let k = 4.0 / (std::f32::consts::PI * std::f32::consts::PI);
    let da = (tw / (th + eps)).atan() - (pw / (ph + eps)).atan();
    let v = da.clone() * da * k;
    let alpha = (v.clone() / (v.clone() - iou.clone() + (1.0 + eps))).detach();
    let ciou = iou.clone() - rho2 / c2 - v * alpha;
    (ciou, iou)
}

/// Binary cross-entropy of logits `x` against targets `t` (same shape), element-wise, stable.
pub fn bce_with_logits<const D: usize>(x: Tensor<D>, t: Tensor<D>) -> Tensor<D> {
    let soft = (x.clone().abs().neg().exp() + 1.0).log();
    relu(x.clone()) - x * t + soft
}

/// The parts of one batch's loss.
pub struct LossParts {
    /// Weighted sum, to back-propagate.
    pub total: Tensor<1>,
    /// Mean `1 - CIoU` over assigned cells (0 when none).
    pub box_loss: f32,
    /// Balanced objectness BCE.
    pub obj_loss: f32,
    /// Mean class BCE over assigned cells.
    pub cls_loss: f32,
    /// Assigned cells.
    pub positives: usize,
}

/// The loss of raw predictions `raw` `[B, 5 + C, N]` against `targets` (one list per image).
pub fn detection_loss(raw: Tensor<3>, net: &DetNetConfig, targets: &[Vec<TargetBox>]) -> LossParts {
    let [b, ch, n] = raw.dims();
    let c = net.classes;
    let device: Device = raw.device();
    let a = assign(net, targets);
    let p = a.index.len();

    // Objectness weights: each level's BCE mean times its balance.
    let offsets = net.level_offsets();
    let mut w = vec![0f32; n];
    for (l, &off) in offsets.iter().enumerate() {
        let end = offsets.get(l + 1).copied().unwrap_or(n);
        let per = OBJ_BALANCE[l] / ((end - off) * b) as f32;
        w[off..end].iter_mut().for_each(|v| *v = per);
    }
    let w = Tensor::<3>::from_data(TensorData::new(w, [1, 1, n]), &device).expand([b, 1, n]);
    let obj_logit = raw.clone().slice([0..b, 4..5, 0..n]);

    let mut obj_target = vec![0f32; b * n];
    let (box_term, cls_term, box_loss, cls_loss) = if p > 0 {
        let decoded = super::model::decode(raw.clone(), net); // [B, 4 + C, N]
        let rows = |t: Tensor<3>, k: usize| t.swap_dims(1, 2).reshape([b * n, k]);
        let idx = Tensor::<1, Int>::from_data(TensorData::new(a.index.clone(), [p]), &device);
        let pred_boxes = rows(decoded.slice([0..b, 0..4, 0..n]), 4).select(0, idx.clone());
        let tbox: Vec<f32> = a.boxes.iter().flatten().copied().collect();
        let tbox = Tensor::<2>::from_data(TensorData::new(tbox, [p, 4]), &device);
        let (ci, iou) = ciou(pred_boxes, tbox);
        let box_mean = (ci.neg() + 1.0).mean();
        let iou_host = host(iou.detach());
        for (k, &i) in a.index.iter().enumerate() {
            obj_target[i as usize] = iou_host.get(k).copied().unwrap_or(0.0).max(0.0);
        }
        let cls_logits = rows(raw.clone().slice([0..b, 5..ch, 0..n]), c).select(0, idx);
        let mut onehot = vec![0f32; p * c];
        for (k, &cl) in a.classes.iter().enumerate() {
            onehot[k * c + cl.min(c - 1)] = 1.0;
        }
        let onehot = Tensor::<2>::from_data(TensorData::new(onehot, [p, c]), &device);
        let cls_mean = bce_with_logits(cls_logits, onehot).mean();
        let bl = scalar(&box_mean);
        let cl = scalar(&cls_mean);
        (Some(box_mean * BOX_GAIN), Some(cls_mean * CLS_GAIN), bl, cl)
    } else {
        (None, None, 0.0, 0.0)
    };
    let obj_t = Tensor::<3>::from_data(TensorData::new(obj_target, [b, 1, n]), &device);
    let obj = (bce_with_logits(obj_logit, obj_t) * w).sum();
    let obj_loss = scalar(&obj);
    let mut total = obj * OBJ_GAIN;
    if let Some(t) = box_term {
        total = total + t;
    }
    if let Some(t) = cls_term {
        total = total + t;
    }
    LossParts {
        total,
        box_loss,
        obj_loss,
        cls_loss,
        positives: p,
    }
}

/// Host value of a one-element tensor.
fn scalar(t: &Tensor<1>) -> f32 {
    t.clone().detach().into_scalar::<f32>()
}
