//! The tract engine: an ONNX graph with a fixed input shape, rewritten by vigia's graph passes,
//! optimized once (or read from the model cache) and run frame after frame on one reused state.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ndarray::ArrayViewD;

use super::cache::{content_digest, entry_for, CacheEntry, CacheUse};
use super::onnx::{ModelSource, OnnxGraph};
use super::passes::conv_kernels::Kernels;
use super::passes::replace_with_kernels;
use super::{chain, model_err, ms, tract_version, Engine, LoadReport};
use crate::error::Result;
use crate::kernels::Isa;

/// How the tract engine prepares a graph beyond the fixed input shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildOptions {
    /// Run in f16 (tract's `f32_to_f16` transform); inputs and outputs stay f32.
    pub half: bool,
    /// Cache directory for pre-decluttered models (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
    /// Which kernels compute the convolutions.
    pub kernels: Kernels,
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
        let name = graph.source().display_name();
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
        let entry = entry_for(
            graph.source(),
            graph.digest(),
            &shape,
            opts.half,
            opts.cache_dir.as_deref(),
        );
        if let Some(engine) = entry
            .as_ref()
            .and_then(|e| from_cache(e, opts, &mut report))
        {
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
            (report.cache, report.cache_ms) = entry.store(model);
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
            let typed = parse_typed(onnx, graph, shape, report)?;
            let typed = prepare(typed, opts, report, decluttered)?;
            let typed =
                with_vigia_kernels(typed, opts, report, opts.half || opts.cache_dir.is_some())?;
            let t = Instant::now();
            let optimized = typed.into_optimized()?;
            report.optimize_ms = ms(t.elapsed());
            Ok(optimized)
        }))
    }

    /// The optimized plan this engine runs (to time its nodes, or to spawn more states).
    pub fn plan(&self) -> &Arc<TypedRunnableModel> {
        &self.plan
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
        input_slice(&mut self.input)
    }

    fn run(&mut self) -> Result<()> {
        self.outputs.clear();
        let input = TValue::from_const(self.input.clone());
        let result = catch_unwind(AssertUnwindSafe(|| self.state.run(tvec![input])));
        // Release the state's reference to the input so the buffer is refilled in place.
        let _ = self.state.reset_turn();
        self.outputs = run_outputs(result, "inference", "tract")?;
        Ok(())
    }

    fn outputs(&self) -> Result<Vec<ArrayViewD<'_, f32>>> {
        f32_views(&self.outputs, &self.output_names, "inference")
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

/// A caught run's outputs, or its error or panic as a model error (`context` says which run,
/// `engine` who panicked).
pub(crate) fn run_outputs(
    result: std::thread::Result<TractResult<TVec<TValue>>>,
    context: &str,
    engine: &str,
) -> Result<TVec<TValue>> {
    match result {
        Ok(Ok(out)) => Ok(out),
        Ok(Err(e)) => Err(model_err(context, &chain(&e))),
        Err(_) => Err(model_err(
            context,
            &format!("{engine} panicked while running the graph"),
        )),
    }
}

/// The input tensor's values to fill in place (copied first only if a run still holds it).
pub(crate) fn input_slice(input: &mut Arc<Tensor>) -> &mut [f32] {
    Arc::make_mut(input)
        .to_plain_array_view_mut::<f32>()
        .ok()
        .and_then(|v| v.into_slice())
        .unwrap_or_default()
}

/// f32 views of a run's `outputs`; an output of another type is an error naming it (`context`
/// says which run).
pub(crate) fn f32_views<'a>(
    outputs: &'a [TValue],
    names: &[String],
    context: &str,
) -> Result<Vec<ArrayViewD<'a, f32>>> {
    outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            o.to_plain_array_view::<f32>().map_err(|e| {
                model_err(
                    context,
                    &format!(
                        "output {} is {:?}, expected f32 ({e})",
                        names.get(i).map(String::as_str).unwrap_or("?"),
                        o.datum_type(),
                    ),
                )
            })
        })
        .collect()
}

/// The engine for `bytes` (read from `source`) at `shape` straight from the cache, skipping the
/// ONNX parse; `None` when there is no cache, no entry, or the entry is unusable (then the caller
/// builds from ONNX, which rewrites it).
pub fn load_cached(
    source: &ModelSource,
    bytes: &[u8],
    shape: &[usize],
    opts: &BuildOptions,
) -> Option<(TractEngine, LoadReport)> {
    let t = Instant::now();
    let entry = entry_for(
        source,
        content_digest(bytes),
        shape,
        opts.half,
        opts.cache_dir.as_deref(),
    )?;
    if !entry.path().is_file() {
        return None;
    }
    let hash_ms = ms(t.elapsed());
    let mut report = LoadReport::default();
    let engine = from_cache(&entry, opts, &mut report)?;
    report.cache_ms += hash_ms;
    Some((engine, report))
}

