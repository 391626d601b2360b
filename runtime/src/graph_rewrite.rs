//! Graph rewrites applied to ONNX models before tract optimizes them.
//!
//! Each pass recognizes a pattern in the ONNX protobuf and replaces it by something tract runs
//! faster, with the same results:
//! - **Pad folding**: a zero, constant-mode `Pad` of the spatial dims feeding only `Conv`s becomes
//!   part of those convolutions' `pads` (NanoDet's TensorFlow-style asymmetric padding).
//! - **DFL head cut**: the Ultralytics YOLOv8/YOLO11/YOLOv5u head tail (distribution focal loss
//!   softmax, expectation convolution, distance-to-box with the anchor grid, concatenation with the
//!   class scores) is removed; the graph then outputs the raw box distributions `[1, 4*R, N]` and
//!   the class scores `[1, C, N]`, and [`crate::decode::yolov8_dfl`] decodes only the anchors whose
//!   best class passes the threshold.
//!
//! Passes only fire when every part of the pattern is checked (operators, attributes and constant
//! values, single consumers); anything else leaves the graph as it is. `VIGIA_NO_REWRITE=1` turns
//! them all off.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

/// Environment variable that disables every rewrite when set to anything but `0` or empty.
pub const DISABLE_ENV: &str = "VIGIA_NO_REWRITE";

/// What the passes changed in one graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RewriteReport {
    /// `Pad` nodes folded into the following convolution(s).
    pub pads_folded: usize,
    /// Ultralytics DFL heads cut (0 or 1).
    pub dfl_heads_cut: usize,
    /// Nodes removed from the graph in total.
    pub nodes_removed: usize,
}

impl RewriteReport {
    /// True when no pass changed anything.
    pub fn is_empty(&self) -> bool {
        self.pads_folded == 0 && self.dfl_heads_cut == 0
    }

