//! Inference engines: load an ONNX graph, fix its input shape, optimize once, run many times.
//!
//! [`Engine`] is the small trait the rest of the runtime sees; [`TractEngine`] is the default
//! (and, in static builds, the only) implementation.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ndarray::ArrayViewD;

pub use crate::cache::BuildOptions;
use crate::error::{Error, Result};

/// One inference engine instance: a fixed-shape plan plus the state reused on every frame.
pub trait Engine: Send {
    /// Engine name for reports (`tract`, `ort`).
    fn name(&self) -> &'static str;
    /// The fixed input shape.
    fn input_shape(&self) -> &[usize];
    /// The input buffer to fill before [`Engine::run`] (row-major, `input_shape` elements).
    fn input_mut(&mut self) -> &mut [f32];
    /// Runs the graph on the current input buffer.
    fn run(&mut self) -> Result<()>;
    /// Views of the outputs of the last run, in graph output order.
    fn outputs(&self) -> Result<Vec<ArrayViewD<'_, f32>>>;
    /// Output names, in graph output order.
    fn output_names(&self) -> &[String];
    /// A new instance with its own state sharing this one's prepared graph (one per worker).
    fn fork(&self) -> Result<Box<dyn Engine>> {
        Err(model_err(
            self.name(),
            "this engine cannot make another instance for a second worker",
        ))
    }
}

/// Where the ONNX bytes come from.
#[derive(Debug, Clone)]
pub enum ModelSource {
    /// A file on disk.
    File(PathBuf),
    /// Bytes compiled into the binary, with a display name.
    Embedded {
        name: &'static str,
        bytes: &'static [u8],
    },
}

impl ModelSource {
    /// Name used in messages: the path or the embedded model's name.
    pub fn display_name(&self) -> String {
        match self {
            ModelSource::File(p) => p.display().to_string(),
            ModelSource::Embedded { name, .. } => format!("{name} (embedded)"),
        }
    }

    pub(crate) fn read(&self) -> Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            ModelSource::File(p) => {
                let bytes = std::fs::read(p).map_err(|e| Error::Io {
                    path: p.clone(),
                    source: e,
                })?;
                Ok(bytes.into())
            }
            ModelSource::Embedded { bytes, .. } => Ok((*bytes).into()),
        }
    }
}

/// Static facts about a graph, read without running it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GraphSummary {
    /// Declared inputs: name and shape (symbolic dims as names, unknown as `?`).
    pub inputs: Vec<(String, Vec<String>)>,
    /// Declared outputs: name and shape.
    pub outputs: Vec<(String, Vec<String>)>,
    /// Count of nodes per ONNX operator type.
    pub op_histogram: BTreeMap<String, usize>,
    /// Number of weights stored as initializers or constants.
    pub parameters: u64,
    /// Default-domain opset version.
    pub opset: Option<i64>,
    /// Producer recorded in the file.
    pub producer: String,
    /// Operators tract cannot run.
    pub unsupported_ops: Vec<String>,
}

/// A parsed ONNX file, before any shape is fixed.
pub struct OnnxGraph {
    source: ModelSource,
    proto: pb::ModelProto,
    /// Content digest of the ONNX bytes (the model-cache key's first part).
    digest: u128,
}

impl OnnxGraph {
    /// Reads and parses the protobuf; errors name the file and say what is wrong.
    pub fn open(source: ModelSource) -> Result<Self> {
        let bytes = source.read()?;
        Self::parse(source, &bytes)
    }

    /// Parses `bytes`, already read from `source`.
    pub fn parse(source: ModelSource, bytes: &[u8]) -> Result<Self> {
        let name = source.display_name();
        if bytes.is_empty() {
            return Err(model_err(&name, "the file is empty"));
        }
        let proto = catch_unwind(AssertUnwindSafe(|| {
            tract_onnx::onnx().proto_model_for_read(&mut &bytes[..])
        }))
        .map_err(|_| model_err(&name, "the ONNX parser panicked on this file"))?
        .map_err(|e| {
            model_err(
                &name,
                &format!(
                    "not a readable ONNX model ({}); re-export it or check the file is complete",
                    chain(&e)
                ),
            )
        })?;
        match &proto.graph {
            Some(g) if !g.node.is_empty() => {}
            _ => return Err(model_err(&name, "the ONNX file holds no graph nodes")),
        }
        Ok(OnnxGraph {
            source,
            proto,
            digest: crate::cache::content_digest(bytes),
        })
    }

