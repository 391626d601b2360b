//! A detector: preprocessing, engine and decoder wired for one model, reused frame after frame.

use std::time::Instant;

use image::RgbImage;

use crate::decode::{DecodeParams, DetectorDecoder};
use crate::detection::Detection;
use crate::error::Result;
use crate::loaded_model::LoadedModel;
use crate::model::{Labels, ModelCard};
use crate::preprocess::{InputTransform, Preprocessor};

/// Milliseconds spent in each stage for the last frame.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StageTimes {
    pub preprocess_ms: f64,
    pub inference_ms: f64,
    pub decode_ms: f64,
}

/// Runs a detection model on RGB frames and returns boxes in frame pixels.
pub struct Detector {
    model: LoadedModel,
    pre: Preprocessor,
    decoder: DetectorDecoder,
    detections: Vec<Detection>,
    last: StageTimes,
}

impl Detector {
    /// Wraps a loaded detection model.
    pub fn new(model: LoadedModel) -> Self {
        let input = &model.card.input;
        let pre = Preprocessor::new(input);
        let decoder = DetectorDecoder::new(
            model.card.output.family,
            input.width,
            input.height,
            model.card.output.num_classes,
        );
        Detector {
            model,
            pre,
            decoder,
            detections: Vec::with_capacity(300),
            last: StageTimes::default(),
        }
    }

    /// The model card in force.
    pub fn card(&self) -> &ModelCard {
        &self.model.card
    }

    /// Class names.
    pub fn labels(&self) -> &Labels {
        &self.model.labels
    }

    /// The loaded model (source, load report, assumptions).
    pub fn model(&self) -> &LoadedModel {
        &self.model
    }

    /// Stage timings of the last call to [`Detector::detect`].
    pub fn last_times(&self) -> StageTimes {
        self.last
    }

    /// Another detector for the same model with its own engine state (the optimized graph and
    /// weights are shared where the engine allows), for a second inference worker.
    pub fn fork(&self) -> Result<Detector> {
        let m = &self.model;
        Ok(Detector::new(LoadedModel {
            card: m.card.clone(),
            labels: m.labels.clone(),
            assumptions: m.assumptions.clone(),
            source: m.source.clone(),
            engine: m.engine.fork()?,
            report: m.report.clone(),
            engine_why: m.engine_why.clone(),
        }))
    }

    /// Runs only the engine on the input left by the last [`Detector::detect`] (for benchmarks).
    pub fn run_engine(&mut self) -> Result<()> {
        self.model.engine.run()
    }

    /// Detects objects in `frame`; boxes are in `frame` pixels.
    pub fn detect(&mut self, frame: &RgbImage, params: &DecodeParams) -> Result<&[Detection]> {
        let t0 = Instant::now();
        let transform = self.pre.run(frame, self.model.engine.input_mut())?;
        let t1 = Instant::now();
        self.model.engine.run()?;
        let t2 = Instant::now();
        let outputs = self.model.engine.outputs()?;
        self.decoder
            .decode(&outputs, params, &mut self.detections)?;
        map_to_source(&mut self.detections, &transform);
        let t3 = Instant::now();
        self.last = StageTimes {
            preprocess_ms: ms(t1 - t0),
            inference_ms: ms(t2 - t1),
            decode_ms: ms(t3 - t2),
        };
        Ok(&self.detections)
    }
}

/// Maps boxes from model-input pixels to source pixels, dropping boxes that vanish when clipped.
fn map_to_source(dets: &mut Vec<Detection>, t: &InputTransform) {
    for d in dets.iter_mut() {
        d.bbox = t.to_source(&d.bbox);
    }
    dets.retain(|d| d.bbox.area() > 0.0);
}

pub(crate) fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
