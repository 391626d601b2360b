//! `vigia detect` and `vigia track`: any source through the pipeline into any outputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use super::args::{DecodeArgs, ModelArgs, OutputArgs, SourceArgs};
use super::cameras::{cameras, CameraSpec};
use super::follow_session::FollowSession;
use super::mqtt::{CameraControl, Publishing};
use super::preview::Preview;
use super::track::TrackerArgs;
use vigia::camera_set::CameraFollower;
use vigia::decode::DecodeParams;
use vigia::detector::Detector;
use vigia::engine;
use vigia::engine::choice::OrtProvider;
use vigia::model::{Labels, Task};
use vigia::pipeline::{self, DetectSwitch, FrameHook, FrameResult, PipelineConfig, RunSummary};
use vigia::resolve::{self, EngineKind, LoadOptions, LoadedModel};
use vigia::sink::stage_set::StageSet;
use vigia::sink::{OutputOptions, Outputs};
use vigia::source::pool::FramePool;
use vigia::source::video::CaptureSize;
use vigia::source::{classify_source, open_source, SourceKind, SourceOptions};
use vigia::track::Tracker;

/// Loads the model named by `args` for `task`, reporting how on stderr.
pub fn load(args: &ModelArgs, task: Task) -> anyhow::Result<LoadedModel> {
    if args.workers > 1 && task == Task::Classify {
        bail!("--workers applies to detect, track and follow");
    }
    if args.ort_lib.is_some() && args.engine != EngineKind::Ort {
        bail!("--ort-lib needs --engine ort");
    }
    if args.ort_ep != OrtProvider::Cpu && args.engine != EngineKind::Ort {
        bail!("--ort-ep needs --engine ort (--engine cuda runs tract on the GPU)");
    }
    let settings = args
        .overrides()
        .settings(args.model.is_none() && task == Task::Detect)
        .map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
    if args.engine != EngineKind::Ort {
        // tract's kernels, and the CPU operators of a graph on the GPU.
        engine::set_threads(settings.threads as usize);
    }
    let half = settings.half && args.engine != EngineKind::Ort;
    let model = resolve::load_model(
        args.model.as_deref(),
        Some(task),
        &LoadOptions {
            imgsz: settings.imgsz,
            engine: args.engine,
            threads: settings.threads as usize,
            ort_lib: args.ort_lib.clone(),
            ort_provider: args.ort_ep,
            half,
            cache_dir: settings.cache_dir.clone(),
            kernels: args.kernels,
        },
    )?;
    if !args.quiet {
        let c = &model.card;
        let r = &model.report;
        eprintln!(
            "vigia: model {} [{:?}, {}x{} {:?}] on {} with {} thread(s){}{}: loaded in {:.0} ms \
             (graph {:.0}, typing {:.0}, optimize {:.0}, plan {:.0}{}), profile {} ({})",
            model.source.display_name(),
            c.output.family,
            c.input.width,
            c.input.height,
            c.input.layout,
            engine_label(model.engine.name()),
            settings.threads,
            if half { " in f16" } else { "" },
            if args.workers > 1 {
                format!(" x {} workers", args.workers)
            } else {
                String::new()
            },
            r.total_ms(),
            r.parse_ms,
            r.typing_ms,
            r.optimize_ms,
            r.plan_ms,
            cache_note(r),
            settings.profile.name,
            settings.why
        );
        if let Some(why) = &model.engine_why {
            eprintln!("vigia: engine: {why}");
        }
        if let Some(gpu) = &r.gpu {
            eprintln!("vigia: gpu: {}", gpu.summary());
        }
        if r.kernels.replaced() > 0 {
            eprintln!("vigia: kernels: {}", r.kernels.summary());
        }
        for a in &model.assumptions {
            eprintln!("vigia: assumed {a}");
        }
    }
    Ok(model)
}

/// The declutter and cache part of the load line.
fn cache_note(r: &vigia::engine::LoadReport) -> String {
    use vigia::engine::cache::CacheUse;
    let declutter = if r.declutter_ms > 0.0 {
        format!(", declutter {:.0}", r.declutter_ms)
    } else {
        String::new()
    };
    match r.cache {
        CacheUse::Off => declutter,
        CacheUse::Hit => format!(", from cache {:.0}", r.cache_ms),
        CacheUse::Stored => format!("{declutter}, cache write {:.0}", r.cache_ms),
        CacheUse::Failed => format!("{declutter}, not cached"),
    }
}

