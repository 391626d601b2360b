//! Model cards: what a model expects as input and how its outputs are decoded.
//!
//! A card is a small TOML file (`models/*.toml`, or `<model>.toml` next to any `.onnx`).
//! When no card exists, [`crate::engine`] inspects the graph and infers one.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    Detect,
    Classify,
    /// Appearance embeddings of person crops (re-identification).
    Embed,
}

/// Memory layout of the image input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

/// Channel order the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
    /// One channel: the luma of R, G, B with ITU-R 601 integer weights (`mean[0]`, `std[0]` apply).
    Gray,
}

/// How a frame is brought to the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResizeMode {
    /// Keep aspect ratio, pad the rest with `pad_value` (centred), as Ultralytics does.
    Letterbox,
    /// Resize each axis independently to the input size.
    Stretch,
    /// Crop the central square (or input-aspect region), then resize.
    CenterCrop,
}

/// The output layout family, which picks the decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFamily {
    /// YOLOv5 `[1, N, 5 + C]`: cx, cy, w, h, objectness, class scores.
    Yolov5,
    /// YOLOv8 / YOLO11 `[1, 4 + C, N]` (or transposed `[1, N, 4 + C]`): cx, cy, w, h, class scores.
    Yolov8,
    /// End-to-end exports `[1, K, 6]`: x1, y1, x2, y2, score, class (NMS done or not needed).
    EndToEnd,
    /// NanoDet GFL head: per stride a `[1, N, C]` score map and a `[1, N, 4 * (reg_max + 1)]` distribution.
    Nanodet,
    /// CenterNet with top-K in the graph: `[1, K, 6]` detections (x1, y1, x2, y2, score, class).
    Centernet,
    /// Classifier: `[1, C]` logits or probabilities.
    Classification,
    /// Appearance embedding: one `[1, D]` vector per crop (L2-normalized by the runtime).
    Embedding,
}

impl OutputFamily {
    /// The task this family serves.
    pub fn task(self) -> Task {
        match self {
            OutputFamily::Classification => Task::Classify,
            OutputFamily::Embedding => Task::Embed,
            _ => Task::Detect,
        }
    }
}

/// Input tensor description and preprocessing recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Name of the input in the graph (informational; the first input is used).
    #[serde(default)]
    pub name: Option<String>,
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    #[serde(default = "default_color")]
    pub color: ColorOrder,
    /// Pixel values (0..255) are multiplied by `scale`, then `(v - mean) / std` per channel.
    #[serde(default = "default_scale")]
    pub scale: f32,
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "default_std")]
    pub std: [f32; 3],
    pub resize: ResizeMode,
    /// Grey level of letterbox padding (0..255, before normalisation).
    #[serde(default = "default_pad")]
    pub pad_value: u8,
}

fn default_color() -> ColorOrder {
    ColorOrder::Rgb
}
fn default_scale() -> f32 {
    1.0 / 255.0
}
fn default_std() -> [f32; 3] {
    [1.0; 3]
}
fn default_pad() -> u8 {
    114
}

impl InputSpec {
    /// Channels of the input tensor: 1 for `gray`, else 3.
    pub fn channels(&self) -> usize {
        match self.color {
            ColorOrder::Gray => 1,
            ColorOrder::Rgb | ColorOrder::Bgr => 3,
        }
    }

    /// Tensor shape `[1, C, H, W]` or `[1, H, W, C]` (C = 3, or 1 for `gray`).
    pub fn shape(&self) -> [usize; 4] {
        let (h, w, c) = (self.height as usize, self.width as usize, self.channels());
        match self.layout {
            Layout::Nchw => [1, c, h, w],
            Layout::Nhwc => [1, h, w, c],
        }
    }

    /// Number of f32 values in the input tensor.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// True when the tensor has no elements (never for a valid card).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Output decoding settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub family: OutputFamily,
    /// Labels file, one name per line, relative to the card's folder.
    #[serde(default)]
    pub labels: Option<String>,
    /// Classification: apply softmax to the output (true when the model emits logits).
    /// Absent: decided per output (softmax unless the values already form a distribution).
    #[serde(default)]
    pub softmax: Option<bool>,
    /// Detectors: number of classes (inferred from the output shape when absent).
    #[serde(default)]
    pub num_classes: Option<usize>,
    /// Embeddings: the cosine similarity above which two crops are taken for the same person
    /// (the default of `--reid-threshold` with this model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_threshold: Option<f32>,
}

/// Where the model comes from and under which terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A model card: everything needed to run one ONNX model end to end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    pub name: String,
    pub task: Task,
    /// ONNX file, relative to the card's folder (defaults to `<card stem>.onnx`).
    #[serde(default)]
    pub model: Option<String>,
    pub input: InputSpec,
    pub output: OutputSpec,
    #[serde(default)]
    pub provenance: Provenance,
}

