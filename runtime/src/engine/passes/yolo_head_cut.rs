//! YOLO head cut: the Ultralytics YOLOv8/YOLO11/YOLOv5u head tail (distribution focal loss
//! softmax, expectation convolution, distance-to-box with the anchor grid, concatenation with the
//! class scores) is removed; the graph then outputs the raw box distributions `[1, 4*R, N]` and
//! the class scores `[1, C, N]`, which the YOLOv8 DFL decoder turns into boxes only for the anchors
//! whose best class passes the threshold.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

use super::probe::{run_region, ProbeInput};
use super::proto::{attr_int, consumers, graph_outputs, image_hw, producers, Constants};
use super::{GraphPass, PassContext, RewriteReport};
use crate::anchor_grid::{dfl_expectation, AnchorGrid};

/// Cuts an Ultralytics detect head before its box decode.
pub struct YoloHeadCut;

impl GraphPass for YoloHeadCut {
    fn name(&self) -> &'static str {
        "yolo-head-cut"
    }

    fn apply(&self, graph: &mut pb::GraphProto, ctx: &PassContext, report: &mut RewriteReport) {
        if let Some(cut) = plan(graph, ctx.input_shape, ctx.opset) {
            apply_cut(graph, &cut);
            report.dfl_heads_cut += 1;
        }
    }
}

/// The cut of an Ultralytics detect head: the graph output it produced is replaced by `boxes`
/// then `scores`.
#[derive(Debug, Clone)]
struct DflCut {
    /// The graph output that the head produced.
    output: String,
    /// Raw box distributions `[1, 4*R, N]`.
    boxes: String,
    /// Class scores (after the sigmoid) `[1, C, N]`.
    scores: String,
}

/// Operators the box branch of the head may use between the raw distributions and the output.
const DFL_REGION_OPS: &[&str] = &[
    "Reshape",
    "Transpose",
    "Softmax",
    "Conv",
    "Slice",
    "Split",
    "Sub",
    "Add",
    "Div",
    "Mul",
    "Concat",
    "Unsqueeze",
    "Squeeze",
];

/// Finds an Ultralytics detect head: a `Concat` graph output of `[box branch, Sigmoid scores]`
/// where the box branch reads one tensor `[1, 4*R, N]` through a DFL `Softmax` and only
/// constants otherwise. The branch is then run by tract on a probe input and must equal
/// the Rust decode ([`crate::anchor_grid`]) with the standard anchor grid for `input_shape`.
fn plan(graph: &pb::GraphProto, input_shape: &[usize], opset: i64) -> Option<DflCut> {
    let (h, w) = image_hw(input_shape)?;
    let consts = Constants::new(graph);
    let readers = consumers(graph);
    let made_by = producers(graph);
    let outputs = graph_outputs(graph);
    for softmax in graph.node.iter().filter(|n| n.op_type == "Softmax") {
        // Walk back from the Softmax through shape-only ops to the raw distributions.
        let mut value = softmax.input.first()?.as_str();
        let mut steps = 0;
        while let Some(&p) = made_by.get(value) {
            let node = &graph.node[p];
            if steps >= 3 || !matches!(node.op_type.as_str(), "Reshape" | "Transpose") {
                break;
            }
            value = node.input.first()?.as_str();
            steps += 1;
        }
        if steps == 0 || consts.is_const(value) {
            continue;
        }
        let Some(region) = box_region(graph, &consts, &readers, &outputs, value) else {
            continue;
        };
        let concat = &graph.node[region.concat];
        let scores = concat.input[1].clone();
        let from_sigmoid = made_by
            .get(scores.as_str())
            .is_some_and(|&p| graph.node[p].op_type == "Sigmoid");
        if !from_sigmoid {
            continue;
        }
        let bins = region
            .nodes
            .iter()
            .map(|&i| &graph.node[i])
            .find(|n| n.op_type == "Conv")
            .and_then(|n| consts.get(n.input.get(1)?))
            .and_then(|c| (c.dims.len() == 4).then(|| c.dims[1] as usize))?;
        if !(2..=64).contains(&bins) {
            continue;
        }
        for levels in [3, 4] {
            let n = crate::anchor_grid::anchor_count(w, h, levels);
            if verify_box_region(graph, &region, value, bins, n, (w, h), opset) {
                return Some(DflCut {
                    output: concat.output[0].clone(),
                    boxes: value.to_string(),
                    scores,
                });
            }
        }
    }
    None
}

/// The nodes of a head's box branch (in graph order) and the final `Concat`.
struct BoxRegion {
    nodes: Vec<usize>,
    concat: usize,
}