    /// One line for load messages, e.g. `28 Pad folded into Conv, DFL head cut`.
    pub fn summary(&self) -> String {
        let mut parts = vec![];
        if self.pads_folded > 0 {
            parts.push(format!("{} Pad folded into Conv", self.pads_folded));
        }
        if self.dfl_heads_cut > 0 {
            parts.push("YOLO DFL head decoded in Rust".to_string());
        }
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// True unless [`DISABLE_ENV`] is set to a value other than `0` or empty.
pub fn enabled() -> bool {
    match std::env::var(DISABLE_ENV) {
        Ok(v) => v.is_empty() || v == "0",
        Err(_) => true,
    }
}

/// Runs every pass on a copy of `model` for an input of `input_shape` (NCHW or NHWC, batch 1);
/// `None` when no pass applies.
pub fn rewrite(
    model: &pb::ModelProto,
    input_shape: &[usize],
) -> Option<(pb::ModelProto, RewriteReport)> {
    let graph = model.graph.as_ref()?;
    let opset = opset(model);
    let pads = plan_pad_folds(graph, opset);
    let dfl = plan_dfl_cut(graph, input_shape, opset);
    if pads.is_empty() && dfl.is_none() {
        return None;
    }
    let mut out = model.clone();
    let g = out.graph.as_mut()?;
    let mut report = RewriteReport::default();
    let before = g.node.len();
    report.pads_folded = apply_pad_folds(g, &pads);
    if let Some(cut) = dfl {
        apply_dfl_cut(g, &cut);
        report.dfl_heads_cut = 1;
    }
    prune_dead_nodes(g);
    report.nodes_removed = before - g.node.len();
    Some((out, report))
}

/// Default-domain opset version (1 when absent).
fn opset(model: &pb::ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1)
}

// ---------------------------------------------------------------------------------------------
// Graph helpers

/// Who reads each value: `(node index, input slot)`.
fn consumers(graph: &pb::GraphProto) -> HashMap<&str, Vec<(usize, usize)>> {
    let mut map: HashMap<&str, Vec<(usize, usize)>> = HashMap::new();
    for (ix, n) in graph.node.iter().enumerate() {
        for (slot, i) in n.input.iter().enumerate() {
            if !i.is_empty() {
                map.entry(i.as_str()).or_default().push((ix, slot));
            }
        }
    }
    map
}

/// Which node produces each value.
fn producers(graph: &pb::GraphProto) -> HashMap<&str, usize> {
    let mut map = HashMap::new();
    for (ix, n) in graph.node.iter().enumerate() {
        for o in &n.output {
            if !o.is_empty() {
                map.insert(o.as_str(), ix);
            }
        }
    }
    map
}

fn graph_outputs(graph: &pb::GraphProto) -> HashSet<&str> {
    graph.output.iter().map(|o| o.name.as_str()).collect()
}

fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn attr_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

fn attr_str<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a str> {
    attr(node, name).and_then(|a| std::str::from_utf8(&a.s).ok())
}

/// A constant tensor: dims and values (f32 or integers widened), from an initializer or a
/// `Constant` node.
#[derive(Debug, Clone)]
struct Const {
    dims: Vec<i64>,
    values: ConstValues,
}

#[derive(Debug, Clone)]
enum ConstValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Const {
    fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            ConstValues::I64(v) => Some(v),
            ConstValues::F32(_) => None,
        }
    }

    /// Every value as f64, whatever the type.
    fn as_f64(&self) -> Vec<f64> {
        match &self.values {
            ConstValues::F32(v) => v.iter().map(|&x| x as f64).collect(),
            ConstValues::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

/// Reads f32, i64 and i32 tensors (raw little-endian or typed fields); `None` for anything else.
fn read_tensor(t: &pb::TensorProto) -> Option<Const> {
    const FLOAT: i32 = 1;
    const INT32: i32 = 6;
    const INT64: i32 = 7;
    let n: i64 = t.dims.iter().product();
    if n < 0 {
        return None;
    }
    let n = n as usize;
    let values = match t.data_type {
        FLOAT if !t.raw_data.is_empty() => ConstValues::F32(
            t.raw_data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
        ),
        FLOAT => ConstValues::F32(t.float_data.clone()),
        INT64 if !t.raw_data.is_empty() => ConstValues::I64(
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
        ),
        INT64 => ConstValues::I64(t.int64_data.clone()),
        INT32 if !t.raw_data.is_empty() => ConstValues::I64(
            t.raw_data
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
        ),
        INT32 => ConstValues::I64(t.int32_data.iter().map(|&x| x as i64).collect()),
        _ => return None,
    };
    let len = match &values {
        ConstValues::F32(v) => v.len(),
        ConstValues::I64(v) => v.len(),
    };
    (len == n).then(|| Const {
        dims: t.dims.clone(),
        values,
    })
}

/// Constant values by name: initializers and `Constant` nodes' `value` tensors.
struct Constants<'g> {
    initializers: HashMap<&'g str, &'g pb::TensorProto>,
    nodes: HashMap<&'g str, &'g pb::TensorProto>,
}

impl<'g> Constants<'g> {
    fn new(graph: &'g pb::GraphProto) -> Self {
        let initializers = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let nodes = graph
            .node
            .iter()
            .filter(|n| n.op_type == "Constant" && n.output.len() == 1)
            .filter_map(|n| Some((n.output[0].as_str(), attr(n, "value")?.t.as_ref()?)))
            .collect();
        Constants {
            initializers,
            nodes,
        }
    }

    fn get(&self, name: &str) -> Option<Const> {
        if name.is_empty() {
            return None;
        }
        let t = self
            .initializers
            .get(name)
            .or_else(|| self.nodes.get(name))?;
        read_tensor(t)
    }

    fn is_const(&self, name: &str) -> bool {
        self.initializers.contains_key(name) || self.nodes.contains_key(name)
    }
}

/// Drops nodes none of whose outputs is read by a live node or a graph output (repeatedly), and
/// initializers nothing reads any more.
fn prune_dead_nodes(graph: &mut pb::GraphProto) {
    loop {
        let used: HashSet<String> = graph
            .node
            .iter()
            .flat_map(|n| n.input.iter().cloned())
            .chain(graph.output.iter().map(|o| o.name.clone()))
            .collect();
        let before = graph.node.len();
        graph
            .node
            .retain(|n| n.output.iter().any(|o| !o.is_empty() && used.contains(o)));
        if graph.node.len() == before {
            graph.initializer.retain(|t| used.contains(&t.name));
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pad folding

/// One `Pad` to fold: its index, the padded value and the spatial pads to add
/// (`[x1_begin, x2_begin, .., x1_end, x2_end, ..]`, Conv attribute order).
#[derive(Debug, Clone)]
struct PadFold {
    pad: usize,
    source: String,
    spatial: Vec<i64>,
    convs: Vec<usize>,
}

/// Finds foldable `Pad`s: constant mode, value 0, non-negative pads on spatial dims only, known
/// at load time, read only by `Conv`s (as their data input) whose padding is explicit.
fn plan_pad_folds(graph: &pb::GraphProto, opset: i64) -> Vec<PadFold> {
    let consts = Constants::new(graph);
    let readers = consumers(graph);
    let outputs = graph_outputs(graph);
    let mut folds = vec![];
    for (ix, n) in graph.node.iter().enumerate() {
        if n.op_type != "Pad" || !n.domain.is_empty() || n.output.len() != 1 || n.input.is_empty() {
            continue;
        }
        if let Some(fold) = pad_fold(graph, &consts, &readers, &outputs, opset, ix) {
            folds.push(fold);
        }
    }
    folds
}

fn pad_fold(
    graph: &pb::GraphProto,
    consts: &Constants<'_>,
    readers: &HashMap<&str, Vec<(usize, usize)>>,
    outputs: &HashSet<&str>,
    opset: i64,
    ix: usize,
) -> Option<PadFold> {
    let n = &graph.node[ix];
    match attr_str(n, "mode") {
        None | Some("constant") => {}
        Some(_) => return None,
    }
    let (pads, value) = if opset < 11 {
        let value = attr(n, "value").map(|a| a.f).unwrap_or(0.0);
        (attr_ints(n, "pads")?, value)
    } else {
        let pads = consts.get(n.input.get(1)?)?.ints()?.to_vec();
        let value = match n.input.get(2).filter(|s| !s.is_empty()) {
            None => 0.0,
            Some(name) => {
                let c = consts.get(name)?;
                match c.as_f64().as_slice() {
                    [] => 0.0,
                    [v] => *v as f32,
                    _ => return None,
                }
            }
        };
        if n.input.get(3).is_some_and(|s| !s.is_empty()) {
            // An `axes` input (opset 18): only the common full-rank form is handled.
            return None;
        }
        (pads, value)
    };
    if value != 0.0 || pads.len() % 2 != 0 || pads.len() < 6 {
        return None;
    }
    let rank = pads.len() / 2;
    if pads.iter().any(|&p| p < 0) || pads[0] != 0 || pads[1] != 0 {
        return None;
    }
    if pads[rank] != 0 || pads[rank + 1] != 0 {
        return None;
    }
    let out = n.output[0].as_str();
    if outputs.contains(out) {
        return None;
    }
    let convs = readers.get(out)?;
    if convs.is_empty() {
        return None;
    }
    for &(c, slot) in convs {
        let conv = &graph.node[c];
        if conv.op_type != "Conv" || !conv.domain.is_empty() || slot != 0 {
            return None;
        }
        match attr_str(conv, "auto_pad") {
            None | Some("NOTSET") | Some("VALID") | Some("") => {}
            Some(_) => return None,
        }
        if let Some(p) = attr_ints(conv, "pads") {
            if p.len() != 2 * (rank - 2) {
                return None;
            }
        }
    }
    let mut spatial = pads[2..rank].to_vec();
    spatial.extend_from_slice(&pads[rank + 2..]);
    Some(PadFold {
        pad: ix,
        source: n.input[0].clone(),
        spatial,
        convs: convs.iter().map(|&(c, _)| c).collect(),
    })
}

/// Applies the folds; returns how many `Pad`s were removed.
fn apply_pad_folds(graph: &mut pb::GraphProto, folds: &[PadFold]) -> usize {
    let mut dead = HashSet::new();
    for f in folds {
        for &c in &f.convs {
            let conv = &mut graph.node[c];
            let mut pads = attr_ints(conv, "pads").unwrap_or_else(|| vec![0; f.spatial.len()]);
            for (p, add) in pads.iter_mut().zip(&f.spatial) {
                *p += add;
            }
            conv.attribute
                .retain(|a| a.name != "pads" && a.name != "auto_pad");
            conv.attribute.push(pb::AttributeProto {
                name: "pads".into(),
                r#type: pb::attribute_proto::AttributeType::Ints as i32,
                ints: pads,
                ..Default::default()
            });
            conv.input[0] = f.source.clone();
        }
        dead.insert(f.pad);
    }
    let mut ix = 0;
    graph.node.retain(|_| {
        let keep = !dead.contains(&ix);
        ix += 1;
        keep
    });
    dead.len()
}

// ---------------------------------------------------------------------------------------------
// DFL head cut

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
/// [`crate::decode::yolov8_dfl`]'s decode with the standard anchor grid for `input_shape`.
fn plan_dfl_cut(graph: &pb::GraphProto, input_shape: &[usize], opset: i64) -> Option<DflCut> {
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
            let n = crate::decode::yolov8_dfl::anchor_count(w, h, levels);
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

/// `(height, width)` of an NCHW or NHWC batch-1 image input.
fn image_hw(shape: &[usize]) -> Option<(usize, usize)> {
    match *shape {
        [1, c, h, w] if c <= 4 => Some((h, w)),
        [1, h, w, c] if c <= 4 => Some((h, w)),
        _ => None,
    }
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
    use tract_onnx::prelude::*;
    let concat = &graph.node[region.concat];
    let mut sub = pb::GraphProto {
        name: "dfl-probe".into(),
        ..Default::default()
    };
    let needed: HashSet<&str> = region
        .nodes
        .iter()
        .flat_map(|&i| graph.node[i].input.iter().map(String::as_str))
        .collect();
    sub.initializer = graph
        .initializer
        .iter()
        .filter(|t| needed.contains(t.name.as_str()))
        .cloned()
        .collect();
    sub.node = graph
        .node
        .iter()
        .filter(|c| c.op_type == "Constant" && c.output.iter().any(|o| needed.contains(o.as_str())))
        .cloned()
        .chain(region.nodes.iter().map(|&i| graph.node[i].clone()))
        .collect();
    sub.input.push(float_input(start, &[1, 4 * bins, n]));
    sub.output.push(pb::ValueInfoProto {
        name: concat.input[0].clone(),
        ..Default::default()
    });
    let probe: Vec<f32> = (0..4 * bins * n)
        .map(|i| ((i.wrapping_mul(2654435761) >> 7) % 1000) as f32 / 125.0 - 4.0)
        .collect();
    let run = || -> TractResult<Tensor> {
        let model = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(sub.clone()),
            ..Default::default()
        };
        let input = Tensor::from_shape(&[1, 4 * bins, n], &probe)?;
        let plan = tract_onnx::onnx()
            .model_for_proto_model(&model)?
            .with_input_fact(0, f32::fact([1, 4 * bins, n]).into())?
            .into_optimized()?
            .into_runnable()?;
        Ok(plan.run(tvec![input.into()])?.remove(0).into_tensor())
    };
    let Ok(Ok(out)) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) else {
        return false;
    };
    let Ok(got) = out.to_plain_array_view::<f32>() else {
        return false;
    };
    if got.shape() != [1, 4, n] {
        return false;
    }
    let Some(grid) = crate::decode::yolov8_dfl::AnchorGrid::new(w, h, n) else {
        return false;
    };
    let mut probs = vec![0.0; bins];
    for j in 0..n {
        let dist = |side: usize, probs: &mut Vec<f32>| {
            crate::decode::yolov8_dfl::expectation(
                (0..bins).map(|k| probe[(side * bins + k) * n + j]),
                probs,
            )
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

/// A graph input of f32 values with a fixed shape.
fn float_input(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value as Dim, Dimension};
    const FLOAT: i32 = 1;
    let dim = shape
        .iter()
        .map(|&d| Dimension {
            value: Some(Dim::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(pb::TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Replaces the head's output by the raw distributions and the class scores.
fn apply_dfl_cut(graph: &mut pb::GraphProto, cut: &DflCut) {
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
