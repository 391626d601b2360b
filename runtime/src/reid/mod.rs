//! Appearance embeddings of person crops, for re-identification.
//!
//! An [`Embedder`] turns boxes of a frame into L2-normalized vectors whose cosine similarity is
//! high for the same person and low for different people. [`HistogramEmbedder`] (colour
//! histograms per body third) needs no model; [`ModelEmbedder`] runs an ONNX embedding model
//! (`vigia-train reid`). [`ColourShares`] (how much of the upper body each strong colour
//! covers) sits beside either as a veto: two people whose colours cover clearly different
//! parts of the body are never taken for one.

mod colour_shares;
mod colour_veto_scores;
mod crop_walk;
mod histogram;
mod model_embedder;
mod retrieval;
mod vector;

pub use colour_shares::{
    ColourAverage, ColourConflict, ColourShares, DEFAULT_COLOUR_VETO, MIN_COLOUR_VIEWS,
};
pub use colour_veto_scores::{colour_veto_scores, ColourSample, ColourVetoScores};
pub use crop_walk::CropWalk;
pub use histogram::{HistogramEmbedder, HISTOGRAM_THRESHOLD};
pub use model_embedder::{ModelEmbedder, DEFAULT_MODEL_THRESHOLD};
pub use retrieval::{retrieval, RetrievalScores, Sample};
pub use vector::{cosine, l2_normalize};

use image::RgbImage;

use crate::detection::BBox;
use crate::error::{Error, Result};

/// Crops smaller than this (pixels, after clipping to the frame) get no embedding.
pub const MIN_CROP_WIDTH: u32 = 6;
/// Crops shorter than this (pixels, after clipping to the frame) get no embedding.
pub const MIN_CROP_HEIGHT: u32 = 12;

/// Turns person boxes of one frame into appearance vectors.
pub trait Embedder: Send {
    /// Short name for logs and reports (`hist`, the model's file name).
    fn name(&self) -> &str;
    /// Length of every vector.
    fn dim(&self) -> usize;
    /// The cosine similarity above which two crops are taken for the same person by default.
    fn match_threshold(&self) -> f32;
    /// Embeds each box of `image` into `out` (cleared first, one entry per box, in order):
    /// `None` for a box too small or outside the frame, else an L2-normalized vector.
    fn embed(
        &mut self,
        image: &RgbImage,
        boxes: &[BBox],
        out: &mut Vec<Option<Vec<f32>>>,
    ) -> Result<()>;
}

/// Checks a similarity threshold (`--reid-threshold`) and margin (`--reid-margin`).
pub fn validate_match_rule(threshold: f32, margin: f32) -> Result<()> {
    if !(threshold > -1.0 && threshold <= 1.0) {
        return Err(Error::option(
            "--reid-threshold",
            format!("must be in (-1, 1], got {threshold}"),
        ));
    }
    if !(0.0..=2.0).contains(&margin) {
        return Err(Error::option(
            "--reid-margin",
            format!("must be in [0, 2], got {margin}"),
        ));
    }
    Ok(())
}

/// Checks a colour veto (`--reid-colour-veto`): a share of the upper body in (0, 1].
pub fn validate_colour_veto(veto: Option<f32>) -> Result<()> {
    match veto {
        Some(v) if !(v > 0.0 && v <= 1.0) => Err(Error::option(
            "--reid-colour-veto",
            format!("must be a share of the upper body in (0, 1] or `off`, got {v}"),
        )),
        _ => Ok(()),
    }
}

/// The pixel rectangle `(x0, y0, x1, y1)` (exclusive end) of `b` inside a `w` x `h` image, or
/// `None` when what is left is smaller than the minimum crop.
pub fn crop_rect(b: &BBox, w: u32, h: u32) -> Option<(u32, u32, u32, u32)> {
    let finite = b.x1.is_finite() && b.y1.is_finite() && b.x2.is_finite() && b.y2.is_finite();
    if !finite {
        return None;
    }
    let c = b.clip(w as f32, h as f32);
    let (x0, y0) = (c.x1.floor().max(0.0) as u32, c.y1.floor().max(0.0) as u32);
    let (x1, y1) = ((c.x2.ceil() as u32).min(w), (c.y2.ceil() as u32).min(h));
    (x1 >= x0 + MIN_CROP_WIDTH && y1 >= y0 + MIN_CROP_HEIGHT).then_some((x0, y0, x1, y1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_rect_clips_and_rejects_slivers() {
        assert_eq!(
            crop_rect(&BBox::new(-10.0, -5.0, 30.0, 50.0), 100, 40),
            Some((0, 0, 30, 40))
        );
        assert_eq!(crop_rect(&BBox::new(95.0, 0.0, 130.0, 40.0), 100, 40), None);
        assert_eq!(crop_rect(&BBox::new(0.0, 0.0, 20.0, 8.0), 100, 40), None);
        assert_eq!(
            crop_rect(&BBox::new(200.0, 0.0, 300.0, 40.0), 100, 40),
            None
        );
        assert_eq!(
            crop_rect(&BBox::new(f32::NAN, 0.0, 20.0, 30.0), 100, 40),
            None
        );
    }
}
