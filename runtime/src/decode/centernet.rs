//! MobileNetV3-CenterNet with top-K in the graph: among its outputs, the `[1, K, 6]` one holds rows
//! of x1, y1, x2, y2 (input pixels), score, class (0-based COCO index); the heat map and size maps
//! next to it are ignored. The graph does no NMS, so class-aware NMS is applied here.

use tract_core::ndarray::ArrayViewD;

use super::{batch1_matrix, decode_error, end_to_end::push_rows, DecodeParams};
use crate::detection::Detection;
use crate::error::Result;
use crate::model::OutputFamily;
use crate::nms::nms;

const FAMILY: OutputFamily = OutputFamily::Centernet;

/// Decodes CenterNet outputs into `out` (cleared first): rows with score >= conf that pass the class
/// filter, NMS, at most max_det.
pub fn decode(
    outputs: &[ArrayViewD<'_, f32>],
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) -> Result<()> {
    out.clear();
    let mut found = outputs.iter().filter(|o| matches!(o.shape(), [1, _, 6]));
    let v = match (found.next(), found.next()) {
        (Some(v), None) => v,
        _ => {
            return Err(decode_error(
                FAMILY,
                format!(
                "expected exactly one output of shape [1,K,6] (x1,y1,x2,y2,score,class), got {}",
                super::shapes_of(outputs)
            ),
            ))
        }
    };
    let m = batch1_matrix(FAMILY, v, "[1,K,6]")?;
    push_rows(&m, params, out);
    nms(out, params.iou, params.agnostic, params.max_det);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DetectorDecoder;
    use crate::detection::BBox;
    use tract_core::ndarray::{Array, Array3, Array4};

    fn run(outputs: &[ArrayViewD<'_, f32>], p: &DecodeParams) -> Result<Vec<Detection>> {
        let mut d = DetectorDecoder::new(OutputFamily::Centernet, 512, 512, None);
        let mut out = vec![];
        d.decode(outputs, p, &mut out)?;
        Ok(out)
    }

    #[test]
    fn decode_centernet_picks_detections_output_and_applies_nms() {
        let mut det = Array3::<f32>::zeros((1, 100, 6));
        let rows = [
            [150.0, 134.0, 221.0, 453.0, 0.67, 0.0],
            [152.0, 134.0, 223.0, 453.0, 0.5, 0.0], // duplicate peak: suppressed
            [152.0, 134.0, 223.0, 453.0, 0.45, 17.0],
            [10.0, 10.0, 20.0, 20.0, 0.2, 0.0],
        ];
        for (i, r) in rows.iter().enumerate() {
            for (j, &v) in r.iter().enumerate() {
                det[[0, i, j]] = v;
            }
        }
        let heat = Array4::<f32>::zeros((1, 128, 128, 80));
        let wh = Array4::<f32>::zeros((1, 128, 128, 4));
        let outputs = [
            heat.view().into_dyn(),
            det.view().into_dyn(),
            wh.view().into_dyn(),
        ];
        let out = run(&outputs, &DecodeParams::default()).unwrap();
        let got: Vec<(usize, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.67), (17, 0.45)]);
        assert_eq!(out[0].bbox, BBox::new(150.0, 134.0, 221.0, 453.0));
        let p = DecodeParams {
            classes: Some(vec![0]),
            conf: 0.1,
            ..Default::default()
        };
        let got: Vec<f32> = run(&outputs, &p).unwrap().iter().map(|d| d.score).collect();
        assert_eq!(got, vec![0.67, 0.2]);
    }

    #[test]
    fn decode_centernet_without_detections_output_is_an_error() {
        let heat = Array4::<f32>::zeros((1, 128, 128, 80));
        let e = run(&[heat.view().into_dyn()], &DecodeParams::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("centernet") && e.contains("[1,128,128,80]"),
            "{e}"
        );
        let d = Array::<f32, _>::zeros((1, 100, 6));
        let e = run(
            &[d.view().into_dyn(), d.view().into_dyn()],
            &DecodeParams::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("exactly one"), "{e}");
    }
}
