//! Arithmetic cost of a model counted from its typed graph, and the CPU's f32 peak to compare with.
//!
//! MACs are the multiply-accumulates of the linear operators (convolutions and matrix products,
//! including 1x1 convolutions and `Gemm`s that tract rewrites as `EinSum`); FLOPs are twice the
//! MACs, the convention of model zoos and papers. Element-wise work (activations, additions,
//! normalisation) is counted apart as `other_flops`: it is small and usually memory bound.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use tract_onnx::prelude::*;

use crate::engine::ModelSource;
use crate::error::{Error, Result};

/// Arithmetic cost of one inference.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FlopCount {
    /// Multiply-accumulates of convolutions and matrix products.
    pub macs: u64,
    /// Element-wise and reduction operations (each FMA or division counted once).
    pub other_flops: u64,
    /// MACs per linear operator kind (`Conv`, `EinSum`, ...).
    pub macs_by_op: BTreeMap<String, u64>,
    /// Nodes whose cost tract does not know (op names, deduplicated).
    pub uncounted_ops: Vec<String>,
}

impl FlopCount {
    /// FLOPs of the linear operators: two per MAC.
    pub fn flops(&self) -> u64 {
        2 * self.macs
    }
}

/// Operators counted as MACs: convolutions and every form of matrix product.
fn is_linear(op_name: &str) -> bool {
    matches!(op_name, "Conv" | "EinSum" | "Deconv" | "Gemm")
        || op_name.contains("MatMul")
        || op_name.contains("MatMatMul")
}

/// Counts the MACs of a typed model whose shapes are all concrete.
pub fn count_typed(model: &TypedModel) -> Result<FlopCount> {
    let mut count = FlopCount::default();
    for node in model.eval_order().map_err(|e| count_err(&e))? {
        let node = model.node(node);
        let name = node.op.name().to_string();
        let facts = model.node_input_facts(node.id).map_err(|e| count_err(&e))?;
        let costs = match node.op.cost(&facts) {
            Ok(c) => c,
            Err(_) => {
                count.uncounted_ops.push(name);
                continue;
            }
        };
        let linear = is_linear(&name);
        if costs.is_empty() && linear {
            count.uncounted_ops.push(name);
            continue;
        }
        for (kind, amount) in costs {
            if !kind.is_compute() {
                continue;
            }
            let n = amount.to_i64().map_err(|_| Error::Model {
                model: node.name.clone(),
                reason: format!("cost {amount} of {name} is not a number (symbolic shape)"),
            })?;
            let n = n.max(0) as u64;
            if linear && matches!(kind, tract_core::ops::Cost::FMA(_)) {
                count.macs += n;
                *count.macs_by_op.entry(name.clone()).or_default() += n;
            } else {
                count.other_flops += n;
            }
        }
    }
    count.uncounted_ops.sort();
    count.uncounted_ops.dedup();
    Ok(count)
}

/// Parses `source`, fixes its first input to f32 `input_shape` and returns the decluttered
/// (`optimized == false`) or fully optimized typed model.
pub fn typed_model(
    source: &ModelSource,
    input_shape: &[usize],
    optimized: bool,
) -> Result<TypedModel> {
    let name = source.display_name();
    let bytes: std::borrow::Cow<'_, [u8]> = match source {
        ModelSource::File(p) => std::fs::read(p)
            .map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?
            .into(),
        ModelSource::Embedded { bytes, .. } => (*bytes).into(),
    };
    let build = |lenient: bool| {
        catch_unwind(AssertUnwindSafe(|| -> TractResult<TypedModel> {
            let mut onnx = tract_onnx::onnx();
            if lenient {
                onnx = onnx
                    .with_ignore_output_shapes(true)
                    .with_ignore_value_info(true);
            }
            let model = onnx
                .model_for_read(&mut &bytes[..])?
                .with_input_fact(0, f32::fact(input_shape).into())?
                .into_typed()?;
            if optimized {
                model.into_optimized()
            } else {
                model.into_decluttered()
            }
        }))
    };
    let result = match build(false) {
        Ok(Ok(m)) => Ok(Ok(m)),
        _ => build(true),
    };
    match result {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(Error::Model {
            model: name,
            reason: format!(
                "cannot type the graph for input shape {input_shape:?}: {}",
                e.chain()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(": ")
            ),
        }),
        Err(_) => Err(Error::Model {
            model: name,
            reason: format!(
                "tract panicked while typing the graph for input shape {input_shape:?}"
            ),
        }),
    }
}

