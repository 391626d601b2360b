//! Turns a `--model` argument into a card, an ONNX graph and labels, then a ready engine.
//!
//! Order: an explicit `.toml` card; an `.onnx` with a sidecar card; a bundled model name
//! (`nanodet-m-416`, `efficientnet-lite0-224`); otherwise a bare `.onnx` whose card is inferred.

use std::path::{Path, PathBuf};

use crate::decode::infer_family;
pub use crate::engine::choice::EngineKind;
use crate::engine::choice::{EngineChoice, OrtProvider};
use crate::engine::passes::conv_kernels::Kernels;
use crate::engine::{Engine, LoadReport, ModelSource, OnnxGraph, TractEngine};
use crate::error::{Error, Result};
pub use crate::loaded_model::LoadedModel;
use crate::model::{
    ColorOrder, InputSpec, Labels, Layout, ModelCard, OutputFamily, OutputSpec, Provenance,
    ResizeMode, Task,
};

/// Name of the default detector compiled into the binary.
pub const DEFAULT_DETECTOR: &str = "nanodet-m-416";
/// Name of the bundled default classifier.
pub const DEFAULT_CLASSIFIER: &str = "efficientnet-lite0-224";
/// Name of the person embedding model compiled into the binary (`vigia follow`'s default
/// `--reid`).
pub const DEFAULT_EMBEDDER: &str = "reid-vtest-64x128";

const COCO80: &str = include_str!("../../models/coco80.txt");
const IMAGENET1000: &str = include_str!("../../models/imagenet1000.txt");

#[cfg(feature = "embed-default")]
const EMBEDDED_ONNX: &[u8] = include_bytes!("../../models/nanodet-m-416.onnx");
const EMBEDDED_CARD: &str = include_str!("../../models/nanodet-m-416.toml");
#[cfg(feature = "embed-default")]
const EMBEDDED_EMBEDDER_ONNX: &[u8] = include_bytes!("../../models/reid-vtest-64x128.onnx");
#[cfg(feature = "embed-default")]
const EMBEDDED_EMBEDDER_CARD: &str = include_str!("../../models/reid-vtest-64x128.toml");

/// What to load and how.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Override the model's input size (square).
    pub imgsz: Option<u32>,
    /// Which engine runs the graph.
    pub engine: EngineKind,
    /// Intra-op threads for engines configured per session (ONNX Runtime); 0 means 1.
    pub threads: usize,
    /// The ONNX Runtime library (`--ort-lib`); `ORT_DYLIB_PATH` otherwise.
    pub ort_lib: Option<PathBuf>,
    /// ONNX Runtime's execution provider (`--ort-ep`).
    pub ort_provider: OrtProvider,
    /// tract: run the graph in f16 (inputs and outputs stay f32).
    pub half: bool,
    /// tract: directory of cached pre-decluttered models (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// tract: which kernels compute the convolutions.
    pub kernels: Kernels,
}

/// Builds the engine `choice` names for `graph` with a fixed input shape; when `auto` picked the
/// GPU and it cannot run the model, falls back to tract and says why in the returned choice.
pub fn build_engine(
    graph: &OnnxGraph,
    shape: &[usize],
    opts: &LoadOptions,
    choice: EngineChoice,
) -> Result<(Box<dyn Engine>, LoadReport, EngineChoice)> {
    match build_kind(graph, shape, opts, choice.kind) {
        Err(e) if choice.may_fall_back => {
            let fallback = choice.fell_back(&e);
            let (engine, report) = build_kind(graph, shape, opts, fallback.kind)?;
            Ok((engine, report, fallback))
        }
        built => built.map(|(engine, report)| (engine, report, choice)),
    }
}

