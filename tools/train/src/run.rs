//! The `classify` and `export` commands: load, split, train, evaluate, plot, export, verify.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::module::Module;
use burn::tensor::Device;
use clap::{Args, ValueEnum};

use crate::data::{ColorMode, Dataset, Format, LoadSpec};
use crate::export::{
    export_onnx, parity_inputs, tract_parity, vigia_agreement, write_card, Agreement, Parity,
};
use crate::model::{Arch, NetConfig};
use crate::train::{
    evaluate_logits, load_weights, predict_logits, train, CheckpointPaths, CheckpointState,
    Evaluation, OptimizerKind, RunOptions, Schedule, TrainConfig,
};

/// Largest logit difference between burn and tract that the export accepts.
pub const PARITY_TOLERANCE: f32 = 1e-4;

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

/// Arguments of `vigia-train classify`.
#[derive(Debug, Clone, Args)]
pub struct ClassifyArgs {
    /// Dataset: a CSV(.gz) file, an MNIST idx file or folder, or a folder of class folders
    #[arg(long)]
    pub data: PathBuf,
    /// Dataset layout (auto: from the path)
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Number of classes for CSV and idx labels (folders: one class per sub-folder)
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
    /// Image size WxH for CSV rows and folder images (e.g. 28x28)
    #[arg(long, default_value = "28x28", value_parser = parse_size)]
    pub image_size: (usize, usize),
    /// Colour mode of the images
    #[arg(long, value_enum, default_value = "gray")]
    pub color: ColorMode,
    /// Network
    #[arg(long, value_enum, default_value = "cnn")]
    pub arch: Arch,
    /// Output channels of the two convolutions (CNN)
    #[arg(long, default_value = "32,64", value_parser = parse_pair)]
    pub conv_channels: [usize; 2],
    /// Width of the hidden fully connected layer
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    /// Dropout probability before the last layer
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Optimizer
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerKind,
    /// Learning rate
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Momentum (SGD, RMSProp)
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// L2 weight decay
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Learning-rate schedule
    #[arg(long, value_enum, default_value = "constant")]
    pub schedule: Schedule,
    /// Epochs between step decays (--schedule step)
    #[arg(long, default_value_t = 5)]
    pub lr_step: usize,
    /// Step-decay factor (--schedule step)
    #[arg(long, default_value_t = 0.5)]
    pub lr_gamma: f64,
    /// Samples per batch
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Epochs
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Seed (initialisation, split, shuffling, dropout, augmentation)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fraction of the data held out for validation
    #[arg(long, default_value_t = 0.2)]
    pub val_split: f64,
    /// Early stopping: epochs without a lower validation loss (0 = off)
    #[arg(long, default_value_t = 0)]
    pub patience: usize,
    /// Augmentation: random translation of training images by up to N pixels
    #[arg(long, default_value_t = 0)]
    pub shift: usize,
    /// Keep only these classes (indices, e.g. 5,6,7,8,9); labels are re-indexed in this order
    #[arg(long, value_delimiter = ',')]
    pub only_classes: Vec<usize>,
    /// Train on at most K samples per class (after the split; the held-out set stays whole)
    #[arg(long)]
    pub per_class_limit: Option<usize>,
    /// Start from a pretrained CNN: a vigia-train checkpoint folder or .bpk, or an ONNX it exported
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Freeze the first N CNN layers (order: conv1, conv2, fc1) so training leaves them unchanged
    #[arg(long, default_value_t = 0)]
    pub freeze: usize,
    /// Run folder: checkpoints, plots, metrics
    #[arg(long, default_value = "runs/train")]
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
    /// Skip the vigia agreement check (held-out images as PNG files through vigia's classifier)
    #[arg(long)]
    pub no_agreement: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("`{s}` is not WxH (e.g. 28x28)"))?;
    let p = |v: &str| {
        v.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=4096).contains(n))
            .ok_or_else(|| format!("`{v}` in `{s}` is not a size in 1..=4096"))
    };
    Ok((p(w)?, p(h)?))
}

