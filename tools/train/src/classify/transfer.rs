//! Transfer learning for the classifier CNN: pretrained backbone weights from a vigia-train
//! checkpoint or from an ONNX classifier that vigia-train exported, and the network a run starts
//! from.
//!
//! Only vigia-train's own CNN can be loaded: the convolutions `conv1`, `conv2` and the hidden
//! linear layer `fc1` are matched by name (`Cnn.conv1.weight`, ... in the ONNX; the module tree
//! in a checkpoint) and by shape; the last linear layer (`fc2`, the head) is always new.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use prost::Message;
use tract_onnx::pb::{tensor_proto::DataType, ModelProto, TensorProto};

use super::checkpoint::CheckpointState;
use super::config::TrainConfig;
use super::model::{load_weights, Arch, Cnn, Net, NetConfig, CNN_LAYERS};
use crate::common::checkpoint::CheckpointPaths;

/// Pretrained CNN parameters by name (`conv1.weight`, ..., `fc1.bias`), burn layout.
#[derive(Debug, Clone)]
pub struct Pretrained {
    /// Where they came from (named in every error).
    pub source: PathBuf,
    /// Name, shape, values.
    pub tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
}

impl Pretrained {
    /// Reads `path`: an `.onnx` exported by vigia-train, a checkpoint folder (`state.toml` +
    /// `model.bpk`), or a `.bpk` weights file inside a checkpoint folder or a run folder (whose
    /// `checkpoint/state.toml` describes the network).
    pub fn load(path: &Path) -> Result<Self> {
        if !path.exists() {
            bail!("--init {}: no such file or folder", path.display());
        }
        let is_onnx = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        if is_onnx {
            return Self::from_onnx(path);
        }
        let (state_file, weights) = if path.is_dir() {
            let p = CheckpointPaths::new(path);
            (p.state, p.model)
        } else {
            let dir = path.parent().unwrap_or(Path::new("."));
            let beside = CheckpointPaths::new(dir).state;
            let state = if beside.is_file() {
                beside
            } else {
                CheckpointPaths::new(&dir.join("checkpoint")).state
            };
            (state, path.to_path_buf())
        };
        if !state_file.is_file() {
            bail!(
                "--init {}: not an .onnx file and no vigia-train checkpoint state found ({} is missing)",
                path.display(),
                state_file.display()
            );
        }
        let state = CheckpointState::read(&state_file)?;
        let net = &state.config.net;
        if net.arch != Arch::Cnn {
            bail!(
                "--init {}: the checkpoint holds a {:?} network; only the CNN can be transferred",
                path.display(),
                net.arch
            );
        }
        let model = load_weights(net, &weights, &Device::flex())?;
        let Net::Cnn(cnn) = model else {
            bail!("--init {}: not a CNN checkpoint", path.display());
        };
        Ok(Pretrained {
            source: path.to_path_buf(),
            tensors: cnn
                .backbone_tensors()
                .into_iter()
                .map(|(n, s, v)| (n.to_string(), s, v))
                .collect(),
        })
    }

    /// Reads the initializers `Cnn.conv1.weight` ... `Cnn.fc1.bias` of an ONNX classifier that
    /// vigia-train exported.
    pub fn from_onnx(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let model = ModelProto::decode(bytes.as_slice())
            .with_context(|| format!("--init {}: not a readable ONNX model", path.display()))?;
        let graph = model
            .graph
            .with_context(|| format!("--init {}: the ONNX has no graph", path.display()))?;
        let by_name: HashMap<&str, &TensorProto> = graph
            .initializer
            .iter()
            .map(|t| (t.name.as_str(), t))
            .collect();
        let mut tensors = Vec::new();
        for layer in CNN_LAYERS {
            for part in ["weight", "bias"] {
                let name = format!("{layer}.{part}");
                let key = format!("Cnn.{name}");
                let Some(t) = by_name.get(key.as_str()) else {
                    if layer == "fc1" {
                        continue;
                    }
                    bail!(
                        "--init {}: no initializer `{key}`: only classifiers exported by vigia-train's CNN can be loaded",
                        path.display()
                    );
                };
                let (shape, values) = floats(t)
                    .with_context(|| format!("--init {}: initializer `{key}`", path.display()))?;
                tensors.push((name, shape, values));
            }
        }
        Ok(Pretrained {
            source: path.to_path_buf(),
            tensors,
        })
    }

