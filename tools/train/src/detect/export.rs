//! The detector's ONNX export (`[1, 3, H, W] -> [1, 4 + C, N]`, the runtime's `yolov8` family),
//! its model card and the parity check against vigia's tract engine.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use burn_onnx::export::OnnxExporter;
use vigia::model::{ModelCard, OutputFamily, OutputSpec, Task};

use super::data::input_spec;
use super::model::{decode, load_detector, DetNetConfig, YoloNet};
use super::train::DetCheckpointState;
use crate::common::card::CardFiles;
use crate::common::checkpoint::{export_notes, CheckpointPaths};
use crate::common::onnx::export_graph;
use crate::common::parity::{engine_outputs, max_abs_diff, Parity, PARITY_TOLERANCE};
use crate::common::rng::Rng;
use crate::common::tensor::host;

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
    export_graph(
        &model,
        sample,
        move |m: &YoloNet, x: Tensor<4>| m.forward(x, &cfg),
        weights,
        out,
        producer,
        DETECT_OUTPUT_NAME,
    )
}

/// Writes the model card `<onnx stem>.toml` (family `yolov8`, letterbox) and the labels file.
pub fn write_detector_card(
    onnx: &Path,
    net: &DetNetConfig,
    names: &[String],
    notes: &str,
    source: &str,
) -> Result<PathBuf> {
    let files = CardFiles::new(onnx, names)?;
    let card = ModelCard {
        name: files.stem.clone(),
        task: Task::Detect,
        model: Some(files.file.clone()),
        input: input_spec(net.width, net.height),
        output: OutputSpec {
            family: OutputFamily::Yolov8,
            labels: Some(files.labels_name.clone()),
            softmax: None,
            num_classes: Some(net.classes),
            match_threshold: None,
        },
        provenance: files.provenance(source, notes),
    };
    let header = format!(
        "# {}: YOLO-style detector trained with vigia-train (burn), exported with burn-onnx.\n\
         # Input: RGB {}x{} letterboxed (grey 114), pixel / 255; output [1, 4 + {}, {}]: cx, cy, w, h\n\
         # in input pixels, then sigmoid(objectness) * sigmoid(class) per class.\n",
        files.stem,
        net.width,
        net.height,
        net.classes,
        net.cells(),
    );
    files.write_card(&header, &card)
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
            .max(max_abs_diff(&raw[k], &host(burn_raw.clone()))?);
        let burn_out = host(decode(burn_raw, net));
        let t = &decoded[k];
        p.box_abs_err = p.box_abs_err.max(max_abs_diff(
            &t[..4 * n.min(t.len() / 4)],
            &burn_out[..4 * n.min(burn_out.len() / 4)],
        )?);
        p.score_abs_err = p.score_abs_err.max(max_abs_diff(
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

/// `vigia-train export` of detector checkpoint `dir`: ONNX + card at `out`, checked with tract.
pub fn export_checkpoint(
    dir: &Path,
    state: &DetCheckpointState,
    best: bool,
    out: &Path,
    command_line: &str,
) -> Result<Parity> {
    let p = CheckpointPaths::new(dir);
    let net = &state.config.net;
    let weights = p.weights(best);
    export_detector(net, weights, out, command_line)?;
    let notes = export_notes(weights, state.epochs_done);
    write_detector_card(out, net, &state.names, &notes, command_line)?;
    let mut rng = Rng::new(7);
    let n = 3 * net.width * net.height;
    let inputs: Vec<Vec<f32>> = (0..2).map(|_| rng.noise(n)).collect();
    let parity = detector_parity(out, weights, net, &inputs)?;
    if parity.max_err() >= PARITY_TOLERANCE {
        anyhow::bail!(
            "export parity failed: burn and tract differ by {:.3e} ({parity:?})",
            parity.max_err()
        );
    }
    Ok(Parity {
        inputs: parity.inputs,
        max_abs_err: parity.max_err(),
    })
}
