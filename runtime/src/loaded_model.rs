//! A model ready to run: what [`crate::resolve`] produces and the detector and classifier consume.

use crate::engine::{Engine, LoadReport, ModelSource};
use crate::model::{Labels, ModelCard};

/// A model ready to run: card, labels, engine and how it was obtained.
pub struct LoadedModel {
    /// The card in force (given or inferred).
    pub card: ModelCard,
    /// Class names.
    pub labels: Labels,
    /// What was assumed because no card said it.
    pub assumptions: Vec<String>,
    /// Where the ONNX came from.
    pub source: ModelSource,
    /// The engine, built for the card's input shape.
    pub engine: Box<dyn Engine>,
    /// Load timings.
    pub report: LoadReport,
    /// Why `--engine auto` chose this engine (`None` when it was named).
    pub engine_why: Option<String>,
}
