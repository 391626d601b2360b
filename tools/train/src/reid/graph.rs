//! The embedding graph: a pretrained backbone cut at a few feature maps, each pooled into
//! horizontal body stripes, concatenated, and (once trained) projected by a linear head.
//!
//! Built by editing the backbone's ONNX: no export tracing is involved, so the backbone's
//! weights are carried over exactly.

use std::collections::HashSet;

use anyhow::{bail, Context, Result};
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{dimension, Dimension};
use tract_onnx::pb::type_proto::{self, Value};
use tract_onnx::pb::{
    AttributeProto, ModelProto, NodeProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use tract_onnx::prelude::*;

/// Name of the embedding graph's output.
pub const OUTPUT_NAME: &str = "embedding";

/// A backbone cut at `cuts`, read for crops of `width` x `height`.
pub struct Backbone {
    proto: ModelProto,
    input: String,
    /// The cut tensors and their shapes `[1, C, H, W]` at this crop size.
    pub cuts: Vec<(String, [usize; 4])>,
    /// Stripes each feature map is pooled into.
    pub stripes: usize,
}

/// The linear head `y = x W + b` applied to the pooled features.
pub struct LinearHead {
    /// `[features, dim]`, row-major.
    pub weight: Vec<f32>,
    /// `[dim]`.
    pub bias: Vec<f32>,
    /// Output length.
    pub dim: usize,
}

impl Backbone {
    /// Reads `bytes` (an ONNX classifier such as EfficientNet-Lite0) and prepares it for crops of
    /// `width` x `height`, cut at the tensors named in `cuts` (`input` or the graph input's name
    /// stands for the normalized pixels). Every cut map's height must divide into `stripes`.
    pub fn new(
        bytes: &[u8],
        cuts: &[String],
        width: usize,
        height: usize,
        stripes: usize,
    ) -> Result<Self> {
        use prost::Message;
        if stripes == 0 {
            bail!("--stripes must be at least 1");
        }
        let mut proto = ModelProto::decode(bytes).context("the backbone is not a readable ONNX")?;
        let graph = proto
            .graph
            .as_mut()
            .context("the backbone ONNX has no graph")?;
        let initializers: HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input = graph
            .input
            .iter()
            .find(|i| !initializers.contains(i.name.as_str()))
            .context("the backbone has no image input")?
            .name
            .clone();
        let cuts: Vec<String> = cuts
            .iter()
            .map(|c| {
                if c == "input" {
                    input.clone()
                } else {
                    c.clone()
                }
            })
            .collect();
        let produced: HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(String::as_str))
            .collect();
        for c in &cuts {
            if *c != input && !produced.contains(c.as_str()) {
                bail!("--features: the backbone has no tensor named '{c}'");
            }
        }
        graph.value_info.clear();
        set_input_shape(graph, &input, &[1, 3, height as i64, width as i64])?;
        graph.output = cuts.iter().map(|c| value_info(c, None)).collect();
        prune(graph);
        let shapes = cut_shapes(&proto, width, height)
            .context("the backbone does not run at this crop size")?;
        let mut backbone_cuts = vec![];
        for (name, shape) in cuts.iter().zip(shapes) {
            let [n, c, h, w] = shape[..] else {
                bail!("--features: '{name}' has shape {shape:?}, not a [1, C, H, W] feature map");
            };
            if n != 1 || h % stripes != 0 {
                bail!(
                    "--features: '{name}' is {h} rows high at {width}x{height}, which does not \
                     divide into {stripes} stripes; change --crop or --stripes"
                );
            }
            backbone_cuts.push((name.clone(), [n, c, h, w]));
        }
        Ok(Backbone {
            proto,
            input,
            cuts: backbone_cuts,
            stripes,
        })
    }

    /// Length of the pooled feature vector.
    pub fn feature_len(&self) -> usize {
        self.cuts.iter().map(|(_, s)| s[1]).sum::<usize>() * self.stripes
    }

    /// The graph from crop to pooled features (`head = None`) or to the head's output, with
    /// `recipe` recorded in its metadata.
    pub fn graph(&self, head: Option<&LinearHead>, recipe: &str) -> Result<Vec<u8>> {
        use prost::Message;
        let mut proto = self.proto.clone();
        let graph = proto.graph.as_mut().context("no graph")?;
        let mut pooled = vec![];
        for (k, (name, [_, _, h, w])) in self.cuts.iter().enumerate() {
            let pool = format!("vigia_reid/stripes_{k}");
            let flat = format!("vigia_reid/flat_{k}");
            let rows = (h / self.stripes) as i64;
            graph.node.push(node(
                "AveragePool",
                &[name.as_str()],
                &pool,
                vec![
                    ints("kernel_shape", &[rows, *w as i64]),
                    ints("strides", &[rows, *w as i64]),
                ],
            ));
            graph.node.push(node(
                "Flatten",
                &[pool.as_str()],
                &flat,
                vec![int("axis", 1)],
            ));
            pooled.push(flat);
        }
        let features = "vigia_reid/features".to_string();
        let refs: Vec<&str> = pooled.iter().map(String::as_str).collect();
        graph
            .node
            .push(node("Concat", &refs, &features, vec![int("axis", 1)]));
        let dim = match head {
            None => {
                graph
                    .node
                    .push(node("Identity", &[features.as_str()], OUTPUT_NAME, vec![]));
                self.feature_len()
            }
            Some(h) => {
                let f = self.feature_len();
                if h.weight.len() != f * h.dim || h.bias.len() != h.dim {
                    bail!(
                        "the head holds {} weights and {} biases, expected {f} x {} and {}",
                        h.weight.len(),
                        h.bias.len(),
                        h.dim,
                        h.dim
                    );
                }
                let (w, b) = ("vigia_reid/head.weight", "vigia_reid/head.bias");
                graph.initializer.push(tensor(w, &[f, h.dim], &h.weight));
                graph.initializer.push(tensor(b, &[h.dim], &h.bias));
                graph.node.push(node(
                    "Gemm",
                    &[features.as_str(), w, b],
                    OUTPUT_NAME,
                    vec![],
                ));
                h.dim
            }
        };
        graph.output = vec![value_info(OUTPUT_NAME, Some(&[1, dim as i64]))];
        graph.name = "vigia_reid".into();
        prune(graph);
        proto.producer_name = "vigia-train".into();
        proto.producer_version = env!("CARGO_PKG_VERSION").into();
        proto.metadata_props.push(StringStringEntryProto {
            key: "vigia_train.recipe".into(),
            value: recipe.into(),
        });
        Ok(proto.encode_to_vec())
    }

    /// Name of the graph's image input.
    pub fn input_name(&self) -> &str {
        &self.input
    }
}