    /// Loads the pretrained layers into `cnn` (built for `net`): the convolutions must match in
    /// shape; `fc1` is loaded when it matches, else stays fresh. Returns the network and the
    /// names of the layers it loaded.
    pub fn apply(&self, cnn: Cnn, net: &NetConfig, device: &Device) -> Result<(Cnn, Vec<String>)> {
        let expected = net.backbone_shapes();
        let find = |name: &str| self.tensors.iter().find(|(n, _, _)| n == name);
        let mut chosen: Vec<(&str, Vec<usize>, Vec<f32>)> = Vec::new();
        let mut loaded = Vec::new();
        for layer in CNN_LAYERS {
            let mut parts = Vec::new();
            let mut mismatch = None;
            for part in ["weight", "bias"] {
                let name = format!("{layer}.{part}");
                let want = &expected
                    .iter()
                    .find(|(n, _)| *n == name)
                    .context("unknown layer")?
                    .1;
                match find(&name) {
                    Some((_, shape, v))
                        if shape == want && v.len() == want.iter().product::<usize>() =>
                    {
                        parts.push((name, shape.clone(), v.clone()))
                    }
                    Some((_, shape, _)) => {
                        mismatch = mismatch.or(Some(format!(
                            "`{name}` is {shape:?}, this network needs {want:?}"
                        )))
                    }
                    None => mismatch = mismatch.or(Some(format!("`{name}` is missing"))),
                }
            }
            match mismatch {
                None => {
                    for (name, s, v) in parts {
                        let n: &'static str = expected
                            .iter()
                            .find(|(n, _)| *n == name)
                            .map(|(n, _)| *n)
                            .unwrap_or("");
                        chosen.push((n, s, v));
                    }
                    loaded.push(layer.to_string());
                }
                Some(why) if layer == "fc1" => {
                    eprintln!(
                        "vigia-train: --init {}: fc1 not loaded ({why}); it starts fresh",
                        self.source.display()
                    );
                }
                Some(why) => bail!(
                    "--init {}: the architecture does not match: {why} (check --conv-channels, --image-size and --color against the pretrained network)",
                    self.source.display()
                ),
            }
        }
        Ok((cnn.with_tensors(&chosen, device), loaded))
    }
}

/// The network a fresh run starts from: `init`'s pretrained layers when given.
pub fn initial_model(cfg: &TrainConfig, init: Option<&Pretrained>, device: &Device) -> Result<Net> {
    let fresh = cfg.net.init(device);
    let Some(pre) = init else {
        return Ok(fresh);
    };
    let Net::Cnn(cnn) = fresh else {
        bail!(
            "--init {}: only the CNN (--arch cnn) can start from pretrained weights",
            pre.source.display()
        );
    };
    let (cnn, loaded) = pre.apply(cnn, &cfg.net, device)?;
    if cfg.freeze > loaded.len() {
        bail!(
            "--freeze {} needs {} pretrained layers, {} provides {}",
            cfg.freeze,
            cfg.freeze,
            pre.source.display(),
            loaded.join(", ")
        );
    }
    eprintln!(
        "vigia-train: started from {} ({}; new {}-class head)",
        pre.source.display(),
        loaded.join(", "),
        cfg.net.classes
    );
    Ok(Net::Cnn(cnn))
}

/// Shape and `f32` values of an ONNX tensor (raw or typed storage).
fn floats(t: &TensorProto) -> Result<(Vec<usize>, Vec<f32>)> {
    if t.data_type != DataType::Float as i32 {
        bail!("data type {} is not float32", t.data_type);
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|d| usize::try_from(*d).context("negative dimension"))
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    let values: Vec<f32> = if !t.raw_data.is_empty() {
        if t.raw_data.len() != 4 * n {
            bail!("{} bytes of raw data for shape {shape:?}", t.raw_data.len());
        }
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    } else {
        t.float_data.clone()
    };
    if values.len() != n {
        bail!("{} values for shape {shape:?}", values.len());
    }
    Ok((shape, values))
}
