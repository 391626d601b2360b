//! `vigia detect` and `vigia track`: any source through the pipeline into any outputs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use super::args::{DecodeArgs, ModelArgs, OutputArgs, SourceArgs};
use super::mqtt::Publishing;
use super::track::TrackerArgs;
use vigia::decode::DecodeParams;
use vigia::detector::Detector;
use vigia::engine;
use vigia::model::{Labels, Task};
use vigia::pipeline::{self, DetectSwitch, FrameHook, PipelineConfig, RunSummary};
use vigia::publish::FollowInbox;
use vigia::resolve::{self, EngineKind, LoadOptions, LoadedModel};
use vigia::sink::preview::{PreviewConfig, PreviewServer};
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
    let settings = args
        .overrides()
        .settings(args.model.is_none() && task == Task::Detect)
        .map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
    if args.engine == EngineKind::Tract {
        engine::set_threads(settings.threads as usize);
    }
    let model = resolve::load_model(
        args.model.as_deref(),
        Some(task),
        &LoadOptions {
            imgsz: settings.imgsz,
            engine: args.engine,
            threads: settings.threads as usize,
            ort_lib: args.ort_lib.clone(),
            half: settings.half && args.engine == EngineKind::Tract,
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
            engine_label(args.engine),
            settings.threads,
            if settings.half && args.engine == EngineKind::Tract {
                " in f16"
            } else {
                ""
            },
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
        if r.kernels.depthwise > 0 {
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

/// The engine and its version (or library) for the load line.
fn engine_label(kind: EngineKind) -> String {
    match kind {
        EngineKind::Tract => format!("tract {}", engine::tract_version()),
        #[cfg(feature = "ort")]
        EngineKind::Ort => match vigia::engine::ort::init(None) {
            Ok((path, _)) => format!("ONNX Runtime ({})", path.display()),
            Err(_) => "ONNX Runtime".into(),
        },
        #[cfg(not(feature = "ort"))]
        EngineKind::Ort => "ONNX Runtime".into(),
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
    /// Where follow commands from the broker go, when the run follows someone.
    pub follow_inbox: Option<FollowInbox>,
}

/// Runs detection (and tracking when `tracker` is given) over a source into the outputs.
pub fn run_source(
    req: RunRequest<'_>,
    tracker_args: Option<&TrackerArgs>,
    hook: Option<&mut FrameHook<'_>>,
) -> anyhow::Result<ExitCode> {
    let spec = req.source.spec()?;
    let kind = classify_source(&spec)?;
    let mut detector = Detector::new(load(req.model, Task::Detect)?);
    let decode = decode_params(req.decode, detector.labels())?;
    let pool = FramePool::new(8 + 2 * req.model.workers as usize);
    let source = open_source(
        &spec,
        &SourceOptions {
            vid_stride: req.source.vid_stride,
            image_fps: req.source.image_fps,
            capture: CaptureSize {
                width: req.source.camera_size.0,
                height: req.source.camera_size.1,
                fps: req.source.camera_fps,
            },
            stop: req.stop.clone(),
            pool: pool.clone(),
            start_wait: req.source.source_wait.map(Duration::from_secs_f64),
        },
    )?;
    let info = source.info().clone();
    let out = req.output;
    let is_images = kind == SourceKind::Images;
    let mut video = out.save_video.clone();
    let mut images = None;
    if let Some(dir) = &out.save {
        if is_images {
            images = Some(dir.clone());
        } else if video.is_none() {
            video = Some(dir.join(format!("{}.mp4", source_stem(&spec))));
        }
    }
    let preview = match &out.serve {
        Some(addr) => {
            let server = PreviewServer::start(PreviewConfig {
                addr: addr.clone(),
                token: out.serve_token.clone(),
                ..PreviewConfig::default()
            })?;
            eprintln!(
                "vigia: live preview at http://{}/{}",
                server.local_addr(),
                out.serve_token
                    .as_deref()
                    .map(|t| format!("?token={t}"))
                    .unwrap_or_default()
            );
            Some(server)
        }
        None => None,
    };
    let source_fps = info.fps.map(|f| f / req.source.vid_stride as f64);
    let mut tracker = tracker_args
        .map(|t| t.build_for_frames(source_fps.or(req.source.image_fps).unwrap_or(30.0)))
        .transpose()?;
    if req.save_mot.is_some() && tracker.is_none() {
        bail!("--save-mot needs tracks: use `vigia track`");
    }
    let detect = DetectSwitch::default();
    let mut publishing = Publishing::start(
        &out.mqtt,
        &source_stem(&spec),
        detector.labels(),
        decode.classes.as_deref(),
        &detect,
        req.follow_inbox.clone(),
    )?;
    let outputs = Outputs::open(
        OutputOptions {
            json: out
                .save_json
                .clone()
                .or_else(|| req.json_to_stdout.then(|| PathBuf::from("-"))),
            video: video.clone(),
            images,
            txt: out.save_txt.clone(),
            txt_conf: out.save_conf,
            mot: req.save_mot.clone(),
            preview,
            fps: source_fps,
            is_video: !is_images,
        },
        detector.labels().clone(),
    )?;
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
        stats_every: out.stats.filter(|s| *s > 0.0).map(Duration::from_secs_f64),
        progress: !req.model.quiet,
        workers: req.model.workers as usize,
        detect,
    };
    let mut stages = StageSet::new();
    stages.push(Box::new(outputs));
    if let Some(stage) = publishing.as_mut().and_then(Publishing::take_stage) {
        stages.push(stage);
    }
    let summary = pipeline::run(
        source,
        &mut detector,
        tracker.as_mut().map(|t| &mut **t as &mut dyn Tracker),
        hook,
        Box::new(stages),
        pool,
        &config,
        req.stop.clone(),
    );
    // The broker hears `offline` whether the run ended well or not.
    if let Some(p) = publishing {
        p.finish(req.model.quiet);
    }
    let summary = summary?;
    report(&summary, req.model.quiet);
    Ok(if summary.frames == 0 && !summary.interrupted {
        eprintln!("vigia: no frame could be processed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The end-of-run report on stderr.
fn report(s: &RunSummary, quiet: bool) {
    let h = s.source_health;
    if quiet && h.corrupt_frames == 0 {
        return;
    }
    eprintln!(
        "vigia: {} frame(s) in {:.1} s ({:.1} fps){}; {} corrupt frame(s) skipped or concealed, {} stale dropped, {} reconnect(s)",
        s.frames,
        s.seconds,
        s.fps,
        if s.interrupted { ", stopped early" } else { "" },
        h.corrupt_frames,
        s.dropped,
        h.reconnects
    );
    if !quiet {
        eprintln!("{}", pipeline::stats_line(s.frames, s.fps, &s.stats));
    }
}

/// A file-name stem for outputs derived from a source string.
pub fn source_stem(spec: &str) -> String {
    if spec.starts_with("synthetic://") {
        return "synthetic".into();
    }
    let stem = Path::new(spec.split(['?', '#']).next().unwrap_or(spec))
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() {
        "stream".into()
    } else if clean.chars().all(|c| c.is_ascii_digit()) {
        format!("camera{clean}")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_stems() {
        assert_eq!(source_stem("data/vtest.avi"), "vtest");
        assert_eq!(source_stem("0"), "camera0");
        assert_eq!(source_stem("rtsp://host/live/cam 1"), "cam_1");
        assert_eq!(source_stem("synthetic://?scene=x"), "synthetic");
        assert_eq!(source_stem("rtsp://host/"), "host");
    }
}
