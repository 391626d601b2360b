//! Several cameras in one run (`--source NAME=SOURCE` repeated, or `--cameras FILE`): the model
//! is loaded once and each camera gets its own engine state, tracker, outputs, MQTT stage and,
//! in `vigia follow`, follower;
//! cameras take turns at inference first come, first served (`--workers` at once), and a camera
//! that cannot start or fails stops alone while the others run on.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::bail;

use super::cameras::CameraSpec;
use super::follow_session::FollowSession;
use super::mqtt::{CameraControl, Publishing};
use super::preview::Preview;
use super::run::{
    camera_decode, camera_tracker, frame_rate, load_for_camera, output_options, report,
    source_options, stats_every, RunRequest,
};
use super::track::TrackerArgs;
use vigia::camera_set::{self, BoxError, CameraFollower, CameraJob, CameraParts};
use vigia::detector::Detector;
use vigia::inference_turns::InferenceTurns;
use vigia::pipeline::{DetectSwitch, OutputStage, PipelineConfig};
use vigia::publish::FollowInbox;
use vigia::sink::live_preview::LivePreview;
use vigia::sink::stage_set::StageSet;
use vigia::sink::{OutputOptions, Outputs};
use vigia::source::pool::FramePool;
use vigia::source::{classify_source, open_source};