/// Shapes of the graph's outputs for a `[1, 3, height, width]` input, by tract's inference.
fn cut_shapes(proto: &ModelProto, width: usize, height: usize) -> Result<Vec<Vec<usize>>> {
    let model = tract_onnx::onnx()
        .model_for_proto_model(proto)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_input_fact(0, f32::fact([1, 3, height, width]).into())
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_typed()
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    (0..model.outputs.len())
        .map(|i| {
            let fact = model.output_fact(i).map_err(|e| anyhow::anyhow!("{e}"))?;
            fact.shape
                .as_concrete()
                .map(|s| s.to_vec())
                .context("an output shape depends on the input")
        })
        .collect()
}

/// Keeps only the nodes and initializers the graph's outputs depend on.
fn prune(graph: &mut tract_onnx::pb::GraphProto) {
    let mut needed: HashSet<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    let mut keep = vec![false; graph.node.len()];
    for (i, n) in graph.node.iter().enumerate().rev() {
        if n.output.iter().any(|o| needed.contains(o)) {
            keep[i] = true;
            needed.extend(n.input.iter().cloned());
        }
    }
    let mut k = keep.into_iter();
    graph.node.retain(|_| k.next().unwrap_or(false));
    graph.initializer.retain(|t| needed.contains(&t.name));
    graph.input.retain(|i| needed.contains(&i.name));
}

fn set_input_shape(
    graph: &mut tract_onnx::pb::GraphProto,
    input: &str,
    dims: &[i64],
) -> Result<()> {
    let i = graph
        .input
        .iter_mut()
        .find(|i| i.name == input)
        .context("no such input")?;
    *i = value_info(input, Some(dims));
    Ok(())
}

fn value_info(name: &str, dims: Option<&[i64]>) -> ValueInfoProto {
    let shape = dims.map(|d| TensorShapeProto {
        dim: d
            .iter()
            .map(|&v| Dimension {
                value: Some(dimension::Value::DimValue(v)),
                ..Default::default()
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape,
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        name: output.into(),
        op_type: op.into(),
        attribute,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Ints as i32,
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: AttributeType::Int as i32,
        i: v,
        ..Default::default()
    }
}

fn tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DataType::Float as i32,
        float_data: values.to_vec(),
        ..Default::default()
    }
}
