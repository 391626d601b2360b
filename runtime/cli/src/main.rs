//! The `vigia` command line.

mod allocator;
mod args;
mod bench;
mod cameras;
mod classify;
mod doctor;
mod eval_reid;
mod follow;
mod follow_session;
mod inspect;
mod mqtt;
mod multi_camera;
mod preview;
mod run;
mod track;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};

use crate::args::{DecodeArgs, ModelArgs, OutputArgs, SourceArgs};
use crate::bench::{bench, BenchArgs};
use crate::classify::{classify, ClassifyArgs};
use crate::doctor::{doctor, DoctorArgs};
use crate::eval_reid::{eval_reid, EvalReidArgs};
use crate::follow::{follow, FollowArgs};
use crate::inspect::{inspect, InspectArgs};
use crate::run::{run_source, RunRequest};
use crate::track::{eval_mot, track_mot_file, EvalMotArgs, TrackerArgs};

/// Edge vision runtime: detect, track, follow and classify with ONNX models on tract.
#[derive(Parser)]
#[command(name = "vigia", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Detect objects (people by default) in images, videos, streams or cameras; JSON lines out
    Detect(DetectArgs),
    /// Detect and track with ByteTrack (ids in JSON, video and MOTChallenge output); `vigia run
    /// cameras.toml` tracks every camera of a cameras file
    #[command(visible_alias = "run")]
    Track(TrackArgs),
    /// Follow one person: detect, track, lock on and send steering commands (UDP, serial, MAVLink)
    Follow(FollowArgs),
    /// Classify images; one JSON line with the top-k classes per image
    Classify(ClassifyArgs),
    /// Show a model's inputs, outputs, operators, parameters and the card vigia would use
    Inspect(InspectArgs),
    /// Score MOTChallenge tracks against ground truth (MOTA, MOTP, IDF1, ID switches)
    EvalMot(EvalMotArgs),
    /// Score an appearance embedding on tracked people: retrieval mAP and rank-1
    EvalReid(EvalReidArgs),
    /// Time a model: latency percentiles, FPS, FLOPs and the share of the CPU's f32 peak
    Bench(BenchArgs),
    /// Show the board, CPU features, tools, cameras and cache, and the profile vigia picks
    Doctor(DoctorArgs),
}

#[derive(Args)]
struct DetectArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct TrackArgs {
    #[command(flatten)]
    source: SourceArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    decode: DecodeArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    tracker: TrackerArgs,
    /// MOTChallenge tracks file (frame,id,x,y,w,h,conf,-1,-1,-1)
    #[arg(long, value_name = "FILE")]
    save_mot: Option<PathBuf>,
    /// Track these MOTChallenge detections (frame,-1,x,y,w,h,conf,...) instead of running a model
    #[arg(long, value_name = "FILE", conflicts_with_all = ["positional", "source"])]
    detections: Option<PathBuf>,
    /// Frame rate of --detections (for the tracker's motion model)
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
}

/// Set by Ctrl-C / SIGTERM: sources stop, queues drain, outputs are finalized.
fn install_stop_handler() -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let result = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("vigia: interrupted twice, exiting now");
            std::process::exit(130);
        }
        eprintln!("vigia: stopping, finishing outputs (Ctrl-C again to exit at once)");
    });
    if let Err(e) = result {
        eprintln!("vigia: warning: cannot catch Ctrl-C ({e}); outputs may be cut short");
    }
    stop
}

fn main() -> ExitCode {
    allocator::keep_freed_pages();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Detect(a) => {
            let stop = install_stop_handler();
            run_source(
                RunRequest {
                    source: &a.source,
                    model: &a.model,
                    decode: &a.decode,
                    output: &a.output,
                    save_mot: None,
                    stop,
                    json_to_stdout: true,
                    followers: Vec::new(),
                },
                None,
            )
        }
        Command::Track(a) => track(a),
        Command::Follow(a) => follow(a, install_stop_handler()),
        Command::Classify(a) => classify(a),
        Command::Inspect(a) => inspect(a),
        Command::EvalMot(a) => eval_mot(a),
        Command::EvalReid(a) => eval_reid(a),
        Command::Bench(a) => bench(a),
        Command::Doctor(a) => doctor(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn track(a: TrackArgs) -> anyhow::Result<ExitCode> {
    if let Some(dets) = &a.detections {
        return track_mot_file(dets, a.save_mot.as_ref(), a.fps, &a.tracker);
    }
    let stop = install_stop_handler();
    run_source(
        RunRequest {
            source: &a.source,
            model: &a.model,
            decode: &a.decode,
            output: &a.output,
            save_mot: a.save_mot.clone(),
            stop,
            json_to_stdout: true,
            followers: Vec::new(),
        },
        Some(&a.tracker),
    )
}