fn parse_pair(s: &str) -> std::result::Result<[usize; 2], String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| {
            x.trim()
                .parse::<usize>()
                .map_err(|_| format!("`{x}` is not a number"))
        })
        .collect::<std::result::Result<_, _>>()?;
    match v[..] {
        [a, b] => Ok([a, b]),
        _ => Err(format!(
            "`{s}` is not two comma-separated numbers (e.g. 32,64)"
        )),
    }
}

/// What a `classify` run produced.
#[derive(Debug)]
pub struct ClassifyReport {
    /// Held-out evaluation of the final model (burn).
    pub eval: Evaluation,
    /// The exported ONNX.
    pub onnx: PathBuf,
    /// Its model card.
    pub card: PathBuf,
    /// burn vs tract logits.
    pub parity: Parity,
    /// burn vs `vigia classify` on the held-out images, unless skipped.
    pub agreement: Option<Agreement>,
    /// Wall-clock seconds of the training loop.
    pub train_seconds: f64,
    /// Mean training loss of the first and last epoch.
    pub first_last_loss: (f64, f64),
}

impl ClassifyArgs {
    /// The training recipe these arguments describe, for a dataset of this shape.
    pub fn config(&self, ds: &Dataset) -> TrainConfig {
        TrainConfig {
            net: NetConfig {
                arch: self.arch,
                channels: ds.channels,
                height: ds.height,
                width: ds.width,
                classes: ds.classes.len(),
                conv: self.conv_channels,
                hidden: self.hidden,
                dropout: self.dropout,
            },
            optimizer: self.optimizer,
            lr: self.lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
            schedule: self.schedule,
            lr_step: self.lr_step,
            lr_gamma: self.lr_gamma,
            batch_size: self.batch_size,
            epochs: self.epochs,
            seed: self.seed,
            patience: self.patience,
            shift: self.shift,
            freeze: self.freeze,
        }
    }
}