impl ModelCard {
    /// Parses a card from TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self> {
        let card: ModelCard = toml::from_str(text).map_err(|e| Error::Card {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        card.validate(origin)?;
        Ok(card)
    }

    /// Reads and parses a card file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::from_toml(&text, path)
    }

    /// The card file that belongs to `model` (`x.onnx` -> `x.toml`), if it exists.
    pub fn sidecar_for(model: &Path) -> Option<PathBuf> {
        let p = model.with_extension("toml");
        p.is_file().then_some(p)
    }

    /// Serialises the card as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    fn validate(&self, origin: &Path) -> Result<()> {
        let bad = |reason: String| {
            Err(Error::Card {
                path: origin.to_path_buf(),
                reason,
            })
        };
        if self.input.width == 0 || self.input.height == 0 {
            return bad("input width and height must be positive".into());
        }
        if self.input.width > 8192 || self.input.height > 8192 {
            return bad("input width/height above 8192 is not supported".into());
        }
        if self.input.std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
            return bad("input.std must be finite and non-zero".into());
        }
        if !self.input.scale.is_finite() || self.input.mean.iter().any(|m| !m.is_finite()) {
            return bad("input.scale and input.mean must be finite".into());
        }
        if self.task != self.output.family.task() {
            return bad(format!(
                "task {:?} does not match output family {:?}",
                self.task, self.output.family
            ));
        }
        Ok(())
    }
}

/// Class names, index order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Labels(pub Vec<String>);

impl Labels {
    /// Parses one label per line (blank trailing lines ignored).
    pub fn parse(text: &str) -> Self {
        Labels(
            text.lines()
                .map(|l| l.trim().to_string())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .skip_while(|l| l.is_empty())
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect(),
        )
    }

    /// Reads a labels file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        Ok(Self::parse(&text))
    }

    /// The name of class `id`, or `class<id>` when unknown.
    pub fn name(&self, id: usize) -> String {
        self.0
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("class{id}"))
    }

    /// Index of the class called `name` (case-insensitive).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|l| l.eq_ignore_ascii_case(name))
    }

    /// Class ids from a comma-separated list of names or ids (`person,car` or `0,2`). Errors say
    /// which item is unknown or out of range, and name a few classes the model knows.
    pub fn ids_of(&self, spec: &str) -> std::result::Result<Vec<usize>, String> {
        let mut ids = vec![];
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if let Ok(id) = item.parse::<usize>() {
                if !self.is_empty() && id >= self.len() {
                    return Err(format!(
                        "id {id} is out of range (the model has {} classes)",
                        self.len()
                    ));
                }
                ids.push(id);
            } else if let Some(id) = self.find(item) {
                ids.push(id);
            } else {
                let some: Vec<&str> = self.0.iter().take(8).map(String::as_str).collect();
                return Err(format!(
                    "unknown class name '{item}' (this model knows e.g. {})",
                    some.join(", ")
                ));
            }
        }
        if ids.is_empty() {
            return Err("no class given".into());
        }
        Ok(ids)
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no labels are known.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARD: &str = r#"
name = "t"
task = "detect"
[input]
layout = "nchw"
width = 416
height = 416
resize = "letterbox"
[output]
family = "yolov8"
"#;

    #[test]
    fn parses_minimal_card_with_defaults() {
        let c = ModelCard::from_toml(CARD, Path::new("t.toml")).unwrap();
        assert_eq!(c.input.shape(), [1, 3, 416, 416]);
        assert_eq!(c.input.color, ColorOrder::Rgb);
        assert_eq!(c.input.pad_value, 114);
        assert!((c.input.scale - 1.0 / 255.0).abs() < 1e-9);
    }

    #[test]
    fn gray_card_has_one_channel() {
        let c = ModelCard::from_toml(
            &CARD.replace("resize", "color = \"gray\"\nresize"),
            Path::new("g.toml"),
        )
        .unwrap();
        assert_eq!(c.input.color, ColorOrder::Gray);
        assert_eq!(c.input.shape(), [1, 1, 416, 416]);
        assert_eq!(c.input.len(), 416 * 416);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values_naming_the_file() {
        let e = ModelCard::from_toml(&CARD.replace("letterbox", "squash"), Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.toml") && e.contains("squash"), "{e}");
        let e = ModelCard::from_toml(
            &CARD.replace("416\nheight", "0\nheight"),
            Path::new("z.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("z.toml") && e.contains("positive"), "{e}");
        let e = ModelCard::from_toml(&CARD.replace("detect", "classify"), Path::new("k.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not match"), "{e}");
    }

    #[test]
    fn labels_parse_and_lookup() {
        let l = Labels::parse("person\nbicycle\n\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l.find("Bicycle"), Some(1));
        assert_eq!(l.name(7), "class7");
    }
}
