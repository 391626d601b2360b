//! `--engine auto|tract|cuda|ort`: which engine runs a model, and why `auto` picked it.

use super::gpu::{probe, GpuStatus};

/// Which inference engine runs the graph.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// The GPU (`cuda`) when this build has it and a usable GPU is found, else tract on the CPU.
    #[default]
    Auto,
    /// tract on the CPU, with vigia's convolution kernels.
    Tract,
    /// tract-cuda on an NVIDIA GPU (Cargo feature `cuda` or `cuda-13`).
    Cuda,
    /// ONNX Runtime loaded at run time (Cargo feature `ort`).
    Ort,
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(EngineKind::Auto),
            "tract" | "cpu" => Ok(EngineKind::Tract),
            "cuda" | "gpu" => Ok(EngineKind::Cuda),
            "ort" | "onnxruntime" => Ok(EngineKind::Ort),
            _ => Err(format!("unknown engine '{s}' (auto, tract, cuda or ort)")),
        }
    }
}

/// Which ONNX Runtime execution provider runs an `ort` session (`--ort-ep`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrtProvider {
    /// ONNX Runtime's CPU kernels.
    #[default]
    Cpu,
    /// CUDA (the `onnxruntime-gpu` builds, JetPack's onnxruntime).
    Cuda,
    /// TensorRT, with its engines cached in vigia's cache directory (`tensorrt/`).
    TensorRt,
}

impl std::str::FromStr for OrtProvider {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(OrtProvider::Cpu),
            "cuda" => Ok(OrtProvider::Cuda),
            "tensorrt" | "trt" => Ok(OrtProvider::TensorRt),
            _ => Err(format!(
                "unknown ONNX Runtime provider '{s}' (cpu, cuda or tensorrt)"
            )),
        }
    }
}

/// The engine to build for a request, and why, for the load line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineChoice {
    /// A concrete engine (never [`EngineKind::Auto`]).
    pub kind: EngineKind,
    /// Whether a failure of `kind` may fall back to the CPU (`auto` picked the GPU).
    pub may_fall_back: bool,
    /// Why `auto` chose it (`None` when the engine was asked for by name, or the build has no
    /// GPU engine).
    pub why: Option<String>,
}

impl EngineChoice {
    /// The engine for `requested`: `auto` looks for a usable GPU.
    pub fn for_request(requested: EngineKind) -> Self {
        Self::from_status(requested, &probe())
    }

    /// [`EngineChoice::for_request`] given what the GPU probe found.
    pub fn from_status(requested: EngineKind, gpu: &GpuStatus) -> Self {
        if requested != EngineKind::Auto {
            return EngineChoice {
                kind: requested,
                may_fall_back: false,
                why: None,
            };
        }
        match gpu {
            GpuStatus::Ready(info) => EngineChoice {
                kind: EngineKind::Cuda,
                may_fall_back: true,
                why: Some(format!("auto: GPU found, {}", info.name)),
            },
            // Nothing to explain: a build without a GPU engine always runs on the CPU.
            GpuStatus::NotBuilt => EngineChoice {
                kind: EngineKind::Tract,
                may_fall_back: false,
                why: None,
            },
            GpuStatus::Unavailable(why) => EngineChoice {
                kind: EngineKind::Tract,
                may_fall_back: false,
                why: Some(format!("auto: CPU, {why}")),
            },
        }
    }

    /// The choice after the GPU failed to load the model: tract, saying why.
    pub fn fell_back(&self, error: &crate::error::Error) -> Self {
        EngineChoice {
            kind: EngineKind::Tract,
            may_fall_back: false,
            why: Some(format!(
                "auto: CPU, the GPU could not run this model ({error})"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gpu::GpuInfo;

    #[test]
    fn names_parse_and_typos_list_the_choices() {
        assert_eq!("auto".parse::<EngineKind>(), Ok(EngineKind::Auto));
        assert_eq!("CUDA".parse::<EngineKind>(), Ok(EngineKind::Cuda));
        assert_eq!("gpu".parse::<EngineKind>(), Ok(EngineKind::Cuda));
        assert_eq!("cpu".parse::<EngineKind>(), Ok(EngineKind::Tract));
        let e = "tensorrt".parse::<EngineKind>().unwrap_err();
        assert!(e.contains("auto, tract, cuda or ort"), "{e}");
    }

    #[test]
    fn auto_takes_a_ready_gpu_and_otherwise_says_why_not() {
        let ready = GpuStatus::Ready(GpuInfo {
            name: "Orin".into(),
            compute_capability: (8, 7),
            memory_mib: 7620,
            driver_cuda: (12, 6),
            runtime_cuda: (12, 6),
            cudnn: (9, 3, 0),
        });
        let c = EngineChoice::from_status(EngineKind::Auto, &ready);
        assert_eq!(c.kind, EngineKind::Cuda);
        assert!(c.may_fall_back);
        assert!(c.why.unwrap().contains("Orin"));

        let none = GpuStatus::Unavailable("CUDA driver library not found".into());
        let c = EngineChoice::from_status(EngineKind::Auto, &none);
        assert_eq!(c.kind, EngineKind::Tract);
        assert!(c.why.unwrap().contains("driver library not found"));

        let c = EngineChoice::from_status(EngineKind::Auto, &GpuStatus::NotBuilt);
        assert_eq!((c.kind, c.why), (EngineKind::Tract, None));

        // Named engines are taken as asked, with nothing to explain and no fallback.
        let c = EngineChoice::from_status(EngineKind::Cuda, &none);
        assert_eq!(
            (c.kind, c.may_fall_back, c.why),
            (EngineKind::Cuda, false, None)
        );
        let fell = EngineChoice::from_status(EngineKind::Auto, &ready).fell_back(
            &crate::error::Error::Model {
                model: "m.onnx".into(),
                reason: "out of memory".into(),
            },
        );
        assert_eq!(fell.kind, EngineKind::Tract);
        assert!(fell.why.unwrap().contains("out of memory"));
    }
}
