//! `vigia-train`: train classifiers with burn and export ONNX for the vigia runtime.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigia_train::autolabel::{autolabel, AutolabelArgs};
use vigia_train::classify::run::{classify, ClassifyArgs};
use vigia_train::detect::run::{detect, DetectArgs};
use vigia_train::export::{export, ExportArgs};
use vigia_train::reid::run::{reid, ReidArgs};

/// Train models for vigia and export them as ONNX with a model card.
#[derive(Parser)]
#[command(name = "vigia-train", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an image classifier (small CNN or MLP), export ONNX + card, check it in vigia
    Classify(Box<ClassifyArgs>),
    /// Train a YOLO-style detector (YOLO-txt or COCO data), export ONNX + card, check it in vigia
    Detect(Box<DetectArgs>),
    /// Export a checkpoint as ONNX + model card and check it against tract
    Export(ExportArgs),
    /// Label a video or image folder with a teacher detector: a YOLO-txt dataset for a student
    Autolabel(AutolabelArgs),
    /// Learn a person appearance embedding (re-identification) from a tracked video: a head on a
    /// frozen backbone, exported as ONNX + card for `vigia track --reid MODEL`
    Reid(Box<ReidArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let line = std::env::args()
        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
        .collect::<Vec<_>>()
        .join(" ");
    let line = format!(
        "vigia-train {}",
        line.split_once(' ').map(|(_, rest)| rest).unwrap_or("")
    );
    let result = match cli.command {
        Command::Classify(args) => classify(&args, &line).map(|_| ()),
        Command::Detect(args) => detect(&args, &line).map(|r| {
            eprintln!(
                "vigia-train: detector {} ({} classes): validation mAP@0.5 {:.4} (burn){}; parity {:.2e}; training {:.1}s",
                r.onnx.display(),
                r.names.len(),
                r.map.map,
                r.vigia_map
                    .as_ref()
                    .map(|m| format!(", {:.4} (vigia)", m.map))
                    .unwrap_or_default(),
                r.parity.max_err(),
                r.train_seconds
            )
        }),
        Command::Export(args) => export(&args, &line).map(|p| {
            eprintln!(
                "vigia-train: wrote {}; burn vs tract on {} inputs: max abs error {:.2e}",
                args.out.display(),
                p.inputs,
                p.max_abs_err
            )
        }),
        Command::Autolabel(args) => autolabel(&args).map(|s| {
            eprintln!(
                "vigia-train: {} of {} frames labelled into {} ({} train images / {} boxes, {} val images / {} boxes{})",
                s.train_images + s.val_images,
                s.frames_read,
                args.out.display(),
                s.train_images,
                s.train_boxes,
                s.val_images,
                s.val_boxes,
                if s.corrupt_frames > 0 {
                    format!(", {} corrupt frames skipped", s.corrupt_frames)
                } else {
                    String::new()
                }
            )
        }),
        Command::Reid(args) => reid(&args, &line).map(|r| {
            for s in &r.held_out {
                eprintln!(
                    "vigia-train: held-out frames {}-: {:<24} mAP {:.3}  rank-1 {:.3}  ({:.0} µs per crop)",
                    r.train_to + 1,
                    s.embedding,
                    s.scores.map,
                    s.scores.rank1,
                    s.us_per_crop
                );
            }
            eprintln!(
                "vigia-train: wrote {} (threshold {:.2}, parity {:.1e}); report {}",
                r.model.display(),
                r.match_threshold,
                r.parity_rel_err,
                args.out.join("report.json").display()
            )
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigia-train: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
