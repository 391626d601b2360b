//! `vigia-train detect`: read the dataset, letterbox, train, evaluate, export, verify in vigia.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use burn::tensor::Device;
use clap::{Args, ValueEnum};
use vigia::decode::DecodeParams;
use vigia::detector::Detector;
use vigia::model::Task;
use vigia::resolve::{load_model, LoadOptions};
use vigia::BBox;

use super::data::{read_coco, read_yolo, Augment, DetDataset, DetSet, MissingLabels, Sample};
use super::eval::{evaluate, EVAL_CONF, EVAL_MAX_DET, EVAL_NMS_IOU};
use super::export::{detector_parity, export_detector, write_detector_card, DetParity};
use super::metrics::{mean_average_precision, GroundTruth, MapReport, Prediction};
use super::model::{load_detector, DetNetConfig};
use super::train::{train_detector, DetEpochStats, DetTrainConfig};
use crate::common::args::{parse_wxh, CommandDefaults, OptimArgs, RunArgs};
use crate::common::card::SCALE;
use crate::common::parity::PARITY_TOLERANCE;
use crate::common::plot;
use crate::common::rng::Rng;
use crate::common::run_dir::RunDir;

/// `detect`'s defaults in the shared option groups.
#[derive(Debug, Clone)]
pub struct DetectDefaults;

impl CommandDefaults for DetectDefaults {
    const LR: &'static str = "0.002";
    const SCHEDULE: &'static str = "cosine";
    const SCHEDULE_HELP: &'static str = "Learning-rate schedule over epochs";
    const LR_STEP: &'static str = "10";
    const OUT: &'static str = "runs/detect";
}

/// Dataset layout of `vigia-train detect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DetFormat {
    /// COCO when DATA holds an `annotations/` folder, else YOLO txt.
    Auto,
    /// Ultralytics YOLO txt: `data.yaml` (or its folder), `images/` + mirrored `labels/`.
    Yolo,
    /// COCO JSON: DATA/annotations/instances_<split>.json and DATA/<split>/ images.
    Coco,
}

/// Arguments of `vigia-train detect`.
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// Dataset: a data.yaml (or the folder holding it), or a COCO folder
    #[arg(long)]
    pub data: PathBuf,
    /// Dataset layout
    #[arg(long, value_enum, default_value = "auto")]
    pub format: DetFormat,
    /// COCO training split (annotations/instances_<NAME>.json, images in <NAME>/)
    #[arg(long, default_value = "train2017")]
    pub coco_train: String,
    /// COCO validation split
    #[arg(long, default_value = "val2017")]
    pub coco_val: String,
    /// YOLO images without a label file: an error, or background (no object)
    #[arg(long, value_enum, default_value = "error")]
    pub missing_labels: MissingLabels,
    /// Network input WxH, multiples of 32 (frames are letterboxed into it)
    #[arg(long, default_value = "320x256", value_parser = parse_imgsz)]
    pub imgsz: (usize, usize),
    /// Channel multiplier of the network (stages of w, 2w, 4w, 8w, 8w channels)
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Optimizer and learning-rate schedule.
    #[command(flatten)]
    pub optim: OptimArgs<DetectDefaults>,
    /// Optimizer steps of linear learning-rate warm-up
    #[arg(long, default_value_t = 50)]
    pub warmup_steps: usize,
    /// Images per batch
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Epochs
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Seed (initialisation, shuffling, augmentation)
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Augmentation: probability of a horizontal flip
    #[arg(long, default_value_t = 0.5)]
    pub flip: f32,
    /// Augmentation: zoom by a random factor in [1 - s, 1 + s] with a random shift
    #[arg(long, default_value_t = 0.25)]
    pub scale_jitter: f32,
    /// Augmentation: brightness, contrast and saturation factors in [1 - c, 1 + c]
    #[arg(long, default_value_t = 0.3)]
    pub color_jitter: f32,
    /// Run folder, export path, resume and device.
    #[command(flatten)]
    pub run: RunArgs<DetectDefaults>,
    /// Skip the check of the export through vigia's detector on the validation images
    #[arg(long)]
    pub no_vigia_eval: bool,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

fn parse_imgsz(s: &str) -> std::result::Result<(usize, usize), String> {
    parse_wxh(s, "320x256", "a multiple of 32 in 64..=4096", |n| {
        (64..=4096).contains(&n) && n.is_multiple_of(32)
    })
}

