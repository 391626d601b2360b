//! A classifier: preprocessing, engine and top-k for one model.

use std::time::Instant;

use image::RgbImage;

use crate::decode::classification::top_k;
use crate::detector::{ms, StageTimes};
use crate::error::{Error, Result};
use crate::loaded_model::LoadedModel;
use crate::model::{Labels, ModelCard};
use crate::preprocess::Preprocessor;

/// One ranked class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClassScore {
    pub class_id: usize,
    pub label: String,
    pub score: f32,
}

/// Runs a classification model on RGB images.
pub struct Classifier {
    model: LoadedModel,
    pre: Preprocessor,
    last: StageTimes,
}

impl Classifier {
    /// Wraps a loaded classification model.
    pub fn new(model: LoadedModel) -> Self {
        let pre = Preprocessor::new(&model.card.input);
        Classifier {
            model,
            pre,
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

    /// Stage timings of the last call to [`Classifier::classify`].
    pub fn last_times(&self) -> StageTimes {
        self.last
    }

    /// The `k` most probable classes for `image`, best first.
    pub fn classify(&mut self, image: &RgbImage, k: usize) -> Result<Vec<ClassScore>> {
        let t0 = Instant::now();
        self.pre.run(image, self.model.engine.input_mut())?;
        let t1 = Instant::now();
        self.model.engine.run()?;
        let t2 = Instant::now();
        let outputs = self.model.engine.outputs()?;
        let first = outputs.first().ok_or_else(|| Error::Decode {
            family: "classification".into(),
            reason: "the model produced no output".into(),
        })?;
        let ranked = top_k(first, k, self.model.card.output.softmax)?;
        let out = ranked
            .into_iter()
            .map(|(class_id, score)| ClassScore {
                class_id,
                label: self.model.labels.name(class_id),
                score,
            })
            .collect();
        self.last = StageTimes {
            preprocess_ms: ms(t1 - t0),
            inference_ms: ms(t2 - t1),
            decode_ms: ms(t2.elapsed()),
        };
        Ok(out)
    }
}