/// The engine that runs (`Engine::name`) and its version, library or GPU for the load line.
fn engine_label(name: &str) -> String {
    match name {
        "cuda" => match vigia::engine::gpu::probe() {
            vigia::engine::gpu::GpuStatus::Ready(info) => format!(
                "the GPU (tract-cuda {}, {})",
                engine::tract_version(),
                info.summary()
            ),
            _ => format!("the GPU (tract-cuda {})", engine::tract_version()),
        },
        #[cfg(feature = "ort")]
        "ort" => match vigia::engine::ort::init(None) {
            Ok((path, _)) => format!("ONNX Runtime ({})", path.display()),
            Err(_) => "ONNX Runtime".into(),
        },
        #[cfg(not(feature = "ort"))]
        "ort" => "ONNX Runtime".into(),
        _ => format!("tract {}", engine::tract_version()),
    }
}

/// Parses `--classes` (names or ids) against the model's labels.
pub fn parse_classes(spec: &str, labels: &Labels) -> anyhow::Result<Vec<usize>> {
    labels
        .ids_of(spec)
        .map_err(|reason| anyhow::anyhow!("--classes: {reason}"))
}

/// Decoding thresholds from the command line.
pub fn decode_params(args: &DecodeArgs, labels: &Labels) -> anyhow::Result<DecodeParams> {
    Ok(DecodeParams {
        conf: args.conf,
        iou: args.iou,
        classes: args
            .classes
            .as_deref()
            .map(|c| parse_classes(c, labels))
            .transpose()?,
        max_det: args.max_det,
        agnostic: args.agnostic_nms,
    })
}

/// Everything a pipeline run needs besides the model.
pub struct RunRequest<'a> {
    pub source: &'a SourceArgs,
    pub model: &'a ModelArgs,
    pub decode: &'a DecodeArgs,
    pub output: &'a OutputArgs,
    /// MOTChallenge tracks file (tracking runs).
    pub save_mot: Option<PathBuf>,
    pub stop: Arc<AtomicBool>,
    /// Write frame JSON lines to stdout when `--save-json` is not given.
    pub json_to_stdout: bool,
    /// One follower per camera, in the cameras' order, when the run follows (`vigia follow`).
    pub followers: Vec<FollowSession>,
}

/// Runs detection (and tracking when `tracker` is given) over the run's cameras into the
/// outputs.
pub fn run_source(
    req: RunRequest<'_>,
    tracker_args: Option<&TrackerArgs>,
) -> anyhow::Result<ExitCode> {
    let cameras = cameras(req.source)?;
    run_cameras_of(req, cameras, tracker_args)
}

