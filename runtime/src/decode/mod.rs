//! Raw detector outputs to [`Detection`]s: one file per output family, plus family inference.
//!
//! Every decoder writes boxes in model-input pixels; mapping back to the frame (undoing a
//! letterbox or stretch) is the caller's job. Shape problems come back as [`Error::Decode`]
//! naming the family and the shapes seen; decoders never panic on malformed outputs and accept
//! views with any strides.

pub mod centernet;
pub mod classification;
pub mod end_to_end;
pub mod nanodet;
pub mod yolov5;
pub mod yolov8;
pub mod yolov8_dfl;

use tract_core::ndarray::{ArrayView1, ArrayView2, ArrayViewD, Axis, Ix3};

use crate::detection::{BBox, Detection};
use crate::error::{Error, Result};
use crate::model::OutputFamily;

/// Thresholds and filters applied while decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeParams {
    /// Minimum score kept (inclusive).
    pub conf: f32,
    /// NMS IoU threshold: a box overlapping a better one of its class by more than this is dropped.
    pub iou: f32,
    /// Keep only these class indices (for one-score-per-class heads the best allowed class is used).
    pub classes: Option<Vec<usize>>,
    /// Maximum number of detections returned.
    pub max_det: usize,
    /// Run NMS across classes instead of per class.
    pub agnostic: bool,
}

impl Default for DecodeParams {
    fn default() -> Self {
        Self {
            conf: 0.25,
            iou: 0.45,
            classes: None,
            max_det: 300,
            agnostic: false,
        }
    }
}

impl DecodeParams {
    /// True when class `c` passes the class filter.
    #[inline]
    pub fn class_allowed(&self, c: usize) -> bool {
        match &self.classes {
            None => true,
            Some(list) => list.contains(&c),
        }
    }
}

/// Turns a detector's raw outputs into detections in model-input pixels.
#[derive(Debug, Clone)]
pub struct DetectorDecoder {
    family: OutputFamily,
    input_width: u32,
    input_height: u32,
    num_classes: Option<usize>,
    /// Per-anchor best class score for the channels-first YOLOv8 sweep, reused across frames.
    best: Vec<f32>,
    /// NanoDet level layout, planned on the first frame and reused while the shapes match.
    nanodet_plan: Vec<nanodet::Level>,
}

impl DetectorDecoder {
    /// Decoder for `family` on a model whose input is `input_width` x `input_height` pixels;
    /// `num_classes`, when known, disambiguates layouts and is checked against the outputs.
    pub fn new(
        family: OutputFamily,
        input_width: u32,
        input_height: u32,
        num_classes: Option<usize>,
    ) -> Self {
        Self {
            family,
            input_width,
            input_height,
            num_classes,
            best: Vec::new(),
            nanodet_plan: Vec::new(),
        }
    }

