//! Several cameras in one process: each camera runs its own pipeline (capture, tracking, outputs)
//! on its own threads, all of them on one loaded model (each camera holds its own engine state),
//! taking turns at inference through shared [`InferenceTurns`](crate::inference_turns). A camera
//! that fails stops alone; the others run on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::detector::Detector;
use crate::error::{Error, Result};
use crate::follow::FollowOutput;
use crate::pipeline::{self, FrameResult, OutputStage, PipelineConfig, RunSummary};
use crate::source::pool::FramePool;
use crate::source::FrameSource;
use crate::track::Tracker;

/// Everything one camera runs with, once started.
pub struct CameraParts {
    pub source: Box<dyn FrameSource>,
    /// An engine state of the shared model (see [`Detector::fork`]).
    pub detector: Detector,
    pub tracker: Option<Box<dyn Tracker>>,
    pub output: Box<dyn OutputStage>,
    pub pool: FramePool,
    pub config: PipelineConfig,
    /// The camera's follower, when the process follows from it.
    pub follower: Option<Box<dyn CameraFollower>>,
}

/// One camera's follower: steers from each tracked frame on the inference thread, and tells its
/// outputs to stop when the camera ends, however it ended.
pub trait CameraFollower: Send {
    /// The follow command (and state changes) for one frame.
    fn on_frame(&mut self, result: &FrameResult) -> Result<Option<FollowOutput>>;
    /// Sends the final stop and ends the follower's watchdog.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Opens a camera's source and outputs, on the camera's own thread so that a camera waited for
/// at start holds up no other.
pub type CameraStart<'a> =
    Box<dyn FnOnce() -> std::result::Result<CameraParts, BoxError> + Send + 'a>;

/// Any error a camera's start meets.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One camera of the set.
pub struct CameraJob<'a> {
    /// The camera's name (topics, file names, JSON lines, log lines).
    pub name: String,
    pub start: CameraStart<'a>,
    /// This camera's own stop flag, to be given to its source: set when the process stops, and
    /// by the camera's pipeline when it fails, without stopping the others.
    pub stop: Arc<AtomicBool>,
}

/// Why a camera ended early.
#[derive(Debug)]
pub enum CameraError {
    /// It could not start (source not found or not reachable, output not writable).
    Start(BoxError),
    /// It failed while running.
    Run(Error),
}

impl std::fmt::Display for CameraError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraError::Start(e) => write!(f, "could not start: {e}"),
            CameraError::Run(e) => write!(f, "failed while running: {e}"),
        }
    }
}

/// How one camera's run ended.
pub struct CameraOutcome {
    pub name: String,
    pub result: std::result::Result<RunSummary, CameraError>,
}

/// Runs every camera until its source ends, it fails, or `stop` is set; outcomes come back in
/// the order of `jobs`.
pub fn run_cameras(jobs: Vec<CameraJob<'_>>, stop: &Arc<AtomicBool>) -> Vec<CameraOutcome> {
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    let camera_stops: Vec<Arc<AtomicBool>> = jobs.iter().map(|j| j.stop.clone()).collect();
    let all_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Passes the process's stop (Ctrl-C) on to every camera.
        scope.spawn(|| {
            while !all_done.load(Ordering::Relaxed) {
                if stop.load(Ordering::Relaxed) {
                    for s in &camera_stops {
                        s.store(true, Ordering::Relaxed);
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                let name = job.name.clone();
                std::thread::Builder::new()
                    .name(format!("vigia-cam-{name}"))
                    .spawn_scoped(scope, move || run_one(job))
                    .map_err(|e| {
                        CameraError::Run(Error::thread_spawn(&format!("camera {name}"), e))
                    })
            })
            .collect();
        let outcomes = handles
            .into_iter()
            .zip(&names)
            .map(|(handle, name)| CameraOutcome {
                name: name.clone(),
                result: handle.and_then(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(CameraError::Run(Error::thread_panicked(&format!(
                            "camera {name}"
                        ))))
                    })
                }),
            })
            .collect();
        all_done.store(true, Ordering::Relaxed);
        outcomes
    })
}

/// One camera: started, then run.
fn run_one(job: CameraJob<'_>) -> std::result::Result<RunSummary, CameraError> {
    let CameraParts {
        source,
        mut detector,
        mut tracker,
        output,
        pool,
        config,
        mut follower,
    } = (job.start)().map_err(CameraError::Start)?;
    let mut hook = follower
        .as_mut()
        .map(|f| move |r: &FrameResult| f.on_frame(r));
    let summary = pipeline::run(
        source,
        &mut detector,
        tracker.as_mut().map(|t| &mut **t as &mut dyn Tracker),
        hook.as_mut().map(|h| h as &mut pipeline::FrameHook<'_>),
        output,
        pool,
        &config,
        job.stop,
    );
    // Whatever happened, the camera's vehicle is told to stop.
    let stopped = follower.map_or(Ok(()), |f| f.finish());
    let summary = summary.map_err(CameraError::Run)?;
    stopped.map_err(CameraError::Run)?;
    Ok(summary)
}