    /// Content digest of the ONNX bytes.
    pub fn digest(&self) -> u128 {
        self.digest
    }

    /// Where the graph came from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The parsed protobuf, for engines that take ONNX bytes.
    #[cfg(feature = "ort")]
    pub(crate) fn proto(&self) -> &pb::ModelProto {
        &self.proto
    }

    fn graph(&self) -> &pb::GraphProto {
        // `open` refuses files without a graph.
        self.proto.graph.as_ref().expect("graph checked in open")
    }

    /// Inputs, outputs, operators and parameter count.
    pub fn summary(&self) -> GraphSummary {
        let graph = self.graph();
        let initializer_names: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializer_names.contains(i.name.as_str()))
            .map(|i| (i.name.clone(), value_dims(i)))
            .collect();
        let outputs = graph
            .output
            .iter()
            .map(|o| (o.name.clone(), value_dims(o)))
            .collect();
        let mut op_histogram = BTreeMap::new();
        for n in &graph.node {
            *op_histogram.entry(n.op_type.clone()).or_insert(0) += 1;
        }
        // Saturating: the dims of a damaged file can be anything.
        let count = |dims: &[i64]| {
            dims.iter()
                .fold(1u64, |n, d| n.saturating_mul((*d).max(0) as u64))
        };
        let mut parameters = graph
            .initializer
            .iter()
            .fold(0u64, |n, t| n.saturating_add(count(&t.dims)));
        for n in graph.node.iter().filter(|n| n.op_type == "Constant") {
            for t in n.attribute.iter().filter_map(|a| a.t.as_ref()) {
                parameters = parameters.saturating_add(count(&t.dims));
            }
        }
        let opset = self
            .proto
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map(|o| o.version);
        GraphSummary {
            inputs,
            outputs,
            op_histogram,
            parameters,
            opset,
            producer: format!(
                "{} {}",
                self.proto.producer_name, self.proto.producer_version
            )
            .trim()
            .to_string(),
            unsupported_ops: self.unsupported_ops(),
        }
    }

    /// ONNX operator types in the graph that tract has no implementation for.
    pub fn unsupported_ops(&self) -> Vec<String> {
        let onnx = tract_onnx::onnx();
        let mut missing: Vec<String> = self
            .graph()
            .node
            .iter()
            .filter(|n| !onnx.op_register.0.contains_key(&n.op_type))
            .map(|n| n.op_type.clone())
            .collect();
        missing.sort();
        missing.dedup();
        missing
    }

    /// The declared shape of the first real input (unknown or symbolic dims are `None`).
    pub fn input_dims(&self) -> Vec<Option<usize>> {
        self.summary()
            .inputs
            .first()
            .map(|(_, d)| d.iter().map(|s| s.parse::<usize>().ok()).collect())
            .unwrap_or_default()
    }
}

fn value_dims(vi: &pb::ValueInfoProto) -> Vec<String> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    let Some(pb::type_proto::Value::TensorType(t)) =
        vi.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return vec![];
    };
    t.shape
        .iter()
        .flat_map(|s| s.dim.iter())
        .map(|d| match &d.value {
            Some(Dim::DimValue(v)) => v.to_string(),
            Some(Dim::DimParam(p)) if !p.is_empty() => p.clone(),
            _ => "?".into(),
        })
        .collect()
}

/// Time spent turning a file into a runnable plan.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct LoadReport {
    /// Graph construction from the parsed protobuf.
    pub parse_ms: f64,
    /// Shape analysis and translation to typed operators.
    pub typing_ms: f64,
    /// Decluttering and optimization to kernels.
    pub optimize_ms: f64,
    /// Plan and state construction.
    pub plan_ms: f64,
    /// Explicit decluttering and f16 conversion before optimization (cache or f16 on).
    pub declutter_ms: f64,
    /// Reading the cached model, or writing it to the cache.
    pub cache_ms: f64,
    /// What the model cache did.
    pub cache: crate::cache::CacheUse,
}

