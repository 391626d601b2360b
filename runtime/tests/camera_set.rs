//! Cameras of one process on one model: a camera whose stream is lost while running, or that
//! cannot start, ends alone with its own error while the others process every frame.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use vigia::camera_set::{run_cameras, CameraError, CameraJob, CameraParts};
use vigia::detector::Detector;
use vigia::error::{Error, Result};
use vigia::inference_turns::InferenceTurns;
use vigia::model::Task;
use vigia::pipeline::{FrameResult, OutputStage, PipelineConfig, PipelineStats};
use vigia::resolve::{load_model, LoadOptions};
use vigia::source::pool::FramePool;
use vigia::source::synthetic::SyntheticSource;
use vigia::source::{Frame, FrameSource, SourceInfo};

/// A synthetic scene whose stream is lost after `frames` frames, as a camera unplugged.
struct LostAfter {
    inner: SyntheticSource,
    frames: u64,
}

impl FrameSource for LostAfter {
    fn info(&self) -> &SourceInfo {
        self.inner.info()
    }

    fn next_frame(&mut self) -> Result<Option<Frame>> {
        if self.frames == 0 {
            return Err(Error::SourceLost {
                source_name: "unplugged-camera".into(),
                reason: "device removed".into(),
            });
        }
        self.frames -= 1;
        self.inner.next_frame()
    }
}

/// Counts the frames that reached a camera's outputs.
struct Tally(Arc<Mutex<u64>>);

impl OutputStage for Tally {
    fn write(&mut self, r: &FrameResult, _: &PipelineStats, _: f64) -> Result<()> {
        *self.0.lock().unwrap() += 1;
        assert!(r.frame.index < 12);
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

fn scene(spec: &str) -> SyntheticSource {
    SyntheticSource::open(spec).unwrap()
}

#[test]
fn a_lost_camera_and_one_that_cannot_start_leave_the_others_running() {
    let model = common::models_dir().join("nanodet-m-416.onnx");
    let detector = Detector::new(
        load_model(
            Some(model.to_str().unwrap()),
            Some(Task::Detect),
            &LoadOptions::default(),
        )
        .unwrap(),
    );
    let turns = InferenceTurns::new(1);
    let config = PipelineConfig {
        turns: Some(turns),
        ..PipelineConfig::default()
    };
    let tallies: Vec<Arc<Mutex<u64>>> = (0..3).map(|_| Arc::new(Mutex::new(0))).collect();
    let parts = |source: Box<dyn FrameSource>, tally: &Arc<Mutex<u64>>| CameraParts {
        source,
        detector: detector.fork().unwrap(),
        tracker: None,
        output: Box::new(Tally(tally.clone())),
        pool: FramePool::new(4),
        config: config.clone(),
        follower: None,
    };
    let good = parts(
        Box::new(scene("synthetic://?scene=crossing&frames=12")),
        &tallies[0],
    );
    let lost = parts(
        Box::new(LostAfter {
            inner: scene("synthetic://?scene=crossing&frames=12"),
            frames: 4,
        }),
        &tallies[1],
    );
    let jobs = vec![
        CameraJob {
            name: "good".into(),
            start: Box::new(move || Ok(good)),
            stop: Arc::new(AtomicBool::new(false)),
        },
        CameraJob {
            name: "lost".into(),
            start: Box::new(move || Ok(lost)),
            stop: Arc::new(AtomicBool::new(false)),
        },
        CameraJob {
            name: "never".into(),
            start: Box::new(|| Err("cannot open /dev/video9: no such device".into())),
            stop: Arc::new(AtomicBool::new(false)),
        },
    ];
    let process_stop = Arc::new(AtomicBool::new(false));
    let outcomes = run_cameras(jobs, &process_stop);
    let names: Vec<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["good", "lost", "never"]);

    let good = outcomes[0].result.as_ref().expect("the good camera ran");
    assert_eq!(good.frames, 12);
    assert!(!good.interrupted);
    assert_eq!(*tallies[0].lock().unwrap(), 12);

    match &outcomes[1].result {
        Err(CameraError::Run(Error::SourceLost { source_name, .. })) => {
            assert_eq!(source_name, "unplugged-camera")
        }
        other => panic!("lost camera: {:?}", other.as_ref().map(|s| s.frames)),
    }
    // What the lost camera produced before the loss reached its outputs.
    assert_eq!(*tallies[1].lock().unwrap(), 4);
    let message = outcomes[1].result.as_ref().err().unwrap().to_string();
    assert!(
        message.starts_with("failed while running") && message.contains("unplugged-camera"),
        "{message}"
    );

    let message = outcomes[2].result.as_ref().err().unwrap().to_string();
    assert!(
        message.starts_with("could not start") && message.contains("/dev/video9"),
        "{message}"
    );
    assert_eq!(*tallies[2].lock().unwrap(), 0);
}