/// Counts the MACs of the model in `source` with its first input fixed to `input_shape`.
pub fn count(source: &ModelSource, input_shape: &[usize]) -> Result<FlopCount> {
    let model = typed_model(source, input_shape, false)?;
    count_typed(&model).map_err(|e| match e {
        Error::Model { model, reason } => Error::Model {
            model: format!("{} (node {model})", source.display_name()),
            reason,
        },
        other => other,
    })
}

fn count_err(e: &anyhow::Error) -> Error {
    Error::Model {
        model: "flop count".into(),
        reason: e.to_string(),
    }
}

/// The theoretical f32 throughput of the CPU, with how it was derived.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CpuPeak {
    /// CPU model name.
    pub cpu: String,
    /// Vector ISA assumed (`AVX-512`, `AVX2+FMA`, `NEON`, ...).
    pub isa: String,
    /// f32 lanes per vector register.
    pub lanes: u32,
    /// Vector FMA instructions issued per cycle per core.
    pub fma_units: u32,
    /// Clock frequency assumed, in GHz.
    pub ghz: f64,
    /// Where the frequency came from.
    pub freq_source: String,
    /// Peak of one core in GFLOP/s (2 FLOPs per FMA lane).
    pub per_core_gflops: f64,
}

impl CpuPeak {
    /// Peak of `threads` cores in GFLOP/s.
    pub fn gflops(&self, threads: usize) -> f64 {
        self.per_core_gflops * threads.max(1) as f64
    }

    /// One line stating the assumption.
    pub fn describe(&self) -> String {
        format!(
            "{}: {} {} f32 lanes x {} FMA/cycle x 2 x {:.2} GHz ({}) = {:.1} GFLOP/s per core",
            self.cpu,
            self.isa,
            self.lanes,
            self.fma_units,
            self.ghz,
            self.freq_source,
            self.per_core_gflops
        )
    }

    /// Detects the peak of this machine from the compiled-for architecture, `/proc/cpuinfo`
    /// and cpufreq.
    pub fn detect() -> CpuPeak {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let max_khz =
            std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok());
        let (isa, lanes, fma_units, note) = vector_units(&cpuinfo);
        let (ghz, freq_source) = match (max_khz, cpuinfo_mhz(&cpuinfo)) {
            (Some(khz), _) if khz > 0.0 => (khz / 1e6, "cpufreq max".to_string()),
            (_, Some(mhz)) if mhz > 0.0 => (mhz / 1e3, "/proc/cpuinfo MHz".to_string()),
            _ => (2.0, "unknown, 2 GHz assumed".to_string()),
        };
        let cpu = cpu_name(&cpuinfo);
        let freq_source = if note.is_empty() {
            freq_source
        } else {
            format!("{freq_source}; {note}")
        };
        CpuPeak {
            cpu,
            isa,
            lanes,
            fma_units,
            ghz,
            freq_source,
            per_core_gflops: lanes as f64 * fma_units as f64 * 2.0 * ghz,
        }
    }
}

