//! The real-time pipeline: capture, inference and output on separate threads with bounded queues.
//!
//! ```text
//! capture thread ──(files: bounded queue; live: newest frame only)──▶ inference (caller's thread)
//!     detect → track → per-frame hook ──(bounded queue)──▶ output thread: annotate, sinks, progress
//! ```
//! Files process every frame (or every Nth); live sources drop stale frames so inference always
//! runs on the newest. With several workers, each detects on its own engine state in its own
//! thread; frames are numbered as they are taken and put back in order (a reorder buffer) before
//! tracking, the hook and the outputs, so results are those of a single worker. A stop flag
//! (Ctrl-C) ends capture; the queues drain and every sink is finalized.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender, TrySendError};
use serde::Serialize;

use crate::decode::DecodeParams;
use crate::detection::Detection;
use crate::detector::{ms, Detector, StageTimes};
use crate::error::{Error, Result};
use crate::follow::{Command as FollowCommand, FollowEvent, FollowOutput};
use crate::inference_turns::InferenceTurns;
use crate::source::pool::FramePool;
use crate::source::{Frame, FrameSource, SourceHealth, SourceInfo};
use crate::track::appearance::Appearances;
use crate::track::{Track, Tracker};

/// Running statistics of one stage's latency.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StageStat {
    pub count: u64,
    pub total_ms: f64,
    pub max_ms: f64,
}

impl StageStat {
    /// Adds one sample.
    pub fn add(&mut self, ms: f64) {
        self.count += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    /// Mean latency in milliseconds.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ms / self.count as f64
        }
    }
}

/// Per-stage latency of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PipelineStats {
    pub capture: StageStat,
    pub preprocess: StageStat,
    pub inference: StageStat,
    pub decode: StageStat,
    pub track: StageStat,
    pub output: StageStat,
}

/// What a finished run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Frames that went through inference.
    pub frames: u64,
    /// Frames a live source produced but the pipeline skipped to stay current.
    pub dropped: u64,
    /// Trouble the source met (corrupt frames, reconnects).
    pub source_health: SourceHealth,
    /// Wall-clock seconds from the first frame request to the last output.
    pub seconds: f64,
    /// Frames per second over the whole run.
    pub fps: f64,
    pub stats: PipelineStats,
    /// True when the run ended on the stop flag rather than at the end of the source.
    pub interrupted: bool,
}

/// One processed frame on its way to the outputs.
pub struct FrameResult {
    pub frame: Frame,
    /// Detections in frame pixels.
    pub detections: Vec<Detection>,
    /// Tracks after this frame (empty without a tracker).
    pub tracks: Vec<Track>,
    /// Appearance of the tracks, when the tracker re-identifies people.
    pub appearances: Appearances,
    /// The follow command the per-frame hook produced for this frame, when following.
    pub follow: Option<FollowCommand>,
    /// The follower's state and target changes during this frame, when following.
    pub follow_events: Vec<FollowEvent>,
    /// This frame's stage latencies in ms: preprocess, inference, decode, track.
    pub times: [f64; 4],
}

/// Consumes processed frames on the output thread (annotation, files, preview).
pub trait OutputStage: Send {
    /// Handles one frame.
    fn write(&mut self, result: &FrameResult, stats: &PipelineStats, fps: f64) -> Result<()>;
    /// Finalizes every output (called once, also after a stop).
    fn finish(&mut self) -> Result<()>;
}

/// Turns detection on and off while a run goes on (`<camera>/detect/set`); frames keep flowing
/// with no detections while it is off.
#[derive(Debug, Clone)]
pub struct DetectSwitch(Arc<AtomicBool>);

impl Default for DetectSwitch {
    fn default() -> Self {
        DetectSwitch(Arc::new(AtomicBool::new(true)))
    }
}

impl DetectSwitch {
    /// True while detection runs.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Turns detection on or off from the next frame.
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed)
    }
}

/// Knobs of a run.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub decode: DecodeParams,
    /// Stop after this many frames went through inference (stale frames a live source drops
    /// do not count).
    pub max_frames: Option<u64>,
    /// Print stats to stderr this often.
    pub stats_every: Option<Duration>,
    /// Show a progress bar (files with a known length, on a terminal).
    pub progress: bool,
    /// Inference workers, each with its own engine state (0 or 1: one, on the caller's thread).
    pub workers: usize,
    /// Detection on or off.
    pub detect: DetectSwitch,
    /// Turns at inference shared with other cameras of the process (none: always this one's).
    pub turns: Option<InferenceTurns>,
    /// The camera's name in stats lines, when the process runs several.
    pub label: Option<String>,
}

