//! Multi-object tracking: ByteTrack over a constant-velocity Kalman filter, with appearance
//! re-identification of people who leave and come back ([`reid::ReidTracker`]).

pub mod appearance;
pub mod assignment;
pub mod bytetrack;
pub mod kalman;
pub mod reid;

use image::RgbImage;
use serde::Serialize;

use crate::detection::{BBox, Detection};
use crate::error::Result;
use appearance::Appearances;

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
    /// As [`Tracker::update`], with the frame's pixels for trackers that look at appearance.
    fn update_frame(
        &mut self,
        image: &RgbImage,
        detections: &[Detection],
        frame_time: f64,
    ) -> Result<&[Track]> {
        let _ = image;
        Ok(self.update(detections, frame_time))
    }
    /// The appearance of the tracks of the last update (`None` for motion-only trackers).
    fn appearances(&self) -> Option<&Appearances> {
        None
    }
    /// Forgets every track; ids continue from where they were.
    fn reset(&mut self);
}