/// Builds the engine `kind` (a concrete one) for `graph`.
fn build_kind(
    graph: &OnnxGraph,
    shape: &[usize],
    opts: &LoadOptions,
    kind: EngineKind,
) -> Result<(Box<dyn Engine>, LoadReport)> {
    match kind {
        EngineKind::Tract | EngineKind::Auto => {
            let build = crate::engine::BuildOptions {
                half: opts.half,
                cache_dir: opts.cache_dir.clone(),
                kernels: opts.kernels,
            };
            let (e, r) = TractEngine::build_with(graph, shape, &build)?;
            Ok((Box::new(e), r))
        }
        #[cfg(feature = "cuda-engine")]
        EngineKind::Cuda => {
            let (e, r) = crate::engine::cuda::CudaEngine::build(graph, shape, opts.half)?;
            Ok((Box::new(e), r))
        }
        #[cfg(not(feature = "cuda-engine"))]
        EngineKind::Cuda => Err(Error::FeatureMissing {
            feature: "cuda",
            what: "--engine cuda (NVIDIA GPUs)".into(),
        }),
        #[cfg(feature = "ort")]
        EngineKind::Ort => {
            let session = crate::engine::ort::SessionOptions {
                threads: opts.threads,
                provider: opts.ort_provider,
                half: opts.half,
                cache_dir: opts.cache_dir.clone(),
            };
            let (e, r) = crate::engine::ort::OrtEngine::build(
                graph,
                shape,
                &session,
                opts.ort_lib.as_deref(),
            )?;
            Ok((Box::new(e), r))
        }
        #[cfg(not(feature = "ort"))]
        EngineKind::Ort => Err(Error::FeatureMissing {
            feature: "ort",
            what: "--engine ort (ONNX Runtime)".into(),
        }),
    }
}

/// Resolves `spec` (path or bundled name; `None` = default for `task`) and builds the engine.
/// With `task` given, a model of the other kind is refused with a hint.
pub fn load_model(
    spec: Option<&str>,
    task: Option<Task>,
    opts: &LoadOptions,
) -> Result<LoadedModel> {
    let (card, card_dir, source) = locate(spec, task.unwrap_or(Task::Detect))?;
    if let Some(s) = opts.imgsz {
        if s == 0 || s > 8192 {
            return Err(Error::Option {
                option: "--imgsz".into(),
                reason: format!("{s} is not a usable input size (1..=8192)"),
            });
        }
    }
    let with_imgsz = |mut card: ModelCard| {
        if let Some(s) = opts.imgsz {
            card.input.width = s;
            card.input.height = s;
        }
        card
    };
    let bytes = source.read()?;
    let choice = EngineChoice::for_request(opts.engine);
    // A card and a cache entry: the engine comes from the cache without parsing the ONNX.
    if let (Some(card), EngineKind::Tract) = (&card, choice.kind) {
        let card = with_imgsz(card.clone());
        let build = crate::engine::BuildOptions {
            half: opts.half,
            cache_dir: opts.cache_dir.clone(),
            kernels: opts.kernels,
        };
        if let Some((engine, report)) =
            crate::engine::tract::load_cached(&source, &bytes, &card.input.shape(), &build)
        {
            let loaded = (Box::new(engine) as Box<dyn Engine>, report, choice);
            return finish_load(card, card_dir, source, loaded, vec![], task);
        }
    }
    let graph = OnnxGraph::parse(source.clone(), &bytes)?;
    drop(bytes);
    let mut assumptions = vec![];
    let inferred = card.is_none();
    let mut card = with_imgsz(match card {
        Some(c) => c,
        None => infer_input(&graph, opts.imgsz, &mut assumptions)?,
    });
    let (mut engine, report, choice) = build_engine(&graph, &card.input.shape(), opts, choice)?;
    if inferred {
        // `infer_input` could not know the outputs: decide from the real output shapes.
        let shapes = match engine.run() {
            Ok(()) => engine
                .outputs()?
                .iter()
                .map(|v| v.shape().to_vec())
                .collect(),
            // A graph may fail on an all-zero input (data-dependent shapes): fall back to the
            // output shapes declared in the file.
            Err(run_error) => declared_output_shapes(&graph).ok_or(run_error)?,
        };
        let (family, why) =
            infer_family(&shapes, card.input.width, card.input.height).ok_or_else(|| {
                Error::Model {
                    model: source.display_name(),
                    reason: format!(
                        "cannot tell how to decode outputs {shapes:?}; write a model card \
                     ({}) naming output.family",
                        sidecar_hint(&source)
                    ),
                }
            })?;
        assumptions.push(why);
        card.output.family = family;
        card.task = family.task();
        apply_family_defaults(&mut card, &mut assumptions);
    }
    finish_load(
        card,
        card_dir,
        source,
        (engine, report, choice),
        assumptions,
        task,
    )
}