/// Runs `vigia-train classify`.
pub fn classify(args: &ClassifyArgs, command_line: &str) -> Result<ClassifyReport> {
    let mut ds = Dataset::load(&LoadSpec {
        path: args.data.clone(),
        format: args.format,
        classes: args.classes,
        size: args.image_size,
        color: args.color,
    })?;
    if !args.only_classes.is_empty() {
        ds = ds.select_classes(&args.only_classes)?;
    }
    let cfg = args.config(&ds);
    cfg.validate()?;
    let pretrained = args
        .init
        .as_deref()
        .map(crate::transfer::Pretrained::load)
        .transpose()?;
    let (mut train_set, val_set) = ds.split(args.val_split, args.seed)?;
    if let Some(k) = args.per_class_limit {
        if k == 0 {
            bail!("--per-class-limit must be at least 1");
        }
        train_set = train_set.limit_per_class(k);
    }
    eprintln!(
        "vigia-train: {} samples of {}x{}x{} in {} classes from {}{}; {} train / {} held out (seed {})",
        ds.len(),
        ds.width,
        ds.height,
        ds.channels,
        ds.classes.len(),
        args.data.display(),
        if ds.skipped > 0 {
            format!(" ({} undecodable file(s) skipped)", ds.skipped)
        } else {
            String::new()
        },
        train_set.len(),
        val_set.len(),
        args.seed
    );
    if val_set.is_empty() {
        bail!("the validation split is empty: raise --val-split");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let ckpt = args.out.join("checkpoint");
    let device = args.device.device();
    let t0 = Instant::now();
    let trained = train(
        &cfg,
        &train_set,
        &val_set,
        RunOptions {
            device: device.clone(),
            checkpoint: Some(&ckpt),
            resume: args.resume.as_deref(),
            progress: !args.quiet,
            init: pretrained.as_ref(),
        },
    )?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let final_weights = args.out.join("final.bpk");
    trained
        .model
        .clone()
        .save_file(&final_weights)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", final_weights.display()))?;

    // Evaluate the final weights on the CPU, as exported.
    let cpu = Device::flex();
    let model = load_weights(&cfg.net, &final_weights, &cpu)?;
    let logits = predict_logits(&model, &val_set, &cpu, 256);
    let eval = evaluate_logits(&logits, &val_set.labels, cfg.net.classes);
    eprintln!(
        "vigia-train: held-out accuracy {:.2}% ({} of {}), loss {:.4}; training took {:.1}s",
        eval.accuracy * 100.0,
        (eval.accuracy * val_set.len() as f64).round(),
        val_set.len(),
        eval.loss,
        train_seconds
    );
    write_reports(&args.out, &trained.history, &eval, &ds.classes)?;
    let mut preds = String::from("image,label,burn_prediction\n");
    for (i, (l, p)) in val_set.labels.iter().zip(&eval.predictions).enumerate() {
        preds += &format!("{i:05}_label{l}.png,{l},{p}\n");
    }
    let preds_path = args.out.join("heldout-predictions.csv");
    std::fs::write(&preds_path, preds)
        .with_context(|| format!("cannot write {}", preds_path.display()))?;

    let onnx = args
        .export
        .clone()
        .unwrap_or_else(|| args.out.join("model.onnx"));
    export_onnx(&cfg.net, &final_weights, &onnx, command_line)?;
    let notes = format!(
        "{} samples from {} split {}/{} with seed {}; held-out accuracy {:.2}% (burn), {} epochs",
        ds.len(),
        args.data.file_name().unwrap_or_default().to_string_lossy(),
        train_set.len(),
        val_set.len(),
        args.seed,
        eval.accuracy * 100.0,
        trained.history.len()
    );
    let card = write_card(&onnx, &cfg.net, &ds.classes, &notes, command_line)?;
    let parity = tract_parity(
        &onnx,
        &model,
        &cfg.net,
        &parity_inputs(&val_set, 16, args.seed),
    )?;
    eprintln!(
        "vigia-train: wrote {} and {}; burn vs tract on {} inputs: max abs error {:.2e}",
        onnx.display(),
        card.display(),
        parity.inputs,
        parity.max_abs_err
    );
    if parity.max_abs_err >= PARITY_TOLERANCE {
        bail!(
            "export parity failed: burn and tract logits differ by {:.3e} (tolerance {PARITY_TOLERANCE:e})",
            parity.max_abs_err
        );
    }
    let agreement = if args.no_agreement {
        None
    } else {
        let dir = args.out.join("heldout-png");
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        let a = vigia_agreement(&onnx, &val_set, &eval.predictions, &dir)?;
        eprintln!(
            "vigia-train: vigia classify on {} held-out PNGs ({}): {} agree with burn ({:.2}%), vigia accuracy {:.2}%",
            a.images,
            dir.display(),
            a.agree,
            100.0 * a.agree as f64 / a.images.max(1) as f64,
            a.vigia_accuracy * 100.0
        );
        Some(a)
    };
    let h = &trained.history;
    Ok(ClassifyReport {
        eval,
        onnx,
        card,
        parity,
        agreement,
        train_seconds,
        first_last_loss: (
            h.first().map(|s| s.train_loss).unwrap_or(f64::NAN),
            h.last().map(|s| s.train_loss).unwrap_or(f64::NAN),
        ),
    })
}

/// Writes `history.csv`, `curves.png` and `confusion.png` into `out`.
fn write_reports(
    out: &Path,
    history: &[crate::train::EpochStats],
    eval: &Evaluation,
    classes: &[String],
) -> Result<()> {
    let mut csv = String::from("epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds\n");
    for s in history {
        csv += &format!(
            "{},{},{:.6},{:.6},{:.6},{:.6},{:.3}\n",
            s.epoch, s.lr, s.train_loss, s.train_acc, s.val_loss, s.val_acc, s.seconds
        );
    }
    let p = out.join("history.csv");
    std::fs::write(&p, csv).with_context(|| format!("cannot write {}", p.display()))?;
    let col = |f: fn(&crate::train::EpochStats) -> f64| history.iter().map(f).collect::<Vec<_>>();
    crate::plot::curves(
        &out.join("curves.png"),
        &col(|s| s.train_loss),
        &col(|s| s.val_loss),
        &col(|s| s.train_acc),
        &col(|s| s.val_acc),
    )?;
    crate::plot::confusion(&out.join("confusion.png"), &eval.confusion, classes)?;
    eprintln!(
        "vigia-train: wrote {}, curves.png and confusion.png in {}",
        p.file_name().unwrap_or_default().to_string_lossy(),
        out.display()
    );
    Ok(())
}

/// Arguments of `vigia-train export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Checkpoint folder (RUN/checkpoint)
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Export the best-validation weights instead of the latest
    #[arg(long)]
    pub best: bool,
    /// ONNX to write; the model card and labels go next to it
    #[arg(long)]
    pub out: PathBuf,
    /// Class names, one per line (default: 0..N-1)
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

/// Runs `vigia-train export`: checkpoint weights to ONNX + card, checked against tract.
pub fn export(args: &ExportArgs, command_line: &str) -> Result<Parity> {
    let p = CheckpointPaths::new(&args.checkpoint);
    if let Ok(det) = crate::detect::train::DetCheckpointState::read(&args.checkpoint) {
        return export_detector_checkpoint(args, &det, command_line);
    }
    let state = CheckpointState::read(&p.state)?;
    let net = &state.config.net;
    let weights = if args.best { &p.best } else { &p.model };
    let classes: Vec<String> = match &args.labels {
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
            args.labels
                .as_deref()
                .unwrap_or(Path::new("labels"))
                .display(),
            classes.len(),
            net.classes
        );
    }
    export_onnx(net, weights, &args.out, command_line)?;
    let notes = format!(
        "exported from {} after {} epochs",
        weights.display(),
        state.epochs_done
    );
    write_card(&args.out, net, &classes, &notes, command_line)?;
    let cpu = Device::flex();
    let model = load_weights(net, weights, &cpu)?;
    let mut rng = crate::data::Rng::new(7);
    let n = net.channels * net.height * net.width;
    let inputs: Vec<Vec<f32>> = (0..4)
        .map(|_| {
            (0..n)
                .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
                .collect()
        })
        .collect();
    let parity = tract_parity(&args.out, &model, net, &inputs)?;
    if parity.max_abs_err >= PARITY_TOLERANCE {
        bail!(
            "export parity failed: burn and tract logits differ by {:.3e}",
            parity.max_abs_err
        );
    }
    Ok(parity)
}

