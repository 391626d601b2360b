//! ONNX export with burn-onnx: trace a forward pass, name the graph's input and output, record
//! the recipe.

use std::path::Path;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::Tensor;
use burn_onnx::export::{ExportOutput, OnnxExporter};
use prost::Message;
use tract_onnx::pb::{ModelProto, StringStringEntryProto};

/// Name of every exported graph's input.
pub const INPUT_NAME: &str = "input";

/// Traces `forward` of `model` on `sample` and writes the graph to `out`, renamed by [`rename_io`].
pub fn export_graph<M: Module, O: ExportOutput>(
    model: &M,
    sample: Tensor<4>,
    forward: impl FnOnce(&M, Tensor<4>) -> O,
    weights: &Path,
    out: &Path,
    producer: &str,
    output: &str,
) -> Result<()> {
    let onnx = OnnxExporter::new()
        .export(model, sample, forward)
        .map_err(|e| anyhow::anyhow!("ONNX export of {} failed: {e}", weights.display()))?;
    let bytes = rename_io(onnx.as_bytes(), producer, output)
        .with_context(|| format!("rewriting the exported graph for {}", out.display()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))
}

/// Renames the single input and output to [`INPUT_NAME`] / `output` and records the producer.
pub fn rename_io(bytes: &[u8], producer: &str, output: &str) -> Result<Vec<u8>> {
    let mut m = ModelProto::decode(bytes).context("the exporter wrote an unreadable ONNX")?;
    let g = m.graph.as_mut().context("the exported ONNX has no graph")?;
    if g.input.len() != 1 || g.output.len() != 1 {
        bail!(
            "expected one input and one output, the graph has {} and {}",
            g.input.len(),
            g.output.len()
        );
    }
    let (old_in, old_out) = (g.input[0].name.clone(), g.output[0].name.clone());
    g.input[0].name = INPUT_NAME.into();
    g.output[0].name = output.into();
    for node in &mut g.node {
        for name in node.input.iter_mut().chain(node.output.iter_mut()) {
            if *name == old_in {
                *name = INPUT_NAME.into();
            } else if *name == old_out {
                *name = output.into();
            }
        }
    }
    g.name = "vigia_train".into();
    m.producer_name = "vigia-train".into();
    m.producer_version = env!("CARGO_PKG_VERSION").into();
    m.metadata_props.push(StringStringEntryProto {
        key: "vigia_train.recipe".into(),
        value: producer.into(),
    });
    Ok(m.encode_to_vec())
}
