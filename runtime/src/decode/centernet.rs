//! MobileNetV3-CenterNet. Two output layouts:
//! - as exported, with top-K in the graph: among the outputs, the `[1, K, 6]` one holds rows of
//!   x1, y1, x2, y2 (input pixels), score, class (0-based COCO index); the heat map and size maps
//!   next to it are ignored;
//! - with that tail removed by the graph pass
//!   ([`crate::engine::passes::centernet_topk_cut`]): the heat map `[1, H, W, C]` and the size map
//!   `[1, H, W, 4]`, whose peaks and boxes are found here ([`crate::heatmap_peaks`]).
//!
//! The graph does no NMS, so class-aware NMS is applied here.

use std::borrow::Cow;

use tract_core::ndarray::{ArrayView2, ArrayViewD};

use super::{batch1_matrix, decode_error, end_to_end::push_rows, DecodeParams};
use crate::detection::Detection;
use crate::error::Result;
use crate::heatmap_peaks::{CenterMaps, TOP_K};
use crate::model::OutputFamily;
use crate::nms::nms;

const FAMILY: OutputFamily = OutputFamily::Centernet;

/// Decodes CenterNet outputs into `out` (cleared first): rows with score >= conf that pass the class
/// filter, NMS, at most max_det. `input_width` gives the map's stride for the heat-map layout.
pub fn decode(
    outputs: &[ArrayViewD<'_, f32>],
    input_width: u32,
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) -> Result<()> {
    out.clear();
    let mut found = outputs.iter().filter(|o| matches!(o.shape(), [1, _, 6]));
    match (found.next(), found.next()) {
        (Some(v), None) => {
            let m = batch1_matrix(FAMILY, v, "[1,K,6]")?;
            push_rows(&m, params, out);
        }
        (None, _) if maps_layout(outputs).is_some() => {
            let (heat, sizes) = maps_layout(outputs).expect("checked");
            decode_maps(&outputs[heat], &outputs[sizes], input_width, params, out)?;
        }
        _ => {
            return Err(decode_error(
                FAMILY,
                format!(
                    "expected exactly one output of shape [1,K,6] (x1,y1,x2,y2,score,class), or a heat map [1,H,W,C] with a size map [1,H,W,4], got {}",
                    super::shapes_of(outputs)
                ),
            ))
        }
    }
    nms(out, params.iou, params.agnostic, params.max_det);
    Ok(())
}

/// Indices of the heat map `[1,H,W,C]` (C != 4) and size map `[1,H,W,4]` when the outputs are
/// exactly those two.
pub(crate) fn maps_layout(outputs: &[ArrayViewD<'_, f32>]) -> Option<(usize, usize)> {
    let shapes: Vec<&[usize]> = outputs.iter().map(|o| o.shape()).collect();
    maps_layout_of(&shapes)
}

/// [`maps_layout`] on shapes alone.
pub(crate) fn maps_layout_of(shapes: &[&[usize]]) -> Option<(usize, usize)> {
    let [a, b] = shapes else {
        return None;
    };
    let (heat, sizes) = match (a, b) {
        ([1, _, _, c], [1, _, _, 4]) if *c != 4 => (0, 1),
        ([1, _, _, 4], [1, _, _, c]) if *c != 4 => (1, 0),
        _ => return None,
    };
    (shapes[heat][1..3] == shapes[sizes][1..3] && shapes[heat][1] > 0 && shapes[heat][2] > 0)
        .then_some((heat, sizes))
}

fn decode_maps(
    heat: &ArrayViewD<'_, f32>,
    sizes: &ArrayViewD<'_, f32>,
    input_width: u32,
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) -> Result<()> {
    let (h, w, c) = (heat.shape()[1], heat.shape()[2], heat.shape()[3]);
    let contiguous = |a: &ArrayViewD<'_, f32>| -> Vec<f32> { a.iter().copied().collect() };
    let heat_values = heat
        .as_slice()
        .map_or_else(|| Cow::Owned(contiguous(heat)), Cow::Borrowed);
    let size_values = sizes
        .as_slice()
        .map_or_else(|| Cow::Owned(contiguous(sizes)), Cow::Borrowed);
    if !(input_width as usize).is_multiple_of(w) {
        return Err(decode_error(
            FAMILY,
            format!("heat map width {w} does not divide the input width {input_width}"),
        ));
    }
    let maps = CenterMaps {
        heat: &heat_values,
        sizes: &size_values,
        height: h,
        width: w,
        classes: c,
        stride: (input_width as usize / w) as f32,
    };
    let rows: Vec<f32> = maps
        .peaks(params.conf, TOP_K)
        .iter()
        .flat_map(|p| maps.row(p))
        .collect();
    let m = ArrayView2::from_shape((rows.len() / 6, 6), &rows)
        .map_err(|e| decode_error(FAMILY, e.to_string()))?;
    push_rows(&m, params, out);
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
    fn decode_centernet_heat_and_size_maps_find_peaks_in_rust() {
        let mut heat = Array4::<f32>::zeros((1, 128, 128, 80));
        heat[[0, 30, 50, 0]] = 0.67; // a person at cell (50, 30): centre (200, 120)
        heat[[0, 30, 51, 0]] = 0.5; // its neighbour: not a peak
        heat[[0, 90, 10, 17]] = 0.45;
        heat[[0, 5, 5, 3]] = 0.2; // under the threshold
        let mut wh = Array4::<f32>::zeros((1, 128, 128, 4));
        for (k, v) in [10.0, 20.0, 30.0, 40.0].into_iter().enumerate() {
            wh[[0, 30, 50, k]] = v;
            wh[[0, 90, 10, k]] = 1.0;
        }
        let outputs = [wh.view().into_dyn(), heat.view().into_dyn()];
        let out = run(&outputs, &DecodeParams::default()).unwrap();
        let got: Vec<(usize, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.67), (17, 0.45)]);
        assert_eq!(out[0].bbox, BBox::new(190.0, 100.0, 230.0, 160.0));
        assert_eq!(out[1].bbox, BBox::new(39.0, 359.0, 41.0, 361.0));
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