/// Checks the task, reads the labels and assembles the [`LoadedModel`].
fn finish_load(
    card: ModelCard,
    card_dir: Option<PathBuf>,
    source: ModelSource,
    (mut engine, report, choice): (Box<dyn Engine>, LoadReport, EngineChoice),
    assumptions: Vec<String>,
    task: Option<Task>,
) -> Result<LoadedModel> {
    if task.is_some_and(|t| t != card.task) {
        return Err(Error::Model {
            model: source.display_name(),
            reason: format!(
                "this is a {:?} model; use `vigia {}`",
                card.task,
                match card.task {
                    Task::Detect => "detect",
                    Task::Classify => "classify",
                    Task::Embed => "track --reid MODEL",
                }
            ),
        });
    }
    let labels = load_labels(
        &card,
        card_dir.as_deref(),
        &engine_class_count(&mut *engine, &card),
    )?;
    Ok(LoadedModel {
        card,
        labels,
        assumptions,
        source,
        engine,
        report,
        engine_why: choice.why,
    })
}

/// Finds the card (if any), the card's folder and the ONNX bytes for `spec`.
pub fn locate(
    spec: Option<&str>,
    task: Task,
) -> Result<(Option<ModelCard>, Option<PathBuf>, ModelSource)> {
    let spec = match spec {
        Some(s) => s,
        None => match task {
            Task::Detect => DEFAULT_DETECTOR,
            Task::Classify => DEFAULT_CLASSIFIER,
            Task::Embed => DEFAULT_EMBEDDER,
        },
    };
    let path = Path::new(spec);
    if path.is_file() {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            let card = ModelCard::load(path)?;
            let dir = parent_dir(path);
            let onnx = dir.join(card.model.clone().unwrap_or_else(|| {
                format!(
                    "{}.onnx",
                    path.file_stem().unwrap_or_default().to_string_lossy()
                )
            }));
            if !onnx.is_file() {
                return Err(Error::Card {
                    path: path.to_path_buf(),
                    reason: format!("its model file {} does not exist", onnx.display()),
                });
            }
            return Ok((Some(card), Some(dir), ModelSource::File(onnx)));
        }
        let card = ModelCard::sidecar_for(path)
            .map(|p| ModelCard::load(&p))
            .transpose()?;
        return Ok((
            card,
            Some(parent_dir(path)),
            ModelSource::File(path.to_path_buf()),
        ));
    }
    // The option the user gave `spec` with.
    let option = match task {
        Task::Embed => "--reid",
        _ => "--model",
    };
    if path.exists() {
        return Err(Error::Option {
            option: option.into(),
            reason: format!("{spec} is not a file"),
        });
    }
    // A bundled name.
    let dirs = model_dirs();
    for dir in &dirs {
        let card_path = dir.join(format!("{spec}.toml"));
        if card_path.is_file() {
            let card = ModelCard::load(&card_path)?;
            let onnx = dir.join(card.model.clone().unwrap_or_else(|| format!("{spec}.onnx")));
            if onnx.is_file() {
                return Ok((Some(card), Some(dir.clone()), ModelSource::File(onnx)));
            }
        }
    }
    #[cfg(feature = "embed-default")]
    if spec == DEFAULT_DETECTOR {
        let card = ModelCard::from_toml(EMBEDDED_CARD, Path::new("nanodet-m-416.toml (embedded)"))?;
        return Ok((
            Some(card),
            None,
            ModelSource::Embedded {
                name: DEFAULT_DETECTOR,
                bytes: EMBEDDED_ONNX,
            },
        ));
    }
    #[cfg(feature = "embed-default")]
    if spec == DEFAULT_EMBEDDER {
        let card = ModelCard::from_toml(
            EMBEDDED_EMBEDDER_CARD,
            Path::new("reid-vtest-64x128.toml (embedded)"),
        )?;
        return Ok((
            Some(card),
            None,
            ModelSource::Embedded {
                name: DEFAULT_EMBEDDER,
                bytes: EMBEDDED_EMBEDDER_ONNX,
            },
        ));
    }
    let _ = EMBEDDED_CARD;
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(Error::Option {
        option: option.into(),
        reason: format!(
            "'{spec}' is neither a file nor a bundled model name (looked for {spec}.toml in: {}). \
             Give a path to an .onnx file or a model card, or set VIGIA_MODELS to a models folder",
            if looked.is_empty() {
                "no models folder found".to_string()
            } else {
                looked.join(", ")
            }
        ),
    })
}

