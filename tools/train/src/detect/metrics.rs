//! mAP@0.5: per class, detections sorted by score are matched greedily to unmatched ground truth
//! of the same image (the best-overlapping box, VOC rule); AP is the area under the all-point
//! interpolated precision-recall curve (VOC 2010+ / COCO style); mAP averages the classes that
//! have ground truth.

use vigia::BBox;

/// A ground-truth box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroundTruth {
    /// Image index.
    pub image: usize,
    /// Class index.
    pub class: usize,
    /// The box (any pixel units, the same as the predictions').
    pub bbox: BBox,
}

/// A predicted box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Image index.
    pub image: usize,
    /// Class index.
    pub class: usize,
    /// Score.
    pub score: f32,
    /// The box.
    pub bbox: BBox,
}

/// mAP and its per-class parts.
#[derive(Debug, Clone, PartialEq)]
pub struct MapReport {
    /// Mean of the per-class APs over classes with ground truth (0 when none has any).
    pub map: f64,
    /// AP per class; `None` where the class has no ground truth.
    pub per_class: Vec<Option<f64>>,
    /// Ground-truth boxes per class.
    pub gt_per_class: Vec<usize>,
}

/// Average precision from matched detections `(score, true_positive)` of one class and its number
/// of ground-truth boxes: all-point interpolation.
pub fn average_precision(matched: &[(f32, bool)], n_gt: usize) -> f64 {
    if n_gt == 0 {
        return 0.0;
    }
    let mut order: Vec<usize> = (0..matched.len()).collect();
    order.sort_by(|&a, &b| matched[b].0.total_cmp(&matched[a].0));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut recall = vec![0.0f64];
    let mut precision = vec![1.0f64];
    for &i in &order {
        if matched[i].1 {
            tp += 1;
        } else {
            fp += 1;
        }
        recall.push(tp as f64 / n_gt as f64);
        precision.push(tp as f64 / (tp + fp) as f64);
    }
    // Precision envelope, then the area under the step curve.
    for k in (0..precision.len() - 1).rev() {
        precision[k] = precision[k].max(precision[k + 1]);
    }
    (1..recall.len())
        .map(|k| (recall[k] - recall[k - 1]) * precision[k])
        .sum()
}

/// mAP at IoU threshold `iou` over `classes` classes.
pub fn mean_average_precision(
    preds: &[Prediction],
    gts: &[GroundTruth],
    classes: usize,
    iou: f32,
) -> MapReport {
    let mut per_class = Vec::with_capacity(classes);
    let mut gt_per_class = Vec::with_capacity(classes);
    for c in 0..classes {
        let g: Vec<&GroundTruth> = gts.iter().filter(|g| g.class == c).collect();
        gt_per_class.push(g.len());
        if g.is_empty() {
            per_class.push(None);
            continue;
        }
        let mut p: Vec<&Prediction> = preds.iter().filter(|p| p.class == c).collect();
        p.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut used = vec![false; g.len()];
        let matched: Vec<(f32, bool)> = p
            .iter()
            .map(|p| {
                let best = g
                    .iter()
                    .enumerate()
                    .filter(|(_, g)| g.image == p.image)
                    .map(|(k, g)| (k, g.bbox.iou(&p.bbox)))
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                let tp = match best {
                    Some((k, o)) if o >= iou && !used[k] => {
                        used[k] = true;
                        true
                    }
                    _ => false,
                };
                (p.score, tp)
            })
            .collect();
        per_class.push(Some(average_precision(&matched, g.len())));
    }
    let have: Vec<f64> = per_class.iter().flatten().copied().collect();
    MapReport {
        map: if have.is_empty() {
            0.0
        } else {
            have.iter().sum::<f64>() / have.len() as f64
        },
        per_class,
        gt_per_class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ap_of_a_perfect_ranking_is_one() {
        assert_eq!(average_precision(&[(0.9, true), (0.8, true)], 2), 1.0);
    }

    #[test]
    fn ap_counts_a_false_positive_ranked_first() {
        // FP then TP: precision 0.5 at recall 1.
        assert!((average_precision(&[(0.9, false), (0.8, true)], 1) - 0.5).abs() < 1e-12);
        // A false positive below the last true positive costs nothing.
        assert_eq!(average_precision(&[(0.9, true), (0.1, false)], 1), 1.0);
    }
}
