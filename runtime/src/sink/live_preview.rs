//! The seam between the outputs and a live preview: the output stage hands each annotated frame
//! and its stats to whatever shows them (the `serve` module's per-camera feed).

use image::RgbImage;

/// Where a camera's annotated frames go to be watched live.
pub trait LivePreview: Send {
    /// Whether anyone is watching, so the caller can skip drawing when nobody is.
    fn wants_frames(&self) -> bool;
    /// Hands over the newest annotated frame and its stats object; never blocks on viewers.
    fn publish(&self, frame: &RgbImage, stats: serde_json::Value);
    /// Hands over the stats of a frame nobody watches (so none was drawn).
    fn publish_stats(&self, stats: serde_json::Value);
}