/// Folders searched for bundled model names: `$VIGIA_MODELS`, `./models`, and `models/` next to
/// or above the executable (covers `target/release/vigia` inside a checkout).
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = vec![];
    if let Some(d) = std::env::var_os("VIGIA_MODELS") {
        dirs.push(PathBuf::from(d));
    }
    dirs.push(PathBuf::from("models"));
    if let Ok(exe) = std::env::current_exe() {
        let mut cur = exe.parent().map(Path::to_path_buf);
        for _ in 0..4 {
            let Some(d) = cur else { break };
            dirs.push(d.join("models"));
            cur = d.parent().map(Path::to_path_buf);
        }
    }
    dirs.retain(|d| d.is_dir());
    dirs.dedup();
    dirs
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn sidecar_hint(source: &ModelSource) -> String {
    match source {
        ModelSource::File(p) => p.with_extension("toml").display().to_string(),
        ModelSource::Embedded { name, .. } => format!("{name}.toml"),
    }
}

/// Builds a provisional card from the graph's declared input; the output family is decided later.
fn infer_input(
    graph: &OnnxGraph,
    imgsz: Option<u32>,
    assumptions: &mut Vec<String>,
) -> Result<ModelCard> {
    let dims = graph.input_dims();
    let name = graph.source().display_name();
    if dims.len() != 4 {
        return Err(Error::Model {
            model: name,
            reason: format!(
                "input has {} dimensions; vigia expects an image input [1,3,H,W] or [1,H,W,3]{}",
                dims.len(),
                if dims.is_empty() {
                    " (none declared)"
                } else {
                    ""
                }
            ),
        });
    }
    let (layout, h, w) = match (dims[1], dims[3]) {
        (Some(c), _) if c == 3 || c == 1 => (Layout::Nchw, dims[2], dims[3]),
        (_, Some(3)) => (Layout::Nhwc, dims[1], dims[2]),
        _ => (Layout::Nchw, dims[2], dims[3]),
    };
    if dims[1] == Some(1) {
        return Err(Error::Model {
            model: name,
            reason: "single-channel input: write a model card for it (see models/*.toml)".into(),
        });
    }
    let (w, h) = match (w, h, imgsz) {
        (_, _, Some(s)) => (s, s),
        (Some(w), Some(h), None) => (w as u32, h as u32),
        _ => {
            assumptions.push("input size is dynamic: using 640x640 (set --imgsz)".into());
            (640, 640)
        }
    };
    assumptions.push(format!(
        "no model card: input {:?} {w}x{h} inferred from the graph",
        layout
    ));
    Ok(ModelCard {
        name: graph
            .source()
            .display_name()
            .rsplit('/')
            .next()
            .unwrap_or("model")
            .trim_end_matches(".onnx")
            .to_string(),
        task: Task::Detect,
        model: None,
        input: InputSpec {
            name: None,
            layout,
            width: w,
            height: h,
            color: ColorOrder::Rgb,
            scale: 1.0 / 255.0,
            mean: [0.0; 3],
            std: [1.0; 3],
            resize: ResizeMode::Letterbox,
            pad_value: 114,
        },
        output: OutputSpec {
            family: OutputFamily::Classification,
            labels: None,
            softmax: None,
            num_classes: None,
            match_threshold: None,
        },
        provenance: Provenance::default(),
    })
}

