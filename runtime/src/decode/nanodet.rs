//! NanoDet (GFL head, the 2020 NanoDet-m): per stride one `[1, N, C]` class-score map (sigmoid
//! already applied) and one `[1, N, 4 * B]` box distribution (left, top, right, bottom, B bins each).
//!
//! Outputs are matched by shape, never by name or order: the two outputs of a level share N, and N
//! gives the stride (`ceil(H / s) * ceil(W / s)`). Cell `i` (row `i / gw`, column `i % gw`) has its
//! point at `((col + 0.5) * s, (row + 0.5) * s)`, the legacy NanoDet convention this model was
//! trained with (NanoDet-Plus later dropped the half-cell offset). Each side's distance is the
//! expected bin index under a softmax over its bins, times the stride.

use tract_core::ndarray::ArrayViewD;

use super::{batch1_matrix, best_class, decode_error, fmt_shape, DecodeParams};
use crate::detection::{BBox, Detection};
use crate::error::Result;
use crate::model::OutputFamily;
use crate::nms::nms;

const FAMILY: OutputFamily = OutputFamily::Nanodet;

/// Offset of a cell's point from its top-left corner, in cells (legacy NanoDet GFL head).
pub const CENTER_OFFSET: f32 = 0.5;

/// Strides a level may have.
const STRIDES: [usize; 5] = [8, 16, 32, 64, 128];

/// One stride level of a NanoDet head, as found in the outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// Down-sampling factor of the level.
    pub stride: usize,
    /// Cells per row (`ceil(input_width / stride)`).
    pub grid_w: usize,
    /// Cells in the level (N).
    pub cells: usize,
    /// Index of the `[1, N, C]` class-score output.
    pub score_output: usize,
    /// Index of the `[1, N, 4 * bins]` distribution output.
    pub reg_output: usize,
    /// Number of classes C.
    pub num_classes: usize,
    /// Bins per box side (reg_max + 1).
    pub bins: usize,
}