/// `vigia-train export` of a detector checkpoint (`vigia-train detect`'s): ONNX + card, parity.
fn export_detector_checkpoint(
    args: &ExportArgs,
    state: &crate::detect::train::DetCheckpointState,
    command_line: &str,
) -> Result<Parity> {
    use crate::detect::export::{detector_parity, export_detector, write_detector_card};
    let p = CheckpointPaths::new(&args.checkpoint);
    let net = &state.config.net;
    let weights = if args.best { &p.best } else { &p.model };
    if args.labels.is_some() {
        bail!("--labels: a detector checkpoint carries its class names");
    }
    export_detector(net, weights, &args.out, command_line)?;
    let notes = format!(
        "exported from {} after {} epochs",
        weights.display(),
        state.epochs_done
    );
    write_detector_card(&args.out, net, &state.names, &notes, command_line)?;
    let mut rng = crate::data::Rng::new(7);
    let n = 3 * net.width * net.height;
    let inputs: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            (0..n)
                .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
                .collect()
        })
        .collect();
    let parity = detector_parity(&args.out, weights, net, &inputs)?;
    if parity.max_err() >= PARITY_TOLERANCE {
        bail!(
            "export parity failed: burn and tract differ by {:.3e} ({parity:?})",
            parity.max_err()
        );
    }
    Ok(Parity {
        inputs: parity.inputs,
        max_abs_err: parity.max_err(),
    })
}
