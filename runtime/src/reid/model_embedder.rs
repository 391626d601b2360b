//! [`ModelEmbedder`]: appearance vectors from an ONNX embedding model (a card with
//! `task = "embed"`, as `vigia-train reid` writes), one crop at a time.

use std::path::Path;

use image::RgbImage;

use super::{crop_rect, l2_normalize, Embedder};
use crate::detection::BBox;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{ModelCard, Task};
use crate::preprocess::Preprocessor;
use crate::resolve::{load_model, LoadOptions, LoadedModel};

/// Similarity threshold assumed for a model whose card names none.
pub const DEFAULT_MODEL_THRESHOLD: f32 = 0.7;

/// Embeds person crops with an ONNX model: each crop is resized to the model's input, run, and
/// its output vector L2-normalized.
pub struct ModelEmbedder {
    name: String,
    engine: Box<dyn Engine>,
    preprocess: Preprocessor,
    dim: usize,
    threshold: f32,
}

impl ModelEmbedder {
    /// Loads the embedding model `spec` (an `.onnx` with its `.toml` card, or the card).
    pub fn load(spec: &str, opts: &LoadOptions) -> Result<Self> {
        let path = Path::new(spec);
        let is_onnx = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        if is_onnx && path.is_file() && ModelCard::sidecar_for(path).is_none() {
            return Err(Error::Model {
                model: spec.into(),
                reason: format!(
                    "an embedding model needs its card {} (task = \"embed\"); vigia-train reid \
                     writes one",
                    path.with_extension("toml").display()
                ),
            });
        }
        Self::from_loaded(load_model(Some(spec), Some(Task::Embed), opts)?)
    }

    /// Wraps a loaded embedding model, checking on a blank crop that it gives one finite vector.
    pub fn from_loaded(loaded: LoadedModel) -> Result<Self> {
        let name = loaded.source.display_name();
        let bad = |reason: String| Error::Model {
            model: name.clone(),
            reason,
        };
        if loaded.card.task != Task::Embed {
            return Err(bad(format!(
                "this is a {:?} model, not an embedding model",
                loaded.card.task
            )));
        }
        let mut engine = loaded.engine;
        engine.input_mut().fill(0.0);
        engine.run()?;
        let dim = {
            let outputs = engine.outputs()?;
            let first = outputs
                .first()
                .ok_or_else(|| bad("the graph has no output".into()))?;
            let shape = first.shape().to_vec();
            let long_axes = shape.iter().filter(|&&d| d > 1).count();
            if long_axes != 1 || first.len() < 2 {
                return Err(bad(format!(
                    "output {shape:?} is not one vector per crop ([1, D] with D >= 2)"
                )));
            }
            if first.iter().any(|v| !v.is_finite()) {
                return Err(bad(
                    "the output holds NaN or infinity on a blank crop".into()
                ));
            }
            first.len()
        };
        let threshold = loaded
            .card
            .output
            .match_threshold
            .unwrap_or(DEFAULT_MODEL_THRESHOLD);
        if !(threshold > -1.0 && threshold <= 1.0) {
            return Err(bad(format!(
                "output.match_threshold must be in (-1, 1], got {threshold}"
            )));
        }
        Ok(ModelEmbedder {
            name,
            preprocess: Preprocessor::new(&loaded.card.input),
            engine,
            dim,
            threshold,
        })
    }

    /// The model's output for the crop of `b`, not normalized (`None` for a box too small or
    /// outside the frame); after it, [`Self::last_input`] holds the crop as the model saw it.
    pub fn raw_vector(&mut self, image: &RgbImage, b: &BBox) -> Result<Option<Vec<f32>>> {
        let (w, h) = image.dimensions();
        let Some((x0, y0, x1, y1)) = crop_rect(b, w, h) else {
            return Ok(None);
        };
        let crop = image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
        self.preprocess.run(&crop, self.engine.input_mut())?;
        self.engine.run()?;
        let outputs = self.engine.outputs()?;
        let v: Vec<f32> = outputs
            .first()
            .map(|o| o.iter().copied().collect())
            .unwrap_or_default();
        if v.len() != self.dim || v.iter().any(|x| !x.is_finite()) {
            return Err(Error::Model {
                model: self.name.clone(),
                reason: format!(
                    "gave {} values{} for a crop, expected {} finite values",
                    v.len(),
                    if v.iter().any(|x| !x.is_finite()) {
                        " with NaN or infinity"
                    } else {
                        ""
                    },
                    self.dim
                ),
            });
        }
        Ok(Some(v))
    }

    /// The input tensor of the last crop run.
    pub fn last_input(&mut self) -> &[f32] {
        self.engine.input_mut()
    }

    fn embed_one(&mut self, image: &RgbImage, b: &BBox) -> Result<Option<Vec<f32>>> {
        Ok(self
            .raw_vector(image, b)?
            .and_then(|mut v| l2_normalize(&mut v).then_some(v)))
    }
}

impl Embedder for ModelEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn match_threshold(&self) -> f32 {
        self.threshold
    }

    fn embed(
        &mut self,
        image: &RgbImage,
        boxes: &[BBox],
        out: &mut Vec<Option<Vec<f32>>>,
    ) -> Result<()> {
        out.clear();
        for b in boxes {
            let v = self.embed_one(image, b)?;
            out.push(v);
        }
        Ok(())
    }
}
