//! Runs a region of an ONNX graph alone in tract on probe inputs, so that a pass can check that
//! its Rust replacement computes the same values before it cuts the region out.

use std::collections::HashSet;

use tract_onnx::pb;
use tract_onnx::prelude::*;

/// One probe input: the value's name, its shape and its values.
pub(super) struct ProbeInput<'a> {
    pub(super) name: &'a str,
    pub(super) shape: &'a [usize],
    pub(super) values: &'a [f32],
}

/// Runs the nodes `region` of `graph` (with the constants they read) on `inputs` and returns the
/// value `output`; `None` when tract cannot build or run the region (or panics doing so).
pub(super) fn run_region(
    graph: &pb::GraphProto,
    region: &[usize],
    inputs: &[ProbeInput],
    output: &str,
    opset: i64,
) -> Option<Tensor> {
    let needed: HashSet<&str> = region
        .iter()
        .flat_map(|&i| graph.node[i].input.iter().map(String::as_str))
        .collect();
    let sub = pb::GraphProto {
        name: "probe".into(),
        initializer: graph
            .initializer
            .iter()
            .filter(|t| needed.contains(t.name.as_str()))
            .cloned()
            .collect(),
        node: graph
            .node
            .iter()
            .filter(|c| {
                c.op_type == "Constant" && c.output.iter().any(|o| needed.contains(o.as_str()))
            })
            .cloned()
            .chain(region.iter().map(|&i| graph.node[i].clone()))
            .collect(),
        input: inputs
            .iter()
            .map(|i| float_input(i.name, i.shape))
            .collect(),
        output: vec![pb::ValueInfoProto {
            name: output.to_string(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let run = || -> TractResult<Tensor> {
        let model = pb::ModelProto {
            ir_version: 8,
            opset_import: vec![pb::OperatorSetIdProto {
                domain: String::new(),
                version: opset,
            }],
            graph: Some(sub),
            ..Default::default()
        };
        let mut model = tract_onnx::onnx().model_for_proto_model(&model)?;
        let mut values = tvec![];
        for (ix, i) in inputs.iter().enumerate() {
            model = model.with_input_fact(ix, f32::fact(i.shape).into())?;
            values.push(Tensor::from_shape(i.shape, i.values)?.into());
        }
        let plan = model.into_optimized()?.into_runnable()?;
        Ok(plan.run(values)?.remove(0).into_tensor())
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
        .ok()?
        .ok()
}

/// A graph input of f32 values with a fixed shape.
pub(super) fn float_input(name: &str, shape: &[usize]) -> pb::ValueInfoProto {
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

/// Deterministic probe values in `[lo, hi)`, fine-grained enough (2^24 levels) that ties are rare.
pub(super) fn probe_values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut state = seed | 1;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            lo + (hi - lo) * ((state >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}