/// Matches the outputs of a NanoDet head into levels (sorted by stride), or says why they do not fit.
pub fn plan_levels(
    shapes: &[&[usize]],
    input_width: usize,
    input_height: usize,
    num_classes: Option<usize>,
) -> std::result::Result<Vec<Level>, String> {
    if shapes.len() < 2 || shapes.len().checked_rem(2) != Some(0) {
        return Err("expected pairs of [1,N,C] score and [1,N,4*bins] box outputs".into());
    }
    let dims: Vec<(usize, usize)> = shapes
        .iter()
        .map(|s| match **s {
            [1, n, d] if n > 0 && d > 0 => Ok((n, d)),
            _ => Err(format!("output {} is not [1,N,D]", fmt_shape(s))),
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut levels: Vec<Level> = Vec::new();
    for (i, &(n, di)) in dims.iter().enumerate() {
        let same: Vec<usize> = (0..dims.len()).filter(|&j| dims[j].0 == n).collect();
        if same.len() != 2 {
            return Err(format!(
                "{} outputs have N = {n}; a level needs exactly one score and one box output",
                same.len()
            ));
        }
        let j = if same[0] == i { same[1] } else { same[0] };
        if j < i {
            continue; // pair already planned
        }
        let dj = dims[j].1;
        let is_reg = |d: usize| d >= 8 && d.checked_rem(4) == Some(0);
        let score_first = match num_classes {
            Some(c) if di == c && dj != c && is_reg(dj) => true,
            Some(c) if dj == c && di != c && is_reg(di) => false,
            Some(c) => {
                return Err(format!(
                    "outputs [1,{n},{di}] and [1,{n},{dj}] are not a [1,N,{c}] score map and a [1,N,4*bins] distribution"
                ))
            }
            None if is_reg(dj) && !is_reg(di) => true,
            None if is_reg(di) && !is_reg(dj) => false,
            None if di == 80 && dj != 80 => true,
            None if dj == 80 && di != 80 => false,
            None => {
                return Err(format!(
                    "cannot tell the class scores from the box distribution in [1,{n},{di}] and [1,{n},{dj}]; give num_classes"
                ))
            }
        };
        let (score_output, reg_output, c, reg) = if score_first {
            (i, j, di, dj)
        } else {
            (j, i, dj, di)
        };
        let stride = STRIDES
            .iter()
            .copied()
            .find(|&s| input_width.div_ceil(s) * input_height.div_ceil(s) == n)
            .ok_or_else(|| {
                format!("N = {n} is not the cell count of stride 8/16/32/64/128 at {input_width}x{input_height}")
            })?;
        levels.push(Level {
            stride,
            grid_w: input_width.div_ceil(stride),
            cells: n,
            score_output,
            reg_output,
            num_classes: c,
            bins: reg / 4,
        });
    }
    levels.sort_by_key(|l| l.stride);
    let first = levels[0];
    if levels
        .iter()
        .any(|l| l.num_classes != first.num_classes || l.bins != first.bins)
    {
        return Err("levels disagree on the class count or the number of bins".into());
    }
    if levels.windows(2).any(|w| w[0].stride == w[1].stride) {
        return Err("two levels have the same stride".into());
    }
    Ok(levels)
}

/// True when `levels` still describes `outputs` (so a cached plan can be reused).
fn plan_fits(levels: &[Level], outputs: &[ArrayViewD<'_, f32>]) -> bool {
    !levels.is_empty()
        && outputs.len() == 2 * levels.len()
        && levels.iter().all(|l| {
            outputs.get(l.score_output).map(|o| o.shape()) == Some(&[1, l.cells, l.num_classes][..])
                && outputs.get(l.reg_output).map(|o| o.shape())
                    == Some(&[1, l.cells, 4 * l.bins][..])
        })
}

/// Decodes NanoDet outputs into `out` (cleared first): best class per cell >= conf (class filter
/// applied), its box from the distribution, clipped to the input, then NMS and max_det.
/// `plan` caches the level layout between calls; pass the same (initially empty) Vec each frame.
pub fn decode(
    outputs: &[ArrayViewD<'_, f32>],
    input_width: u32,
    input_height: u32,
    num_classes: Option<usize>,
    params: &DecodeParams,
    plan: &mut Vec<Level>,
    out: &mut Vec<Detection>,
) -> Result<()> {
    out.clear();
    if !plan_fits(plan, outputs) {
        let shapes: Vec<&[usize]> = outputs.iter().map(|o| o.shape()).collect();
        *plan = plan_levels(
            &shapes,
            input_width as usize,
            input_height as usize,
            num_classes,
        )
        .map_err(|why| {
            decode_error(
                FAMILY,
                format!(
                    "{why} (input {input_width}x{input_height}, outputs {})",
                    super::shapes_of(outputs)
                ),
            )
        })?;
    }
    push_levels(
        outputs,
        plan,
        input_width,
        input_height,
        CENTER_OFFSET,
        params,
        out,
    )?;
    nms(out, params.iou, params.agnostic, params.max_det);
    Ok(())
}

/// Appends the candidates of every level (no NMS), with cell points at `(index + offset) * stride`.
fn push_levels(
    outputs: &[ArrayViewD<'_, f32>],
    plan: &[Level],
    input_width: u32,
    input_height: u32,
    offset: f32,
    params: &DecodeParams,
    out: &mut Vec<Detection>,
) -> Result<()> {
    let (w, h) = (input_width as f32, input_height as f32);
    let classes = params.classes.as_deref();
    for l in plan {
        let scores = batch1_matrix(FAMILY, &outputs[l.score_output], "[1,N,C]")?;
        let reg = batch1_matrix(FAMILY, &outputs[l.reg_output], "[1,N,4*bins]")?;
        let stride = l.stride as f32;
        for (i, (srow, rrow)) in scores.rows().into_iter().zip(reg.rows()).enumerate() {
            let (score, class_id) = best_class(&srow, 0, l.num_classes, classes);
            if !super::passes(score, params.conf) {
                continue;
            }
            let cx = ((i % l.grid_w) as f32 + offset) * stride;
            let cy = ((i / l.grid_w) as f32 + offset) * stride;
            let mut d = [0.0f32; 4];
            for (side, dist) in d.iter_mut().enumerate() {
                let start = side * l.bins;
                *dist = match rrow.to_slice() {
                    Some(s) => expected_bin(s[start..start + l.bins].iter().copied()),
                    None => expected_bin(rrow.iter().skip(start).take(l.bins).copied()),
                } * stride;
            }
            let bbox = BBox::new(cx - d[0], cy - d[1], cx + d[2], cy + d[3]).clip(w, h);
            super::push_finite(out, bbox, score, class_id);
        }
    }
    Ok(())
}

/// Expected bin index under a numerically stable softmax of `logits` (NaN when any is NaN).
fn expected_bin<I: Iterator<Item = f32> + Clone>(logits: I) -> f32 {
    let max = logits.clone().fold(f32::NEG_INFINITY, f32::max);
    let (mut sum, mut weighted) = (0.0f32, 0.0f32);
    for (k, v) in logits.enumerate() {
        let e = (v - max).exp();
        sum += e;
        weighted += e * k as f32;
    }
    weighted / sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::DetectorDecoder;
    use tract_core::ndarray::{Array3, IxDyn};

    const BINS: usize = 11;

    /// A 416 NanoDet-m output set (scores first, then distributions, as the converted graph does).
    fn outputs() -> Vec<Array3<f32>> {
        let mut v = Vec::new();
        for n in [2704usize, 676, 169] {
            v.push(Array3::<f32>::from_elem((1, n, 80), 0.01));
        }
        for n in [2704usize, 676, 169] {
            v.push(Array3::<f32>::zeros((1, n, 4 * BINS)));
        }
        v
    }

    /// Puts a one-hot-ish distribution (peak at `bins[side]`) into cell `i` of `reg`.
    fn set_box(reg: &mut Array3<f32>, i: usize, bins: [usize; 4]) {
        for (side, &b) in bins.iter().enumerate() {
            for k in 0..BINS {
                reg[[0, i, side * BINS + k]] = if k == b { 30.0 } else { 0.0 };
            }
        }
    }

    fn run(
        o: &[Array3<f32>],
        p: &DecodeParams,
        dec: &mut DetectorDecoder,
    ) -> Result<Vec<Detection>> {
        let views: Vec<ArrayViewD<'_, f32>> = o.iter().map(|a| a.view().into_dyn()).collect();
        let mut out = vec![];
        dec.decode(&views, p, &mut out)?;
        Ok(out)
    }

    #[test]
    fn decode_nanodet_boxes_from_distributions() {
        let mut o = outputs();
        // Stride 16 (26x26): cell row 5, col 7 -> point (7.5*16, 5.5*16) = (120, 88).
        let i = 5 * 26 + 7;
        o[1][[0, i, 0]] = 0.7;
        set_box(&mut o[4], i, [2, 3, 1, 4]);
        // Stride 8, cell 0 (point (4, 4)): a box clipped at the image border, class 17.
        o[0][[0, 0, 17]] = 0.5;
        set_box(&mut o[3], 0, [1, 1, 2, 2]);
        // Stride 32, below threshold.
        o[2][[0, 3, 2]] = 0.2;
        let mut dec = DetectorDecoder::new(OutputFamily::Nanodet, 416, 416, None);
        let out = run(&o, &DecodeParams::default(), &mut dec).unwrap();
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!((out[0].class_id, out[0].score), (0, 0.7));
        let b = out[0].bbox;
        let want = BBox::new(120.0 - 32.0, 88.0 - 48.0, 120.0 + 16.0, 88.0 + 64.0);
        for (g, w) in [
            (b.x1, want.x1),
            (b.y1, want.y1),
            (b.x2, want.x2),
            (b.y2, want.y2),
        ] {
            assert!((g - w).abs() < 1e-3, "{b:?} vs {want:?}");
        }
        assert_eq!(out[1].class_id, 17);
        assert_eq!((out[1].bbox.x1, out[1].bbox.y1), (0.0, 0.0));
        assert!((out[1].bbox.x2 - 20.0).abs() < 1e-3);
        // Output order does not matter; the cached plan is rebuilt when the order changes.
        let mut shuffled = o.clone();
        shuffled.swap(0, 5);
        shuffled.swap(1, 3);
        assert_eq!(
            run(&shuffled, &DecodeParams::default(), &mut dec).unwrap(),
            out
        );
        // A class filter that excludes class 0 keeps only the class 17 box.
        let p = DecodeParams {
            classes: Some(vec![17]),
            ..Default::default()
        };
        let got = run(&o, &p, &mut dec).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].class_id, 17);
    }

    #[test]
    fn decode_nanodet_expected_bin_is_softmax_mean() {
        let v = [0.0f32, 0.0, 0.0];
        assert!((expected_bin(v.iter().copied()) - 1.0).abs() < 1e-6);
        let v = [0.0f32, (3.0f32).ln()]; // p = [0.25, 0.75]
        assert!((expected_bin(v.iter().copied()) - 0.75).abs() < 1e-6);
        let v = [1000.0f32, 0.0];
        assert_eq!(expected_bin(v.iter().copied()), 0.0);
        assert!(expected_bin([f32::NAN, 0.0].iter().copied()).is_nan());
    }

    #[test]
    fn decode_nanodet_plan_levels_by_shape() {
        let s: Vec<Vec<usize>> = vec![
            vec![1, 169, 44],
            vec![1, 2704, 80],
            vec![1, 676, 44],
            vec![1, 169, 80],
            vec![1, 2704, 44],
            vec![1, 676, 80],
        ];
        let r: Vec<&[usize]> = s.iter().map(|v| v.as_slice()).collect();
        let l = plan_levels(&r, 416, 416, None).unwrap();
        let got: Vec<(usize, usize, usize, usize)> = l
            .iter()
            .map(|l| (l.stride, l.grid_w, l.score_output, l.reg_output))
            .collect();
        assert_eq!(got, vec![(8, 52, 1, 4), (16, 26, 5, 2), (32, 13, 3, 0)]);
        assert_eq!((l[0].num_classes, l[0].bins), (80, 11));
        // An 8-class model with 32-wide distributions needs num_classes.
        let s4: Vec<Vec<usize>> = vec![vec![1, 100, 8], vec![1, 100, 32]];
        let r4: Vec<&[usize]> = s4.iter().map(|v| v.as_slice()).collect();
        assert!(plan_levels(&r4, 80, 80, None).is_err());
        assert_eq!(plan_levels(&r4, 80, 80, Some(8)).unwrap()[0].bins, 8);
        // One-class model: 1 is not a distribution width.
        let s1: Vec<Vec<usize>> = vec![vec![1, 100, 32], vec![1, 100, 1]];
        let r1: Vec<&[usize]> = s1.iter().map(|v| v.as_slice()).collect();
        assert_eq!(plan_levels(&r1, 80, 80, None).unwrap()[0].score_output, 1);
    }

    #[test]
    fn decode_nanodet_malformed_outputs_are_errors() {
        let mut dec = DetectorDecoder::new(OutputFamily::Nanodet, 416, 416, None);
        let mut o = outputs();
        o.pop();
        let e = run(&o, &DecodeParams::default(), &mut dec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nanodet") && e.contains("[1,2704,80]"), "{e}");
        // Wrong input size: N does not match any stride.
        let mut dec = DetectorDecoder::new(OutputFamily::Nanodet, 320, 320, None);
        let e = run(&outputs(), &DecodeParams::default(), &mut dec)
            .unwrap_err()
            .to_string();
        assert!(e.contains("320x320"), "{e}");
        let mut dec = DetectorDecoder::new(OutputFamily::Nanodet, 416, 416, None);
        let x = tract_core::ndarray::Array::<f32, _>::zeros(IxDyn(&[1, 2704, 80, 1]));
        let e = dec
            .decode(&[x.view(), x.view()], &DecodeParams::default(), &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("[1,2704,80,1]"), "{e}");
    }
}
