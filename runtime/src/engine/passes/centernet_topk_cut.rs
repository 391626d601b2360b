//! CenterNet top-K cut: the tail of CenterNet exports (3x3 max-pool peak test on the heat map,
//! TopK over all `H x W x C` scores, Gather of the sizes, box arithmetic, `[1, K, 6]` rows) is
//! removed; the graph then outputs only its heat map `[1, H, W, C]` and size map `[1, H, W, 4]`,
//! and the CenterNet decoder finds the peaks in Rust ([`crate::heatmap_peaks`]), looking only at
//! scores above the confidence threshold instead of sorting 1.3 M values per frame.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

use super::probe::{probe_values, run_region, ProbeInput};
use super::proto::{graph_outputs, image_hw, producers, Constants};
use super::{GraphPass, PassContext, RewriteReport};
use crate::heatmap_peaks::{CenterMaps, TOP_K};

/// Cuts the in-graph top-K of a CenterNet export.
pub struct CenternetTopkCut;

impl GraphPass for CenternetTopkCut {
    fn name(&self) -> &'static str {
        "centernet-topk-cut"
    }

    fn apply(&self, graph: &mut pb::GraphProto, ctx: &PassContext, report: &mut RewriteReport) {
        if let Some(rows_output) = plan(graph, ctx) {
            graph.output.retain(|o| o.name != rows_output);
            report.topk_heads_cut += 1;
        }
    }
}

/// Operators the tail may use between the two maps and the rows.
const TAIL_OPS: &[&str] = &[
    "Transpose",
    "MaxPool",
    "Equal",
    "Cast",
    "Mul",
    "Reshape",
    "TopK",
    "Div",
    "Sub",
    "Add",
    "Unsqueeze",
    "Gather",
    "Slice",
    "Concat",
    "Floor",
    "Mod",
    "Squeeze",
];

/// The name of the `[1, K, 6]` output to drop, when the graph has a CenterNet tail whose
/// computation the Rust decode reproduces exactly on a probe.
fn plan(graph: &pb::GraphProto, ctx: &PassContext) -> Option<String> {
    let declared = declared_shapes(graph);
    let made_by = producers(graph);
    let consts = Constants::new(graph);
    let outputs = graph_outputs(graph);
    for out in &graph.output {
        let Some([1, k, 6]) = declared.get(out.name.as_str()).map(Vec::as_slice) else {
            continue;
        };
        if *k != TOP_K {
            continue;
        }
        let Some((region, boundary)) = tail_region(graph, &made_by, &consts, &outputs, &out.name)
        else {
            continue;
        };
        let region_ops = region.iter().map(|&i| graph.node[i].op_type.as_str());
        if region_ops.filter(|op| *op == "TopK").count() != 1 {
            continue;
        }
        let shapes: Vec<(&str, &[usize])> = boundary
            .iter()
            .filter_map(|b| Some((*b, declared.get(b)?.as_slice())))
            .collect();
        let (heat, sizes) = match shapes.as_slice() {
            [(a, sa @ [1, _, _, c]), (b, sb @ [1, _, _, 4])] if *c != 4 => ((*a, *sa), (*b, *sb)),
            [(a, sa @ [1, _, _, 4]), (b, sb @ [1, _, _, c])] if *c != 4 => ((*b, *sb), (*a, *sa)),
            _ => continue,
        };
        if heat.1[1..3] != sizes.1[1..3] {
            continue;
        }
        if verify(graph, &region, heat, sizes, &out.name, ctx) {
            return Some(out.name.clone());
        }
    }
    None
}

/// Every node `output` depends on, back to values that are other graph outputs (the boundary)
/// or constants; `None` when it reaches anything else (a graph input, an unknown producer) or
/// uses an operator outside [`TAIL_OPS`].
fn tail_region<'g>(
    graph: &'g pb::GraphProto,
    made_by: &HashMap<&str, usize>,
    consts: &Constants,
    outputs: &HashSet<&str>,
    output: &'g str,
) -> Option<(Vec<usize>, Vec<&'g str>)> {
    let mut region = HashSet::new();
    let mut boundary = vec![];
    let mut todo = vec![output];
    let mut seen = HashSet::new();
    while let Some(value) = todo.pop() {
        if !seen.insert(value) {
            continue;
        }
        if value != output && outputs.contains(value) {
            boundary.push(value);
            continue;
        }
        if consts.is_const(value) && !made_by.contains_key(value) {
            continue;
        }
        let &p = made_by.get(value)?;
        let node = &graph.node[p];
        if node.op_type == "Constant" {
            continue;
        }
        if !TAIL_OPS.contains(&node.op_type.as_str()) {
            return None;
        }
        region.insert(p);
        todo.extend(
            node.input
                .iter()
                .filter(|i| !i.is_empty())
                .map(String::as_str),
        );
    }
    let mut region: Vec<usize> = region.into_iter().collect();
    region.sort_unstable();
    boundary.sort_unstable();
    Some((region, boundary))
}

/// Runs the tail in tract on probe maps and compares its rows with the Rust decode.
fn verify(
    graph: &pb::GraphProto,
    region: &[usize],
    (heat_name, heat_shape): (&str, &[usize]),
    (sizes_name, sizes_shape): (&str, &[usize]),
    output: &str,
    ctx: &PassContext,
) -> bool {
    let (h, w, c) = (heat_shape[1], heat_shape[2], heat_shape[3]);
    let Some((_, in_w)) = image_hw(ctx.input_shape) else {
        return false;
    };
    if !in_w.is_multiple_of(w) {
        return false;
    }
    let heat = probe_values(h * w * c, 0x9E37_79B9_7F4A_7C15, 0.0, 1.0);
    let sizes = probe_values(h * w * 4, 0xD1B5_4A32_D192_ED03, 0.0, 64.0);
    let inputs = [
        ProbeInput {
            name: heat_name,
            shape: heat_shape,
            values: &heat,
        },
        ProbeInput {
            name: sizes_name,
            shape: sizes_shape,
            values: &sizes,
        },
    ];
    let Some(got) = run_region(graph, region, &inputs, output, ctx.opset) else {
        return false;
    };
    let Ok(got) = got.cast_to::<f32>().map(|t| t.into_owned()) else {
        return false;
    };
    let Ok(got) = got.to_plain_array_view::<f32>() else {
        return false;
    };
    let maps = CenterMaps {
        heat: &heat,
        sizes: &sizes,
        height: h,
        width: w,
        classes: c,
        stride: (in_w / w) as f32,
    };
    let want: Vec<f32> = maps
        .peaks(f32::NEG_INFINITY, TOP_K)
        .iter()
        .flat_map(|p| maps.row(p))
        .collect();
    got.len() == want.len()
        && got
            .iter()
            .zip(&want)
            .all(|(g, v)| (g - v).abs() <= 1e-4 * v.abs().max(1.0))
}

/// Shapes the file declares for its graph outputs, where every dimension is a number.
fn declared_shapes(graph: &pb::GraphProto) -> HashMap<&str, Vec<usize>> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    use pb::type_proto::Value;
    graph
        .output
        .iter()
        .filter_map(|o| {
            let Some(Value::TensorType(t)) = o.r#type.as_ref()?.value.as_ref() else {
                return None;
            };
            let dims = t
                .shape
                .as_ref()?
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(Dim::DimValue(v)) if v > 0 => Some(v as usize),
                    _ => None,
                })
                .collect::<Option<Vec<usize>>>()?;
            Some((o.name.as_str(), dims))
        })
        .collect()
}