/// Collects every node reachable from `start` up to a two-input `Concat` graph output whose
/// second input comes from elsewhere; `None` when the branch leaks anywhere else, uses another
/// operator, or reads anything but constants besides itself.
fn box_region(
    graph: &pb::GraphProto,
    consts: &Constants<'_>,
    readers: &HashMap<&str, Vec<(usize, usize)>>,
    outputs: &HashSet<&str>,
    start: &str,
) -> Option<BoxRegion> {
    let mut values: HashSet<&str> = HashSet::from([start]);
    let mut nodes: Vec<usize> = vec![];
    let mut concat = None;
    let mut queue = vec![start];
    while let Some(v) = queue.pop() {
        if outputs.contains(v) {
            return None;
        }
        for &(ix, slot) in readers.get(v).map(Vec::as_slice).unwrap_or(&[]) {
            if nodes.contains(&ix) || concat == Some(ix) {
                continue;
            }
            let n = &graph.node[ix];
            if !n.domain.is_empty() {
                return None;
            }
            let is_final = n.op_type == "Concat"
                && n.input.len() == 2
                && slot == 0
                && n.output.len() == 1
                && outputs.contains(n.output[0].as_str())
                && matches!(attr_int(n, "axis"), Some(1) | Some(-2));
            if is_final {
                if concat.is_some() {
                    return None;
                }
                concat = Some(ix);
                continue;
            }
            if !DFL_REGION_OPS.contains(&n.op_type.as_str()) {
                return None;
            }
            nodes.push(ix);
            for o in &n.output {
                if !o.is_empty() && values.insert(o.as_str()) {
                    queue.push(o.as_str());
                }
            }
        }
    }
    let concat = concat?;
    if values.contains(graph.node[concat].input[1].as_str()) {
        return None;
    }
    let has_softmax = nodes.iter().any(|&i| graph.node[i].op_type == "Softmax");
    for &ix in &nodes {
        for i in graph.node[ix].input.iter().filter(|i| !i.is_empty()) {
            if !values.contains(i.as_str()) && !consts.is_const(i) {
                return None;
            }
        }
    }
    nodes.sort_unstable();
    has_softmax.then_some(BoxRegion { nodes, concat })
}

/// Runs the box branch alone in tract on a probe input `[1, 4*bins, n]` and compares with the
/// Rust decode of the same values; true when they agree (relative 1e-4).
fn verify_box_region(
    graph: &pb::GraphProto,
    region: &BoxRegion,
    start: &str,
    bins: usize,
    n: usize,
    (w, h): (usize, usize),
    opset: i64,
) -> bool {
    let concat = &graph.node[region.concat];
    let probe: Vec<f32> = (0..4 * bins * n)
        .map(|i| ((i.wrapping_mul(2654435761) >> 7) % 1000) as f32 / 125.0 - 4.0)
        .collect();
    let input = ProbeInput {
        name: start,
        shape: &[1, 4 * bins, n],
        values: &probe,
    };
    let Some(out) = run_region(graph, &region.nodes, &[input], &concat.input[0], opset) else {
        return false;
    };
    let Ok(got) = out.to_plain_array_view::<f32>() else {
        return false;
    };
    if got.shape() != [1, 4, n] {
        return false;
    }
    let Some(grid) = AnchorGrid::new(w, h, n) else {
        return false;
    };
    let mut probs = vec![0.0; bins];
    for j in 0..n {
        let dist = |side: usize, probs: &mut Vec<f32>| {
            dfl_expectation((0..bins).map(|k| probe[(side * bins + k) * n + j]), probs)
        };
        let ltrb = [
            dist(0, &mut probs),
            dist(1, &mut probs),
            dist(2, &mut probs),
            dist(3, &mut probs),
        ];
        let want = grid.cxcywh(j, ltrb);
        for (k, &v) in want.iter().enumerate() {
            let g = got[[0, k, j]];
            if (g - v).abs() > 1e-4 * v.abs().max(1.0) {
                return false;
            }
        }
    }
    true
}

/// Replaces the head's output by the raw distributions and the class scores.
fn apply_cut(graph: &mut pb::GraphProto, cut: &DflCut) {
    let mut outputs = vec![];
    for o in graph.output.drain(..) {
        if o.name == cut.output {
            outputs.push(pb::ValueInfoProto {
                name: cut.boxes.clone(),
                ..Default::default()
            });
            outputs.push(pb::ValueInfoProto {
                name: cut.scores.clone(),
                ..Default::default()
            });
        } else {
            outputs.push(o);
        }
    }
    graph.output = outputs;
}