/// Preprocessing conventions of each family, for cards that were inferred.
fn apply_family_defaults(card: &mut ModelCard, assumptions: &mut Vec<String>) {
    match card.output.family {
        OutputFamily::Classification => {
            card.input.resize = ResizeMode::CenterCrop;
            card.input.mean = [0.485, 0.456, 0.406];
            card.input.std = [0.229, 0.224, 0.225];
            assumptions.push(
                "classifier: centre crop, RGB/255 with ImageNet mean/std (torchvision convention)"
                    .into(),
            );
        }
        OutputFamily::Nanodet => {
            card.input.resize = ResizeMode::Stretch;
            assumptions.push("NanoDet: stretch resize, RGB/255".into());
        }
        OutputFamily::Centernet => {
            card.input.resize = ResizeMode::Stretch;
            card.input.scale = 1.0;
            assumptions.push("CenterNet: stretch resize, RGB 0..255".into());
        }
        _ => assumptions.push(
            "YOLO convention: letterbox with grey 114, RGB/255 (Ultralytics preprocessing)".into(),
        ),
    }
}

/// Output shapes declared in the file, when every dimension is a number.
fn declared_output_shapes(graph: &OnnxGraph) -> Option<Vec<Vec<usize>>> {
    graph
        .summary()
        .outputs
        .iter()
        .map(|(_, dims)| {
            dims.iter()
                .map(|d| d.parse().ok())
                .collect::<Option<Vec<usize>>>()
        })
        .collect()
}

/// Number of classes the model's outputs carry, used to pick default labels.
fn engine_class_count(engine: &mut dyn Engine, card: &ModelCard) -> Option<usize> {
    if let Some(n) = card.output.num_classes {
        return Some(n);
    }
    let shapes: Vec<Vec<usize>> = match engine.outputs() {
        Ok(v) if !v.is_empty() => v.iter().map(|a| a.shape().to_vec()).collect(),
        _ => {
            engine.run().ok()?;
            engine
                .outputs()
                .ok()?
                .iter()
                .map(|a| a.shape().to_vec())
                .collect()
        }
    };
    let first = shapes.first()?;
    match card.output.family {
        OutputFamily::Classification => Some(first.iter().product()),
        // A head cut before its box decode: box distributions, then class scores.
        OutputFamily::Yolov8 if shapes.len() == 2 => shapes[1].get(1).copied(),
        OutputFamily::Yolov8 => {
            let (a, b) = (*first.get(1)?, *first.get(2)?);
            Some(a.min(b).saturating_sub(4))
        }
        OutputFamily::Yolov5 => Some(first.get(2)?.saturating_sub(5)),
        OutputFamily::Nanodet => shapes
            .iter()
            .filter_map(|s| s.last().copied())
            .filter(|c| c % 4 != 0 || *c == 80)
            .min(),
        OutputFamily::EndToEnd | OutputFamily::Centernet | OutputFamily::Embedding => None,
    }
}

fn load_labels(card: &ModelCard, dir: Option<&Path>, classes: &Option<usize>) -> Result<Labels> {
    if let Some(file) = &card.output.labels {
        if let Some(dir) = dir {
            let p = dir.join(file);
            if p.is_file() {
                return Labels::load(&p);
            }
        }
        match file.as_str() {
            "coco80.txt" => return Ok(Labels::parse(COCO80)),
            "imagenet1000.txt" => return Ok(Labels::parse(IMAGENET1000)),
            _ => {
                return Err(Error::Card {
                    path: dir.map(|d| d.join(file)).unwrap_or_else(|| file.into()),
                    reason: "labels file not found".into(),
                })
            }
        }
    }
    Ok(match classes {
        Some(80) | None if card.task == Task::Detect => Labels::parse(COCO80),
        Some(1000) => Labels::parse(IMAGENET1000),
        _ => Labels::default(),
    })
}

/// Bundled COCO-80 names.
pub fn coco_labels() -> Labels {
    Labels::parse(COCO80)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_name_is_blamed_on_the_option_that_gave_it() {
        let err = |task| {
            locate(Some("no-such-model-name"), task)
                .unwrap_err()
                .to_string()
        };
        let embed = err(Task::Embed);
        assert!(
            embed.contains("--reid") && embed.contains("no-such-model-name"),
            "{embed}"
        );
        assert!(!embed.contains("--model"), "{embed}");
        let detect = err(Task::Detect);
        assert!(detect.contains("--model"), "{detect}");
        let dir = locate(Some("."), Task::Embed).unwrap_err().to_string();
        assert!(
            dir.contains("--reid") && dir.contains("not a file"),
            "{dir}"
        );
    }
}
