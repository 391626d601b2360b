//! `vigia-train autolabel`: a teacher detector, run by the vigia runtime exactly as `vigia detect`
//! runs it, labels the frames of a video or an image folder; the result is an Ultralytics YOLO-txt
//! dataset (`images/{train,val}`, `labels/{train,val}`, `data.yaml`) for training a smaller,
//! scene-specific student.
//!
//! Held-out frames come from the end of the source (the last `--val-fraction` of the frames kept),
//! so that the near-duplicate neighbours of training frames do not leak into validation. When the
//! source does not say how many frames it has, every fifth block of 50 kept frames is held out.

use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;
use indicatif::{ProgressBar, ProgressStyle};
use vigia::decode::DecodeParams;
use vigia::detector::Detector;
use vigia::model::Task;
use vigia::resolve::{load_model, LoadOptions};
use vigia::sink::labels::YoloTxtWriter;
use vigia::source::{open_source, FrameSource, SourceOptions};
use vigia::Detection;

/// Kept frames per block when the frame count is unknown (one block in five is held out).
const BLOCK: u64 = 50;

/// Arguments of `vigia-train autolabel`.
#[derive(Debug, Clone, Args)]
pub struct AutolabelArgs {
    /// Teacher detector: model card, ONNX file or bundled name (default: vigia's person detector)
    #[arg(long)]
    pub teacher: Option<String>,
    /// Frames to label: a video file or an image folder/glob (as `vigia detect --source`)
    #[arg(long)]
    pub source: String,
    /// Dataset folder to write (images/, labels/, data.yaml)
    #[arg(long)]
    pub out: PathBuf,
    /// Teacher classes to keep, by name or id; they become classes 0.. of the dataset in this order
    #[arg(long, default_value = "person")]
    pub classes: String,
    /// Teacher score threshold: boxes below it are not labels
    #[arg(long, default_value_t = 0.5)]
    pub conf: f32,
    /// NMS IoU threshold of the teacher
    #[arg(long, default_value_t = 0.45)]
    pub iou: f32,
    /// Label every Nth frame of a video
    #[arg(long, default_value_t = 5)]
    pub every: u64,
    /// Stop after this many source frames
    #[arg(long)]
    pub max_frames: Option<u64>,
    /// Fraction of the kept frames held out for validation (taken from the end of the source)
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Teacher input size (square), overriding its card
    #[arg(long)]
    pub imgsz: Option<u32>,
    /// JPEG quality of the written frames
    #[arg(long, default_value_t = 95)]
    pub quality: u8,
    /// No progress bar
    #[arg(long)]
    pub quiet: bool,
}

/// What a run wrote.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct AutolabelSummary {
    /// Source frames read (every frame, also those skipped by `--every`).
    pub frames_read: u64,
    /// Frames written to images/train and images/val.
    pub train_images: u64,
    pub val_images: u64,
    /// Boxes written to labels/train and labels/val.
    pub train_boxes: u64,
    pub val_boxes: u64,
    /// Frames the source could not decode (skipped).
    pub corrupt_frames: u64,
    /// Dataset class names, index order.
    pub names: Vec<String>,
}

/// Which split a kept frame goes to.
fn is_val(kept_index: u64, expected_kept: Option<u64>, val_fraction: f64) -> bool {
    if val_fraction <= 0.0 {
        return false;
    }
    match expected_kept {
        Some(n) => {
            let first_val = ((n as f64) * (1.0 - val_fraction)).round() as u64;
            kept_index >= first_val
        }
        None => {
            let period = (1.0 / val_fraction).round().max(1.0) as u64;
            (kept_index / BLOCK) % period == period - 1
        }
    }
}

/// `data.yaml` for Ultralytics-style trainers (relative paths; `path: .` is the dataset folder).
fn data_yaml(names: &[String], teacher: &str, source: &str) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| format!("'{}'", n.replace('\'', "''")))
        .collect();
    format!(
        "# Labelled by vigia-train autolabel: teacher {teacher}, source {source}\n\
         path: .\ntrain: images/train\nval: images/val\nnc: {}\nnames: [{}]\n",
        names.len(),
        quoted.join(", ")
    )
}

fn write_jpeg(path: &Path, image: &RgbImage, quality: u8) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot write {}", path.display()))?;
    let mut w = BufWriter::new(file);
    JpegEncoder::new_with_quality(&mut w, quality.clamp(1, 100))
        .encode_image(image)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Runs `vigia-train autolabel`.