    /// True when `outputs` are a YOLO head cut before its box decode (see [`yolov8_dfl`]).
    fn is_dfl_cut(&self, outputs: &[ArrayViewD<'_, f32>]) -> bool {
        let shapes: Vec<&[usize]> = outputs.iter().map(|o| o.shape()).collect();
        yolov8_dfl::is_cut_layout(
            &shapes,
            self.input_width as usize,
            self.input_height as usize,
        )
    }

    /// The output family this decoder reads.
    pub fn family(&self) -> OutputFamily {
        self.family
    }

    /// Clears `out`, then fills it with the detections (score >= conf, class filter applied, NMS
    /// applied, at most max_det), boxes in model-input pixels, sorted by score descending.
    pub fn decode(
        &mut self,
        outputs: &[ArrayViewD<'_, f32>],
        params: &DecodeParams,
        out: &mut Vec<Detection>,
    ) -> Result<()> {
        out.clear();
        match self.family {
            OutputFamily::Yolov5 => yolov5::decode(outputs, self.num_classes, params, out),
            OutputFamily::Yolov8 if self.is_dfl_cut(outputs) => yolov8_dfl::decode(
                outputs,
                (self.input_width, self.input_height),
                self.num_classes,
                params,
                &mut self.best,
                out,
            ),
            OutputFamily::Yolov8 => {
                yolov8::decode(outputs, self.num_classes, params, &mut self.best, out)
            }
            OutputFamily::EndToEnd => end_to_end::decode(outputs, params, out),
            OutputFamily::Nanodet => nanodet::decode(
                outputs,
                self.input_width,
                self.input_height,
                self.num_classes,
                params,
                &mut self.nanodet_plan,
                out,
            ),
            OutputFamily::Centernet => centernet::decode(outputs, self.input_width, params, out),
            OutputFamily::Classification => Err(decode_error(
                OutputFamily::Classification,
                format!(
                    "a classifier has no boxes; read its output with decode::classification::top_k (outputs {})",
                    shapes_of(outputs)
                ),
            )),
            OutputFamily::Embedding => Err(decode_error(
                OutputFamily::Embedding,
                format!(
                    "an embedding model has no boxes; use it with --reid (outputs {})",
                    shapes_of(outputs)
                ),
            )),
        }
    }
}

/// Guesses the output family from the output shapes of a detector/classifier graph (batch 1),
/// with a one-line explanation of what was assumed.
///
/// Anchor counts are checked against the input size first (YOLOv8 has one anchor per cell of
/// strides 8/16/32(/64), YOLOv5 three), then the rules fall back on the shapes alone:
/// `[1,A,B]` with A < B is YOLOv8 channels-first; with A > B it is YOLOv5 unless B = 84
/// (COCO without objectness, i.e. a transposed YOLOv8 export).
pub fn infer_family(
    output_shapes: &[Vec<usize>],
    input_width: u32,
    input_height: u32,
) -> Option<(OutputFamily, String)> {
    let (w, h) = (input_width as usize, input_height as usize);
    match output_shapes {
        [] => None,
        [one] => infer_single(one, w, h),
        many => {
            let k6: Vec<&Vec<usize>> = many
                .iter()
                .filter(|s| is_rows_of(s, 6) && !looks_like_anchors(s[1], w, h))
                .collect();
            if k6.len() == 1 {
                return Some((
                    OutputFamily::Centernet,
                    format!(
                        "{} outputs ({}) including {}: CenterNet with top-K in the graph (x1,y1,x2,y2,score,class rows); the other outputs are ignored",
                        many.len(),
                        fmt_shapes(many),
                        fmt_shape(k6[0])
                    ),
                ));
            }
            let refs: Vec<&[usize]> = many.iter().map(|s| s.as_slice()).collect();
            if let Some((heat, sizes)) = centernet::maps_layout_of(&refs) {
                return Some((
                    OutputFamily::Centernet,
                    format!(
                        "outputs {}: CenterNet heat map {} and size map {}, peaks and top-K found in Rust",
                        fmt_shapes(many),
                        fmt_shape(&many[heat]),
                        fmt_shape(&many[sizes])
                    ),
                ));
            }
            if yolov8_dfl::is_cut_layout(&refs, w, h) {
                return Some((
                    OutputFamily::Yolov8,
                    format!(
                        "outputs {}: YOLOv8/YOLO11 head with its box decode done in Rust ({} bins per side, {} classes)",
                        fmt_shapes(many),
                        many[0][1] / 4,
                        many[1][1]
                    ),
                ));
            }
            if let Ok(levels) = nanodet::plan_levels(&refs, w, h, None) {
                let strides: Vec<String> = levels.iter().map(|l| l.stride.to_string()).collect();
                let first = &levels[0];
                return Some((
                    OutputFamily::Nanodet,
                    format!(
                        "{} outputs in pairs [1,N,{}] class scores + [1,N,{}] box distributions for strides {} at {}x{}: NanoDet GFL head, {} classes, {} bins per side",
                        many.len(),
                        first.num_classes,
                        first.bins * 4,
                        strides.join("/"),
                        w,
                        h,
                        first.num_classes,
                        first.bins
                    ),
                ));
            }
            let rank3: Vec<&Vec<usize>> =
                many.iter().filter(|s| s.len() == 3 && s[0] == 1).collect();
            if rank3.len() == 1 {
                let (family, why) = infer_single(rank3[0], w, h)?;
                return Some((
                    family,
                    format!(
                        "{why} (the only rank-3 output of {}; the others are ignored)",
                        fmt_shapes(many)
                    ),
                ));
            }
            None
        }
    }
}

/// Family of a graph with one output.
fn infer_single(s: &[usize], w: usize, h: usize) -> Option<(OutputFamily, String)> {
    let shape = fmt_shape(s);
    match *s {
        [1, c] | [1, c, 1, 1] if c >= 1 => Some((
            OutputFamily::Classification,
            format!("output {shape}: classifier, {c} classes"),
        )),
        [1, a, b] if a > 0 && b > 0 => {
            let at = |n: usize| format!("{n} anchors match strides 8/16/32 at {w}x{h}");
            if b == 6 && !looks_like_anchors(a, w, h) {
                return Some((
                    OutputFamily::EndToEnd,
                    format!(
                        "output {shape}: end-to-end layout, up to {a} rows of x1,y1,x2,y2,score,class (NMS in the graph or not needed)"
                    ),
                ));
            }
            if is_anchor_count(b, w, h) && a >= 5 {
                return Some((
                    OutputFamily::Yolov8,
                    format!(
                        "output {shape}: YOLOv8/YOLO11 layout (channels-first cx,cy,w,h + class scores), {} classes, {}",
                        a - 4,
                        at(b)
                    ),
                ));
            }
            if a.checked_rem(3) == Some(0) && is_anchor_count(a / 3, w, h) && b >= 6 {
                return Some((
                    OutputFamily::Yolov5,
                    format!(
                        "output {shape}: YOLOv5 layout (cx,cy,w,h, objectness, class scores), {} classes, 3 x {}",
                        b - 5,
                        at(a / 3)
                    ),
                ));
            }
            if is_anchor_count(a, w, h) && b >= 5 {
                return Some((
                    OutputFamily::Yolov8,
                    format!(
                        "output {shape}: transposed YOLOv8 layout (rows of cx,cy,w,h + class scores, no objectness), {} classes, {}",
                        b - 4,
                        at(a)
                    ),
                ));
            }
            if a <= b && a >= 5 {
                Some((
                    OutputFamily::Yolov8,
                    format!(
                        "output {shape}: assumed YOLOv8/YOLO11 channels-first layout (fewer rows than columns), {} classes; anchor count does not match {w}x{h}",
                        a - 4
                    ),
                ))
            } else if a > b && b == 84 {
                Some((
                    OutputFamily::Yolov8,
                    format!(
                        "output {shape}: assumed transposed YOLOv8 layout (84 = 4 box + 80 COCO classes, no objectness); anchor count does not match {w}x{h}"
                    ),
                ))
            } else if a > b && b >= 6 {
                Some((
                    OutputFamily::Yolov5,
                    format!(
                        "output {shape}: assumed YOLOv5 layout (rows of cx,cy,w,h, objectness + {} class scores); anchor count does not match {w}x{h}",
                        b - 5
                    ),
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// True when `n` is the YOLO anchor-free cell count for strides 8/16/32 (or 8/16/32/64).
fn is_anchor_count(n: usize, w: usize, h: usize) -> bool {
    if w == 0 || h == 0 || n == 0 {
        return false;
    }
    let cells = |s: usize| w.div_ceil(s) * h.div_ceil(s);
    let p5 = cells(8) + cells(16) + cells(32);
    n == p5 || n == p5 + cells(64)
}

/// True when `n` is a YOLOv8 (one per cell) or YOLOv5 (three per cell) anchor count.
fn looks_like_anchors(n: usize, w: usize, h: usize) -> bool {
    is_anchor_count(n, w, h) || (n.checked_rem(3) == Some(0) && is_anchor_count(n / 3, w, h))
}

/// True for a `[1, K, width]` shape.
fn is_rows_of(s: &[usize], width: usize) -> bool {
    matches!(*s, [1, _, last] if last == width)
}

/// Builds the decode error for `family`.
pub(crate) fn decode_error(family: OutputFamily, reason: impl Into<String>) -> Error {
    Error::Decode {
        family: family_name(family).to_string(),
        reason: reason.into(),
    }
}

/// The card name of a family (as written in model cards).
pub(crate) fn family_name(family: OutputFamily) -> &'static str {
    match family {
        OutputFamily::Yolov5 => "yolov5",
        OutputFamily::Yolov8 => "yolov8",
        OutputFamily::EndToEnd => "end-to-end",
        OutputFamily::Nanodet => "nanodet",
        OutputFamily::Centernet => "centernet",
        OutputFamily::Classification => "classification",
        OutputFamily::Embedding => "embedding",
    }
}

/// `[1,84,8400]`.
pub(crate) fn fmt_shape(s: &[usize]) -> String {
    let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", dims.join(","))
}

/// `[1,84,8400], [1,6]`.
fn fmt_shapes(shapes: &[Vec<usize>]) -> String {
    let all: Vec<String> = shapes.iter().map(|s| fmt_shape(s)).collect();
    all.join(", ")
}

/// The shapes of all outputs, for error messages (`none` when empty).
pub(crate) fn shapes_of(outputs: &[ArrayViewD<'_, f32>]) -> String {
    if outputs.is_empty() {
        return "none".to_string();
    }
    let all: Vec<String> = outputs.iter().map(|o| fmt_shape(o.shape())).collect();
    all.join(", ")
}

/// The one output a single-tensor family reads: the only output, or the only `[1, _, _]` one.
pub(crate) fn single_output<'o, 'a>(
    family: OutputFamily,
    outputs: &'o [ArrayViewD<'a, f32>],
) -> Result<&'o ArrayViewD<'a, f32>> {
    match outputs {
        [one] => Ok(one),
        [] => Err(decode_error(family, "the model produced no outputs")),
        many => {
            let mut rank3 = many.iter().filter(|o| matches!(o.shape(), [1, _, _]));
            match (rank3.next(), rank3.next()) {
                (Some(o), None) => Ok(o),
                _ => Err(decode_error(
                    family,
                    format!(
                        "expected one output of shape [1,N,M], got {}",
                        shapes_of(outputs)
                    ),
                )),
            }
        }
    }
}

/// The `[N, M]` matrix of a `[1, N, M]` output (any strides).
pub(crate) fn batch1_matrix<'a>(
    family: OutputFamily,
    v: &ArrayViewD<'a, f32>,
    expected: &str,
) -> Result<ArrayView2<'a, f32>> {
    let bad = || {
        decode_error(
            family,
            format!(
                "expected an output of shape {expected}, got {}",
                fmt_shape(v.shape())
            ),
        )
    };
    if v.ndim() != 3 || v.shape()[0] != 1 {
        return Err(bad());
    }
    let v3 = v.clone().into_dimensionality::<Ix3>().map_err(|_| bad())?;
    Ok(v3.index_axis_move(Axis(0), 0))
}

/// Index and value of the largest of `values` (NaN never wins; `(-inf, 0)` when none is larger).
#[inline]
pub(crate) fn argmax(values: impl Iterator<Item = f32>) -> (f32, usize) {
    let mut best = (f32::NEG_INFINITY, 0usize);
    for (i, v) in values.enumerate() {
        if v > best.0 {
            best = (v, i);
        }
    }
    best
}

/// Best class score of `row[offset..offset + num_classes]`, restricted to `classes` when given:
/// `(score, class index)`, `(-inf, 0)` when no class qualifies.
#[inline]
pub(crate) fn best_class(
    row: &ArrayView1<'_, f32>,
    offset: usize,
    num_classes: usize,
    classes: Option<&[usize]>,
) -> (f32, usize) {
    match classes {
        None => match row.to_slice() {
            Some(s) => argmax(s[offset..offset + num_classes].iter().copied()),
            None => argmax(row.iter().skip(offset).take(num_classes).copied()),
        },
        Some(list) => {
            let mut best = (f32::NEG_INFINITY, 0usize);
            for &c in list {
                if c < num_classes {
                    let v = row[offset + c];
                    if v > best.0 {
                        best = (v, c);
                    }
                }
            }
            best
        }
    }
}

/// True when `score` reaches the threshold (NaN never does).
#[inline]
pub(crate) fn passes(score: f32, conf: f32) -> bool {
    score >= conf
}

/// True when all four box coordinates are finite.
#[inline]
pub(crate) fn finite_box(x1: f32, y1: f32, x2: f32, y2: f32) -> bool {
    x1.is_finite() && y1.is_finite() && x2.is_finite() && y2.is_finite()
}

/// Appends a detection unless a corner is NaN or infinite (garbage outputs must not reach NMS).
pub(crate) fn push_finite(out: &mut Vec<Detection>, bbox: BBox, score: f32, class_id: usize) {
    if finite_box(bbox.x1, bbox.y1, bbox.x2, bbox.y2) {
        out.push(Detection {
            bbox,
            score,
            class_id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fam(shapes: &[&[usize]], w: u32, h: u32) -> Option<(OutputFamily, String)> {
        let v: Vec<Vec<usize>> = shapes.iter().map(|s| s.to_vec()).collect();
        infer_family(&v, w, h)
    }

    #[test]
    fn decode_infer_family_single_outputs() {
        let (f, why) = fam(&[&[1, 84, 8400]], 640, 640).unwrap();
        assert_eq!(f, OutputFamily::Yolov8);
        assert!(
            why.contains("80 classes") && why.contains("[1,84,8400]"),
            "{why}"
        );
        assert_eq!(
            fam(&[&[1, 84, 2100]], 320, 320).unwrap().0,
            OutputFamily::Yolov8
        );
        let (f, why) = fam(&[&[1, 25200, 85]], 640, 640).unwrap();
        assert_eq!(f, OutputFamily::Yolov5);
        assert!(why.contains("80 classes"), "{why}");
        let (f, why) = fam(&[&[1, 8400, 84]], 640, 640).unwrap();
        assert_eq!(f, OutputFamily::Yolov8);
        assert!(why.contains("transposed"), "{why}");
        assert_eq!(
            fam(&[&[1, 300, 6]], 640, 640).unwrap().0,
            OutputFamily::EndToEnd
        );
        // One-class YOLOv5 and two-class transposed YOLOv8 also end in 6: the anchor count decides.
        assert_eq!(
            fam(&[&[1, 25200, 6]], 640, 640).unwrap().0,
            OutputFamily::Yolov5
        );
        assert_eq!(
            fam(&[&[1, 8400, 6]], 640, 640).unwrap().0,
            OutputFamily::Yolov8
        );
        assert_eq!(
            fam(&[&[1, 1000]], 224, 224).unwrap().0,
            OutputFamily::Classification
        );
        assert_eq!(
            fam(&[&[1, 1000, 1, 1]], 224, 224).unwrap().0,
            OutputFamily::Classification
        );
        // Unknown input size: shape-only fallbacks.
        assert_eq!(
            fam(&[&[1, 84, 5000]], 1, 1).unwrap().0,
            OutputFamily::Yolov8
        );
        assert_eq!(
            fam(&[&[1, 5000, 85]], 1, 1).unwrap().0,
            OutputFamily::Yolov5
        );
        assert_eq!(
            fam(&[&[1, 5000, 84]], 1, 1).unwrap().0,
            OutputFamily::Yolov8
        );
        assert_eq!(
            fam(&[&[1, 5000, 10]], 1, 1).unwrap().0,
            OutputFamily::Yolov5
        );
        assert!(fam(&[&[1, 3, 224, 224]], 224, 224).is_none());
        assert!(fam(&[&[1, 2, 3]], 224, 224).is_none());
        assert!(fam(&[], 224, 224).is_none());
    }

    #[test]
    fn decode_infer_family_multi_outputs() {
        let (f, why) = fam(
            &[
                &[1, 2704, 80],
                &[1, 676, 80],
                &[1, 169, 80],
                &[1, 2704, 44],
                &[1, 676, 44],
                &[1, 169, 44],
            ],
            416,
            416,
        )
        .unwrap();
        assert_eq!(f, OutputFamily::Nanodet);
        assert!(
            why.contains("8/16/32") && why.contains("80 classes"),
            "{why}"
        );
        let (f, why) = fam(
            &[&[1, 100, 6], &[1, 128, 128, 80], &[1, 128, 128, 4]],
            512,
            512,
        )
        .unwrap();
        assert_eq!(f, OutputFamily::Centernet);
        assert!(why.contains("[1,100,6]"), "{why}");
        let (f, why) = fam(&[&[1, 128, 128, 4], &[1, 128, 128, 80]], 512, 512).unwrap();
        assert_eq!(f, OutputFamily::Centernet);
        assert!(why.contains("heat map [1,128,128,80]"), "{why}");
        // Old YOLOv5 exports add per-level raw outputs next to the decoded one.
        let (f, _) = fam(
            &[&[1, 25200, 85], &[1, 3, 80, 80, 85], &[1, 3, 40, 40, 85]],
            640,
            640,
        )
        .unwrap();
        assert_eq!(f, OutputFamily::Yolov5);
        assert!(fam(&[&[1, 10, 10], &[1, 20, 20]], 640, 640).is_none());
    }

    #[test]
    fn decode_default_params() {
        let p = DecodeParams::default();
        assert_eq!(
            (p.conf, p.iou, p.max_det, p.agnostic),
            (0.25, 0.45, 300, false)
        );
        assert!(p.classes.is_none() && p.class_allowed(79));
    }

    #[test]
    fn decode_classification_family_is_an_error() {
        let a = tract_core::ndarray::Array::<f32, _>::zeros(vec![1, 10]);
        let mut d = DetectorDecoder::new(OutputFamily::Classification, 224, 224, None);
        let mut out = vec![];
        let e = d
            .decode(&[a.view()], &DecodeParams::default(), &mut out)
            .unwrap_err()
            .to_string();
        assert!(e.contains("classification") && e.contains("[1,10]"), "{e}");
    }
}
