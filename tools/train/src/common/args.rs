//! Command-line groups that `classify` and `detect` both flatten in: the optimizer and schedule
//! ([`OptimArgs`]) and the run folder, export path, resume and device ([`RunArgs`]).

use std::fmt::Debug;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use clap::{Args, ValueEnum};

use super::fit::RunOptions;
use super::optim::{OptimSettings, OptimizerKind, Schedule};

// Strings, not typed values: clap's `default_value_t` caches one value per field for every `D`.
/// The defaults and help texts in which the commands sharing these groups differ.
pub trait CommandDefaults: Debug + Clone {
    /// Default of `--lr`.
    const LR: &'static str;
    /// Default of `--schedule`.
    const SCHEDULE: &'static str;
    /// Help of `--schedule`.
    const SCHEDULE_HELP: &'static str;
    /// Default of `--lr-step`.
    const LR_STEP: &'static str;
    /// Default of `--out`.
    const OUT: &'static str;
}

/// Optimizer and learning-rate schedule options.
#[derive(Debug, Clone, Args)]
pub struct OptimArgs<D: CommandDefaults> {
    /// Optimizer
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Learning rate
    #[arg(long, default_value = D::LR)]
    pub lr: f64,
    /// Momentum (SGD, RMSProp)
    #[arg(long, default_value = "0.9")]
    pub momentum: f64,
    /// L2 weight decay
    #[arg(long, default_value = "0")]
    pub weight_decay: f64,
    // Help from `D`: the commands word it differently.
    #[arg(long, value_enum, default_value = D::SCHEDULE, help = D::SCHEDULE_HELP)]
    pub schedule: Schedule,
    /// Epochs between step decays (--schedule step)
    #[arg(long, default_value = D::LR_STEP)]
    pub lr_step: usize,
    /// Step-decay factor (--schedule step)
    #[arg(long, default_value = "0.5")]
    pub lr_gamma: f64,
    #[arg(skip)]
    defaults: PhantomData<D>,
}

impl<D: CommandDefaults> OptimArgs<D> {
    /// The settings these options describe.
    pub fn settings(&self) -> OptimSettings {
        OptimSettings {
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.schedule,
            lr_step: self.lr_step,
            lr_gamma: self.lr_gamma,
        }
    }
}

/// Run folder, export path, resume and training device options.
#[derive(Debug, Clone, Args)]
pub struct RunArgs<D: CommandDefaults> {
    /// Run folder: checkpoints, plots, metrics
    #[arg(long, default_value = D::OUT)]
    pub out: PathBuf,
    /// ONNX to write (default: OUT/model.onnx); its model card and labels go next to it
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Resume from a checkpoint folder (OUT/checkpoint of an earlier run)
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Training device
    #[arg(long, value_enum, default_value = "flex")]
    pub device: DeviceKind,
    #[arg(skip)]
    defaults: PhantomData<D>,
}

impl<D: CommandDefaults> RunArgs<D> {
    /// Options of a training run that checkpoints into `checkpoint`.
    pub fn options<'a>(&'a self, checkpoint: &'a Path, progress: bool) -> RunOptions<'a> {
        RunOptions {
            device: self.device.device(),
            checkpoint: Some(checkpoint),
            resume: self.resume.as_deref(),
            progress,
        }
    }
}

/// Where training runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// burn's pure-Rust CPU backend.
    Flex,
    /// The first NVIDIA GPU (built with `--features cuda`).
    #[cfg(feature = "cuda")]
    Cuda,
    /// The default wgpu adapter (built with `--features wgpu`).
    #[cfg(feature = "wgpu")]
    Wgpu,
}

impl DeviceKind {
    /// The burn device.
    pub fn device(self) -> Device {
        match self {
            DeviceKind::Flex => Device::flex(),
            #[cfg(feature = "cuda")]
            DeviceKind::Cuda => Device::cuda(0),
            #[cfg(feature = "wgpu")]
            DeviceKind::Wgpu => Device::wgpu(Default::default()),
        }
    }
}

/// Parses `WxH`, each side accepted by `ok`; errors show `example` and what a side must be.
pub fn parse_wxh(
    s: &str,
    example: &str,
    want: &str,
    ok: impl Fn(usize) -> bool,
) -> Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WxH (e.g. {example})"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| ok(*n))
            .ok_or_else(|| format!("`{v}` in `{s}` is not {want}"))
    };
    Ok((p(w)?, p(h)?))
}
