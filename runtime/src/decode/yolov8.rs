//! YOLOv8 / YOLO11 / YOLOv5u heads: `[1, 4 + C, N]` channels-first (the standard export) or the
//! transposed `[1, N, 4 + C]`; cx, cy, w, h in input pixels, then C class scores (no objectness).

use tract_core::ndarray::{ArrayView2, ArrayViewD};

use super::{batch1_matrix, best_class, decode_error, single_output, DecodeParams};
use crate::detection::{BBox, Detection};
use crate::error::Result;
use crate::model::OutputFamily;
use crate::nms::nms;

const FAMILY: OutputFamily = OutputFamily::Yolov8;

/// How the `[A, B]` matrix of a YOLOv8 output is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `[4 + C, N]`: one row per box value / class, one column per anchor.
    ChannelsFirst,
    /// `[N, 4 + C]`: one row per anchor.
    Rows,
}

/// Layout and class count of an `[A, B]` YOLOv8 matrix: `num_classes` decides when given,
/// otherwise the smaller dimension holds the 4 + C values.
pub fn layout(a: usize, b: usize, num_classes: Option<usize>) -> Option<(Layout, usize)> {
    match num_classes {
        Some(0) => None,
        Some(c) if a.checked_sub(4) == Some(c) => Some((Layout::ChannelsFirst, c)),
        Some(c) if b.checked_sub(4) == Some(c) => Some((Layout::Rows, c)),
        Some(_) => None,
        None if a <= b && a >= 5 => Some((Layout::ChannelsFirst, a - 4)),
        None if a > b && b >= 5 => Some((Layout::Rows, b - 4)),
        None => None,
    }
}