pub fn autolabel(args: &AutolabelArgs) -> Result<AutolabelSummary> {
    if args.every == 0 {
        bail!("--every must be at least 1");
    }
    if !(0.0..1.0).contains(&args.val_fraction) {
        bail!(
            "--val-fraction must be in [0, 1), got {}",
            args.val_fraction
        );
    }
    if !(0.0..=1.0).contains(&args.conf) {
        bail!("--conf must be in [0, 1], got {}", args.conf);
    }
    let model = load_model(
        args.teacher.as_deref(),
        Some(Task::Detect),
        &LoadOptions {
            imgsz: args.imgsz,
            ..Default::default()
        },
    )
    .with_context(|| {
        format!(
            "cannot load the teacher {}",
            args.teacher
                .as_deref()
                .unwrap_or("(default person detector)")
        )
    })?;
    let teacher_name = model.card.name.clone();
    let mut detector = Detector::new(model);
    let class_ids = detector
        .labels()
        .ids_of(&args.classes)
        .map_err(|reason| anyhow::anyhow!("--classes: {reason}"))?;
    let names: Vec<String> = class_ids
        .iter()
        .map(|&id| detector.labels().name(id))
        .collect();
    let params = DecodeParams {
        conf: args.conf,
        iou: args.iou,
        classes: Some(class_ids.clone()),
        ..Default::default()
    };

    let mut source = open_source(&args.source, &SourceOptions::default())
        .with_context(|| format!("--source {}", args.source))?;
    let info = source.info().clone();
    let total = match (info.frames, args.max_frames) {
        (Some(f), Some(m)) => Some(f.min(m)),
        (f, m) => f.or(m),
    };
    let expected_kept = total.map(|t| t.div_ceil(args.every));

    let mut writers = Vec::new();
    for split in ["train", "val"] {
        let images = args.out.join("images").join(split);
        std::fs::create_dir_all(&images)
            .with_context(|| format!("cannot create {}", images.display()))?;
        let labels = YoloTxtWriter::create(&args.out.join("labels").join(split), false)?;
        writers.push((images, labels));
    }

    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total.unwrap_or(0));
        bar.set_style(
            ProgressStyle::with_template(
                "autolabel [{bar:30}] {pos}/{len} frames {msg} ({elapsed}, eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    };
    let stem = Path::new(&info.name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty() && !s.contains(['/', '*']))
        .unwrap_or_else(|| "frame".into());

    let mut summary = AutolabelSummary {
        names: names.clone(),
        ..Default::default()
    };
    let mut kept = 0u64;
    let mut remapped: Vec<Detection> = Vec::new();
    while let Some(frame) = source.next_frame()? {
        if args.max_frames.is_some_and(|m| summary.frames_read >= m) {
            break;
        }
        summary.frames_read += 1;
        bar.inc(1);
        if frame.index % args.every != 0 {
            continue;
        }
        let dets = detector
            .detect(&frame.image, &params)
            .with_context(|| format!("the teacher failed on frame {}", frame.index))?;
        remapped.clear();
        remapped.extend(dets.iter().filter_map(|d| {
            let class_id = class_ids.iter().position(|&c| c == d.class_id)?;
            Some(Detection { class_id, ..*d })
        }));
        let val = is_val(kept, expected_kept, args.val_fraction);
        kept += 1;
        let (images, labels) = &writers[usize::from(val)];
        // Video and camera frames are numbered; images keep their own names.
        let name = match Path::new(&frame.origin).file_stem() {
            Some(own) if frame.origin != info.name => own.to_string_lossy().into_owned(),
            _ => format!("{stem}_{:06}", frame.index),
        };
        write_jpeg(
            &images.join(format!("{name}.jpg")),
            &frame.image,
            args.quality,
        )?;
        labels.write(
            &format!("{name}.txt"),
            &remapped,
            frame.image.width(),
            frame.image.height(),
        )?;
        if val {
            summary.val_images += 1;
            summary.val_boxes += remapped.len() as u64;
        } else {
            summary.train_images += 1;
            summary.train_boxes += remapped.len() as u64;
        }
        bar.set_message(format!(
            "{} labelled, {} boxes",
            kept,
            summary.train_boxes + summary.val_boxes
        ));
    }
    bar.finish_and_clear();
    summary.corrupt_frames = source.health().corrupt_frames;
    if kept == 0 {
        bail!("--source {}: no frame was read", args.source);
    }

    let yaml = args.out.join("data.yaml");
    std::fs::write(&yaml, data_yaml(&names, &teacher_name, &args.source))
        .with_context(|| format!("cannot write {}", yaml.display()))?;
    let report = args.out.join("autolabel.json");
    let json = serde_json::json!({
        "teacher": teacher_name,
        "source": args.source,
        "conf": args.conf,
        "iou": args.iou,
        "every": args.every,
        "val_fraction": args.val_fraction,
        "summary": &summary,
    });
    std::fs::write(&report, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("cannot write {}", report.display()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_frames_are_the_tail_when_the_count_is_known() {
        let val: Vec<bool> = (0..10).map(|k| is_val(k, Some(10), 0.2)).collect();
        assert_eq!(val.iter().filter(|v| **v).count(), 2);
        assert!(val[8] && val[9] && !val[7]);
        assert!(!(0..10).any(|k| is_val(k, Some(10), 0.0)));
    }

    #[test]
    fn validation_frames_are_whole_blocks_when_the_count_is_unknown() {
        let val: Vec<bool> = (0..500).map(|k| is_val(k, None, 0.2)).collect();
        assert_eq!(val.iter().filter(|v| **v).count(), 100);
        assert!(!val[199] && val[200] && val[249] && !val[250]);
    }

    #[test]
    fn data_yaml_quotes_names() {
        let y = data_yaml(&["person".into(), "it's".into()], "t", "s.mp4");
        assert!(y.contains("nc: 2\n"));
        assert!(y.contains("names: ['person', 'it''s']\n"));
        assert!(y.contains("train: images/train\nval: images/val\n"));
    }
}
