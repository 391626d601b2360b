//! The JSON payloads vigia publishes, in one place: they are a contract with Home Assistant,
//! Node-RED and servers (see the README's MQTT section).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::track_events::TrackEvent;
use crate::follow::{Command, FollowEvent};
use crate::pipeline::PipelineStats;

fn round(v: f64, digits: i32) -> f64 {
    let m = 10f64.powi(digits);
    (v * m).round() / m
}

/// Seconds since the Unix epoch (ms precision).
pub fn wall_time() -> f64 {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    round(t, 3)
}

/// `<camera>/events`: one track event.
pub fn track_event(camera: &str, label: &str, e: &TrackEvent, frame_w: u32, frame_h: u32) -> Value {
    let b = e.bbox;
    let (w, h) = (frame_w.max(1) as f64, frame_h.max(1) as f64);
    let pixels = [b.x1, b.y1, b.x2, b.y2].map(|v| round(v as f64, 1));
    let normalised = [
        b.x1 as f64 / w,
        b.y1 as f64 / h,
        b.x2 as f64 / w,
        b.y2 as f64 / h,
    ]
    .map(|v| round(v, 4));
    json!({
        "type": e.kind,
        "seq": e.seq,
        "id": e.id,
        "label": label,
        "class_id": e.class_id,
        "score": round(e.score as f64, 3),
        "box": pixels,
        "box_norm": normalised,
        "camera": camera,
        "frame": e.frame,
        "time": round(e.time, 3),
        "start_time": round(e.start_time, 3),
        "wall_time": wall_time(),
    })
}

/// `<camera>/follow`: a change of the follower's state or target.
pub fn follow_event(camera: &str, e: &FollowEvent) -> Value {
    json!({
        "type": "state",
        "camera": camera,
        "event": e,
        "reason": e.reason.as_str(),
        "wall_time": wall_time(),
    })
}

/// `<camera>/follow`: a steering command (rate-limited by the caller).
pub fn follow_command(camera: &str, c: &Command) -> Value {
    json!({
        "type": "command",
        "camera": camera,
        "command": c,
        "wall_time": wall_time(),
    })
}

/// One camera's entry in `<device>/stats`.
pub fn camera_stats(frames: u64, fps: f64, s: &PipelineStats, detecting: bool) -> Value {
    json!({
        "frames": frames,
        "fps": round(fps, 1),
        "detect": if detecting { "ON" } else { "OFF" },
        "ms": {
            "capture": round(s.capture.mean_ms(), 2),
            "preprocess": round(s.preprocess.mean_ms(), 2),
            "inference": round(s.inference.mean_ms(), 2),
            "decode": round(s.decode.mean_ms(), 2),
            "track": round(s.track.mean_ms(), 2),
            "output": round(s.output.mean_ms(), 2),
        },
    })
}