/// Runs `cameras` (parsed from `req.source`): one camera here, several through
/// [`super::multi_camera`].
pub fn run_cameras_of(
    mut req: RunRequest<'_>,
    cameras: Vec<CameraSpec>,
    tracker_args: Option<&TrackerArgs>,
) -> anyhow::Result<ExitCode> {
    if req.followers.is_empty() {
        if let Some(c) = cameras.iter().find(|c| !c.follow.is_empty()) {
            bail!(
                "camera `{}` sets follower settings (target, follow_out, mavlink): use `vigia follow`",
                c.name
            );
        }
    } else if req.followers.len() != cameras.len() {
        bail!(
            "{} followers for {} cameras",
            req.followers.len(),
            cameras.len()
        );
    }
    if cameras.len() > 1 {
        return super::multi_camera::run_cameras(req, tracker_args, cameras);
    }
    let mut follower = req.followers.pop();
    let follow_inbox = follower.as_ref().map(FollowSession::inbox);
    let camera = &cameras[0];
    let kind = classify_source(&camera.source)?;
    let tracker_args = camera_tracker(camera, tracker_args)?;
    let tracker_args = tracker_args.as_ref();
    let mut detector = Detector::new(load_for_camera(req.model, camera)?);
    let decode = camera_decode(req.decode, camera, detector.labels())?;
    let pool = FramePool::new(8 + 2 * req.model.workers as usize);
    let source = open_source(
        &camera.source,
        &source_options(req.source, camera, req.stop.clone(), pool.clone()),
    )?;
    let info = source.info().clone();
    let out = req.output;
    let preview = Preview::start(
        out,
        &[camera.name.as_str()],
        follow_inbox
            .as_ref()
            .map(|f| (camera.name.as_str(), f))
            .as_slice(),
        req.model.quiet,
    )?;
    let source_fps = frame_rate(req.source, camera, info.fps);
    let mut tracker = tracker_args
        .map(|t| t.build_for_frames(source_fps.or(req.source.image_fps).unwrap_or(30.0)))
        .transpose()?;
    if req.save_mot.is_some() && tracker.is_none() {
        bail!("--save-mot needs tracks: use `vigia track`");
    }
    let detect = DetectSwitch::default();
    let mut publishing = Publishing::start(
        &out.mqtt,
        vec![CameraControl {
            name: camera.name.clone(),
            labels: detector.labels().clone(),
            classes: decode.classes.clone(),
            detect: detect.clone(),
            follow: follow_inbox.clone(),
        }],
    )?;
    let options = OutputOptions {
        preview: preview.as_ref().and_then(|p| p.feed(&camera.name)),
        ..output_options(&req, camera, kind, source_fps, false)
    };
    let video = options.video.clone();
    let outputs = Outputs::open(options, detector.labels().clone())?;
    if !req.model.quiet {
        eprintln!("vigia: source {}", pipeline::describe_source(&info));
        if let Some(t) = tracker_args {
            eprintln!("vigia: {}", t.describe_reid());
        }
        if let Some(v) = &video {
            eprintln!("vigia: annotated video -> {}", v.display());
        }
    }
    let config = PipelineConfig {
        decode,
        max_frames: req.source.max_frames,
        stats_every: stats_every(out),
        progress: !req.model.quiet,
        workers: req.model.workers as usize,
        detect,
        turns: None,
        label: None,
    };
    let mut stages = StageSet::new();
    stages.push(Box::new(outputs));
    if let Some(stage) = publishing.as_mut().and_then(|p| p.take_stage(0)) {
        stages.push(stage);
    }
    let mut hook = follower
        .as_mut()
        .map(|f| move |r: &FrameResult| f.on_frame(r));
    let summary = pipeline::run(
        source,
        &mut detector,
        tracker.as_mut().map(|t| &mut **t as &mut dyn Tracker),
        hook.as_mut().map(|h| h as &mut FrameHook<'_>),
        Box::new(stages),
        pool,
        &config,
        req.stop.clone(),
    );
    // Whatever happened, the vehicle is told to stop.
    let stopped = follower.map_or(Ok(()), |f| Box::new(f).finish());
    // The broker hears `offline` whether the run ended well or not.
    if let Some(p) = publishing {
        p.finish(req.model.quiet);
    }
    let summary = summary?;
    stopped?;
    report(None, &summary, req.model.quiet);
    Ok(if summary.frames == 0 && !summary.interrupted {
        eprintln!("vigia: no frame could be processed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The model of `camera`: the run's `--model`, `--imgsz` and `--engine` with what its
/// cameras-file entry overrides (`model`, `imgsz`, `engine`).
pub fn load_for_camera(args: &ModelArgs, camera: &CameraSpec) -> anyhow::Result<LoadedModel> {
    if !camera.has_own_model() {
        return load(args, Task::Detect);
    }
    let args = ModelArgs {
        model: camera.model.clone().or_else(|| args.model.clone()),
        imgsz: camera.imgsz.or(args.imgsz),
        engine: camera.engine.unwrap_or(args.engine),
        ..args.clone()
    };
    load(&args, Task::Detect).with_context(|| format!("camera `{}`", camera.name))
}

/// The tracker settings of `camera`: the run's, with what its cameras-file entry overrides
/// (`None` when the run does not track; tracker settings then are an error).
pub fn camera_tracker(
    camera: &CameraSpec,
    run: Option<&TrackerArgs>,
) -> anyhow::Result<Option<TrackerArgs>> {
    match run {
        Some(t) => Ok(Some(camera.tracker.apply(t))),
        None if camera.tracker.is_empty() => Ok(None),
        None => bail!(
            "camera `{}` sets tracker settings: use `vigia track` (or `vigia run`)",
            camera.name
        ),
    }
}

/// Decoding thresholds of `camera`: the run's, with what its cameras-file entry overrides.
pub fn camera_decode(
    args: &DecodeArgs,
    camera: &CameraSpec,
    labels: &Labels,
) -> anyhow::Result<DecodeParams> {
    let mut params = decode_params(args, labels)?;
    if let Some(conf) = camera.conf {
        params.conf = conf;
    }
    if let Some(classes) = &camera.classes {
        params.classes = Some(
            parse_classes(classes, labels)
                .map_err(|e| anyhow::anyhow!("camera `{}`: {e}", camera.name))?,
        );
    }
    Ok(params)
}

/// How `camera`'s source is opened.
pub fn source_options(
    args: &SourceArgs,
    camera: &CameraSpec,
    stop: Arc<AtomicBool>,
    pool: FramePool,
) -> SourceOptions {
    SourceOptions {
        vid_stride: camera.vid_stride.unwrap_or(args.vid_stride),
        image_fps: args.image_fps,
        capture: CaptureSize {
            width: args.camera_size.0,
            height: args.camera_size.1,
            fps: args.camera_fps,
        },
        stop,
        pool,
        start_wait: camera
            .source_wait
            .or(args.source_wait)
            .map(Duration::from_secs_f64),
    }
}

/// Frames per second the pipeline sees from `camera` (its source's rate over the stride).
pub fn frame_rate(args: &SourceArgs, camera: &CameraSpec, source_fps: Option<f64>) -> Option<f64> {
    let stride = camera.vid_stride.unwrap_or(args.vid_stride);
    source_fps.map(|f| f / stride as f64)
}

/// How often `--stats` prints.
pub fn stats_every(out: &OutputArgs) -> Option<Duration> {
    out.stats.filter(|s| *s > 0.0).map(Duration::from_secs_f64)
}

/// The files `camera` writes (no preview). With `many` cameras every file gets the camera's name
/// (`out.jsonl` becomes `out.door.jsonl`, `--save-txt DIR` writes `DIR/door/`); JSON lines on
/// stdout are shared and carry a `camera` field.
pub fn output_options(
    req: &RunRequest<'_>,
    camera: &CameraSpec,
    kind: SourceKind,
    fps: Option<f64>,
    many: bool,
) -> OutputOptions {
    let out = req.output;
    let is_images = kind == SourceKind::Images;
    let per_camera = |p: &Path| {
        if many {
            with_camera(p, &camera.name)
        } else {
            p.to_path_buf()
        }
    };
    let mut video = camera
        .files
        .video
        .clone()
        .or_else(|| out.save_video.as_deref().map(per_camera));
    let mut images = None;
    if let Some(dir) = &out.save {
        if is_images {
            images = Some(if many {
                dir.join(&camera.name)
            } else {
                dir.clone()
            });
        } else if video.is_none() {
            video = Some(dir.join(format!("{}.mp4", camera.name)));
        }
    }
    let json = match &out.save_json {
        _ if camera.files.json.is_some() => camera.files.json.clone(),
        Some(p) if p.as_os_str() != "-" => Some(per_camera(p)),
        Some(p) => Some(p.clone()),
        None => req.json_to_stdout.then(|| PathBuf::from("-")),
    };
    OutputOptions {
        json,
        video,
        images,
        txt: out.save_txt.as_ref().map(|d| {
            if many {
                d.join(&camera.name)
            } else {
                d.clone()
            }
        }),
        txt_conf: out.save_conf,
        mot: camera
            .files
            .mot
            .clone()
            .or_else(|| req.save_mot.as_deref().map(per_camera)),
        preview: None,
        fps,
        is_video: !is_images,
        camera: (many || camera.named).then(|| camera.name.clone()),
    }
}

/// `path` with `.<camera>` before its extension: `runs/out.jsonl` -> `runs/out.door.jsonl`.
pub fn with_camera(path: &Path, camera: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{camera}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{camera}"),
    };
    path.with_file_name(name)
}

/// The end-of-run report on stderr, of the camera `label` when the run has several.
pub fn report(label: Option<&str>, s: &RunSummary, quiet: bool) {
    let h = s.source_health;
    if quiet && h.corrupt_frames == 0 {
        return;
    }
    let who = label.map(|l| format!(" [{l}]")).unwrap_or_default();
    eprintln!(
        "vigia{who}: {} frame(s) in {:.1} s ({:.1} fps){}; {} corrupt frame(s) skipped or concealed, {} stale dropped, {} reconnect(s)",
        s.frames,
        s.seconds,
        s.fps,
        if s.interrupted { ", stopped early" } else { "" },
        h.corrupt_frames,
        s.dropped,
        h.reconnects
    );
    if !quiet {
        eprintln!("{}", pipeline::stats_line(label, s.frames, s.fps, &s.stats));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_camera_file_names() {
        assert_eq!(
            with_camera(Path::new("runs/out.jsonl"), "door"),
            Path::new("runs/out.door.jsonl")
        );
        assert_eq!(
            with_camera(Path::new("tracks"), "yard"),
            Path::new("tracks.yard")
        );
    }
}
