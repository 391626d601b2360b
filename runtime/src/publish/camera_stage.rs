//! One camera's publishing, run on the pipeline's output thread: track events, object counts,
//! snapshots of new objects, rate-limited follow commands and periodic stats.

use std::sync::Arc;
use std::time::{Duration, Instant};

use image::RgbImage;

use super::message::{Message, MessageSink};
use super::object_counts::ObjectCounts;
use super::payloads;
use super::topics::Topics;
use super::track_events::{EventKind, EventPolicy, TrackEvent, TrackEvents};
use crate::annotate::draw_detections;
use crate::error::Result;
use crate::model::Labels;
use crate::pipeline::{DetectSwitch, FrameResult, OutputStage, PipelineStats};
use crate::track::TrackState;

/// What one camera publishes and how often.
#[derive(Debug, Clone)]
pub struct CameraPublishConfig {
    /// The camera's topic level.
    pub camera: String,
    pub events: EventPolicy,
    /// Frames a new count must hold before it is published.
    pub count_hold_frames: u32,
    /// Classes whose count is published from the start (as 0 when none is in view).
    pub always_count: Vec<usize>,
    /// Publish a JPEG of the annotated frame on `new` events (at most one per second).
    pub snapshots: bool,
    /// Seconds between two follow commands on `<camera>/follow` (state changes always go).
    pub follow_every: f64,
    /// Time between two `<device>/stats` messages.
    pub stats_every: Option<Duration>,
}

impl Default for CameraPublishConfig {
    fn default() -> Self {
        CameraPublishConfig {
            camera: "cam0".into(),
            events: EventPolicy::default(),
            count_hold_frames: 3,
            always_count: vec![],
            snapshots: false,
            follow_every: 0.5,
            stats_every: Some(Duration::from_secs(10)),
        }
    }
}

/// Publishes one camera's results through a [`MessageSink`].
pub struct CameraPublisher {
    sink: Arc<dyn MessageSink>,
    topics: Topics,
    config: CameraPublishConfig,
    labels: Labels,
    detect: DetectSwitch,
    events: TrackEvents,
    counts: ObjectCounts,
    buffer: Vec<TrackEvent>,
    last_follow: Option<f64>,
    last_snapshot: Option<Instant>,
    last_stats: Instant,
    last_frame: Option<(u64, f64, u32, u32)>,
    frames: u64,
    canvas: RgbImage,
    events_published: u64,
}

impl CameraPublisher {
    /// A publisher for one camera whose detection switch is `detect`.
    pub fn new(
        sink: Arc<dyn MessageSink>,
        topics: Topics,
        config: CameraPublishConfig,
        labels: Labels,
        detect: DetectSwitch,
    ) -> Self {
        CameraPublisher {
            events: TrackEvents::new(config.events),
            counts: ObjectCounts::new(config.count_hold_frames, &config.always_count),
            sink,
            topics,
            labels,
            detect,
            buffer: Vec::new(),
            last_follow: None,
            last_snapshot: None,
            last_stats: Instant::now(),
            last_frame: None,
            frames: 0,
            canvas: RgbImage::new(0, 0),
            events_published: 0,
            config,
        }
    }

    /// Track events handed to the sink so far.
    pub fn events_published(&self) -> u64 {
        self.events_published
    }

    fn send_events(&mut self, w: u32, h: u32) {
        let camera = &self.config.camera;
        for e in self.buffer.drain(..) {
            let label = self.labels.name(e.class_id);
            let payload = payloads::track_event(camera, &label, &e, w, h).to_string();
            self.sink
                .publish(Message::reliable(self.topics.events(camera), payload));
            self.events_published += 1;
        }
    }

    fn snapshot(&mut self, r: &FrameResult) {
        if self
            .last_snapshot
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last_snapshot = Some(Instant::now());
        self.canvas.clone_from(&r.frame.image);
        let dets: Vec<crate::Detection> = r
            .tracks
            .iter()
            .map(|t| crate::Detection {
                bbox: t.bbox,
                score: t.score,
                class_id: t.class_id,
            })
            .collect();
        let ids: Vec<u64> = r.tracks.iter().map(|t| t.id).collect();
        let labels = &self.labels;
        draw_detections(&mut self.canvas, &dets, &|c| labels.name(c), Some(&ids));
        let mut jpeg = Vec::new();
        let encoded = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
            .encode_image(&self.canvas);
        if encoded.is_ok() {
            let mut m = Message::retained(self.topics.snapshot(&self.config.camera), jpeg);
            m.reliable = false;
            self.sink.publish(m);
        }
    }
}

impl OutputStage for CameraPublisher {
    fn write(&mut self, r: &FrameResult, stats: &PipelineStats, fps: f64) -> Result<()> {
        let (w, h) = r.frame.image.dimensions();
        let (frame, time) = (r.frame.index, r.frame.timestamp);
        self.frames += 1;
        self.last_frame = Some((frame, time, w, h));
        let camera = self.config.camera.clone();

        self.events.update(&r.tracks, frame, time, &mut self.buffer);
        let any_new = self.buffer.iter().any(|e| e.kind == EventKind::New);
        self.send_events(w, h);
        if any_new && self.config.snapshots {
            self.snapshot(r);
        }

        let in_view: Vec<usize> = if r.tracks.is_empty() {
            r.detections.iter().map(|d| d.class_id).collect()
        } else {
            r.tracks
                .iter()
                .filter(|t| t.state == TrackState::Tracked)
                .map(|t| t.class_id)
                .collect()
        };
        for (class, n) in self.counts.update(in_view) {
            let label = self.labels.name(class);
            self.sink.publish(Message::retained(
                self.topics.count(&camera, &label),
                n.to_string(),
            ));
        }

        for e in &r.follow_events {
            let payload = payloads::follow_event(&camera, e).to_string();
            self.sink
                .publish(Message::reliable(self.topics.follow(&camera), payload));
        }
        if let Some(cmd) = &r.follow {
            let due = self
                .last_follow
                .is_none_or(|t| cmd.time - t >= self.config.follow_every || cmd.time < t);
            if due {
                self.last_follow = Some(cmd.time);
                let payload = payloads::follow_command(&camera, cmd).to_string();
                self.sink
                    .publish(Message::best_effort(self.topics.follow(&camera), payload));
            }
        }

        if let Some(every) = self.config.stats_every {
            if self.last_stats.elapsed() >= every {
                self.last_stats = Instant::now();
                self.publish_stats(stats, fps);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if let Some((frame, time, w, h)) = self.last_frame {
            self.events.finish(frame, time, &mut self.buffer);
            self.send_events(w, h);
        }
        Ok(())
    }
}

impl CameraPublisher {
    fn publish_stats(&self, stats: &PipelineStats, fps: f64) {
        let payload = serde_json::json!({
            "cameras": {
                &self.config.camera: payloads::camera_stats(self.frames, fps, stats, self.detect.is_on()),
            },
            "events": self.events_published,
            "wall_time": payloads::wall_time(),
        });
        self.sink.publish(Message::best_effort(
            self.topics.stats(),
            payload.to_string(),
        ));
    }
}
