//! Reading ONNX protobuf graphs: who produces and reads each value, attributes, constants, and
//! pruning of dead nodes. Shared by the graph passes.

use std::collections::{HashMap, HashSet};

use tract_onnx::pb;

/// Who reads each value: `(node index, input slot)`.
pub(super) fn consumers(graph: &pb::GraphProto) -> HashMap<&str, Vec<(usize, usize)>> {
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
pub(super) fn producers(graph: &pb::GraphProto) -> HashMap<&str, usize> {
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

pub(super) fn graph_outputs(graph: &pb::GraphProto) -> HashSet<&str> {
    graph.output.iter().map(|o| o.name.as_str()).collect()
}

/// `(height, width)` of an NCHW or NHWC batch-1 image input.
pub(super) fn image_hw(shape: &[usize]) -> Option<(usize, usize)> {
    match *shape {
        [1, c, h, w] if c <= 4 => Some((h, w)),
        [1, h, w, c] if c <= 4 => Some((h, w)),
        _ => None,
    }
}

pub(super) fn attr<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

pub(super) fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

pub(super) fn attr_int(node: &pb::NodeProto, name: &str) -> Option<i64> {
    attr(node, name).map(|a| a.i)
}

pub(super) fn attr_str<'a>(node: &'a pb::NodeProto, name: &str) -> Option<&'a str> {
    attr(node, name).and_then(|a| std::str::from_utf8(&a.s).ok())
}

/// A constant tensor: dims and values (f32 or integers widened), from an initializer or a
/// `Constant` node.
#[derive(Debug, Clone)]
pub(super) struct Const {
    pub(super) dims: Vec<i64>,
    values: ConstValues,
}

#[derive(Debug, Clone)]
enum ConstValues {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Const {
    pub(super) fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            ConstValues::I64(v) => Some(v),
            ConstValues::F32(_) => None,
        }
    }

    /// Every value as f64, whatever the type.
    pub(super) fn as_f64(&self) -> Vec<f64> {
        match &self.values {
            ConstValues::F32(v) => v.iter().map(|&x| x as f64).collect(),
            ConstValues::I64(v) => v.iter().map(|&x| x as f64).collect(),
        }
    }
}

/// Reads f32, i64 and i32 tensors (raw little-endian or typed fields); `None` for anything else.
pub(super) fn read_tensor(t: &pb::TensorProto) -> Option<Const> {
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
pub(super) struct Constants<'g> {
    initializers: HashMap<&'g str, &'g pb::TensorProto>,
    nodes: HashMap<&'g str, &'g pb::TensorProto>,
}

impl<'g> Constants<'g> {
    pub(super) fn new(graph: &'g pb::GraphProto) -> Self {
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

    pub(super) fn get(&self, name: &str) -> Option<Const> {
        if name.is_empty() {
            return None;
        }
        let t = self
            .initializers
            .get(name)
            .or_else(|| self.nodes.get(name))?;
        read_tensor(t)
    }

    pub(super) fn is_const(&self, name: &str) -> bool {
        self.initializers.contains_key(name) || self.nodes.contains_key(name)
    }
}

/// Drops nodes none of whose outputs is read by a live node or a graph output (repeatedly), and
/// initializers nothing reads any more.
pub(super) fn prune_dead_nodes(graph: &mut pb::GraphProto) {
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
