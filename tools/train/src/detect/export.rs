//! The detector's ONNX export (`[1, 3, H, W] -> [1, 4 + C, N]`, the runtime's `yolov8` family),
//! its model card and the parity check against vigia's tract engine.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use burn_onnx::export::OnnxExporter;
use vigia::model::{ModelCard, OutputFamily, OutputSpec, Provenance, Task};

use super::data::input_spec;
use super::model::{DetNetConfig, YoloNet};
use super::train::load_detector;
use crate::export::{card_files, engine_outputs, rename_io, sha256_hex, CardFiles};

/// Name of the exported detector's output (Ultralytics' name).
pub const DETECT_OUTPUT_NAME: &str = "output0";

/// Exports the weights in `weights` (a `.bpk` file) as a static ONNX graph with the decode
/// inside. The network is loaded fresh from the file (export must not touch a training module).
pub fn export_detector(
    net: &DetNetConfig,
    weights: &Path,
    out: &Path,
    producer: &str,
) -> Result<()> {
    let device = Device::flex();
    let model = load_detector(net, weights, &device)?.valid();
    let sample = Tensor::<4>::zeros([1, 3, net.height, net.width], &device);
    let cfg = net.clone();
    let onnx = OnnxExporter::new()
        .export(&model, sample, move |m: &YoloNet, x: Tensor<4>| {
            m.forward(x, &cfg)
        })
        .map_err(|e| anyhow::anyhow!("ONNX export of {} failed: {e}", weights.display()))?;
    let bytes = rename_io(onnx.as_bytes(), producer, DETECT_OUTPUT_NAME)
        .with_context(|| format!("rewriting the exported graph for {}", out.display()))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))
}

/// Writes the model card `<onnx stem>.toml` (family `yolov8`, letterbox) and the labels file.
pub fn write_detector_card(
    onnx: &Path,
    net: &DetNetConfig,
    names: &[String],
    notes: &str,
    source: &str,
) -> Result<PathBuf> {
    let CardFiles {
        stem,
        file,
        dir,
        labels_name,
        bytes,
    } = card_files(onnx, names)?;
    let card = ModelCard {
        name: stem.clone(),
        task: Task::Detect,
        model: Some(file),
        input: input_spec(net.width, net.height),
        output: OutputSpec {
            family: OutputFamily::Yolov8,
            labels: Some(labels_name),
            softmax: None,
            num_classes: Some(net.classes),
        },
        provenance: Provenance {
            license: Some("Apache-2.0".into()),
            source: Some(source.into()),
            notes: Some(notes.into()),
            sha256: Some(sha256_hex(&bytes)),
        },
    };
    let path = dir.join(format!("{stem}.toml"));
    let text = format!(
        "# {stem}: YOLO-style detector trained with vigia-train (burn), exported with burn-onnx.\n\
         # Input: RGB {}x{} letterboxed (grey 114), pixel / 255; output [1, 4 + {}, {}]: cx, cy, w, h\n\
         # in input pixels, then sigmoid(objectness) * sigmoid(class) per class.\n{}",
        net.width,
        net.height,
        net.classes,
        net.cells(),
        card.to_toml()
    );
    ModelCard::from_toml(&text, &path).context("the written model card does not parse")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// burn vs vigia's engine on the exported detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetParity {
    /// Inputs compared.
    pub inputs: usize,
    /// Largest difference of the raw head outputs (logits), from a second export of the graph
    /// without the decode.
    pub raw_abs_err: f32,
    /// Largest difference of a class score (0..1).
    pub score_abs_err: f32,
    /// Largest difference of a box value in input pixels.
    pub box_abs_err: f32,
    /// The same divided by the longer input side (normalised box coordinates).
    pub box_norm_err: f32,
}