/// Parses `graph` (after vigia's ONNX rewrites: Pad folding, YOLO head cut, unless
/// `VIGIA_NO_REWRITE` is set) and types it for an f32 input of `shape`, timing both steps.
pub(crate) fn parse_typed(
    onnx: &tract_onnx::model::Onnx,
    graph: &OnnxGraph,
    shape: &[usize],
    report: &mut LoadReport,
) -> TractResult<TypedModel> {
    let t = Instant::now();
    let rewritten = crate::engine::passes::enabled()
        .then(|| crate::engine::passes::rewrite(graph.proto(), shape))
        .flatten();
    let proto = rewritten.as_ref().map_or(graph.proto(), |(p, _)| p);
    let model = onnx.model_for_proto_model(proto)?;
    report.parse_ms = ms(t.elapsed());
    let t = Instant::now();
    let typed = model
        .with_input_fact(0, f32::fact(shape).into())?
        .into_typed()?;
    report.typing_ms = ms(t.elapsed());
    Ok(typed)
}

/// Declutters and converts to f16 before optimization when `opts` ask for either; keeps a copy
/// for the cache in `decluttered`.
pub(crate) fn prepare(
    typed: TypedModel,
    opts: &BuildOptions,
    report: &mut LoadReport,
    decluttered: &mut Option<TypedModel>,
) -> TractResult<TypedModel> {
    if !opts.half && opts.cache_dir.is_none() {
        return Ok(typed);
    }
    let t = Instant::now();
    let mut model = typed.into_decluttered()?;
    if opts.half {
        model = super::half::to_half(model)?;
    }
    report.declutter_ms = ms(t.elapsed());
    if opts.cache_dir.is_some() {
        *decluttered = Some(model.clone());
    }
    Ok(model)
}

/// Moves supported convolutions to vigia's kernels when `opts` ask for them (and graph passes are
/// not turned off); declutters first unless `decluttered` says that was done.
fn with_vigia_kernels(
    typed: TypedModel,
    opts: &BuildOptions,
    report: &mut LoadReport,
    decluttered: bool,
) -> TractResult<TypedModel> {
    if !uses_vigia_kernels(opts) {
        return Ok(typed);
    }
    let t = Instant::now();
    let mut model = if decluttered {
        typed
    } else {
        typed.into_decluttered()?
    };
    report.kernels = replace_with_kernels(&mut model, Isa::detect())?;
    report.declutter_ms += ms(t.elapsed());
    Ok(model)
}

/// Whether `opts` put convolutions on vigia's kernels (`VIGIA_NO_REWRITE` turns them off too).
fn uses_vigia_kernels(opts: &BuildOptions) -> bool {
    opts.kernels == Kernels::Vigia && super::passes::enabled() && !opts.half
}

/// The engine from a cache entry, or `None` (absent, damaged: then rebuilt from ONNX).
fn from_cache(
    entry: &CacheEntry,
    opts: &BuildOptions,
    report: &mut LoadReport,
) -> Option<TractEngine> {
    let mut kernels = Default::default();
    let cached = entry.load_optimized(&mut |model: &mut TypedModel| {
        if uses_vigia_kernels(opts) {
            // Entries hold weights behind casts and reshapes: fold them into constants first.
            model.declutter()?;
            kernels = replace_with_kernels(model, Isa::detect())?;
        }
        Ok(())
    })?;
    let t = Instant::now();
    let shape = entry.shape().to_vec();
    let planned = catch_unwind(AssertUnwindSafe(|| {
        TractEngine::from_optimized(cached.model, shape)
    }));
    match planned {
        Ok(Ok(engine)) => {
            *report = LoadReport {
                cache_ms: cached.read_ms,
                optimize_ms: cached.optimize_ms,
                plan_ms: ms(t.elapsed()),
                cache: CacheUse::Hit,
                kernels,
                ..LoadReport::default()
            };
            Some(engine)
        }
        Ok(Err(e)) => {
            entry.warn_ignored(&e);
            None
        }
        Err(_) => {
            entry.warn_ignored("planning it panicked");
            None
        }
    }
}
