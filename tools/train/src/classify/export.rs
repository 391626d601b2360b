//! The classifier's ONNX export (`[1, C, H, W] -> [1, classes]` logits), its model card, and the
//! checks against vigia: tract parity and `vigia classify` agreement.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use vigia::classifier::Classifier;
use vigia::model::{
    ColorOrder, InputSpec, Layout, ModelCard, OutputFamily, OutputSpec, ResizeMode, Task,
};
use vigia::resolve::{load_model, LoadOptions};

use super::checkpoint::CheckpointState;
use super::data::{write_pngs, Dataset};
use super::model::{load_weights, Net, NetConfig};
use crate::common::card::{CardFiles, SCALE};
use crate::common::checkpoint::{export_notes, CheckpointPaths};
use crate::common::onnx::{export_graph, INPUT_NAME};
use crate::common::parity::{engine_parity, Parity, PARITY_TOLERANCE};
use crate::common::rng::Rng;
use crate::common::tensor::host;

/// Name of the exported graph's output (logits).
pub const OUTPUT_NAME: &str = "logits";

/// Exports the weights in `weights` (a `.bpk` file) as a static `[1, C, H, W] -> [1, classes]`
/// ONNX graph of logits. The network is loaded fresh from the file: export captures the forward
/// pass on its own device and must not touch a module that keeps training.
pub fn export_onnx(net: &NetConfig, weights: &Path, out: &Path, producer: &str) -> Result<()> {
    let device = Device::flex();
    let model = load_weights(net, weights, &device)?.valid();
    let sample = Tensor::<4>::zeros([1, net.channels, net.height, net.width], &device);
    export_graph(
        &model,
        sample,
        |m: &Net, x: Tensor<4>| m.forward(x),
        weights,
        out,
        producer,
        OUTPUT_NAME,
    )
}

/// Writes the model card `<onnx stem>.toml` and the labels file next to the ONNX.
pub fn write_card(
    onnx: &Path,
    net: &NetConfig,
    classes: &[String],
    notes: &str,
    source: &str,
) -> Result<PathBuf> {
    let files = CardFiles::new(onnx, classes)?;
    let color = if net.channels == 1 {
        ColorOrder::Gray
    } else {
        ColorOrder::Rgb
    };
    let card = ModelCard {
        name: files.stem.clone(),
        task: Task::Classify,
        model: Some(files.file.clone()),
        input: InputSpec {
            name: Some(INPUT_NAME.into()),
            layout: Layout::Nchw,
            width: net.width as u32,
            height: net.height as u32,
            color,
            scale: SCALE,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize: ResizeMode::Stretch,
            pad_value: 0,
        },
        output: OutputSpec {
            family: OutputFamily::Classification,
            labels: Some(files.labels_name.clone()),
            softmax: Some(true),
            num_classes: None,
            match_threshold: None,
        },
        provenance: files.provenance(source, notes),
    };
    let header = format!(
        "# {}: {:?} classifier trained with vigia-train (burn), exported with burn-onnx.\n\
         # Input: pixel * scale (0..1), {} {}x{}; output: logits.\n",
        files.stem,
        net.arch,
        if net.channels == 1 { "grey" } else { "RGB" },
        net.width,
        net.height,
    );
    files.write_card(&header, &card)
}

/// Runs fixed inputs through `model` (burn, CPU) and through the ONNX in vigia's tract engine
/// (loaded with its model card, as `vigia` loads it) and compares the logits.
pub fn tract_parity(
    onnx: &Path,
    model: &Net,
    net: &NetConfig,
    inputs: &[Vec<f32>],
) -> Result<Parity> {
    let device = Device::flex();
    let m = model.valid().fork(&device);
    let shape = [1, net.channels, net.height, net.width];
    engine_parity(onnx, Task::Classify, inputs, |input| {
        let x = Tensor::<4>::from_data(TensorData::new(input.to_vec(), shape), &device);
        Ok(host(m.forward(x)))
    })
}

/// Fixed parity inputs: the first `k` samples of `ds` plus two seeded noise images.
pub fn parity_inputs(ds: &Dataset, k: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = (0..k.min(ds.len()))
        .map(|i| ds.sample(i).iter().map(|v| *v as f32 * SCALE).collect())
        .collect();
    let mut rng = Rng::new(seed);
    for _ in 0..2 {
        out.push(rng.noise(ds.sample_len()));
    }
    out
}

/// `vigia-train export` of classifier checkpoint `dir`: ONNX + card at `out`, checked with tract.
pub fn export_checkpoint(
    dir: &Path,
    best: bool,
    labels: Option<&Path>,
    out: &Path,
    command_line: &str,
) -> Result<Parity> {
    let p = CheckpointPaths::new(dir);
    let state = CheckpointState::read(&p.state)?;
    let net = &state.config.net;
    let weights = p.weights(best);
    let classes: Vec<String> = match labels {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}", f.display()))?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => (0..net.classes).map(|c| c.to_string()).collect(),
    };
    if classes.len() != net.classes {
        bail!(
            "{} names {} classes, the network has {}",
            labels.unwrap_or(Path::new("labels")).display(),
            classes.len(),
            net.classes
        );
    }
    export_onnx(net, weights, out, command_line)?;
    let notes = export_notes(weights, state.epochs_done);
    write_card(out, net, &classes, &notes, command_line)?;
    let cpu = Device::flex();
    let model = load_weights(net, weights, &cpu)?;
    let mut rng = Rng::new(7);
    let n = net.channels * net.height * net.width;
    let inputs: Vec<Vec<f32>> = (0..4).map(|_| rng.noise(n)).collect();
    let parity = tract_parity(out, &model, net, &inputs)?;
    if parity.max_abs_err >= PARITY_TOLERANCE {
        bail!(
            "export parity failed: burn and tract logits differ by {:.3e}",
            parity.max_abs_err
        );
    }
    Ok(parity)
}

/// Agreement of `vigia classify` (image files through vigia's loader, preprocessing and tract)
/// with burn's predictions.
#[derive(Debug, Clone)]
pub struct Agreement {
    /// Images compared.
    pub images: usize,
    /// Images where both predict the same class.
    pub agree: usize,
    /// Accuracy of vigia's predictions against the labels.
    pub vigia_accuracy: f64,
}

/// Writes `ds` as PNG files into `dir`, classifies each file with vigia's classifier and
/// compares with `burn_pred` (burn's prediction per sample).
pub fn vigia_agreement(
    onnx: &Path,
    ds: &Dataset,
    burn_pred: &[usize],
    dir: &Path,
) -> Result<Agreement> {
    let files = write_pngs(ds, dir)?;
    let spec = onnx.to_string_lossy();
    let loaded = load_model(Some(&spec), Some(Task::Classify), &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("vigia cannot load {}: {e}", onnx.display()))?;
    let mut classifier = Classifier::new(loaded);
    let (mut agree, mut correct) = (0, 0);
    for (i, f) in files.iter().enumerate() {
        let img = vigia::source::images::load_rgb(f)
            .map_err(|e| anyhow::anyhow!("vigia cannot read {}: {e}", f.display()))?;
        let top = classifier
            .classify(&img, 1)
            .map_err(|e| anyhow::anyhow!("vigia classify {}: {e}", f.display()))?;
        let p = top
            .first()
            .map(|c| c.class_id)
            .context("no class returned")?;
        agree += (p == burn_pred[i]) as usize;
        correct += (p == ds.labels[i] as usize) as usize;
    }
    Ok(Agreement {
        images: files.len(),
        agree,
        vigia_accuracy: correct as f64 / files.len().max(1) as f64,
    })
}
