//! ONNX files: where the bytes come from, parsing, and static facts read without running them.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use tract_onnx::pb;
use tract_onnx::prelude::*;

use super::cache::content_digest;
use super::{chain, model_err};
use crate::error::{Error, Result};

/// Where the ONNX bytes come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A file on disk.
    File(PathBuf),
    /// Bytes compiled into the binary, with a display name.
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
}

impl ModelSource {
    /// Name used in messages: the path or the embedded model's name.
    pub fn display_name(&self) -> String {
        match self {
            ModelSource::File(p) => p.display().to_string(),
            ModelSource::Embedded { name, .. } => format!("{name} (embedded)"),
        }
    }

    /// The ONNX bytes.
    pub fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            ModelSource::File(p) => {
                let bytes = std::fs::read(p).map_err(|e| Error::Io {
                    path: p.clone(),
                    source: e,
                })?;
                Ok(bytes.into())
            }
            ModelSource::Embedded { bytes, .. } => Ok((*bytes).into()),
        }
    }
}

/// Static facts about a graph, read without running it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphSummary {
    /// Declared inputs: name and shape (symbolic dims as names, unknown as `?`).
    pub inputs: Vec<(String, Vec<String>)>,
    /// Declared outputs: name and shape.
    pub outputs: Vec<(String, Vec<String>)>,
    /// Count of nodes per ONNX operator type.
    pub op_histogram: BTreeMap<String, usize>,
    /// Number of weights stored as initializers or constants.
    pub parameters: u64,
    /// Default-domain opset version.
    pub opset: Option<i64>,
    /// Producer recorded in the file.
    pub producer: String,
    /// Operators tract cannot run.
    pub unsupported_ops: Vec<String>,
}

/// A parsed ONNX file, before any shape is fixed.
pub struct OnnxGraph {
    source: ModelSource,
    proto: pb::ModelProto,
    /// Content digest of the ONNX bytes (the model-cache key's first part).
    digest: u128,
}

impl OnnxGraph {
    /// Reads and parses the protobuf; errors name the file and say what is wrong.
    pub fn open(source: ModelSource) -> Result<Self> {
        let bytes = source.read()?;
        Self::parse(source, &bytes)
    }

    /// Parses `bytes`, already read from `source`.
    pub fn parse(source: ModelSource, bytes: &[u8]) -> Result<Self> {
        let name = source.display_name();
        if bytes.is_empty() {
            return Err(model_err(&name, "the file is empty"));
        }
        let proto = catch_unwind(AssertUnwindSafe(|| {
            tract_onnx::onnx().proto_model_for_read(&mut &bytes[..])
        }))
        .map_err(|_| model_err(&name, "the ONNX parser panicked on this file"))?
        .map_err(|e| {
            model_err(
                &name,
                &format!(
                    "not a readable ONNX model ({}); re-export it or check the file is complete",
                    chain(&e)
                ),
            )
        })?;
        match &proto.graph {
            Some(g) if !g.node.is_empty() => {}
            _ => return Err(model_err(&name, "the ONNX file holds no graph nodes")),
        }
        Ok(OnnxGraph {
            source,
            proto,
            digest: content_digest(bytes),
        })
    }

    /// Content digest of the ONNX bytes.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// Where the graph came from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The parsed protobuf, for engines that take ONNX bytes.
    pub(crate) fn proto(&self) -> &pb::ModelProto {
        &self.proto
    }

    fn graph(&self) -> &pb::GraphProto {
        // `open` refuses files without a graph.
        self.proto.graph.as_ref().expect("graph checked in open")
    }

    /// Inputs, outputs, operators and parameter count.
    pub fn summary(&self) -> GraphSummary {
        let graph = self.graph();
        let initializer_names: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializer_names.contains(i.name.as_str()))
            .map(|i| (i.name.clone(), value_dims(i)))
            .collect();
        let outputs = graph
            .output
            .iter()
            .map(|o| (o.name.clone(), value_dims(o)))
            .collect();
        let mut op_histogram = BTreeMap::new();
        for n in &graph.node {
            *op_histogram.entry(n.op_type.clone()).or_insert(0) += 1;
        }
        // Saturating: the dims of a damaged file can be anything.
        let count = |dims: &[i64]| {
            dims.iter()
                .fold(1u64, |n, d| n.saturating_mul((*d).max(0) as u64))
        };
        let mut parameters = graph
            .initializer
            .iter()
            .fold(0u64, |n, t| n.saturating_add(count(&t.dims)));
        for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
            for t in n.attribute.iter().filter_map(|a| a.t.as_ref()) {
                parameters = parameters.saturating_add(count(&t.dims));
            }
        }
        let opset = self
            .proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version);
        GraphSummary {
            inputs,
            outputs,
            op_histogram,
            parameters,
            opset,
            producer: format!(
                "{} {}",
                self.proto.producer_name, self.proto.producer_version
            )
            .trim()
            .to_string(),
            unsupported_ops: self.unsupported_ops(),
        }
    }

    /// ONNX operator types in the graph that tract has no implementation for.
    pub fn unsupported_ops(&self) -> Vec<String> {
        let onnx = tract_onnx::onnx();
        let mut missing: Vec<String> = self
            .graph()
            .node
            .iter()
            .filter(|n| !onnx.op_register.0.contains_key(&n.op_type))
            .map(|n| n.op_type.clone())
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// The declared shape of the first real input (unknown or symbolic dims are `None`).
    pub fn input_dims(&self) -> Vec<Option<usize>> {
        self.summary()
            .inputs
            .first()
            .map(|(_, d)| d.iter().map(|s| s.parse::<usize>().ok()).collect())
            .unwrap_or_default()
    }
}

fn value_dims(vi: &pb::ValueInfoProto) -> Vec<String> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let Some(pb::type_proto::Value::TensorType(t)) =
        vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return vec![];
    };
    t.shape
        .iter()
        .flat_map(|s| s.dim.iter())
        .map(|d| match &d.value {
            Some(Dim::DimValue(v)) => v.to_string(),
            Some(Dim::DimParam(p)) if !p.is_empty() => p.clone(),
            _ => "?".into(),
        })
        .collect()
}