/// The value of the first `key : value` line of `/proc/cpuinfo` text, when not empty.
fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn cpu_name(cpuinfo: &str) -> String {
    let field = |key: &str| cpuinfo_field(cpuinfo, key);
    field("model name")
        .or_else(|| field("Model"))
        .or_else(|| field("Hardware"))
        .or_else(|| field("CPU part").map(|p| format!("ARM part {p}")))
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

fn cpuinfo_mhz(cpuinfo: &str) -> Option<f64> {
    cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// ISA name, f32 lanes, FMA issue per cycle and a note on the assumption.
#[cfg(target_arch = "x86_64")]
fn vector_units(cpuinfo: &str) -> (String, u32, u32, String) {
    if std::arch::is_x86_feature_detected!("avx512f") && is_zen4(cpuinfo) {
        (
            "AVX-512".into(),
            16,
            1,
            "AMD Zen 4: 512-bit FMA over two 256-bit pipes".into(),
        )
    } else if std::arch::is_x86_feature_detected!("avx512f") {
        // Measured whenever AVX-512F is present.
        let pipes = crate::kernels::fma_pipes::fma_pipes(crate::kernels::Isa::Avx512).unwrap_or(2);
        (
            "AVX-512".into(),
            16,
            pipes,
            format!("{pipes} AVX-512 FMA unit(s), measured"),
        )
    } else if std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("avx2")
    {
        if is_zen1(cpuinfo) {
            // Zen/Zen+ split each 256-bit FMA over its two 128-bit pipes.
            (
                "AVX2+FMA".into(),
                8,
                1,
                "AMD Zen 1: 256-bit FMA at half rate".into(),
            )
        } else {
            ("AVX2+FMA".into(), 8, 2, String::new())
        }
    } else if std::arch::is_x86_feature_detected!("avx") {
        (
            "AVX (no FMA)".into(),
            8,
            1,
            "one mul + one add per cycle".into(),
        )
    } else {
        ("SSE".into(), 4, 1, "one mul + one add per cycle".into())
    }
}

/// AMD family 17h models below 30h (Zen, Zen+: EPYC 7001, Ryzen 1000/2000), whose vector units
/// are 128 bits wide.
#[cfg(target_arch = "x86_64")]
fn is_zen1(cpuinfo: &str) -> bool {
    let field = |key: &str| cpuinfo_field(cpuinfo, key);
    field("vendor_id").as_deref() == Some("AuthenticAMD")
        && field("cpu family").as_deref() == Some("23")
        && field("model")
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m < 0x30)
}

/// AMD family 19h (Zen 3 and Zen 4; only Zen 4 has AVX-512), whose 512-bit FMAs issue over two
/// 256-bit pipes: one per cycle.
#[cfg(target_arch = "x86_64")]
fn is_zen4(cpuinfo: &str) -> bool {
    let field = |key: &str| cpuinfo_field(cpuinfo, key);
    field("vendor_id").as_deref() == Some("AuthenticAMD")
        && field("cpu family").as_deref() == Some("25")
}

/// ISA name, f32 lanes, FMA issue per cycle and a note on the assumption.
#[cfg(target_arch = "aarch64")]
fn vector_units(cpuinfo: &str) -> (String, u32, u32, String) {
    let part = cpuinfo
        .lines()
        .find(|l| l.starts_with("CPU part"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_lowercase());
    let implementer = cpuinfo
        .lines()
        .find(|l| l.starts_with("CPU implementer"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_lowercase());
    let (core, pipes) = arm_core(implementer.as_deref(), part.as_deref());
    (
        "NEON".into(),
        4,
        pipes,
        format!("{core}: {pipes} 128-bit FMA pipe(s)"),
    )
}

/// ISA name, f32 lanes, FMA issue per cycle and a note on the assumption.
#[cfg(target_arch = "arm")]
fn vector_units(_cpuinfo: &str) -> (String, u32, u32, String) {
    (
        "NEON (armv7)".into(),
        4,
        1,
        "one 128-bit NEON MAC per cycle assumed".into(),
    )
}

/// ISA name, f32 lanes, FMA issue per cycle and a note on the assumption.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "arm")))]
fn vector_units(_cpuinfo: &str) -> (String, u32, u32, String) {
    ("scalar".into(), 1, 1, "unknown architecture".into())
}

/// Core name and 128-bit FMA pipes of an ARM core from `/proc/cpuinfo`'s implementer and part.
pub fn arm_core(implementer: Option<&str>, part: Option<&str>) -> (&'static str, u32) {
    match (implementer.unwrap_or("0x41"), part.unwrap_or("")) {
        ("0x4e", "0x004") => ("NVIDIA Carmel", 2),
        ("0x41", "0xd03") => ("Cortex-A53", 1),
        ("0x41", "0xd04") => ("Cortex-A35", 1),
        ("0x41", "0xd05") => ("Cortex-A55", 1),
        ("0x41", "0xd07") => ("Cortex-A57", 1),
        ("0x41", "0xd08") => ("Cortex-A72", 1),
        ("0x41", "0xd09") => ("Cortex-A73", 1),
        ("0x41", "0xd0a") => ("Cortex-A75", 2),
        ("0x41", "0xd0b") => ("Cortex-A76", 2),
        ("0x41", "0xd0c") => ("Neoverse-N1", 2),
        ("0x41", "0xd0d") => ("Cortex-A77", 2),
        ("0x41", "0xd40") => ("Neoverse-V1", 4),
        ("0x41", "0xd41") => ("Cortex-A78", 2),
        ("0x41", "0xd42") => ("Cortex-A78AE", 2),
        ("0x41", "0xd44") => ("Cortex-X1", 4),
        ("0x41", "0xd46") => ("Cortex-A510", 1),
        ("0x41", "0xd47") => ("Cortex-A710", 2),
        ("0x41", "0xd48") => ("Cortex-X2", 4),
        ("0x41", "0xd49") => ("Neoverse-N2", 2),
        ("0x41", "0xd4b") => ("Cortex-A78C", 2),
        ("0x41", "0xd4d") => ("Cortex-A715", 2),
        ("0x41", "0xd4e") => ("Cortex-X3", 4),
        ("0x41", "0xd4f") => ("Neoverse-V2", 4),
        ("0x61", _) => ("Apple", 4),
        _ => ("unknown ARM core (1 pipe assumed)", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn zen1_is_told_from_later_amd_cores() {
        let info = |family: u32, model: u32| {
            format!("vendor_id\t: AuthenticAMD\ncpu family\t: {family}\nmodel\t\t: {model}\n")
        };
        assert!(is_zen1(&info(23, 1)));
        assert!(is_zen1(&info(23, 8)));
        assert!(!is_zen1(&info(23, 49)));
        assert!(!is_zen1(&info(25, 1)));
        assert!(is_zen4(&info(25, 17)));
        assert!(!is_zen4(&info(23, 1)));
        assert!(!is_zen1(
            "vendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\n"
        ));
    }

    #[test]
    fn arm_cores_of_common_boards() {
        // Raspberry Pi 4 (A72), Pi 5 (A76), Jetson Orin (A78AE), Jetson Xavier (Carmel).
        assert_eq!(arm_core(Some("0x41"), Some("0xd08")), ("Cortex-A72", 1));
        assert_eq!(arm_core(Some("0x41"), Some("0xd0b")), ("Cortex-A76", 2));
        assert_eq!(arm_core(Some("0x41"), Some("0xd42")), ("Cortex-A78AE", 2));
        assert_eq!(arm_core(Some("0x4e"), Some("0x004")), ("NVIDIA Carmel", 2));
        assert_eq!(arm_core(None, None).1, 1);
    }

    #[test]
    fn detected_peak_is_plausible() {
        let p = CpuPeak::detect();
        assert!(p.lanes >= 1 && p.fma_units >= 1, "{p:?}");
        assert!(p.ghz > 0.1 && p.ghz < 10.0, "{p:?}");
        assert!(
            p.per_core_gflops >= 0.4 && p.per_core_gflops < 1000.0,
            "{}",
            p.describe()
        );
        assert_eq!(p.gflops(2), 2.0 * p.per_core_gflops);
    }

    #[test]
    fn a_gemm_is_counted_as_m_n_k() {
        // y = x[1,64] . W[64,10]: 640 MACs; a ReLU after it is not a MAC.
        let mut model = TypedModel::default();
        let x = model.add_source("x", f32::fact([1, 64])).unwrap();
        let w = model
            .add_const("w", Tensor::zero::<f32>(&[64, 10]).unwrap())
            .unwrap();
        let y = model
            .wire_node(
                "mm",
                tract_core::ops::einsum::EinSum::new(
                    "ik,kj->ij".parse().unwrap(),
                    f32::datum_type(),
                ),
                &[x, w],
            )
            .unwrap();
        model.select_output_outlets(&y).unwrap();
        let c = count_typed(&model).unwrap();
        assert_eq!(c.macs, 640);
        assert_eq!(c.flops(), 1280);
        assert_eq!(c.macs_by_op.get("EinSum"), Some(&640));
    }
}