impl DetParity {
    /// The figure held against the tolerance: logits, scores and normalised boxes.
    pub fn max_err(&self) -> f32 {
        self.raw_abs_err
            .max(self.score_abs_err)
            .max(self.box_norm_err)
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> Result<f32> {
    if a.len() != b.len() {
        anyhow::bail!("tract gives {} output values, burn {}", a.len(), b.len());
    }
    Ok(a.iter().zip(b).fold(0f32, |m, (x, y)| {
        let d = (x - y).abs();
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    }))
}

fn host3(t: Tensor<3>) -> Vec<f32> {
    t.into_data_as::<f32>()
        .as_slice::<f32>()
        .map(|s| s.to_vec())
        .unwrap_or_default()
}

/// Compares `model` (burn, CPU, weights from `weights`) with the ONNX at `onnx` in vigia's engine
/// on fixed inputs (pixel / 255, `3 * H * W` each): the decoded output, and the raw head through a
/// second export without the decode (written next to `onnx` as `<stem>.raw.onnx`, then removed).
pub fn detector_parity(
    onnx: &Path,
    weights: &Path,
    net: &DetNetConfig,
    inputs: &[Vec<f32>],
) -> Result<DetParity> {
    let device = Device::flex();
    let m = load_detector(net, weights, &device)?.valid();
    let decoded = engine_outputs(onnx, Task::Detect, inputs)?;
    // The raw head: same weights, the graph without the decode.
    let raw_path = onnx.with_extension("raw.onnx");
    let sample = Tensor::<4>::zeros([1, 3, net.height, net.width], &device);
    let raw_model = load_detector(net, weights, &device)?.valid();
    let raw_onnx = OnnxExporter::new()
        .export(&raw_model, sample, |m: &YoloNet, x: Tensor<4>| {
            m.forward_raw(x)
        })
        .map_err(|e| anyhow::anyhow!("ONNX export of the raw head failed: {e}"))?;
    std::fs::write(&raw_path, raw_onnx.as_bytes())
        .with_context(|| format!("cannot write {}", raw_path.display()))?;
    let raw = tract_raw(&raw_path, inputs);
    let _ = std::fs::remove_file(&raw_path);
    let raw = raw?;
    let n = net.cells();
    let side = net.width.max(net.height) as f32;
    let mut p = DetParity {
        inputs: inputs.len(),
        raw_abs_err: 0.0,
        score_abs_err: 0.0,
        box_abs_err: 0.0,
        box_norm_err: 0.0,
    };
    for (k, input) in inputs.iter().enumerate() {
        let x = Tensor::<4>::from_data(
            TensorData::new(input.clone(), [1, 3, net.height, net.width]),
            &device,
        );
        let burn_raw = m.forward_raw(x);
        p.raw_abs_err = p
            .raw_abs_err
            .max(max_diff(&raw[k], &host3(burn_raw.clone()))?);
        let burn_out = host3(super::model::decode(burn_raw, net));
        let t = &decoded[k];
        p.box_abs_err = p.box_abs_err.max(max_diff(
            &t[..4 * n.min(t.len() / 4)],
            &burn_out[..4 * n.min(burn_out.len() / 4)],
        )?);
        p.score_abs_err = p.score_abs_err.max(max_diff(
            t.get(4 * n..).unwrap_or_default(),
            burn_out.get(4 * n..).unwrap_or_default(),
        )?);
    }
    p.box_norm_err = p.box_abs_err / side;
    Ok(p)
}

/// The raw-head graph's output for each input, through tract directly (it has no model card).
fn tract_raw(path: &Path, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    use tract_onnx::prelude::*;
    let model = tract_onnx::onnx()
        .model_for_path(path)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| anyhow::anyhow!("tract cannot load {}: {e}", path.display()))?;
    let fact = model
        .model()
        .input_fact(0)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let shape: Vec<usize> = fact
        .shape
        .as_concrete()
        .context("the raw graph has no fixed input shape")?
        .to_vec();
    let mut out = Vec::new();
    for input in inputs {
        let t = tract_ndarray::ArrayD::from_shape_vec(shape.clone(), input.clone())
            .context("parity input of the wrong size")?;
        let r = model
            .run(tvec!(Tensor::from(t).into()))
            .map_err(|e| anyhow::anyhow!("tract run of {} failed: {e}", path.display()))?;
        let v = r[0]
            .to_plain_array_view::<f32>()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .iter()
            .copied()
            .collect();
        out.push(v);
    }
    Ok(out)
}
