//! Multi-object tracking: ByteTrack over a constant-velocity Kalman filter.

pub mod assignment;
pub mod bytetrack;
pub mod kalman;

use serde::Serialize;

use crate::detection::{BBox, Detection};

/// Lifecycle of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrackState {
    /// Matched to a detection in the latest update.
    Tracked,
    /// Not matched recently; kept (predicted) until the track buffer runs out.
    Lost,
}

/// One tracked object as reported after an update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Track {
    /// Stable id, increasing from 1 in order of confirmation.
    pub id: u64,
    /// Box: the matched detection's (smoothed) box when tracked, the Kalman prediction when lost.
    pub bbox: BBox,
    /// Score of the last matched detection.
    pub score: f32,
    /// Class of the last matched detection.
    pub class_id: usize,
    pub state: TrackState,
    /// Updates since the track was created.
    pub age: u32,
    /// Consecutive updates without a matching detection (0 when tracked).
    pub frames_since_update: u32,
    /// Estimated centre velocity in pixels per second.
    pub velocity: (f32, f32),
}

/// A tracker turns per-frame detections into tracks with stable ids.
pub trait Tracker: Send {
    /// Advances to `frame_time` (seconds) with this frame's detections; returns the tracks
    /// currently `Tracked` (and, when asked by the implementation's config, recently `Lost` ones).
    fn update(&mut self, detections: &[Detection], frame_time: f64) -> &[Track];
    /// Forgets every track; ids continue from where they were.
    fn reset(&mut self);
}