impl LoadReport {
    /// Total load time.
    pub fn total_ms(&self) -> f64 {
        self.parse_ms
            + self.typing_ms
            + self.declutter_ms
            + self.optimize_ms
            + self.plan_ms
            + self.cache_ms
    }
}

/// The tract engine: an optimized plan and one reused state.
pub struct TractEngine {
    plan: Arc<TypedRunnableModel>,
    state: TypedSimpleState,
    input: Arc<Tensor>,
    input_shape: Vec<usize>,
    outputs: TVec<TValue>,
    output_names: Vec<String>,
}

impl TractEngine {
    /// Builds the engine for `graph` with a fixed f32 input shape, timing each step.
    pub fn build(graph: &OnnxGraph, input_shape: &[usize]) -> Result<(Self, LoadReport)> {
        Self::build_with(graph, input_shape, &BuildOptions::default())
    }

    /// [`TractEngine::build`] with f16 and the pre-decluttered model cache as `opts` say.
    pub fn build_with(
        graph: &OnnxGraph,
        input_shape: &[usize],
        opts: &BuildOptions,
    ) -> Result<(Self, LoadReport)> {
        let name = graph.source.display_name();
        let missing = graph.unsupported_ops();
        if !missing.is_empty() {
            return Err(model_err(
                &name,
                &format!(
                    "operator(s) {} not supported by tract {}; re-export the model without them \
                     (another opset or a simplified graph) or use another model",
                    missing.join(", "),
                    tract_version()
                ),
            ));
        }
        let shape = input_shape.to_vec();
        let mut report = LoadReport::default();
        let entry = crate::cache::entry_for(&graph.source, graph.digest, &shape, opts);
        if let Some(engine) = entry.as_ref().and_then(|e| e.build_from_cache(&mut report)) {
            return Ok((engine, report));
        }
        let mut decluttered = None;
        let mut result = Self::optimize(
            &tract_onnx::onnx(),
            graph,
            &shape,
            &mut report,
            (opts, &mut decluttered),
        );
        if matches!(result, Ok(Err(_))) {
            // Shapes declared in the file (value_info, outputs) sometimes carry symbols that
            // clash with tract's own inference (e.g. NonMaxSuppression exports): retry without.
            let lenient = tract_onnx::onnx()
                .with_ignore_output_shapes(true)
                .with_ignore_value_info(true);
            let prep = (opts, &mut decluttered);
            if let Ok(Ok(m)) = Self::optimize(&lenient, graph, &shape, &mut report, prep) {
                result = Ok(Ok(m));
            }
        }
        let optimized = match result {
            Err(_) => {
                return Err(model_err(
                    &name,
                    &format!("tract panicked while loading the graph for input shape {shape:?}"),
                ))
            }
            Ok(Err(e)) => {
                return Err(model_err(
                    &name,
                    &format!(
                        "cannot build the graph for input shape {shape:?}: {}. If the model has a \
                         fixed input size, use that size (`vigia inspect` shows it)",
                        chain(&e)
                    ),
                ))
            }
            Ok(Ok(m)) => m,
        };
        if let (Some(entry), Some(model)) = (&entry, &decluttered) {
            entry.store(model, &mut report);
        }
        let t = Instant::now();
        let engine = catch_unwind(AssertUnwindSafe(|| Self::from_optimized(optimized, shape)))
            .map_err(|_| model_err(&name, "tract panicked while planning the graph"))?
            .map_err(|e| model_err(&name, &e))?;
        report.plan_ms = ms(t.elapsed());
        Ok((engine, report))
    }