/// Called on the inference thread after tracking, for low-latency consumers (the follower).
pub type FrameHook<'a> = dyn FnMut(&FrameResult) -> Result<Option<FollowOutput>> + 'a;

/// Runs `source` through `detector` (and `tracker`) into `output` until the source ends or
/// `stop` is set.
#[allow(clippy::too_many_arguments)]
pub fn run(
    mut source: Box<dyn FrameSource>,
    detector: &mut Detector,
    mut tracker: Option<&mut dyn Tracker>,
    hook: Option<&mut FrameHook<'_>>,
    mut output: Box<dyn OutputStage>,
    pool: FramePool,
    config: &PipelineConfig,
    stop: Arc<AtomicBool>,
) -> Result<RunSummary> {
    let info = source.info().clone();
    let live = info.live;
    // Extra workers get their own engine state, made before any thread starts.
    let mut forks = (1..config.workers.max(1))
        .map(|_| detector.fork())
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    let dropped = Arc::new(AtomicU64::new(0));
    let (frame_tx, frame_rx) = bounded::<Frame>(if live { 1 } else { 3 + forks.len() });
    let (result_tx, result_rx) = bounded::<FrameResult>(4);
    // Set when inference has ended (source done, enough frames, or a failure).
    let inference_done = Arc::new(AtomicBool::new(false));

    // Capture thread.
    let capture = {
        let stop = stop.clone();
        let inference_done = inference_done.clone();
        let dropped = dropped.clone();
        let stale_rx = frame_rx.clone();
        let pool = pool.clone();
        let max_frames = config.max_frames;
        std::thread::Builder::new()
            .name("vigia-capture".into())
            .spawn(move || -> (Result<()>, StageStat, SourceHealth) {
                let mut stat = StageStat::default();
                let mut sent = 0u64;
                let result = (|| {
                    // A file stops reading at the frame count; a live source keeps the newest
                    // frame coming until inference has had enough.
                    while !stop.load(Ordering::Relaxed)
                        && !inference_done.load(Ordering::Relaxed)
                        && (live || max_frames.is_none_or(|m| sent < m))
                    {
                        let t = Instant::now();
                        let Some(frame) = source.next_frame()? else {
                            break;
                        };
                        stat.add(ms(t.elapsed()));
                        sent += 1;
                        if live {
                            send_newest(&frame_tx, &stale_rx, frame, &dropped, &pool);
                        } else if frame_tx.send(frame).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })();
                (result, stat, source.health())
            })
            .map_err(thread_error)?
    };

    // Output thread.
    let out_thread = {
        let reporting = Reporting {
            progress_of: (config.progress && !live).then_some(info.frames).flatten(),
            stats_every: config.stats_every,
            label: config.label.clone(),
        };
        let pool = pool.clone();
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("vigia-output".into())
            .spawn(move || -> (Result<()>, StageStat) {
                output_loop(&mut *output, result_rx, pool, reporting, stop)
            })
            .map_err(thread_error)?
    };

    // Inference: on this thread, or on worker threads with results put back in order here.
    let mut stats = PipelineStats::default();
    let mut frames = 0u64;
    let mut infer_error = None;
    {
        let mut hook = hook;
        // Tracking, the hook and the hand-over to the output thread, in frame order. Returns
        // false when the output thread is gone.
        let mut deliver = |frame: Frame, dets: Vec<Detection>, t: StageTimes| -> Result<bool> {
            let t_track = Instant::now();
            let (tracks, appearances) = match tracker.as_deref_mut() {
                Some(tr) => {
                    let tracks = tr
                        .update_frame(&frame.image, &dets, frame.timestamp)?
                        .to_vec();
                    (tracks, tr.appearances().cloned().unwrap_or_default())
                }
                None => (vec![], Appearances::default()),
            };
            let track_ms = if tracker.is_some() {
                ms(t_track.elapsed())
            } else {
                0.0
            };
            stats.preprocess.add(t.preprocess_ms);
            stats.inference.add(t.inference_ms);
            stats.decode.add(t.decode_ms);
            if tracker.is_some() {
                stats.track.add(track_ms);
            }
            let mut result = FrameResult {
                frame,
                detections: dets,
                tracks,
                appearances,
                follow: None,
                follow_events: Vec::new(),
                times: [t.preprocess_ms, t.inference_ms, t.decode_ms, track_ms],
            };
            if let Some(h) = hook.as_deref_mut() {
                if let Some(out) = h(&result)? {
                    result.follow = Some(out.command);
                    result.follow_events = out.events;
                }
            }
            frames += 1;
            // A failed send means the output thread failed; its error is reported below.
            let sent = result_tx.send(result).is_ok();
            Ok(sent && config.max_frames.is_none_or(|m| frames < m))
        };
        if forks.is_empty() {
            for frame in frame_rx.iter() {
                let (dets, t) = match detect_if_on(detector, &frame, config) {
                    Ok(r) => r,
                    Err(e) => {
                        infer_error = Some(e);
                        break;
                    }
                };
                match deliver(frame, dets, t) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        infer_error = Some(e);
                        break;
                    }
                }
            }
        } else {
            let detectors = std::iter::once(detector).chain(forks.iter_mut()).collect();
            infer_error = run_workers(detectors, &frame_rx, config, &stop, &mut deliver).err();
        }
    }
    drop(result_tx);
    inference_done.store(true, Ordering::Relaxed);
    if infer_error.is_some() {
        stop.store(true, Ordering::Relaxed);
        // Unblock the capture thread if it waits on a full queue.
        while frame_rx.try_recv().is_ok() {}
    }
    drop(frame_rx);
    let (out_result, out_stat) = out_thread
        .join()
        .unwrap_or_else(|_| (Err(Error::thread_panicked("output")), StageStat::default()));
    let (cap_result, cap_stat, health) = capture.join().unwrap_or_else(|_| {
        (
            Err(Error::thread_panicked("capture")),
            StageStat::default(),
            SourceHealth::default(),
        )
    });
    stats.capture = cap_stat;
    stats.output = out_stat;
    if let Some(e) = infer_error {
        return Err(e);
    }
    out_result?;
    cap_result?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(RunSummary {
        frames,
        dropped: dropped.load(Ordering::Relaxed),
        source_health: health,
        seconds,
        fps: if seconds > 0.0 {
            frames as f64 / seconds
        } else {
            0.0
        },
        stats,
        interrupted: stop.load(Ordering::Relaxed),
    })
}

