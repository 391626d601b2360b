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
use super::run::{
    camera_decode, decode_params, frame_rate, load, output_options, report, source_options,
    stats_every, RunRequest,
};
use super::track::TrackerArgs;
use vigia::camera_set::{self, BoxError, CameraJob, CameraParts};
use vigia::detector::Detector;
use vigia::inference_turns::InferenceTurns;
use vigia::model::Task;
use vigia::pipeline::{DetectSwitch, OutputStage, PipelineConfig};
use vigia::sink::stage_set::StageSet;
use vigia::sink::Outputs;
use vigia::source::pool::FramePool;
use vigia::source::{classify_source, open_source};

/// Runs every camera of `cameras` until each ends, fails or the run is stopped.
pub fn run_cameras(
    req: RunRequest<'_>,
    tracker_args: Option<&TrackerArgs>,
    cameras: Vec<CameraSpec>,
) -> anyhow::Result<ExitCode> {
    let out = req.output;
    if out.serve.is_some() {
        bail!("--serve previews one camera: run it with one --source");
    }
    if req.save_mot.is_some() && tracker_args.is_none() {
        bail!("--save-mot needs tracks: use `vigia track`");
    }
    let quiet = req.model.quiet;
    let detector = Detector::new(load(req.model, Task::Detect)?);
    let decode = decode_params(req.decode, detector.labels())?;
    let labels = detector.labels().clone();
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
    if !quiet {
        let names: Vec<&str> = cameras.iter().map(|c| c.name.as_str()).collect();
        eprintln!(
            "vigia: {} cameras ({}), one model, {} inference(s) at a time",
            cameras.len(),
            names.join(", "),
            turns.capacity()
        );
    }
    // One engine state per camera, all on the one optimized model.
    let mut detectors = (1..cameras.len())
        .map(|_| detector.fork())
        .collect::<vigia::Result<Vec<_>>>()?;
    detectors.insert(0, detector);
    let mut jobs = Vec::with_capacity(cameras.len());
    for (i, ((camera, detect), detector)) in cameras.iter().zip(switches).zip(detectors).enumerate()
    {
        let stop = Arc::new(AtomicBool::new(false));
        let publish_stage = publishing.as_mut().and_then(|p| p.take_stage(i));
        let config = PipelineConfig {
            decode: camera_decode(req.decode, camera, &labels)?,
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
                start_camera(
                    req,
                    camera,
                    tracker_args,
                    detector,
                    publish_stage,
                    config,
                    stop,
                )
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
fn start_camera(
    req: &RunRequest<'_>,
    camera: &CameraSpec,
    tracker_args: Option<&TrackerArgs>,
    detector: Detector,
    publish_stage: Option<Box<dyn OutputStage>>,
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
    let tracker = tracker_args
        .map(|t| t.build_for_frames(fps.or(req.source.image_fps).unwrap_or(30.0)))
        .transpose()?;
    let options = output_options(req, camera, kind, fps, true);
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
    if let Some(stage) = publish_stage {
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
