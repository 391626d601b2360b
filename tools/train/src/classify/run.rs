//! The `classify` command: load, split, train, evaluate, plot, export, verify.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::Args;

use super::checkpoint::EpochStats;
use super::config::TrainConfig;
use super::data::{ColorMode, Dataset, Format, LoadSpec};
use super::eval::{evaluate_logits, predict_logits, Evaluation};
use super::export::{
    export_onnx, parity_inputs, tract_parity, vigia_agreement, write_card, Agreement,
};
use super::model::{load_weights, Arch, NetConfig};
use super::train::train;
use super::transfer::Pretrained;
use crate::common::args::{parse_wxh, CommandDefaults, OptimArgs, RunArgs};
use crate::common::parity::{Parity, PARITY_TOLERANCE};
use crate::common::plot;
use crate::common::run_dir::RunDir;

/// `classify`'s defaults in the shared option groups.
#[derive(Debug, Clone)]
pub struct ClassifyDefaults;

impl CommandDefaults for ClassifyDefaults {
    const LR: &'static str = "0.001";
    const SCHEDULE: &'static str = "constant";
    const SCHEDULE_HELP: &'static str = "Learning-rate schedule";
    const LR_STEP: &'static str = "5";
    const OUT: &'static str = "runs/train";
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
    /// Optimizer and learning-rate schedule.
    #[command(flatten)]
    pub optim: OptimArgs<ClassifyDefaults>,
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
    /// Run folder, export path, resume and device.
    #[command(flatten)]
    pub run: RunArgs<ClassifyDefaults>,
    /// Skip the vigia agreement check (held-out images as PNG files through vigia's classifier)
    #[arg(long)]
    pub no_agreement: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

fn parse_size(s: &str) -> std::result::Result<(usize, usize), String> {
    parse_wxh(s, "28x28", "a size in 1..=4096", |n| {
        (1..=4096).contains(&n)
    })
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
            optim: self.optim.settings(),
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
    let pretrained = args.init.as_deref().map(Pretrained::load).transpose()?;
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
    let run = RunDir::create(&args.run.out)?;
    let ckpt = run.checkpoint();
    let t0 = Instant::now();
    let trained = train(
        &cfg,
        &train_set,
        &val_set,
        args.run.options(&ckpt, !args.quiet),
        pretrained.as_ref(),
    )?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let final_weights = run.save_final(&trained.model)?;

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
    write_reports(&run, &trained.history, &eval, &ds.classes)?;
    let mut preds = String::from("image,label,burn_prediction\n");
    for (i, (l, p)) in val_set.labels.iter().zip(&eval.predictions).enumerate() {
        preds += &format!("{i:05}_label{l}.png,{l},{p}\n");
    }
    let preds_path = run.join("heldout-predictions.csv");
    std::fs::write(&preds_path, preds)
        .with_context(|| format!("cannot write {}", preds_path.display()))?;

    let onnx = run.onnx(args.run.export.as_deref());
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
        let dir = run.join("heldout-png");
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

/// Writes `history.csv`, `curves.png` and `confusion.png` into the run folder.
fn write_reports(
    run: &RunDir,
    history: &[EpochStats],
    eval: &Evaluation,
    classes: &[String],
) -> Result<()> {
    let p = run.write_history(
        "epoch,lr,train_loss,train_acc,val_loss,val_acc,seconds",
        history.iter().map(|s| {
            format!(
                "{},{},{:.6},{:.6},{:.6},{:.6},{:.3}",
                s.epoch, s.lr, s.train_loss, s.train_acc, s.val_loss, s.val_acc, s.seconds
            )
        }),
    )?;
    let col = |f: fn(&EpochStats) -> f64| history.iter().map(f).collect::<Vec<_>>();
    plot::curves(
        &run.join("curves.png"),
        "accuracy",
        &col(|s| s.train_loss),
        &col(|s| s.val_loss),
        &col(|s| s.train_acc),
        &col(|s| s.val_acc),
    )?;
    plot::confusion(&run.join("confusion.png"), &eval.confusion, classes)?;
    eprintln!(
        "vigia-train: wrote {}, curves.png and confusion.png in {}",
        p.file_name().unwrap_or_default().to_string_lossy(),
        run.path().display()
    );
    Ok(())
}
