//! The JSON-lines schema of one processed frame: index, time, source, size, detections (with
//! track ids when tracking), stage latencies and, when following, the follow command.

use serde::Serialize;

use crate::follow::Command as FollowCommand;
use crate::model::Labels;
use crate::pipeline::FrameResult;

/// One frame as written to JSON lines.
#[derive(Debug, Serialize)]
pub struct FrameRecord<'a> {
    /// The camera's name, when the process runs named or several cameras.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<&'a str>,
    pub frame: u64,
    /// Seconds from the start of the source (ms precision).
    pub time: f64,
    pub source: &'a str,
    pub width: u32,
    pub height: u32,
    /// Tracks when tracking, else detections.
    pub detections: Vec<ObjectRecord>,
    pub time_ms: StageTimesRecord,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follow: Option<&'a FollowCommand>,
}

/// One detected (or tracked) object.
#[derive(Debug, Serialize)]
pub struct ObjectRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub track_id: Option<u64>,
    pub class_id: usize,
    pub label: String,
    pub score: f64,
    /// `[x1, y1, x2, y2]` in frame pixels (0.1 px precision).
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
}

/// Per-stage latency of the frame in milliseconds.
#[derive(Debug, Serialize)]
pub struct StageTimesRecord {
    pub preprocess: f64,
    pub inference: f64,
    pub decode: f64,
    pub track: f64,
}

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

fn rounded_box(b: &crate::BBox) -> [f64; 4] {
    [b.x1, b.y1, b.x2, b.y2].map(|v| round(v as f64, 1))
}

impl<'a> FrameRecord<'a> {
    /// The record of `r` from `camera`, naming classes with `labels`.
    pub fn new(r: &'a FrameResult, labels: &'a Labels, camera: Option<&'a str>) -> Self {
        let detections = if r.tracks.is_empty() {
            r.detections
                .iter()
                .map(|d| ObjectRecord {
                    track_id: None,
                    class_id: d.class_id,
                    label: labels.name(d.class_id),
                    score: round(d.score as f64, 4),
                    bbox: rounded_box(&d.bbox),
                })
                .collect()
        } else {
            r.tracks
                .iter()
                .map(|t| ObjectRecord {
                    track_id: Some(t.id),
                    class_id: t.class_id,
                    label: labels.name(t.class_id),
                    score: round(t.score as f64, 4),
                    bbox: rounded_box(&t.bbox),
                })
                .collect()
        };
        FrameRecord {
            camera,
            frame: r.frame.index,
            time: round(r.frame.timestamp, 3),
            source: &r.frame.origin,
            width: r.frame.image.width(),
            height: r.frame.image.height(),
            detections,
            time_ms: StageTimesRecord {
                preprocess: round(r.times[0], 2),
                inference: round(r.times[1], 2),
                decode: round(r.times[2], 2),
                track: round(r.times[3], 3),
            },
            follow: r.follow.as_ref(),
        }
    }
}