    /// Parses, types and optimizes `graph` for `shape`, catching panics.
    fn optimize(
        onnx: &tract_onnx::model::Onnx,
        graph: &OnnxGraph,
        shape: &[usize],
        report: &mut LoadReport,
        (opts, decluttered): (&BuildOptions, &mut Option<TypedModel>),
    ) -> std::thread::Result<TractResult<TypedModel>> {
        catch_unwind(AssertUnwindSafe(|| -> TractResult<TypedModel> {
            let t = Instant::now();
            // Graph rewrites (Pad folding, YOLO head cut) unless VIGIA_NO_REWRITE is set.
            let rewritten = crate::graph_rewrite::enabled()
                .then(|| crate::graph_rewrite::rewrite(&graph.proto, shape))
                .flatten();
            let proto = rewritten.as_ref().map_or(&graph.proto, |(p, _)| p);
            let model = onnx.model_for_proto_model(proto)?;
            report.parse_ms = ms(t.elapsed());
            let t = Instant::now();
            let typed = model
                .with_input_fact(0, f32::fact(shape).into())?
                .into_typed()?;
            report.typing_ms = ms(t.elapsed());
            let typed = crate::cache::prepare(typed, opts, report, decluttered)?;
            let t = Instant::now();
            let optimized = typed.into_optimized()?;
            report.optimize_ms = ms(t.elapsed());
            Ok(optimized)
        }))
    }

    /// Wraps an already optimized typed model.
    pub fn from_optimized(model: TypedModel, input_shape: Vec<usize>) -> Result<Self, String> {
        if model.inputs.len() != 1 {
            return Err(format!(
                "the graph has {} inputs; vigia runs single-input image models",
                model.inputs.len()
            ));
        }
        let output_names = model
            .outputs
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        let plan = model.into_runnable().map_err(|e| chain(&e))?;
        let state = plan.spawn().map_err(|e| chain(&e))?;
        let input = Arc::new(Tensor::zero::<f32>(&input_shape).map_err(|e| chain(&e))?);
        Ok(TractEngine {
            plan,
            state,
            input,
            input_shape,
            outputs: tvec![],
            output_names,
        })
    }
}

impl Engine for TractEngine {
    fn name(&self) -> &'static str {
        "tract"
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn input_mut(&mut self) -> &mut [f32] {
        // `run` drops the state's reference to the input, so this does not copy.
        Arc::make_mut(&mut self.input)
            .to_plain_array_view_mut::<f32>()
            .ok()
            .and_then(|v| v.into_slice())
            .unwrap_or_default()
    }

    fn run(&mut self) -> Result<()> {
        self.outputs.clear();
        let input = TValue::from_const(self.input.clone());
        let result = catch_unwind(AssertUnwindSafe(|| self.state.run(tvec![input])));
        // Release the state's reference to the input so the buffer is refilled in place.
        let _ = self.state.reset_turn();
        match result {
            Ok(Ok(out)) => {
                self.outputs = out;
                Ok(())
            }
            Ok(Err(e)) => Err(model_err("inference", &chain(&e))),
            Err(_) => Err(model_err(
                "inference",
                "tract panicked while running the graph",
            )),
        }
    }

    fn outputs(&self) -> Result<Vec<ArrayViewD<'_, f32>>> {
        self.outputs
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.to_plain_array_view::<f32>().map_err(|e| {
                    model_err(
                        "inference",
                        &format!(
                            "output {} is {:?}, expected f32 ({e})",
                            self.output_names.get(i).map(String::as_str).unwrap_or("?"),
                            o.datum_type(),
                        ),
                    )
                })
            })
            .collect()
    }

    fn output_names(&self) -> &[String] {
        &self.output_names
    }

    fn fork(&self) -> Result<Box<dyn Engine>> {
        // A fresh state on the same optimized plan: no second optimization, weights shared.
        let state = self
            .plan
            .spawn()
            .map_err(|e| model_err("tract", &chain(&e)))?;
        let input = Arc::new(
            Tensor::zero::<f32>(&self.input_shape).map_err(|e| model_err("tract", &chain(&e)))?,
        );
        Ok(Box::new(TractEngine {
            plan: self.plan.clone(),
            state,
            input,
            input_shape: self.input_shape.clone(),
            outputs: tvec![],
            output_names: self.output_names.clone(),
        }))
    }
}

/// Sets the number of threads tract's matrix kernels use (1 = single-threaded, the default).
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    if threads > 1 {
        set_default_executor(Executor::multithread(threads));
    } else {
        set_default_executor(Executor::SingleThread);
    }
}

/// The version of tract linked into this binary.
pub fn tract_version() -> &'static str {
    "0.23.9"
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn model_err(model: &str, reason: &str) -> Error {
    Error::Model {
        model: model.to_string(),
        reason: reason.to_string(),
    }
}

/// The whole error chain on one line, outermost first.
fn chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}