impl DetectArgs {
    /// The training recipe these arguments describe for `classes` classes.
    pub fn config(&self, classes: usize) -> DetTrainConfig {
        DetTrainConfig {
            net: DetNetConfig {
                width: self.imgsz.0,
                height: self.imgsz.1,
                classes,
                base: self.width,
            },
            optim: self.optim.settings(),
            batch_size: self.batch_size,
            epochs: self.epochs,
            seed: self.seed,
            augment: Augment {
                flip: self.flip,
                scale: self.scale_jitter,
                color: self.color_jitter,
            },
            warmup_steps: self.warmup_steps,
        }
    }

    /// Reads the dataset in the chosen layout.
    pub fn dataset(&self) -> Result<DetDataset> {
        let coco = match self.format {
            DetFormat::Coco => true,
            DetFormat::Yolo => false,
            DetFormat::Auto => self.data.join("annotations").is_dir(),
        };
        if coco {
            read_coco(&self.data, &self.coco_train, &self.coco_val)
        } else {
            read_yolo(&self.data, self.missing_labels)
        }
        .with_context(|| format!("--data {}", self.data.display()))
    }
}

/// What a `detect` run produced.
#[derive(Debug)]
pub struct DetectReport {
    /// Class names.
    pub names: Vec<String>,
    /// Training and validation images used, and undecodable images skipped.
    pub images: (usize, usize, usize),
    /// Validation mAP@0.5 of the final weights (burn, input pixels).
    pub map: MapReport,
    /// Validation mAP@0.5 of the exported ONNX through vigia's detector (source pixels).
    pub vigia_map: Option<MapReport>,
    /// The exported ONNX.
    pub onnx: PathBuf,
    /// Its model card.
    pub card: PathBuf,
    /// burn vs tract outputs.
    pub parity: DetParity,
    /// Seconds of the training loop.
    pub train_seconds: f64,
    /// Per-epoch history.
    pub history: Vec<DetEpochStats>,
}

/// Runs `vigia-train detect`.
pub fn detect(args: &DetectArgs, command_line: &str) -> Result<DetectReport> {
    let ds = args.dataset()?;
    let cfg = args.config(ds.names.len());
    cfg.validate()?;
    let (w, h) = args.imgsz;
    let t_load = Instant::now();
    let train_set = DetSet::build(&ds.train, w, h)?;
    let val_set = DetSet::build(&ds.val, w, h)?;
    let skipped: Vec<&PathBuf> = train_set.skipped.iter().chain(&val_set.skipped).collect();
    let boxes = |s: &DetSet| s.items.iter().map(|i| i.boxes.len()).sum::<usize>();
    eprintln!(
        "vigia-train: {} classes ({}); {} train images / {} boxes, {} val images / {} boxes from {}{}; letterboxed to {w}x{h} in {:.1}s",
        ds.names.len(),
        ds.names.join(", "),
        train_set.len(),
        boxes(&train_set),
        val_set.len(),
        boxes(&val_set),
        args.data.display(),
        if skipped.is_empty() {
            String::new()
        } else {
            format!(
                " ({} undecodable image(s) skipped, first {})",
                skipped.len(),
                skipped[0].display()
            )
        },
        t_load.elapsed().as_secs_f64()
    );
    if val_set.is_empty() {
        bail!(
            "--data {}: the validation split has no image",
            args.data.display()
        );
    }
    let run = RunDir::create(&args.run.out)?;
    let ckpt = run.checkpoint();
    let t0 = Instant::now();
    let trained = train_detector(
        &cfg,
        &ds.names,
        &train_set,
        &val_set,
        args.run.options(&ckpt, !args.quiet),
    )?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let final_weights = run.save_final(&trained.model)?;

    // Evaluate the final weights on the CPU, loaded as they are exported.
    let cpu = Device::flex();
    let model = load_detector(&cfg.net, &final_weights, &cpu)?;
    let ev = evaluate(&model, &cfg.net, &val_set, &cpu, 8);
    eprintln!(
        "vigia-train: validation mAP@0.5 {:.4} ({} images); training took {:.1}s",
        ev.map.map,
        val_set.len(),
        train_seconds
    );
    write_history(&run, &trained.history)?;

    let onnx = run.onnx(args.run.export.as_deref());
    export_detector(&cfg.net, &final_weights, &onnx, command_line)?;
    let notes = format!(
        "{} train / {} val images from {}, seed {}, {} epochs; validation mAP@0.5 {:.4} (burn)",
        train_set.len(),
        val_set.len(),
        args.data.display(),
        args.seed,
        trained.history.len(),
        ev.map.map
    );
    let card = write_detector_card(&onnx, &cfg.net, &ds.names, &notes, command_line)?;
    let parity = detector_parity(
        &onnx,
        &final_weights,
        &cfg.net,
        &parity_inputs(&val_set, 4, args.seed),
    )?;
    eprintln!(
        "vigia-train: wrote {} and {}; burn vs tract on {} inputs: max abs error of logits {:.2e}, scores {:.2e}, boxes {:.2e} px ({:.2e} of the input side)",
        onnx.display(),
        card.display(),
        parity.inputs,
        parity.raw_abs_err,
        parity.score_abs_err,
        parity.box_abs_err,
        parity.box_norm_err
    );
    if parity.max_err() >= PARITY_TOLERANCE {
        bail!(
            "export parity failed for {}: burn and tract differ by {:.3e} (logits {:.2e}, scores {:.2e}, boxes / input side {:.2e}; tolerance {PARITY_TOLERANCE:e})",
            onnx.display(),
            parity.max_err(),
            parity.raw_abs_err,
            parity.score_abs_err,
            parity.box_norm_err
        );
    }
    let vigia_map = if args.no_vigia_eval {
        None
    } else {
        let m = vigia_map(&onnx, &ds.val, ds.names.len())?;
        eprintln!(
            "vigia-train: vigia's detector on the {} validation images (source pixels): mAP@0.5 {:.4}",
            ds.val.len(),
            m.map
        );
        Some(m)
    };
    Ok(DetectReport {
        names: ds.names.clone(),
        images: (train_set.len(), val_set.len(), skipped.len()),
        map: ev.map,
        vigia_map,
        onnx,
        card,
        parity,
        train_seconds,
        history: trained.history,
    })
}