/// Detections and stage times of `frame`, or none (and zero times) while detection is off;
/// waits for this camera's turn when cameras share the machine.
fn detect_if_on(
    detector: &mut Detector,
    frame: &Frame,
    config: &PipelineConfig,
) -> Result<(Vec<Detection>, StageTimes)> {
    if !config.detect.is_on() {
        return Ok((Vec::new(), StageTimes::default()));
    }
    let _turn = config.turns.as_ref().map(InferenceTurns::take);
    let dets = detector.detect(&frame.image, &config.decode)?.to_vec();
    Ok((dets, detector.last_times()))
}

/// A worker's output for one frame: the frame and its detections with stage times, or the error.
type WorkerResult = (Frame, Result<(Vec<Detection>, StageTimes)>);

/// A worker's result tagged with the frame's sequence number.
type WorkDone = (u64, Frame, Result<(Vec<Detection>, StageTimes)>);

/// Runs one thread per detector, each taking the next frame from `frames` and numbering it;
/// results are delivered in that order. Returns the first error (inference or delivery).
fn run_workers(
    detectors: Vec<&mut Detector>,
    frames: &Receiver<Frame>,
    config: &PipelineConfig,
    stop: &AtomicBool,
    deliver: &mut dyn FnMut(Frame, Vec<Detection>, StageTimes) -> Result<bool>,
) -> Result<()> {
    let workers = detectors.len();
    // Taking a frame and its number under one lock keeps numbers in capture order.
    let queue = Mutex::new((frames.clone(), 0u64));
    let abort = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| -> Result<()> {
        let (done_tx, done_rx) = bounded::<WorkDone>(2 * workers);
        for (i, detector) in detectors.into_iter().enumerate() {
            let done_tx = done_tx.clone();
            let (queue, abort) = (&queue, &abort);
            std::thread::Builder::new()
                .name(format!("vigia-infer-{i}"))
                .spawn_scoped(scope, move || {
                    while !abort.load(Ordering::Relaxed) {
                        let (seq, frame) = {
                            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                            let Ok(frame) = q.0.recv() else { return };
                            q.1 += 1;
                            (q.1 - 1, frame)
                        };
                        // A panic inside the model is reported as this worker's failure
                        // rather than tearing down the scope.
                        let result = catch_unwind(AssertUnwindSafe(|| {
                            detect_if_on(detector, &frame, config)
                        }))
                        .unwrap_or_else(|_| {
                            Err(Error::thread_panicked(&format!("inference worker {i}")))
                        });
                        let failed = result.is_err();
                        if done_tx.send((seq, frame, result)).is_err() || failed {
                            return;
                        }
                    }
                })
                .map_err(thread_error)?;
        }
        drop(done_tx);
        // Reorder buffer: holds results that arrive ahead of the next frame due.
        let mut pending: BTreeMap<u64, WorkerResult> = BTreeMap::new();
        let mut next = 0u64;
        let mut deliver_in_order = || -> Result<()> {
            for (seq, frame, result) in done_rx.iter() {
                pending.insert(seq, (frame, result));
                while let Some((frame, result)) = pending.remove(&next) {
                    next += 1;
                    let (dets, t) = result?;
                    if !deliver(frame, dets, t)? {
                        return Ok(());
                    }
                }
            }
            Ok(())
        };
        let outcome = deliver_in_order();
        // Workers still running stop at their next frame; results they send are dropped.
        abort.store(true, Ordering::Relaxed);
        if outcome.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        outcome
    });
    if outcome.is_err() {
        stop.store(true, Ordering::Relaxed);
    }
    outcome
}

