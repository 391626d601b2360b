//! Legacy YOLOv5 (and YOLOv7-style) heads: `[1, N, 5 + C]` rows of cx, cy, w, h (input pixels),
//! objectness, then C class probabilities; the score is objectness x class probability.

use tract_core::ndarray::ArrayViewD;

use super::{batch1_matrix, best_class, decode_error, single_output, DecodeParams};
use crate::detection::{BBox, Detection};
use crate::error::Result;
use crate::model::OutputFamily;
use crate::nms::nms;

const FAMILY: OutputFamily = OutputFamily::Yolov5;

/// Decodes a YOLOv5 output into `out` (cleared first): best class per row (multi-label off, as
/// Ultralytics detects by default), score = objectness x class >= conf, class filter, NMS, max_det.
/// Rows whose objectness is already below conf are skipped without reading their classes.
pub fn decode(
    outputs: &[ArrayViewD<'_, f32>],
    num_classes: Option<usize>,
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) -> Result<()> {
    out.clear();
    let v = single_output(FAMILY, outputs)?;
    let m = batch1_matrix(FAMILY, v, "[1,N,5+C]")?;
    let width = m.ncols();
    let c = match num_classes {
        Some(c) if c >= 1 && width.checked_sub(5) == Some(c) => c,
        None if width >= 6 => width - 5,
        _ => {
            let want = num_classes.map_or("5+C with C >= 1".to_string(), |c| {
                c.saturating_add(5).to_string()
            });
            return Err(decode_error(
                FAMILY,
                format!(
                    "expected an output of shape [1,N,{want}], got {}",
                    super::shapes_of(outputs)
                ),
            ));
        }
    };
    let classes = params.classes.as_deref();
    for row in m.rows() {
        let obj = row[4];
        // Class probabilities are at most 1, so obj < conf means obj * class < conf.
        if !super::passes(obj, params.conf) {
            continue;
        }
        let (cls, class_id) = best_class(&row, 5, c, classes);
        let score = obj * cls;
        if score >= params.conf {
            let bbox = BBox::from_cxcywh(row[0], row[1], row[2], row[3]);
            super::push_finite(out, bbox, score, class_id);
        }
    }
    nms(out, params.iou, params.agnostic, params.max_det);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DetectorDecoder;
    use tract_core::ndarray::{Array, Array3, IxDyn};

    /// `[1, N, 5 + C]` with rows (cx, cy, w, h, obj, class, class prob); other probs 0.05.
    fn output(c: usize, n: usize, rows: &[(f32, f32, f32, f32, f32, usize, f32)]) -> Array3<f32> {
        let mut a = Array3::<f32>::from_elem((1, n, 5 + c), 0.05);
        for i in 0..n {
            a[[0, i, 4]] = 0.01;
        }
        for (i, &(cx, cy, w, h, obj, k, p)) in rows.iter().enumerate() {
            for (j, v) in [cx, cy, w, h, obj].into_iter().enumerate() {
                a[[0, i, j]] = v;
            }
            a[[0, i, 5 + k]] = p;
        }
        a
    }

    fn run(a: &ArrayViewD<'_, f32>, p: &DecodeParams, nc: Option<usize>) -> Result<Vec<Detection>> {
        let mut d = DetectorDecoder::new(OutputFamily::Yolov5, 640, 640, nc);
        let mut out = vec![];
        d.decode(std::slice::from_ref(a), p, &mut out)?;
        Ok(out)
    }

    fn sample() -> Array3<f32> {
        output(
            4,
            10,
            &[
                (100.0, 100.0, 50.0, 80.0, 0.9, 0, 0.9),  // 0.81
                (102.0, 100.0, 50.0, 80.0, 0.9, 0, 0.8),  // 0.72, suppressed by the first
                (102.0, 100.0, 50.0, 80.0, 0.8, 3, 0.75), // 0.60, other class
                (400.0, 300.0, 20.0, 20.0, 0.5, 2, 0.6),  // 0.30
                (500.0, 300.0, 20.0, 20.0, 0.5, 2, 0.4),  // 0.20 < conf
                (600.0, 300.0, 20.0, 20.0, 0.2, 1, 1.0),  // objectness below conf
            ],
        )
    }

    #[test]
    fn decode_yolov5_score_is_objectness_times_class() {
        let a = sample().into_dyn();
        let out = run(&a.view(), &DecodeParams::default(), None).unwrap();
        let got: Vec<(usize, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9 * 0.9), (3, 0.8 * 0.75), (2, 0.5 * 0.6)]);
        assert_eq!(out[0].bbox, BBox::new(75.0, 60.0, 125.0, 140.0));
        // Same result from a non-contiguous view and with the class count given.
        let t = sample();
        let cf = t
            .view()
            .permuted_axes([0, 2, 1])
            .as_standard_layout()
            .into_owned();
        let back = cf.view().permuted_axes([0, 2, 1]).into_dyn();
        assert!(back.as_slice().is_none());
        assert_eq!(run(&back, &DecodeParams::default(), Some(4)).unwrap(), out);
        let wide = Array::from_shape_fn((1, 10, 18), |(_, i, j)| {
            if j % 2 == 0 {
                t[[0, i, j / 2]]
            } else {
                -1.0
            }
        });
        let strided = wide.slice(tract_core::ndarray::s![.., .., ..;2]).into_dyn();
        assert_eq!(run(&strided, &DecodeParams::default(), None).unwrap(), out);
    }

    #[test]
    fn decode_yolov5_class_filter_and_threshold() {
        let a = sample().into_dyn();
        let p = DecodeParams {
            classes: Some(vec![2, 3]),
            ..Default::default()
        };
        let got: Vec<usize> = run(&a.view(), &p, None)
            .unwrap()
            .iter()
            .map(|d| d.class_id)
            .collect();
        assert_eq!(got, vec![3, 2]);
        let p = DecodeParams {
            conf: 0.7,
            ..Default::default()
        };
        assert_eq!(run(&a.view(), &p, None).unwrap().len(), 1);
    }

    #[test]
    fn decode_yolov5_malformed_shapes_are_errors() {
        for (shape, nc) in [
            (vec![1usize, 100, 5], None),
            (vec![1, 100], None),
            (vec![1, 100, 85], Some(3)),
        ] {
            let a = Array::<f32, _>::zeros(IxDyn(&shape));
            let e = run(&a.view(), &DecodeParams::default(), nc)
                .unwrap_err()
                .to_string();
            assert!(e.contains("yolov5"), "{e}");
        }
    }
}
