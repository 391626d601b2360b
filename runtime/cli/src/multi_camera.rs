//! Several cameras in one run (`--source NAME=SOURCE` repeated, or `--cameras FILE`): the model
//! is loaded once and each camera gets its own engine state, tracker, outputs and MQTT stage;
//! cameras take turns at inference first come, first served (`--workers` at once), and a camera
//! that cannot start or fails stops alone while the others run on.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::bail;

use super::cameras::CameraSpec;
use super::mqtt::{CameraControl, Publishing};
use super::preview::Preview;
use super::run::{
    camera_decode, camera_tracker, decode_params, frame_rate, load_for_camera, output_options,
    report, source_options, stats_every, RunRequest,
};
use super::track::TrackerArgs;
use vigia::camera_set::{self, BoxError, CameraJob, CameraParts};
use vigia::detector::Detector;
use vigia::inference_turns::InferenceTurns;
use vigia::pipeline::{DetectSwitch, OutputStage, PipelineConfig};
use vigia::sink::live_preview::LivePreview;
use vigia::sink::stage_set::StageSet;
use vigia::sink::{OutputOptions, Outputs};
use vigia::source::pool::FramePool;
use vigia::source::{classify_source, open_source};

/// Runs every camera of `cameras` until each ends, fails or the run is stopped.
pub fn run_cameras(
    req: RunRequest<'_>,
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
    // One loaded model per distinct model file; each camera gets its own engine state on it.
    let mut detectors = Vec::with_capacity(cameras.len());
    let mut loaded: Vec<(Option<String>, usize)> = Vec::new();
    for camera in &cameras {
        let detector = match loaded.iter().find(|(m, _)| *m == camera.model) {
            Some(&(_, first)) => {
                let shared: &Detector = &detectors[first];
                shared.fork()?
            }
            None => {
                loaded.push((camera.model.clone(), detectors.len()));
                Detector::new(load_for_camera(req.model, camera)?)
            }
        };
        detectors.push(detector);
    }
    let decode = decode_params(req.decode, detectors[0].labels())?;
    let labels = detectors[0].labels().clone();
    let turns = InferenceTurns::new(req.model.workers as usize);
    let switches: Vec<DetectSwitch> = cameras.iter().map(|_| DetectSwitch::default()).collect();
    let mut publishing = Publishing::start(
        &out.mqtt,
        cameras
            .iter()
            .zip(&switches)
            .map(|(c, detect)| CameraControl {
                name: c.name.clone(),
                detect: detect.clone(),
                follow: None,
            })
            .collect(),
        &labels,
        decode.classes.as_deref(),
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
    let preview = Preview::start(out, &names, None, quiet)?;
    let mut jobs = Vec::with_capacity(cameras.len());
    for (i, ((camera, detect), detector)) in cameras.iter().zip(switches).zip(detectors).enumerate()
    {
        let stop = Arc::new(AtomicBool::new(false));
        let extra = ExtraOutputs {
            publish: publishing.as_mut().and_then(|p| p.take_stage(i)),
            preview: preview.as_ref().and_then(|p| p.feed(&camera.name)),
        };
        let config = PipelineConfig {
            decode: camera_decode(req.decode, camera, detector.labels())?,
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

/// Opens `camera`'s source, tracker and outputs (on the camera's own thread).
/// A camera's outputs beyond its files: its MQTT stage and its live preview feed.
struct ExtraOutputs {
    publish: Option<Box<dyn OutputStage>>,
    preview: Option<Box<dyn LivePreview>>,
}

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
    })
}