/// Runs every camera of `cameras` until each ends, fails or the run is stopped.
pub fn run_cameras(
    mut req: RunRequest<'_>,
    tracker_args: Option<&TrackerArgs>,
    cameras: Vec<CameraSpec>,
) -> anyhow::Result<ExitCode> {
    let out = req.output;
    if req.save_mot.is_some() && tracker_args.is_none() {
        bail!("--save-mot needs tracks: use `vigia track`");
    }
    let quiet = req.model.quiet;
    for camera in &cameras {
        camera_tracker(camera, tracker_args)?;
    }
    // One loaded model per distinct model, input size and engine; each camera gets its own engine
    // state on it.
    let mut detectors = Vec::with_capacity(cameras.len());
    let mut loaded: Vec<(usize, usize)> = Vec::new();
    for (i, camera) in cameras.iter().enumerate() {
        let same_model = |&&(c, _): &&(usize, usize)| cameras[c].model_key() == camera.model_key();
        let detector = match loaded.iter().find(same_model) {
            Some(&(_, first)) => {
                let shared: &Detector = &detectors[first];
                shared.fork()?
            }
            None => {
                loaded.push((i, detectors.len()));
                Detector::new(load_for_camera(req.model, camera)?)
            }
        };
        detectors.push(detector);
    }
    // Each camera's follower, when the run follows (one per camera, in order).
    let mut followers: Vec<Option<FollowSession>> = std::mem::take(&mut req.followers)
        .into_iter()
        .map(Some)
        .collect();
    followers.resize_with(cameras.len(), || None);
    let inboxes: Vec<Option<FollowInbox>> = followers
        .iter()
        .map(|f| f.as_ref().map(FollowSession::inbox))
        .collect();
    let decodes = cameras
        .iter()
        .zip(&detectors)
        .map(|(c, d)| camera_decode(req.decode, c, d.labels()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let turns = InferenceTurns::new(req.model.workers as usize);
    let switches: Vec<DetectSwitch> = cameras.iter().map(|_| DetectSwitch::default()).collect();
    let mut publishing = Publishing::start(
        &out.mqtt,
        cameras
            .iter()
            .zip(&detectors)
            .zip(&decodes)
            .zip(&switches)
            .zip(&inboxes)
            .map(|((((c, detector), decode), detect), inbox)| CameraControl {
                name: c.name.clone(),
                labels: detector.labels().clone(),
                classes: decode.classes.clone(),
                detect: detect.clone(),
                follow: inbox.clone(),
            })
            .collect(),
    )?;
    let names: Vec<&str> = cameras.iter().map(|c| c.name.as_str()).collect();
    if !quiet {
        eprintln!(
            "vigia: {} cameras ({}), {}, {} inference(s) at a time",
            cameras.len(),
            names.join(", "),
            match loaded.len() {
                1 => "one model".to_string(),
                n => format!("{n} models"),
            },
            turns.capacity()
        );
    }
    let follow_controls: Vec<(&str, &FollowInbox)> = names
        .iter()
        .zip(&inboxes)
        .filter_map(|(name, inbox)| inbox.as_ref().map(|i| (*name, i)))
        .collect();
    let preview = Preview::start(out, &names, &follow_controls, quiet)?;
    let mut jobs = Vec::with_capacity(cameras.len());
    for (i, ((((camera, detect), detector), follower), decode)) in cameras
        .iter()
        .zip(switches)
        .zip(detectors)
        .zip(followers)
        .zip(decodes)
        .enumerate()
    {
        let stop = Arc::new(AtomicBool::new(false));
        let extra = ExtraOutputs {
            publish: publishing.as_mut().and_then(|p| p.take_stage(i)),
            preview: preview.as_ref().and_then(|p| p.feed(&camera.name)),
            follower: follower.map(|f| Box::new(f) as Box<dyn CameraFollower>),
        };
        let config = PipelineConfig {
            decode,
            max_frames: req.source.max_frames,
            stats_every: stats_every(out),
            progress: false,
            workers: 1,
            detect,
            turns: Some(turns.clone()),
            label: Some(camera.name.clone()),
        };
        let start = {
            let (req, stop) = (&req, stop.clone());
            move || -> Result<CameraParts, BoxError> {
                start_camera(req, camera, tracker_args, detector, extra, config, stop)
                    .map_err(|e| format!("{e:#}").into())
            }
        };
        jobs.push(CameraJob {
            name: camera.name.clone(),
            start: Box::new(start),
            stop,
        });
    }
    let outcomes = camera_set::run_cameras(jobs, &req.stop);
    if let Some(p) = publishing {
        p.finish(quiet);
    }
    let (mut frames, mut failed) = (0u64, 0usize);
    for o in &outcomes {
        match &o.result {
            Ok(summary) => {
                frames += summary.frames;
                report(Some(&o.name), summary, quiet);
            }
            Err(e) => {
                failed += 1;
                eprintln!("vigia: camera {} {e}", o.name);
            }
        }
    }
    if failed > 0 {
        eprintln!(
            "vigia: {failed} of {} camera(s) failed; {frames} frame(s) processed by the others",
            outcomes.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    if frames == 0 && !req.stop.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("vigia: no frame could be processed");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// A camera's outputs beyond its files: its MQTT stage, its live preview feed and its follower.
struct ExtraOutputs {
    publish: Option<Box<dyn OutputStage>>,
    preview: Option<Box<dyn LivePreview>>,
    /// The camera's follower (`vigia follow`).
    follower: Option<Box<dyn CameraFollower>>,
}

/// Opens `camera`'s source, tracker and outputs (on the camera's own thread).
fn start_camera(
    req: &RunRequest<'_>,
    camera: &CameraSpec,
    tracker_args: Option<&TrackerArgs>,
    detector: Detector,
    extra: ExtraOutputs,
    config: PipelineConfig,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<CameraParts> {
    let kind = classify_source(&camera.source)?;
    let pool = FramePool::new(8);
    let source = open_source(
        &camera.source,
        &source_options(req.source, camera, stop, pool.clone()),
    )?;
    let info = source.info().clone();
    let fps = frame_rate(req.source, camera, info.fps);
    let tracker = camera_tracker(camera, tracker_args)?
        .map(|t| t.build_for_frames(fps.or(req.source.image_fps).unwrap_or(30.0)))
        .transpose()?;
    let options = OutputOptions {
        preview: extra.preview,
        ..output_options(req, camera, kind, fps, true)
    };
    let video = options.video.clone();
    let outputs = Outputs::open(options, detector.labels().clone())?;
    if !req.model.quiet {
        eprintln!(
            "vigia [{}]: source {}{}",
            camera.name,
            vigia::pipeline::describe_source(&info),
            video
                .map(|v| format!(", annotated video -> {}", v.display()))
                .unwrap_or_default()
        );
    }
    let mut stages = StageSet::new();
    stages.push(Box::new(outputs));
    if let Some(stage) = extra.publish {
        stages.push(stage);
    }
    Ok(CameraParts {
        source,
        detector,
        tracker,
        output: Box::new(stages),
        pool,
        config,
        follower: extra.follower,
    })
}
