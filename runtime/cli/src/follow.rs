//! `vigia follow`: detect, track, lock onto one person per camera and send steering commands.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::args::{DecodeArgs, ModelArgs, OutputArgs, SourceArgs};
use super::cameras::cameras;
use super::follow_session::{check_shared_outputs, FollowSession};
use super::run::{run_cameras_of, RunRequest};
use super::track::{ReidMode, TrackerArgs};
use vigia::follow::{AppearanceGate, FollowerConfig, OutputSpec, TargetPolicy};

/// Arguments of `vigia follow`.
#[derive(Args)]
pub struct FollowArgs {
    #[command(flatten)]
    pub source: SourceArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub tracker: TrackerArgs,
    /// Who to follow: largest, center, score, id:N, point:X,Y or rect:X1,Y1,X2,Y2 (normalised)
    #[arg(long, default_value = "largest")]
    pub target: TargetPolicy,
    /// Command outputs (repeatable): stdout, udp://HOST:PORT, serial:/dev/ttyUSB0@115200
    #[arg(long = "follow-out", value_name = "OUT")]
    pub follow_out: Vec<OutputSpec>,
    /// MAVLink 2 output: udpout:HOST:PORT[?mode=vehicle|gimbal&sysid=..&max_forward=..]
    #[arg(long, value_name = "ADDR")]
    pub mavlink: Option<String>,
    /// Frames a candidate must persist before the lock
    #[arg(long, default_value_t = 5)]
    pub follow_acquire_frames: u32,
    /// Seconds of coasting on the prediction when the target is hidden
    #[arg(long, default_value_t = 1.0)]
    pub follow_coast: f64,
    /// Seconds after which a target that did not come back is given up
    #[arg(long, default_value_t = 3.0)]
    pub follow_lost_timeout: f64,
    /// Seconds without a fresh command after which a stop is sent
    #[arg(long, default_value_t = 0.3)]
    pub follow_watchdog: f64,
    /// Desired target height as a fraction of the frame (following distance)
    #[arg(long, default_value_t = 0.5)]
    pub follow_height: f32,
    /// How long a target out of view is looked for by appearance (seconds; 60 or 60s)
    #[arg(long, default_value = "60", value_parser = super::args::seconds)]
    pub follow_memory: f64,
    /// After giving up on the target, follow anyone the --target policy picks once this long has
    /// passed (default: never; a stranger is not followed)
    #[arg(long, value_name = "SECS", value_parser = super::args::seconds)]
    pub follow_any_after: Option<f64>,
}

/// Runs a follower on each camera of the run.
pub fn follow(mut a: FollowArgs, stop: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    a.tracker.reid_default = ReidMode::follow_default();
    let cameras = cameras(&a.source)?;
    let many = cameras.len() > 1;
    let mut run_outputs = a.follow_out.clone();
    if let Some(m) = &a.mavlink {
        run_outputs.push(m.parse()?);
    }
    let outputs: Vec<&[OutputSpec]> = cameras
        .iter()
        .map(|c| {
            if c.follow.outputs.is_empty() {
                run_outputs.as_slice()
            } else {
                c.follow.outputs.as_slice()
            }
        })
        .collect();
    let named: Vec<(&str, &[OutputSpec])> = cameras
        .iter()
        .zip(&outputs)
        .map(|(c, o)| (c.name.as_str(), *o))
        .collect();
    check_shared_outputs(&named)?;
    let use_appearance = *a.tracker.reid() != ReidMode::Off;
    let appearance = AppearanceGate {
        threshold: a.tracker.reid_threshold()?,
        margin: a.tracker.reid_margin,
        colour_veto: a.tracker.reid_colour_veto.0,
        memory: a.follow_memory,
        any_after: a.follow_any_after,
        ..AppearanceGate::default()
    };
    let mut followers = Vec::with_capacity(cameras.len());
    for (camera, outputs) in cameras.iter().zip(&outputs) {
        let config = FollowerConfig {
            policy: camera.follow.target.unwrap_or(a.target),
            acquire_frames: a.follow_acquire_frames,
            coast_time: a.follow_coast,
            lost_timeout: a.follow_lost_timeout,
            watchdog: a.follow_watchdog,
            target_height: a.follow_height,
            appearance,
            ..FollowerConfig::default()
        };
        let tagged = (many || camera.named).then_some(camera.name.as_str());
        let session = FollowSession::open(config, outputs, use_appearance, tagged);
        followers.push(session.with_context(|| format!("camera `{}`", camera.name))?);
    }
    // Frame JSON lines only where asked: stdout carries the commands by default.
    let mut tracker = a.tracker.clone();
    tracker.report_lost = true;
    run_cameras_of(
        RunRequest {
            source: &a.source,
            model: &a.model,
            decode: &a.decode,
            output: &a.output,
            save_mot: None,
            stop,
            json_to_stdout: false,
            followers,
        },
        cameras,
        Some(&tracker),
    )
}
