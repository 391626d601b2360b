//! The NVIDIA GPU the `cuda` engine would use here, found without panicking: the driver, the CUDA
//! runtime, NVRTC, cuBLAS and cuDNN are opened at run time, so a binary built with the `cuda`
//! feature starts on a machine without any of them and says what is missing.

use std::sync::OnceLock;

/// What the `cuda` engine finds on this machine.
#[derive(Debug, Clone)]
pub enum GpuStatus {
    /// This vigia was built without the `cuda` (or `cuda-13`) feature.
    NotBuilt,
    /// Built with it, but no usable GPU: why, on one line.
    Unavailable(String),
    /// A GPU and the libraries the engine needs.
    Ready(GpuInfo),
}

/// Device 0 and the CUDA stack found for it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GpuInfo {
    /// The device's name (`NVIDIA H200`, `Orin`).
    pub name: String,
    /// Compute capability, major and minor (8.7 on Jetson Orin).
    pub compute_capability: (i32, i32),
    /// Global memory in MiB.
    pub memory_mib: u64,
    /// The newest CUDA API the driver supports, major and minor.
    pub driver_cuda: (i32, i32),
    /// The CUDA runtime library's version, major and minor.
    pub runtime_cuda: (i32, i32),
    /// cuDNN's version, major, minor and patch.
    pub cudnn: (usize, usize, usize),
}

impl GpuInfo {
    /// One line for load lines and `vigia doctor`.
    pub fn summary(&self) -> String {
        format!(
            "{} (compute {}.{}, {} MiB), driver CUDA {}.{}, runtime {}.{}, cuDNN {}.{}.{}",
            self.name,
            self.compute_capability.0,
            self.compute_capability.1,
            self.memory_mib,
            self.driver_cuda.0,
            self.driver_cuda.1,
            self.runtime_cuda.0,
            self.runtime_cuda.1,
            self.cudnn.0,
            self.cudnn.1,
            self.cudnn.2
        )
    }
}

impl GpuStatus {
    /// Why the GPU cannot be used, or `None` when it can.
    pub fn unusable_reason(&self) -> Option<String> {
        match self {
            GpuStatus::NotBuilt => Some(
                "this vigia was built without the `cuda` feature (rebuild with \
                 `--features cuda`, or `cuda-13` for CUDA 13 libraries)"
                    .into(),
            ),
            GpuStatus::Unavailable(why) => Some(why.clone()),
            GpuStatus::Ready(_) => None,
        }
    }
}

/// The CUDA API version this build binds (`None` without the feature).
pub fn built_for_cuda() -> Option<&'static str> {
    if cfg!(feature = "cuda-13") {
        Some("13.0")
    } else if cfg!(feature = "cuda") {
        Some("12.2")
    } else {
        None
    }
}

/// Signs of NVIDIA hardware that need no CUDA library: the desktop driver's
/// `/proc/driver/nvidia/version`, a Jetson's `/etc/nv_tegra_release` (L4T), or `/dev/nvidia0`.
pub fn nvidia_hardware() -> Option<String> {
    let first_line = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
            .filter(|l| !l.is_empty())
    };
    if let Some(l) = first_line("/proc/driver/nvidia/version") {
        return Some(format!("NVIDIA driver: {l}"));
    }
    if let Some(l) = first_line("/etc/nv_tegra_release") {
        return Some(format!("Jetson: {l}"));
    }
    std::path::Path::new("/dev/nvidia0")
        .exists()
        .then(|| "/dev/nvidia0 is present".to_string())
}

/// What the `cuda` engine finds here; probed once per process.
pub fn probe() -> GpuStatus {
    static STATUS: OnceLock<GpuStatus> = OnceLock::new();
    STATUS.get_or_init(probe_once).clone()
}

#[cfg(not(feature = "cuda-engine"))]
fn probe_once() -> GpuStatus {
    GpuStatus::NotBuilt
}

/// Environment variable by which cuDNN and cuBLAS run f32 convolutions and products on TF32
/// tensor cores (Ampere and later GPUs): up to 2e-3 of the largest output off the CPU engine,
/// where exact f32 stays within 1e-5 (measured on an H200, BENCHMARKS.md). vigia's f32 is f32:
/// it sets the variable to `0` before the CUDA libraries load, unless the user has set it
/// (`NVIDIA_TF32_OVERRIDE=1` lets the libraries choose again). `--half` is the fast path.
pub const TF32_ENV: &str = "NVIDIA_TF32_OVERRIDE";

#[cfg(feature = "cuda-engine")]
fn probe_once() -> GpuStatus {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    if std::env::var_os(TF32_ENV).is_none() {
        // Before any CUDA library is opened, on the first probe (a `OnceLock` runs this once).
        std::env::set_var(TF32_ENV, "0");
    }
    match catch_unwind(AssertUnwindSafe(cuda_stack)) {
        Ok(Ok(info)) => GpuStatus::Ready(info),
        Ok(Err(why)) => GpuStatus::Unavailable(why),
        Err(_) => GpuStatus::Unavailable("probing the CUDA libraries panicked".into()),
    }
}

/// Opens the driver and the libraries (tract-cuda's own check first: it dlopens without binding,
/// so a missing library is an error, not a panic), then reads device 0.
#[cfg(feature = "cuda-engine")]
fn cuda_stack() -> Result<GpuInfo, String> {
    use cudarc::runtime::result::{device, version};
    tract_cuda::utils::ensure_cuda_runtime_dependencies("no usable NVIDIA GPU")
        .map_err(|e| super::chain(&e))?;
    let prop = device::get_device_prop(0)
        .map_err(|e| format!("no usable NVIDIA GPU: cannot read device 0 ({e:?})"))?;
    let name: Vec<u8> = prop
        .name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    let split = |v: i32| (v / 1000, (v % 1000) / 10);
    let driver = version::get_driver_version()
        .map_err(|e| format!("no usable NVIDIA GPU: cudaDriverGetVersion failed ({e:?})"))?;
    let runtime = version::get_runtime_version()
        .map_err(|e| format!("no usable NVIDIA GPU: cudaRuntimeGetVersion failed ({e:?})"))?;
    Ok(GpuInfo {
        name: String::from_utf8_lossy(&name).into_owned(),
        compute_capability: (prop.major, prop.minor),
        memory_mib: (prop.totalGlobalMem / (1024 * 1024)) as u64,
        driver_cuda: split(driver),
        runtime_cuda: split(runtime),
        cudnn: cudnn_version(cudarc::cudnn::result::get_version()),
    })
}

/// cuDNN's version number in parts: 9.x counts major in ten-thousands, 8.x in thousands.
#[cfg_attr(not(feature = "cuda-engine"), allow(dead_code))]
fn cudnn_version(v: usize) -> (usize, usize, usize) {
    if v >= 90000 {
        (v / 10000, (v % 10000) / 100, v % 100)
    } else {
        (v / 1000, (v % 1000) / 100, v % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cudnn_versions_of_both_numberings() {
        assert_eq!(cudnn_version(90201), (9, 2, 1));
        assert_eq!(cudnn_version(91000), (9, 10, 0));
        assert_eq!(cudnn_version(8907), (8, 9, 7));
    }

    #[test]
    fn no_gpu_here_is_a_reason_not_a_panic() {
        // The machines that build vigia have no NVIDIA driver: the probe must say so.
        match probe() {
            GpuStatus::Ready(info) => assert!(!info.name.is_empty()),
            other => {
                let why = other.unusable_reason().unwrap();
                assert!(why.contains("cuda") || why.contains("CUDA"), "{why}");
            }
        }
    }
}
