//! ONNX export with burn-onnx, the model card, and the parity checks against vigia's tract path.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use burn_onnx::export::OnnxExporter;
use prost::Message;
use tract_onnx::pb::{ModelProto, StringStringEntryProto};

use crate::data::{write_pngs, Dataset};
use crate::model::{Net, NetConfig};
use crate::train::{load_weights, to_vec, SCALE};
use vigia::classifier::Classifier;
use vigia::model::{
    ColorOrder, InputSpec, Layout, ModelCard, OutputFamily, OutputSpec, Provenance, ResizeMode,
    Task,
};
use vigia::resolve::{load_model, LoadOptions};

/// Name of the exported graph's input.
pub const INPUT_NAME: &str = "input";
/// Name of the exported graph's output (logits).
pub const OUTPUT_NAME: &str = "logits";

/// Exports the weights in `weights` (a `.bpk` file) as a static `[1, C, H, W] -> [1, classes]`
/// ONNX graph of logits. The network is loaded fresh from the file: export captures the forward
/// pass on its own device and must not touch a module that keeps training.
pub fn export_onnx(net: &NetConfig, weights: &Path, out: &Path, producer: &str) -> Result<()> {
    let device = Device::flex();
    let model = load_weights(net, weights, &device)?.valid();
    let sample = Tensor::<4>::zeros([1, net.channels, net.height, net.width], &device);
    let onnx = OnnxExporter::new()
        .export(&model, sample, |m: &Net, x: Tensor<4>| m.forward(x))
        .map_err(|e| anyhow::anyhow!("ONNX export of {} failed: {e}", weights.display()))?;
    let bytes = rename_io(onnx.as_bytes(), producer, OUTPUT_NAME)
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

/// Writes the model card `<onnx stem>.toml` and the labels file next to the ONNX.
/// The files beside an exported ONNX: its stem and file name, the labels file (written here, one
/// name per line) and the ONNX bytes (for the card's checksum).
pub(crate) struct CardFiles {
    pub stem: String,
    pub file: String,
    pub dir: PathBuf,
    pub labels_name: String,
    pub bytes: Vec<u8>,
}

/// Writes `<stem>.labels.txt` next to `onnx` and reads the ONNX back.
pub(crate) fn card_files(onnx: &Path, names: &[String]) -> Result<CardFiles> {
    let name_of = |p: Option<&std::ffi::OsStr>| -> Result<String> {
        Ok(p.context("the ONNX path has no file name")?
            .to_string_lossy()
            .to_string())
    };
    let stem = name_of(onnx.file_stem())?;
    let file = name_of(onnx.file_name())?;
    let dir = onnx.parent().unwrap_or(Path::new("")).to_path_buf();
    let labels_name = format!("{stem}.labels.txt");
    let labels_path = dir.join(&labels_name);
    std::fs::write(&labels_path, names.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", labels_path.display()))?;
    let bytes = std::fs::read(onnx).with_context(|| format!("cannot read {}", onnx.display()))?;
    Ok(CardFiles {
        stem,
        file,
        dir,
        labels_name,
        bytes,
    })
}

pub fn write_card(
    onnx: &Path,
    net: &NetConfig,
    classes: &[String],
    notes: &str,
    source: &str,
) -> Result<PathBuf> {
    let CardFiles {
        stem,
        file,
        dir,
        labels_name,
        bytes,
    } = card_files(onnx, classes)?;
    let color = if net.channels == 1 {
        ColorOrder::Gray
    } else {
        ColorOrder::Rgb
    };
    let card = ModelCard {
        name: stem.clone(),
        task: Task::Classify,
        model: Some(file),
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
            labels: Some(labels_name),
            softmax: Some(true),
            num_classes: None,
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
        "# {stem}: {:?} classifier trained with vigia-train (burn), exported with burn-onnx.\n\
         # Input: pixel * scale (0..1), {} {}x{}; output: logits.\n{}",
        net.arch,
        if net.channels == 1 { "grey" } else { "RGB" },
        net.width,
        net.height,
        card.to_toml()
    );
    // The card must load back as vigia reads it.
    ModelCard::from_toml(&text, &path).context("the written model card does not parse")?;
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// SHA-256 of `bytes` as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Result of comparing burn's and tract's outputs.
#[derive(Debug, Clone, Copy)]
pub struct Parity {
    /// Inputs compared.
    pub inputs: usize,
    /// Largest absolute difference of any logit.
    pub max_abs_err: f32,
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
        Ok(to_vec(m.forward(x)))
    })
}

/// Runs each of `inputs` through `burn` and through the ONNX in vigia's engine (loaded for `task`
/// with its model card, as `vigia` loads it) and returns the largest absolute output difference.
pub fn engine_parity(
    onnx: &Path,
    task: Task,
    inputs: &[Vec<f32>],
    mut burn: impl FnMut(&[f32]) -> Result<Vec<f32>>,
) -> Result<Parity> {
    let tract = engine_outputs(onnx, task, inputs)?;
    let mut max_abs_err = 0f32;
    for (input, tract_out) in inputs.iter().zip(&tract) {
        let burn_out = burn(input)?;
        if tract_out.len() != burn_out.len() {
            bail!(
                "tract gives {} output values, burn {}",
                tract_out.len(),
                burn_out.len()
            );
        }
        for (a, b) in tract_out.iter().zip(&burn_out) {
            let d = (a - b).abs();
            max_abs_err = if d.is_nan() {
                f32::INFINITY
            } else {
                max_abs_err.max(d)
            };
        }
    }
    Ok(Parity {
        inputs: inputs.len(),
        max_abs_err,
    })
}

/// The first output of the ONNX, run by vigia's engine (loaded for `task` with its model card, as
/// `vigia` loads it), for each of `inputs`.
pub fn engine_outputs(onnx: &Path, task: Task, inputs: &[Vec<f32>]) -> Result<Vec<Vec<f32>>> {
    let spec = onnx.to_string_lossy();
    let mut loaded = load_model(Some(&spec), Some(task), &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("vigia cannot load {}: {e}", onnx.display()))?;
    let mut out = Vec::with_capacity(inputs.len());
    for (k, input) in inputs.iter().enumerate() {
        let engine = &mut loaded.engine;
        let n = engine.input_mut().len();
        if input.len() != n {
            bail!(
                "parity input {k} holds {} values, {} takes {n}",
                input.len(),
                onnx.display()
            );
        }
        engine.input_mut().copy_from_slice(input);
        engine
            .run()
            .map_err(|e| anyhow::anyhow!("tract run of {} failed: {e}", onnx.display()))?;
        let outs = engine
            .outputs()
            .map_err(|e| anyhow::anyhow!("reading outputs of {}: {e}", onnx.display()))?;
        out.push(
            outs.first()
                .context("the ONNX produced no output")?
                .iter()
                .copied()
                .collect(),
        );
    }
    Ok(out)
}

/// Fixed parity inputs: the first `k` samples of `ds` plus two seeded noise images.
pub fn parity_inputs(ds: &Dataset, k: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = (0..k.min(ds.len()))
        .map(|i| ds.sample(i).iter().map(|v| *v as f32 * SCALE).collect())
        .collect();
    let mut rng = crate::data::Rng::new(seed);
    for _ in 0..2 {
        out.push(
            (0..ds.sample_len())
                .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
                .collect(),
        );
    }
    out
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
