//! Inference engines: load an ONNX graph, fix its input shape, optimize once, run many times.
//!
//! [`Engine`] is the small trait the rest of the runtime sees; [`TractEngine`] is the default
//! implementation, `cuda::CudaEngine` (feature `cuda`) runs on an NVIDIA GPU and `ort::OrtEngine`
//! (feature `ort`) on ONNX Runtime. [`onnx`] reads model files, [`passes`] rewrites their graphs,
//! [`cache`] keeps prepared models between runs, [`half`] converts to f16, [`flops`] counts the
//! work and [`gpu`] finds the GPU.

pub mod cache;
pub mod choice;
#[cfg(feature = "cuda-engine")]
pub mod cuda;
pub mod flops;
pub mod gpu;
pub mod half;
pub mod onnx;
pub mod ops;
#[cfg(feature = "ort")]
pub mod ort;
pub mod passes;
pub mod tract;

use std::time::Duration;

use tract_onnx::tract_core::ndarray::ArrayViewD;

pub use cache::CacheUse;
pub use onnx::{GraphSummary, ModelSource, OnnxGraph};
pub use tract::{BuildOptions, TractEngine};

use crate::error::{Error, Result};

/// One inference engine instance: a fixed-shape plan plus the state reused on every frame.
pub trait Engine: Send {
    /// Engine name for reports (`tract`, `cuda`, `ort`).
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

/// Time spent turning a file into a runnable plan, and what the engine made of it.
#[derive(Debug, Clone, Default, serde::Serialize)]
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
    pub cache: CacheUse,
    /// Convolutions moved to vigia's kernels.
    pub kernels: passes::conv_kernels::KernelReport,
    /// Where the operators run (the `cuda` engine).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuPlacement>,
}

/// Where a GPU engine runs a graph's operators.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GpuPlacement {
    /// Operators on the GPU.
    pub gpu_ops: usize,
    /// Operators left on the CPU (no GPU kernel), by name.
    pub cpu_ops: Vec<String>,
    /// Copies between host and device (each CPU operator costs one each way).
    pub copies: usize,
    /// Pools, downsamples and resizes rewritten into operators the GPU runs
    /// ([`passes::gpu_lowering`]).
    pub lowered: usize,
}

impl GpuPlacement {
    /// One line: `84 operators on the GPU, 2 on the CPU (Topk, Gather), 4 copies`.
    pub fn summary(&self) -> String {
        let mut cpu: Vec<&str> = self.cpu_ops.iter().map(String::as_str).collect();
        cpu.sort_unstable();
        cpu.dedup();
        let names = if cpu.is_empty() {
            String::new()
        } else {
            format!(" ({})", cpu.join(", "))
        };
        let lowered = if self.lowered > 0 {
            format!(" ({} pools/resizes rewritten for it)", self.lowered)
        } else {
            String::new()
        };
        format!(
            "{} operators on the GPU{lowered}, {} on the CPU{names}, {} host/device copies",
            self.gpu_ops,
            self.cpu_ops.len(),
            self.copies
        )
    }
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

/// Sets the number of threads tract's and vigia's kernels use (1 = single-threaded, the
/// default).
pub fn set_threads(threads: usize) {
    use tract_linalg::multithread::{set_default_executor, Executor};
    crate::kernels::pool::set_threads(threads);
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

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn model_err(model: &str, reason: &str) -> Error {
    Error::Model {
        model: model.to_string(),
        reason: reason.to_string(),
    }
}

/// The whole error chain on one line, outermost first.
pub(crate) fn chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::GpuPlacement;

    #[test]
    fn gpu_placement_names_cpu_operators_once_and_counts_the_rewritten_ones() {
        let mut placement = GpuPlacement {
            gpu_ops: 146,
            cpu_ops: vec!["Resize".into(), "OptMaxPool".into(), "Resize".into()],
            copies: 17,
            lowered: 0,
        };
        assert_eq!(
            placement.summary(),
            "146 operators on the GPU, 3 on the CPU (OptMaxPool, Resize), 17 host/device copies"
        );
        placement.cpu_ops.clear();
        placement.lowered = 5;
        placement.copies = 7;
        assert_eq!(
            placement.summary(),
            "146 operators on the GPU (5 pools/resizes rewritten for it), 0 on the CPU, 7 host/device copies"
        );
    }
}
