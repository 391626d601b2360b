//! `vigia follow`: detect, track, lock onto one person and send steering commands.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;

use super::args::{DecodeArgs, ModelArgs, OutputArgs, SourceArgs};
use super::run::{run_source, RunRequest};
use super::track::{ReidMode, TrackerArgs};
use vigia::follow::Command as FollowCommand;
use vigia::follow::{
    open_sink, AppearanceGate, CommandReason, CommandSink, FollowOutput, FollowState, Follower,
    FollowerConfig, OutputSpec, SinkSet, TargetPolicy, Watchdog,
};
use vigia::pipeline::FrameResult;
use vigia::publish::{FollowInbox, FollowRequest};

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

/// Runs the follower on a source.
pub fn follow(a: FollowArgs, stop: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    let config = FollowerConfig {
        policy: a.target,
        acquire_frames: a.follow_acquire_frames,
        coast_time: a.follow_coast,
        lost_timeout: a.follow_lost_timeout,
        watchdog: a.follow_watchdog,
        target_height: a.follow_height,
        appearance: AppearanceGate {
            threshold: a.tracker.reid_threshold()?,
            margin: a.tracker.reid_margin,
            memory: a.follow_memory,
            any_after: a.follow_any_after,
            ..AppearanceGate::default()
        },
        ..FollowerConfig::default()
    };
    let mut follower = Follower::new(config)?;
    let use_appearance = a.tracker.reid != ReidMode::Off;
    let mut specs = a.follow_out.clone();
    if let Some(m) = &a.mavlink {
        specs.push(m.parse()?);
    }
    if specs.is_empty() {
        specs.push(OutputSpec::Stdout);
    }
    let sinks: Vec<Box<dyn CommandSink>> = specs.iter().map(open_sink).collect::<Result<_, _>>()?;
    let sinks: Arc<Mutex<dyn CommandSink>> = Arc::new(Mutex::new(SinkSet::new(sinks)));
    let watchdog = Watchdog::spawn_with_seq(
        Duration::from_secs_f64(a.follow_watchdog),
        sinks.clone(),
        follower.sequence(),
    );
    let inbox = FollowInbox::default();
    let requests = inbox.clone();
    // After a remote `stop`: no target, no motion, until a remote target.
    let mut halted = false;
    let mut hook = |r: &FrameResult| -> vigia::Result<Option<FollowOutput>> {
        let (w, h) = r.frame.image.dimensions();
        let time = r.frame.timestamp;
        let mut events = Vec::new();
        for request in requests.take() {
            events.extend(follower.reset(time));
            match request {
                FollowRequest::Target(policy) => {
                    eprintln!("vigia: follow: new target {policy} (remote command)");
                    follower.set_policy(policy);
                    halted = false;
                }
                FollowRequest::Stop => {
                    eprintln!("vigia: follow: stopped (remote command)");
                    halted = true;
                }
            }
        }
        let mut out = if halted {
            let seq = follower.sequence().next();
            FollowOutput {
                command: FollowCommand::stop(time, seq, FollowState::Idle, CommandReason::Follow),
                events: Vec::new(),
            }
        } else {
            let appearances = use_appearance.then_some(&r.appearances);
            follower.update_with(&r.tracks, appearances, time, w, h)
        };
        events.append(&mut out.events);
        out.events = events;
        {
            let mut s = sinks.lock().unwrap_or_else(|p| p.into_inner());
            for ev in &out.events {
                eprintln!("vigia: follow {ev}");
                s.send_event(ev)?;
            }
            s.send(&out.command)?;
        }
        watchdog.feed(&out.command);
        Ok(Some(out))
    };
    // Frame JSON lines only where asked: stdout carries the commands by default.
    let mut tracker = a.tracker.clone();
    tracker.report_lost = true;
    let result = run_source(
        RunRequest {
            source: &a.source,
            model: &a.model,
            decode: &a.decode,
            output: &a.output,
            save_mot: None,
            stop,
            json_to_stdout: false,
            follow_inbox: Some(inbox),
        },
        Some(&tracker),
        Some(&mut hook),
    );
    // Whatever happened, the vehicle is told to stop.
    let stopped = watchdog.shutdown();
    let code = result?;
    stopped?;
    Ok(code)
}