/// Decodes a YOLOv8-family output into `out` (cleared first): best class per anchor, score >= conf,
/// class filter, NMS, at most max_det. `best` is scratch (per-anchor best score) reused across calls.
pub fn decode(
    outputs: &[ArrayViewD<'_, f32>],
    num_classes: Option<usize>,
    params: &DecodeParams,
    best: &mut Vec<f32>,
    out: &mut Vec<Detection>,
) -> Result<()> {
    out.clear();
    let v = single_output(FAMILY, outputs)?;
    let m = batch1_matrix(FAMILY, v, "[1,4+C,N] or [1,N,4+C]")?;
    let (a, b) = m.dim();
    let (lay, c) = layout(a, b, num_classes).ok_or_else(|| {
        let want = match num_classes {
            Some(c) => format!(
                "[1,{},N] or [1,N,{}]",
                c.saturating_add(4),
                c.saturating_add(4)
            ),
            None => "[1,4+C,N] or [1,N,4+C] with C >= 1".to_string(),
        };
        decode_error(
            FAMILY,
            format!(
                "expected an output of shape {want}, got {}",
                super::shapes_of(outputs)
            ),
        )
    })?;
    match lay {
        Layout::ChannelsFirst => channels_first(&m, c, params, best, out),
        Layout::Rows => rows(&m, c, params, out),
    }
    nms(out, params.iou, params.agnostic, params.max_det);
    Ok(())
}

/// `[4 + C, N]`: sweeps each class row over all anchors keeping the per-anchor maximum (contiguous,
/// branch-free, vectorizes), then finds the class and reads the box only for anchors that pass.
fn channels_first(
    m: &ArrayView2<'_, f32>,
    num_classes: usize,
    params: &DecodeParams,
    best: &mut Vec<f32>,
    out: &mut Vec<Detection>,
) {
    let n = m.ncols();
    best.clear();
    best.resize(n, f32::NEG_INFINITY);
    let mut sweep = |k: usize| {
        let row = m.row(4 + k);
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
    let classes = params.classes.as_deref();
    match classes {
        None => (0..num_classes).for_each(&mut sweep),
        Some(list) => list
            .iter()
            .filter(|&&k| k < num_classes)
            .for_each(|&k| sweep(k)),
    }
    for (j, &score) in best.iter().enumerate() {
        if !super::passes(score, params.conf) {
            continue;
        }
        let column = m.column(j);
        let (score, class_id) = best_class(&column, 4, num_classes, classes);
        let bbox = BBox::from_cxcywh(column[0], column[1], column[2], column[3]);
        super::push_finite(out, bbox, score, class_id);
    }
}

/// `[N, 4 + C]`: one anchor per row.
fn rows(
    m: &ArrayView2<'_, f32>,
    num_classes: usize,
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) {
    let classes = params.classes.as_deref();
    for row in m.rows() {
        let (score, class_id) = best_class(&row, 4, num_classes, classes);
        if score >= params.conf {
            let bbox = BBox::from_cxcywh(row[0], row[1], row[2], row[3]);
            super::push_finite(out, bbox, score, class_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DetectorDecoder;
    use tract_core::ndarray::{Array, Array3, Axis, IxDyn};

    /// `[1, 4 + C, N]` with the given anchors: (cx, cy, w, h, class, score); other scores 0.01.
    fn channels_first_output(
        c: usize,
        n: usize,
        anchors: &[(f32, f32, f32, f32, usize, f32)],
    ) -> Array3<f32> {
        let mut a = Array3::<f32>::from_elem((1, 4 + c, n), 0.01);
        for (j, &(cx, cy, w, h, k, s)) in anchors.iter().enumerate() {
            a[[0, 0, j]] = cx;
            a[[0, 1, j]] = cy;
            a[[0, 2, j]] = w;
            a[[0, 3, j]] = h;
            a[[0, 4 + k, j]] = s;
        }
        a
    }

    fn sample() -> Array3<f32> {
        channels_first_output(
            3,
            8,
            &[
                (50.0, 50.0, 20.0, 40.0, 0, 0.9),
                (51.0, 50.0, 20.0, 40.0, 0, 0.8), // overlaps the first: suppressed
                (51.0, 50.0, 20.0, 40.0, 2, 0.7), // same place, other class: kept
                (200.0, 100.0, 10.0, 10.0, 1, 0.3),
                (300.0, 100.0, 10.0, 10.0, 1, 0.2), // below conf
            ],
        )
    }

    fn run(
        a: &tract_core::ndarray::ArrayViewD<'_, f32>,
        p: &DecodeParams,
        nc: Option<usize>,
    ) -> Result<Vec<Detection>> {
        let mut d = DetectorDecoder::new(OutputFamily::Yolov8, 640, 640, nc);
        let mut out = vec![Detection {
            bbox: BBox::default(),
            score: 1.0,
            class_id: 99,
        }];
        d.decode(std::slice::from_ref(a), p, &mut out)?;
        Ok(out)
    }

    #[test]
    fn decode_yolov8_channels_first_boxes_threshold_nms() {
        let a = sample().into_dyn();
        let out = run(&a.view(), &DecodeParams::default(), None).unwrap();
        let got: Vec<(usize, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (2, 0.7), (1, 0.3)]);
        assert_eq!(out[0].bbox, BBox::new(40.0, 30.0, 60.0, 70.0));
        assert_eq!(out[2].bbox, BBox::new(195.0, 95.0, 205.0, 105.0));
    }

    #[test]
    fn decode_yolov8_transposed_and_strided_views_agree() {
        let a = sample();
        let p = DecodeParams::default();
        let reference = run(&a.view().into_dyn(), &p, None).unwrap();
        // [1, N, 4 + C] owned in standard layout.
        let t = a
            .view()
            .permuted_axes([0, 2, 1])
            .as_standard_layout()
            .into_owned()
            .into_dyn();
        assert_eq!(run(&t.view(), &p, None).unwrap(), reference);
        // The same data as a non-contiguous transposed view.
        let tv = a.view().permuted_axes([0, 2, 1]).into_dyn();
        assert_eq!(run(&tv.view(), &p, Some(3)).unwrap(), reference);
        // A channels-first view with a column stride of 2 (every other anchor of a wider tensor).
        let wide = Array::from_shape_fn((1, 7, 16), |(_, r, j)| {
            if j % 2 == 0 {
                a[[0, r, j / 2]]
            } else {
                f32::NAN
            }
        });
        let strided = wide
            .slice_axis(Axis(2), tract_core::ndarray::Slice::new(0, None, 2))
            .into_dyn();
        assert_eq!(run(&strided, &p, None).unwrap(), reference);
    }

    #[test]
    fn decode_yolov8_class_filter_uses_best_allowed_class() {
        let mut a = sample();
        a[[0, 4 + 1, 0]] = 0.5; // anchor 0: class 0 at 0.9, class 1 at 0.5
        let p = DecodeParams {
            classes: Some(vec![1, 7]),
            ..Default::default()
        };
        let out = run(&a.view().into_dyn(), &p, None).unwrap();
        let got: Vec<(usize, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(1, 0.5), (1, 0.3)]);
        let t = a.view().permuted_axes([0, 2, 1]).into_dyn();
        assert_eq!(run(&t, &p, None).unwrap(), out);
        let none = DecodeParams {
            classes: Some(vec![]),
            ..Default::default()
        };
        assert!(run(&a.view().into_dyn(), &none, None).unwrap().is_empty());
    }

    #[test]
    fn decode_yolov8_threshold_agnostic_and_max_det() {
        let a = sample().into_dyn();
        let p = DecodeParams {
            conf: 0.75,
            ..Default::default()
        };
        assert_eq!(run(&a.view(), &p, None).unwrap().len(), 1);
        let p = DecodeParams {
            agnostic: true,
            ..Default::default()
        };
        assert_eq!(run(&a.view(), &p, None).unwrap().len(), 2);
        let p = DecodeParams {
            max_det: 2,
            ..Default::default()
        };
        assert_eq!(run(&a.view(), &p, None).unwrap().len(), 2);
    }

    #[test]
    fn decode_yolov8_malformed_shapes_are_errors() {
        let p = DecodeParams::default();
        let cases: Vec<(Vec<usize>, Option<usize>)> = vec![
            (vec![1, 84], None),
            (vec![2, 84, 100], None),
            (vec![1, 4, 100], None),
            (vec![1, 84, 8400, 1], None),
            (vec![1, 84, 8400], Some(3)),
        ];
        for (shape, nc) in cases {
            let a = Array::<f32, _>::zeros(IxDyn(&shape));
            let e = run(&a.view(), &p, nc).unwrap_err().to_string();
            assert!(e.contains("yolov8"), "{e}");
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            assert!(e.contains(&dims.join(",")), "{e}");
        }
        let e = run_many(&[]).unwrap_err().to_string();
        assert!(e.contains("no outputs"), "{e}");
        let x = Array::<f32, _>::zeros(IxDyn(&[1, 84, 10]));
        let e = run_many(&[x.view(), x.view()]).unwrap_err().to_string();
        assert!(e.contains("[1,84,10], [1,84,10]"), "{e}");
    }

    fn run_many(outputs: &[tract_core::ndarray::ArrayViewD<'_, f32>]) -> Result<Vec<Detection>> {
        let mut d = DetectorDecoder::new(OutputFamily::Yolov8, 640, 640, None);
        let mut out = vec![];
        d.decode(outputs, &DecodeParams::default(), &mut out)?;
        Ok(out)
    }

    /// Reads a little-endian f32 C-order `.npy` file: (shape, data).
    fn read_npy(path: &std::path::Path) -> (Vec<usize>, Vec<f32>) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        let (header_len, start) = if bytes[6] == 1 {
            (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10)
        } else {
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        };
        let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
        assert!(
            header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"),
            "{header}"
        );
        let dims = header
            .split("'shape': (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap();
        let shape: Vec<usize> = dims
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse().unwrap())
            .collect();
        let data: Vec<f32> = bytes[start + header_len..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(data.len(), shape.iter().product::<usize>());
        (shape, data)
    }

    #[test]
    fn decode_yolov8_reproduces_ultralytics_fixture() {
        let dir = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/models/yolo/fixtures"
        ));
        if !dir.is_dir() {
            println!("skipping: ../shared not found");
            return;
        }
        let (shape, data) = read_npy(&dir.join("yolov8n-640-hot.bus.output0.npy"));
        assert_eq!(shape, vec![1, 84, 8400]);
        let a = Array::from_shape_vec(IxDyn(&shape), data).unwrap();
        let json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("yolov8n-640-hot.bus.detections.json")).unwrap(),
        )
        .unwrap();
        let expected: Vec<Vec<f64>> = json["detections_xyxy_score_class"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(expected.len(), 137);
        let p = DecodeParams {
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            ..Default::default()
        };
        let mut dec = DetectorDecoder::new(OutputFamily::Yolov8, 640, 640, None);
        let mut out = Vec::new();
        dec.decode(&[a.view()], &p, &mut out).unwrap();
        let t0 = std::time::Instant::now();
        let reps = 20;
        for _ in 0..reps {
            dec.decode(&[a.view()], &p, &mut out).unwrap();
        }
        println!(
            "yolov8 decode+nms of [1,84,8400]: {:?} per call",
            t0.elapsed() / reps
        );
        assert!(out.windows(2).all(|w| w[0].score >= w[1].score));
        let mut unmatched: Vec<&Vec<f64>> = Vec::new();
        let mut used = vec![false; out.len()];
        for e in &expected {
            let hit = out.iter().enumerate().position(|(i, d)| {
                !used[i]
                    && d.class_id == e[5] as usize
                    && (d.bbox.x1 as f64 - e[0]).abs() < 1e-3
                    && (d.bbox.y1 as f64 - e[1]).abs() < 1e-3
                    && (d.bbox.x2 as f64 - e[2]).abs() < 1e-3
                    && (d.bbox.y2 as f64 - e[3]).abs() < 1e-3
                    // The fixture rounds to 3 decimals: scores agree to the rounding (5e-4) + 1e-5.
                    && (d.score as f64 - e[4]).abs() <= 5e-4 + 1e-5
            });
            match hit {
                Some(i) => used[i] = true,
                None => unmatched.push(e),
            }
        }
        assert!(
            unmatched.is_empty(),
            "{} expected detections not reproduced: {unmatched:?}",
            unmatched.len()
        );
        assert_eq!(out.len(), expected.len());
    }
}
