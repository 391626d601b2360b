//! YOLOv8 / YOLO11 / YOLOv5u heads cut before their box decode: raw box distributions
//! `[1, 4*R, N]` (R bins per side, left/top/right/bottom) and class scores `[1, C, N]`.
//!
//! The YOLO head cut ([`crate::engine::passes::yolo_head_cut`]) produces this layout when it recognizes the
//! Ultralytics head; the distribution expectation and distance-to-box step then run here, only for
//! anchors whose best class passes the threshold, on the standard anchor grid (strides 8/16/32,
//! plus 64 for P6 models, cell centres at +0.5).

use tract_core::ndarray::{ArrayView2, ArrayViewD};

use super::{batch1_matrix, best_class, decode_error, DecodeParams};
use crate::anchor_grid::{dfl_expectation, AnchorGrid};
use crate::detection::{BBox, Detection};
use crate::error::Result;
use crate::model::OutputFamily;
use crate::nms::nms;

const FAMILY: OutputFamily = OutputFamily::Yolov8;
/// True when `shapes` is the cut layout: `[1, 4*R, N]` then `[1, C, N]`, with N the anchor count
/// of a `w` x `h` input.
pub fn is_cut_layout(shapes: &[&[usize]], w: usize, h: usize) -> bool {
    match shapes {
        [[1, b, n], [1, c, m]] => {
            n == m && *c >= 1 && *b >= 8 && b % 4 == 0 && AnchorGrid::new(w, h, *n).is_some()
        }
        _ => false,
    }
}

/// Decodes the cut head into `out` (cleared first): best class per anchor, score >= conf, class
/// filter, box from the distributions, NMS, at most max_det. `best` is per-anchor scratch.
pub fn decode(
    outputs: &[ArrayViewD<'_, f32>],
    (input_width, input_height): (u32, u32),
    num_classes: Option<usize>,
    params: &DecodeParams,
    best: &mut Vec<f32>,
    out: &mut Vec<Detection>,
) -> Result<()> {
    out.clear();
    let [boxes, scores] = outputs else {
        return Err(decode_error(
            FAMILY,
            format!(
                "expected box distributions [1,4*R,N] and class scores [1,C,N], got {}",
                super::shapes_of(outputs)
            ),
        ));
    };
    let boxes = batch1_matrix(FAMILY, boxes, "[1,4*R,N]")?;
    let scores = batch1_matrix(FAMILY, scores, "[1,C,N]")?;
    let (rows, n) = boxes.dim();
    let (c, n2) = scores.dim();
    let grid = AnchorGrid::new(input_width as usize, input_height as usize, n);
    let bad_classes = num_classes.is_some_and(|k| k != c);
    let (Some(grid), false, true, true) = (grid, bad_classes, n == n2, rows % 4 == 0 && rows >= 8)
    else {
        return Err(decode_error(
            FAMILY,
            format!(
                "box distributions {} and class scores {} do not fit a {}x{} input{}",
                super::fmt_shape(&[1, rows, n]),
                super::fmt_shape(&[1, c, n2]),
                input_width,
                input_height,
                num_classes
                    .map(|k| format!(" with {k} classes"))
                    .unwrap_or_default()
            ),
        ));
    };
    sweep(&scores, params, best);
    let bins = rows / 4;
    let classes = params.classes.as_deref();
    let mut scratch = Vec::with_capacity(bins);
    for (j, &score) in best.iter().enumerate() {
        if !super::passes(score, params.conf) {
            continue;
        }
        let (score, class_id) = best_class(&scores.column(j), 0, c, classes);
        let column = boxes.column(j);
        let mut ltrb = [0.0f32; 4];
        for (side, d) in ltrb.iter_mut().enumerate() {
            *d = dfl_expectation((0..bins).map(|k| column[side * bins + k]), &mut scratch);
        }
        let [cx, cy, w, h] = grid.cxcywh(j, ltrb);
        let bbox = BBox::from_cxcywh(cx, cy, w, h);
        super::push_finite(out, bbox, score, class_id);
    }
    nms(out, params.iou, params.agnostic, params.max_det);
    Ok(())
}

/// Per-anchor maximum over the allowed class rows (contiguous row sweeps).
fn sweep(scores: &ArrayView2<'_, f32>, params: &DecodeParams, best: &mut Vec<f32>) {
    let (c, n) = scores.dim();
    best.clear();
    best.resize(n, f32::NEG_INFINITY);
    let mut row_max = |k: usize| {
        let row = scores.row(k);
        match row.to_slice() {
            Some(s) => {
                for (b, &v) in best.iter_mut().zip(s) {
                    *b = if v > *b { v } else { *b };
                }
            }
            None => {
                for (b, &v) in best.iter_mut().zip(row.iter()) {
                    *b = if v > *b { v } else { *b };
                }
            }
        }
    };
    match params.classes.as_deref() {
        None => (0..c).for_each(&mut row_max),
        Some(list) => list.iter().filter(|&&k| k < c).for_each(|&k| row_max(k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchor_grid::anchor_count;

    #[test]
    fn dfl_anchor_grid_matches_ultralytics_order() {
        assert_eq!(anchor_count(640, 640, 3), 8400);
        assert_eq!(anchor_count(320, 320, 3), 2100);
        let g = AnchorGrid::new(640, 640, 8400).unwrap();
        assert_eq!(g.anchor(0), (0.5, 0.5, 8.0));
        assert_eq!(g.anchor(81), (1.5, 1.5, 8.0));
        assert_eq!(g.anchor(6400), (0.5, 0.5, 16.0));
        assert_eq!(g.anchor(8399), (19.5, 19.5, 32.0));
        assert!(AnchorGrid::new(640, 640, 8401).is_none());
        let e = dfl_expectation([0.0f32, 0.0, 0.0].into_iter(), &mut vec![]);
        assert!((e - 1.0).abs() < 1e-6);
    }

    #[test]
    fn dfl_decodes_one_confident_anchor() {
        use tract_core::ndarray::Array3;
        let (bins, n, c) = (16, 2100, 3);
        let mut boxes = Array3::<f32>::zeros((1, 4 * bins, n));
        let j = 5 * 40 + 7; // stride 8, cell (7, 5)
        for side in 0..4 {
            boxes[[0, side * bins + 2, j]] = 50.0; // distance 2 cells on every side
        }
        let mut scores = Array3::<f32>::from_elem((1, c, n), 0.01);
        scores[[0, 1, j]] = 0.9;
        let mut out = vec![];
        decode(
            &[boxes.into_dyn().view(), scores.into_dyn().view()],
            (320, 320),
            Some(3),
            &DecodeParams::default(),
            &mut vec![],
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 1);
        let b = out[0].bbox;
        assert_eq!((out[0].class_id, out[0].score), (1, 0.9));
        assert!(
            (b.x1 - 44.0).abs() < 1e-3 && (b.x2 - 76.0).abs() < 1e-3,
            "{b:?}"
        );
        assert!(
            (b.y1 - 28.0).abs() < 1e-3 && (b.y2 - 60.0).abs() < 1e-3,
            "{b:?}"
        );
    }
}
