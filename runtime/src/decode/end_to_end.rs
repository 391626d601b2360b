//! End-to-end exports `[1, K, 6]`: rows of x1, y1, x2, y2 (input pixels), score, class, with NMS
//! done in the graph (Ultralytics `nms=True`) or not needed (YOLOv10 / YOLO26 NMS-free heads).

use tract_core::ndarray::{ArrayView2, ArrayViewD};

use super::{batch1_matrix, decode_error, finite_box, passes, single_output, DecodeParams};
use crate::detection::{BBox, Detection};
use crate::error::Result;
use crate::model::OutputFamily;
use crate::nms::sort_by_score;

const FAMILY: OutputFamily = OutputFamily::EndToEnd;

/// Decodes an end-to-end output into `out` (cleared first): rows with score >= conf that pass the
/// class filter, all-zero padding rows ignored, no NMS, sorted by score, at most max_det.
pub fn decode(
    outputs: &[ArrayViewD<'_, f32>],
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) -> Result<()> {
    out.clear();
    let v = single_output(FAMILY, outputs)?;
    let m = batch1_matrix(FAMILY, v, "[1,K,6]")?;
    if m.ncols() != 6 {
        return Err(decode_error(
            FAMILY,
            format!(
                "expected an output of shape [1,K,6], got {}",
                super::shapes_of(outputs)
            ),
        ));
    }
    push_rows(&m, params, out);
    sort_by_score(out);
    out.truncate(params.max_det);
    Ok(())
}

/// Appends the rows of a `[K, 6]` matrix (x1, y1, x2, y2, score, class) that pass the score
/// threshold and class filter; skips all-zero padding rows and rows with an invalid class.
pub(crate) fn push_rows(m: &ArrayView2<'_, f32>, params: &DecodeParams, out: &mut Vec<Detection>) {
    for row in m.rows() {
        let (x1, y1, x2, y2, score, class) = (row[0], row[1], row[2], row[3], row[4], row[5]);
        if !passes(score, params.conf) {
            continue;
        }
        if score == 0.0 && x1 == 0.0 && y1 == 0.0 && x2 == 0.0 && y2 == 0.0 && class == 0.0 {
            continue;
        }
        let valid_class = class >= 0.0 && class.is_finite();
        if !valid_class || !finite_box(x1, y1, x2, y2) {
            continue;
        }
        let class_id = class.round() as usize;
        if params.class_allowed(class_id) {
            out.push(Detection {
                bbox: BBox::new(x1, y1, x2, y2),
                score,
                class_id,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DetectorDecoder;
    use tract_core::ndarray::{Array, Array3, IxDyn};

    fn output(k: usize, rows: &[[f32; 6]]) -> Array3<f32> {
        let mut a = Array3::<f32>::zeros((1, k, 6));
        for (i, r) in rows.iter().enumerate() {
            for (j, &v) in r.iter().enumerate() {
                a[[0, i, j]] = v;
            }
        }
        a
    }

    fn run(a: &ArrayViewD<'_, f32>, p: &DecodeParams) -> Result<Vec<Detection>> {
        let mut d = DetectorDecoder::new(OutputFamily::EndToEnd, 640, 640, None);
        let mut out = vec![];
        d.decode(std::slice::from_ref(a), p, &mut out)?;
        Ok(out)
    }

    #[test]
    fn decode_end_to_end_rows_threshold_padding_and_no_nms() {
        let a = output(
            300,
            &[
                [10.0, 20.0, 110.0, 220.0, 0.9, 0.0],
                [12.0, 20.0, 112.0, 220.0, 0.8, 0.0], // overlaps, but NMS is the graph's job
                [300.0, 300.0, 350.0, 380.0, 0.4, 16.0],
                [1.0, 1.0, 2.0, 2.0, 0.1, 3.0],
                [1.0, 1.0, 2.0, 2.0, 0.6, -1.0], // invalid class: skipped
            ],
        )
        .into_dyn();
        let out = run(&a.view(), &DecodeParams::default()).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].bbox, BBox::new(10.0, 20.0, 110.0, 220.0));
        assert_eq!((out[2].class_id, out[2].score), (16, 0.4));
        // conf 0: the 295 zero padding rows are still ignored.
        let p = DecodeParams {
            conf: 0.0,
            ..Default::default()
        };
        assert_eq!(run(&a.view(), &p).unwrap().len(), 4);
        let p = DecodeParams {
            classes: Some(vec![16]),
            ..Default::default()
        };
        assert_eq!(run(&a.view(), &p).unwrap().len(), 1);
        let p = DecodeParams {
            max_det: 1,
            ..Default::default()
        };
        assert_eq!(run(&a.view(), &p).unwrap()[0].score, 0.9);
    }

    #[test]
    fn decode_end_to_end_sorts_and_accepts_strided_views() {
        let a = output(
            4,
            &[
                [0.0, 0.0, 5.0, 5.0, 0.3, 1.0],
                [0.0, 0.0, 5.0, 5.0, 0.7, 2.0],
            ],
        );
        // [1, K, 6] as a permuted view of a [1, 6, K] buffer: not contiguous.
        let cf = a
            .view()
            .permuted_axes([0, 2, 1])
            .as_standard_layout()
            .into_owned();
        let back = cf.view().permuted_axes([0, 2, 1]).into_dyn();
        assert!(back.as_slice().is_none());
        let out = run(&back, &DecodeParams::default()).unwrap();
        let s: Vec<f32> = out.iter().map(|d| d.score).collect();
        assert_eq!(s, vec![0.7, 0.3]);
    }

    #[test]
    fn decode_end_to_end_malformed_shapes_are_errors() {
        for shape in [
            vec![1usize, 300, 7],
            vec![300, 6],
            vec![1, 1, 300, 6],
            vec![2, 300, 6],
        ] {
            let a = Array::<f32, _>::zeros(IxDyn(&shape));
            let e = run(&a.view(), &DecodeParams::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("end-to-end"), "{e}");
        }
        let e = {
            let mut d = DetectorDecoder::new(OutputFamily::EndToEnd, 640, 640, None);
            d.decode(&[], &DecodeParams::default(), &mut vec![])
                .unwrap_err()
                .to_string()
        };
        assert!(e.contains("no outputs"), "{e}");
    }
}