/// Fixed parity inputs: the first `k` validation images (as the network sees them) and one
/// seeded noise image.
pub fn parity_inputs(set: &DetSet, k: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut out: Vec<Vec<f32>> = set
        .items
        .iter()
        .take(k)
        .map(|i| i.pixels.iter().map(|&p| p as f32 * SCALE).collect())
        .collect();
    out.push(Rng::new(seed).noise(3 * set.width * set.height));
    out
}

/// mAP@0.5 of the ONNX at `onnx` run by vigia's detector (its loader, preprocessing, decoder and
/// NMS) on `samples`, against their labels, in source pixels. Undecodable images are skipped.
pub fn vigia_map(onnx: &Path, samples: &[Sample], classes: usize) -> Result<MapReport> {
    let spec = onnx.to_string_lossy();
    let loaded = load_model(Some(&spec), Some(Task::Detect), &LoadOptions::default())
        .map_err(|e| anyhow::anyhow!("vigia cannot load {}: {e}", onnx.display()))?;
    let mut det = Detector::new(loaded);
    let params = DecodeParams {
        conf: EVAL_CONF,
        iou: EVAL_NMS_IOU,
        max_det: EVAL_MAX_DET,
        ..Default::default()
    };
    let (mut preds, mut gts) = (Vec::new(), Vec::new());
    for (i, s) in samples.iter().enumerate() {
        let Ok(img) = vigia::source::images::load_rgb(&s.image) else {
            continue;
        };
        let (iw, ih) = (img.width() as f32, img.height() as f32);
        let dets = det
            .detect(&img, &params)
            .map_err(|e| anyhow::anyhow!("vigia detect {}: {e}", s.image.display()))?;
        preds.extend(dets.iter().map(|d| Prediction {
            image: i,
            class: d.class_id,
            score: d.score,
            bbox: d.bbox,
        }));
        gts.extend(s.labels.iter().map(|l| {
            let [cx, cy, w, h] = l.cxcywh;
            GroundTruth {
                image: i,
                class: l.class,
                bbox: BBox::from_cxcywh(cx * iw, cy * ih, w * iw, h * ih),
            }
        }));
    }
    Ok(mean_average_precision(&preds, &gts, classes, 0.5))
}

/// Writes `history.csv` and `curves.png` (loss, mAP@0.5) into the run folder.
fn write_history(run: &RunDir, history: &[DetEpochStats]) -> Result<()> {
    run.write_history(
        "epoch,lr,train_loss,box_loss,obj_loss,cls_loss,val_loss,val_map50,seconds",
        history.iter().map(|s| {
            format!(
                "{},{},{:.6},{:.6},{:.6},{:.6},{:.6},{:.6},{:.3}",
                s.epoch,
                s.lr,
                s.train_loss,
                s.box_loss,
                s.obj_loss,
                s.cls_loss,
                s.val_loss,
                s.val_map50,
                s.seconds
            )
        }),
    )?;
    let col = |f: fn(&DetEpochStats) -> f64| history.iter().map(f).collect::<Vec<_>>();
    plot::curves(
        &run.join("curves.png"),
        "mAP@0.5",
        &col(|s| s.train_loss),
        &col(|s| s.val_loss),
        &[],
        &col(|s| s.val_map50),
    )
}
