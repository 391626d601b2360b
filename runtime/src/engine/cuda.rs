//! The `cuda` engine: tract's CUDA backend (tract-cuda) runs the graph on an NVIDIA GPU,
//! convolutions through cuDNN and the other operators on CUDA kernels. Operators it has no kernel
//! for stay on the CPU with a copy each way; the load report counts both.
//!
//! The graph gets vigia's ONNX rewrites (Pad folding, YOLO head cut) but not vigia's CPU
//! convolution kernels: tract-cuda translates tract's own operators.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ndarray::ArrayViewD;
use tract_onnx::tract_core::runtime::{runtime_for_name, Runnable, State};

use super::gpu::probe;
use super::onnx::OnnxGraph;
use super::passes::gpu_lowering::lower_for_gpu;
use super::tract::{f32_views, input_slice, parse_typed, run_outputs};
use super::{chain, model_err, ms, Engine, GpuPlacement, LoadReport};
use crate::error::{Error, Result};

/// A graph prepared for the GPU and one state (its device buffers) reused on every frame.
pub struct CudaEngine {
    plan: Arc<dyn Runnable>,
    state: Box<dyn State>,
    input: Arc<Tensor>,
    input_shape: Vec<usize>,
    outputs: TVec<TValue>,
    output_names: Vec<String>,
}

impl CudaEngine {
    /// Builds the engine for `graph` with a fixed f32 input shape, in f16 on the GPU with `half`
    /// (inputs and outputs stay f32). Without a usable GPU this is an [`Error::EngineUnavailable`]
    /// saying what is missing.
    pub fn build(
        graph: &OnnxGraph,
        input_shape: &[usize],
        half: bool,
    ) -> Result<(Self, LoadReport)> {
        if let Some(why) = probe().unusable_reason() {
            return Err(Error::EngineUnavailable {
                engine: "cuda",
                reason: why,
            });
        }
        let name = graph.source().display_name();
        let shape = input_shape.to_vec();
        let mut report = LoadReport::default();
        let (typed, lowered) =
            typed_model(graph, &shape, half, &mut report).map_err(|e| model_err(&name, &e))?;
        let t = Instant::now();
        let prepared = catch_unwind(AssertUnwindSafe(|| prepare_on_gpu(typed)))
            .map_err(|_| model_err(&name, "tract-cuda panicked while preparing the graph"))?
            .map_err(|e| {
                model_err(
                    &name,
                    &format!("cannot prepare the graph for the GPU: {}", chain(&e)),
                )
            })?;
        report.optimize_ms = ms(t.elapsed());
        let t = Instant::now();
        report.gpu = Some(GpuPlacement {
            lowered,
            ..placement(&*prepared)
        });
        let engine =
            Self::with_plan(Arc::from(prepared), shape).map_err(|e| model_err(&name, &e))?;
        report.plan_ms = ms(t.elapsed());
        Ok((engine, report))
    }

    fn with_plan(plan: Arc<dyn Runnable>, input_shape: Vec<usize>) -> Result<Self, String> {
        let model = plan
            .typed_model()
            .ok_or("tract-cuda gave a plan without its model")?;
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
        let state = plan.spawn().map_err(|e| chain(&e))?;
        let input = Arc::new(Tensor::zero::<f32>(&input_shape).map_err(|e| chain(&e))?);
        Ok(CudaEngine {
            plan,
            state,
            input,
            input_shape,
            outputs: tvec![],
            output_names,
        })
    }
}

/// Parses and types `graph` (leniently on a second try, as the tract engine does), declutters it,
/// converts it to f16 with `half` and lowers what tract-cuda lacks; also says how many nodes
/// were lowered.
fn typed_model(
    graph: &OnnxGraph,
    shape: &[usize],
    half: bool,
    report: &mut LoadReport,
) -> Result<(TypedModel, usize), String> {
    let build = |onnx: &tract_onnx::model::Onnx, report: &mut LoadReport| {
        catch_unwind(AssertUnwindSafe(|| -> TractResult<(TypedModel, usize)> {
            let typed = parse_typed(onnx, graph, shape, report)?;
            let t = Instant::now();
            let mut model = typed.into_decluttered()?;
            if half {
                model = super::half::to_half(model)?;
            }
            // The lowering only moves work to the GPU: if it cannot rewrite this graph, the
            // graph runs as tract-cuda takes it, with its CPU operators.
            let mut candidate = model.clone();
            let lowered = match lower_for_gpu(&mut candidate) {
                Ok(done) => {
                    model = candidate;
                    done.replaced()
                }
                Err(e) => {
                    eprintln!(
                        "vigia: warning: pools and resizes stay on the CPU (cannot rewrite them for the GPU: {})",
                        chain(&e)
                    );
                    0
                }
            };
            report.declutter_ms = ms(t.elapsed());
            Ok((model, lowered))
        }))
    };
    let lenient = || {
        tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
    };
    match build(&tract_onnx::onnx(), report) {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(first)) => match build(&lenient(), report) {
            Ok(Ok(m)) => Ok(m),
            _ => Err(format!(
                "cannot build the graph for input shape {shape:?}: {}",
                chain(&first)
            )),
        },
        Err(_) => Err(format!(
            "tract panicked while loading the graph for input shape {shape:?}"
        )),
    }
}

/// tract-cuda's runtime: translation to GPU operators, optimization, plan, weights uploaded.
fn prepare_on_gpu(model: TypedModel) -> TractResult<Box<dyn Runnable>> {
    // Linking tract-cuda registers its runtime; naming a symbol keeps the crate linked.
    let _ = tract_cuda::CudaTransform;
    let runtime = runtime_for_name("cuda")?
        .ok_or_else(|| anyhow::anyhow!("tract-cuda's runtime is not registered in this build"))?;
    runtime.prepare(model)
}

/// Counts where the prepared graph's operators run.
fn placement(plan: &dyn Runnable) -> GpuPlacement {
    let mut placement = GpuPlacement::default();
    let Some(model) = plan.typed_model() else {
        return placement;
    };
    for node in model.nodes() {
        let op = node.op.name();
        if op.starts_with("DeviceSync") {
            placement.copies += 1;
        } else if op.starts_with("Cuda") || op.starts_with("Gpu") {
            placement.gpu_ops += 1;
        } else if op != "Source" && op != "Const" {
            placement.cpu_ops.push(op.to_string());
        }
    }
    placement
}

impl Engine for CudaEngine {
    fn name(&self) -> &'static str {
        "cuda"
    }

    fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    fn input_mut(&mut self) -> &mut [f32] {
        // The state keeps no reference to the input after a run, so this does not copy.
        input_slice(&mut self.input)
    }

    fn run(&mut self) -> Result<()> {
        self.outputs.clear();
        let input = TValue::from_const(self.input.clone());
        let result = catch_unwind(AssertUnwindSafe(|| self.state.run(tvec![input])));
        self.outputs = run_outputs(result, "inference on the GPU", "tract-cuda")?;
        Ok(())
    }

    fn outputs(&self) -> Result<Vec<ArrayViewD<'_, f32>>> {
        f32_views(&self.outputs, &self.output_names, "inference on the GPU")
    }

    fn output_names(&self) -> &[String] {
        &self.output_names
    }

    fn fork(&self) -> Result<Box<dyn Engine>> {
        // A new state (its own device buffers; each thread runs its own CUDA stream) on the same
        // prepared graph: weights are uploaded once.
        Self::with_plan(self.plan.clone(), self.input_shape.clone())
            .map(|e| Box::new(e) as Box<dyn Engine>)
            .map_err(|e| model_err("cuda", &e))
    }
}
