//! Greedy non-maximum suppression over [`Detection`]s, class-aware or class-agnostic.
//!
//! Behaves like Ultralytics' `non_max_suppression` (torchvision NMS with a per-class box offset):
//! candidates are visited by descending score, a candidate is dropped when its IoU with an already
//! kept box of the same class (any class when agnostic) is strictly greater than the threshold,
//! and at most `max_det` boxes are kept. Boxes of different classes never suppress each other
//! unless `agnostic` is set.

use std::cmp::Ordering;

use crate::detection::{BBox, Detection};

/// Keeps the highest-scoring detections that do not overlap a better one of the same class by more
/// than `iou` (IoU strictly greater suppresses), at most `max_det`, sorted by score descending.
///
/// Works in place: sorts `dets` once and compacts the survivors to its front; it allocates nothing.
/// NaN scores sort last; a NaN `iou` suppresses nothing.
pub fn nms(dets: &mut Vec<Detection>, iou: f32, agnostic: bool, max_det: usize) {
    sort_by_score(dets);
    let mut kept = 0usize;
    for i in 0..dets.len() {
        if kept >= max_det {
            break;
        }
        let cand = dets[i];
        let suppressed = dets[..kept].iter().any(|k| {
            (agnostic || k.class_id == cand.class_id) && iou_xyxy(&k.bbox, &cand.bbox) > iou
        });
        if !suppressed {
            dets[kept] = cand;
            kept += 1;
        }
    }
    dets.truncate(kept);
}

/// Sorts detections by score, highest first (NaN scores last); no allocation.
pub fn sort_by_score(dets: &mut [Detection]) {
    dets.sort_unstable_by(|a, b| score_desc(a.score, b.score));
}

/// Descending order on scores with NaN treated as negative infinity.
fn score_desc(a: f32, b: f32) -> Ordering {
    let key = |s: f32| if s.is_nan() { f32::NEG_INFINITY } else { s };
    key(b).total_cmp(&key(a))
}

/// IoU as torchvision computes it: areas from raw corners, intersection clamped at zero.
#[inline]
fn iou_xyxy(a: &BBox, b: &BBox) -> f32 {
    let iw = (a.x2.min(b.x2) - a.x1.max(b.x1)).max(0.0);
    let ih = (a.y2.min(b.y2) - a.y1.max(b.y1)).max(0.0);
    let inter = iw * ih;
    let union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x1: f32, y1: f32, x2: f32, y2: f32, score: f32, class_id: usize) -> Detection {
        Detection {
            bbox: BBox::new(x1, y1, x2, y2),
            score,
            class_id,
        }
    }

    #[test]
    fn nms_suppresses_overlaps_of_same_class_only() {
        let mut d = vec![
            det(0.0, 0.0, 10.0, 10.0, 0.8, 0),
            det(1.0, 0.0, 11.0, 10.0, 0.9, 0), // IoU with the first: 90/110 = 0.818
            det(1.0, 0.0, 11.0, 10.0, 0.7, 1), // other class: survives
            det(50.0, 50.0, 60.0, 60.0, 0.3, 0),
        ];
        nms(&mut d, 0.5, false, 300);
        let got: Vec<(f32, usize)> = d.iter().map(|d| (d.score, d.class_id)).collect();
        assert_eq!(got, vec![(0.9, 0), (0.7, 1), (0.3, 0)]);
    }

    #[test]
    fn nms_agnostic_suppresses_across_classes() {
        let mut d = vec![
            det(0.0, 0.0, 10.0, 10.0, 0.8, 0),
            det(1.0, 0.0, 11.0, 10.0, 0.9, 1),
        ];
        nms(&mut d, 0.5, true, 300);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].class_id, 1);
    }

    #[test]
    fn nms_threshold_is_strict() {
        // IoU exactly 0.5: 10x10 boxes overlapping by 2/3 of their width -> 66.67/133.33 = 0.5.
        let a = det(0.0, 0.0, 12.0, 10.0, 0.9, 0);
        let b = det(4.0, 0.0, 16.0, 10.0, 0.8, 0);
        let v = iou_xyxy(&a.bbox, &b.bbox);
        assert_eq!(v, 0.5);
        let mut d = vec![a, b];
        nms(&mut d, 0.5, false, 300);
        assert_eq!(d.len(), 2, "IoU equal to the threshold must not suppress");
        let mut d = vec![a, b];
        nms(&mut d, 0.49, false, 300);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn nms_caps_at_max_det_keeping_best_and_sorts() {
        let mut d: Vec<Detection> = (0..10)
            .map(|i| {
                det(
                    i as f32 * 20.0,
                    0.0,
                    i as f32 * 20.0 + 10.0,
                    10.0,
                    i as f32 / 10.0,
                    0,
                )
            })
            .collect();
        nms(&mut d, 0.5, false, 3);
        let s: Vec<f32> = d.iter().map(|d| d.score).collect();
        assert_eq!(s, vec![0.9, 0.8, 0.7]);
        let mut none: Vec<Detection> = Vec::new();
        nms(&mut none, 0.5, false, 3);
        assert!(none.is_empty());
        let mut d = vec![det(0.0, 0.0, 1.0, 1.0, 0.5, 0)];
        nms(&mut d, 0.5, false, 0);
        assert!(d.is_empty());
    }

    #[test]
    fn nms_chain_matches_greedy_semantics() {
        // A suppresses B, B would suppress C, but B is gone so C survives (greedy, not transitive).
        let a = det(0.0, 0.0, 10.0, 10.0, 0.9, 0);
        let b = det(3.0, 0.0, 13.0, 10.0, 0.8, 0); // IoU(a,b) = 70/130 = 0.54
        let c = det(6.0, 0.0, 16.0, 10.0, 0.7, 0); // IoU(b,c) = 0.54, IoU(a,c) = 40/160 = 0.25
        let mut d = vec![c, b, a];
        nms(&mut d, 0.5, false, 300);
        let s: Vec<f32> = d.iter().map(|d| d.score).collect();
        assert_eq!(s, vec![0.9, 0.7]);
    }

    #[test]
    fn nms_handles_nan_and_degenerate_boxes() {
        let mut d = vec![
            det(0.0, 0.0, 0.0, 0.0, 0.9, 0),
            det(0.0, 0.0, 0.0, 0.0, 0.8, 0),
            det(0.0, 0.0, 10.0, 10.0, f32::NAN, 0),
            det(f32::NAN, 0.0, 10.0, 10.0, 0.5, 0),
        ];
        nms(&mut d, 0.5, false, 300);
        assert_eq!(d.len(), 4);
        assert!(d[3].score.is_nan());
        let mut d = vec![
            det(0.0, 0.0, 10.0, 10.0, 0.9, 0),
            det(0.0, 0.0, 10.0, 10.0, 0.8, 0),
        ];
        nms(&mut d, f32::NAN, false, 300);
        assert_eq!(d.len(), 2);
    }
}