/// Keeps only the newest frame in a 1-slot queue (live sources).
fn send_newest(
    tx: &Sender<Frame>,
    stale: &Receiver<Frame>,
    frame: Frame,
    dropped: &AtomicU64,
    pool: &FramePool,
) {
    let mut frame = frame;
    loop {
        match tx.try_send(frame) {
            Ok(()) => return,
            Err(TrySendError::Full(f)) => {
                if let Ok(old) = stale.try_recv() {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    pool.give(old.image);
                }
                frame = f;
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// What the output thread reports while it runs.
struct Reporting {
    /// Frames of the source, for a progress bar (none: no bar).
    progress_of: Option<u64>,
    /// How often to print a stats line.
    stats_every: Option<Duration>,
    /// The camera's name on stats lines.
    label: Option<String>,
}

fn output_loop(
    output: &mut dyn OutputStage,
    rx: Receiver<FrameResult>,
    pool: FramePool,
    reporting: Reporting,
    stop: Arc<AtomicBool>,
) -> (Result<()>, StageStat) {
    let mut stat = StageStat::default();
    let bar = match reporting.progress_of {
        Some(n) => {
            let bar = indicatif::ProgressBar::new(n);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {pos}/{len} frames  {per_sec}  ETA {eta}  {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            Some(bar)
        }
        None => None,
    };
    let started = Instant::now();
    let mut last_stats = Instant::now();
    let mut done = 0u64;
    let mut running = PipelineStats::default();
    let mut result = Ok(());
    for r in rx.iter() {
        let t = Instant::now();
        let fps = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        running.preprocess.add(r.times[0]);
        running.inference.add(r.times[1]);
        running.decode.add(r.times[2]);
        running.track.add(r.times[3]);
        running.output = stat;
        if result.is_ok() {
            result = output.write(&r, &running, fps);
            if result.is_err() {
                // Stop capturing; keep draining so the inference thread is not blocked.
                stop.store(true, Ordering::Relaxed);
            }
        }
        pool.give(r.frame.image);
        stat.add(ms(t.elapsed()));
        done += 1;
        if let Some(b) = &bar {
            b.set_position(r.frame.index + 1);
        }
        if let Some(every) = reporting.stats_every {
            if last_stats.elapsed() >= every {
                last_stats = Instant::now();
                eprintln!(
                    "{}",
                    stats_line(reporting.label.as_deref(), done, fps, &running)
                );
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let finished = output.finish();
    (result.and(finished), stat)
}

/// A one-line report of throughput and mean stage latencies, of the camera `label` when named.
pub fn stats_line(label: Option<&str>, frames: u64, fps: f64, s: &PipelineStats) -> String {
    let who = label.map(|l| format!(" [{l}]")).unwrap_or_default();
    format!(
        "vigia{who}: {frames} frames  {fps:.1} fps  capture {:.1} ms  preprocess {:.1}  inference {:.1}  decode {:.2}  track {:.2}  output {:.1}",
        s.capture.mean_ms(),
        s.preprocess.mean_ms(),
        s.inference.mean_ms(),
        s.decode.mean_ms(),
        s.track.mean_ms(),
        s.output.mean_ms()
    )
}

/// Describes a source for the start-of-run line.
pub fn describe_source(info: &SourceInfo) -> String {
    let mut s = info.name.clone();
    if info.width > 0 {
        s.push_str(&format!(" {}x{}", info.width, info.height));
    }
    if let Some(fps) = info.fps {
        s.push_str(&format!(" @ {fps:.2} fps"));
    }
    if let Some(n) = info.frames {
        s.push_str(&format!(", {n} frames"));
    }
    if info.live {
        s.push_str(" (live)");
    }
    s
}

fn thread_error(e: std::io::Error) -> Error {
    Error::thread_spawn("pipeline", e)
}
