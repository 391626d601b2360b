//! `vigia doctor`: what this machine is, what vigia can use on it, and the profile it picks.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::Args;
use serde_json::json;

use vigia::board::{Machine, Overrides, PROFILES};
use vigia::engine;
use vigia::engine::cache::check_writable;
use vigia::engine::choice::{EngineChoice, EngineKind};
use vigia::engine::gpu::GpuStatus;

/// Arguments of `vigia doctor`.
#[derive(Args)]
pub struct DoctorArgs {
    /// Profile to report instead of the detected one (auto, rpi4, rpi5, jetson-nano, ...)
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Model cache directory to check [default: $VIGIA_CACHE_DIR, $XDG_CACHE_HOME/vigia or
    /// ~/.cache/vigia]
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Print JSON instead of text
    #[arg(long)]
    json: bool,
}

/// An external program vigia runs, and what for.
struct Tool {
    name: &'static str,
    purpose: &'static str,
    version_arg: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "ffmpeg",
        purpose: "video files, RTSP/HTTP streams, annotated video",
        version_arg: "-version",
    },
    Tool {
        name: "ffprobe",
        purpose: "video size, rate and length",
        version_arg: "-version",
    },
    Tool {
        name: "rpicam-vid",
        purpose: "Raspberry Pi camera module (libcamera://)",
        version_arg: "--version",
    },
    Tool {
        name: "gst-launch-1.0",
        purpose: "Jetson CSI camera (csi://)",
        version_arg: "--version",
    },
];

/// Interesting x86 flags (the full list is long); every ARM feature is shown.
const X86_FLAGS: &[&str] = &[
    "sse4_1",
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
];

pub fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let machine = Machine::probe();
    let settings = Overrides {
        profile: args.profile.clone(),
        cache_dir: args.cache_dir.clone(),
        ..Overrides::default()
    }
    .settings(true)
    .map_err(|e| anyhow::anyhow!("--profile: {e}"))?;
    let isa = tract_linalg::isa::native();
    let arm_binary = machine.arch == "aarch64" || machine.arch == "arm";
    // qemu-user shows an ARM binary the host's /proc/cpuinfo: no ARM fields to read.
    let foreign_cpuinfo = arm_binary && machine.cpu.implementer.is_none();
    let features: Vec<&str> = if machine.arch.starts_with("x86") || foreign_cpuinfo {
        X86_FLAGS
            .iter()
            .copied()
            .filter(|f| machine.cpu.has(f))
            .collect()
    } else {
        machine.cpu.features.iter().map(String::as_str).collect()
    };
    let tools: Vec<(&Tool, Option<PathBuf>, Option<String>)> = TOOLS
        .iter()
        .map(|t| {
            let path = find_in_path(t.name);
            let version = path.as_deref().and_then(|p| first_line(p, t.version_arg));
            (t, path, version)
        })
        .collect();
    let cameras = video_devices();
    let cache = settings.cache_dir.as_ref().map(|d| (d, check_writable(d)));
    let cpu_name = machine
        .cpu
        .core_name()
        .map(String::from)
        .or(machine.cpu.model_name.clone())
        .unwrap_or_else(|| "not identified".into());
    let fp16 = machine.cpu.fp16_arithmetic();
    let gpu = engine::gpu::probe();
    let nvidia = engine::gpu::nvidia_hardware();
    let auto = EngineChoice::from_status(EngineKind::Auto, &gpu);

    if args.json {
        let report = json!({
            "vigia": env!("CARGO_PKG_VERSION"),
            "tract": engine::tract_version(),
            "arch": machine.arch,
            "device_tree_model": machine.device_tree_model,
            "cpu": {
                "name": cpu_name,
                "implementer": machine.cpu.implementer,
                "part": machine.cpu.part,
                "features": machine.cpu.features,
                "fp16_arithmetic": fp16,
                "online": machine.online_cpus,
            },
            "tract_isa": isa.nickname(),
            "vigia_kernels_isa": vigia::kernels::Isa::detect(),
            "memory_mib": machine.memory_mib,
            "tools": tools.iter().map(|(t, p, v)| json!({
                "name": t.name, "path": p, "version": v,
            })).collect::<Vec<_>>(),
            "cameras": cameras.iter().map(|(d, n)| json!({"device": d, "name": n})).collect::<Vec<_>>(),
            "cache": cache.as_ref().map(|(d, w)| json!({
                "dir": d, "writable": w.is_ok(), "error": w.as_ref().err(),
                "entries": cache_entries(d).0, "bytes": cache_entries(d).1,
            })),
            "gpu": {
                "built_for_cuda": engine::gpu::built_for_cuda(),
                "device": match &gpu { GpuStatus::Ready(info) => Some(info), _ => None },
                "unusable": gpu.unusable_reason(),
                "nvidia_hardware": nvidia,
                "auto_engine": format!("{:?}", auto.kind).to_lowercase(),
            },
            "profile": settings.profile,
            "profile_reason": settings.why,
            "threads": settings.threads,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }

    println!(
        "vigia {} ({} build), tract {}",
        env!("CARGO_PKG_VERSION"),
        machine.arch,
        engine::tract_version()
    );
    println!("\nmachine");
    row(
        "board",
        &machine
            .device_tree_model
            .clone()
            .unwrap_or_else(|| "no device tree model (not a Raspberry Pi or Jetson)".into()),
    );
    let ids = match (machine.cpu.implementer, machine.cpu.part) {
        (Some(i), Some(p)) => format!(" (implementer {i:#x}, part {p:#05x})"),
        _ => String::new(),
    };
    row(
        "cpu",
        &format!("{cpu_name}{ids}, {} online CPU(s)", machine.online_cpus),
    );
    row(
        "features",
        &if foreign_cpuinfo {
            "/proc/cpuinfo describes a non-ARM CPU (emulated, e.g. qemu-user)".to_string()
        } else if features.is_empty() {
            "none listed in /proc/cpuinfo".to_string()
        } else {
            features.join(" ")
        },
    );
    row(
        "fp16",
        if fp16 {
            "native FP16 arithmetic (asimdhp): --half runs f16 kernels"
        } else if arm_binary {
            "no FP16 arithmetic: f32 is fastest"
        } else {
            "no ARM FP16 arithmetic: f16 is emulated, f32 is fastest"
        },
    );
    row(
        "tract isa",
        &format!(
            "{} kernels for {}{}",
            isa.nickname(),
            machine.arch,
            if isa.fp16_arithmetic() {
                " (f16 kernels)"
            } else {
                ""
            }
        ),
    );
    let kernels_isa = vigia::kernels::Isa::detect();
    let (mr, nr) = vigia::kernels::gemm::tile(kernels_isa);
    let blocked = if kernels_isa == vigia::kernels::Isa::Avx512 {
        ", chains of them and of the depthwise ones between on 16-channel blocked maps, large \
         expansions joined to the depthwise layer that reads them"
    } else {
        ""
    };
    row(
        "vigia kernels",
        &format!(
            "{} (depthwise convolutions; dense ones as {mr}x{nr} matrix-product tiles{blocked}, 3x3 stride-1 ones by Winograd F(4x4, 3x3); Resize; --kernels tract uses tract's own)",
            kernels_isa.name(),
        ),
    );
    row(
        "memory",
        &machine
            .memory_mib
            .map(|m| format!("{:.1} GiB", m as f64 / 1024.0))
            .unwrap_or_else(|| "unknown (/proc/meminfo unreadable)".into()),
    );

    println!("\ngpu");
    row(
        "cuda engine",
        &match engine::gpu::built_for_cuda() {
            Some(v) => {
                format!("built in (CUDA {v} API; driver, CUDA and cuDNN opened at run time)")
            }
            None => "not in this build (rebuild with --features cuda, or cuda-13)".into(),
        },
    );
    match &gpu {
        GpuStatus::Ready(info) => row("device", &info.summary()),
        GpuStatus::Unavailable(why) => row("device", &format!("none usable: {why}")),
        GpuStatus::NotBuilt => row(
            "device",
            nvidia
                .as_deref()
                .unwrap_or("no NVIDIA driver or Jetson release file found"),
        ),
    }
    row(
        "--engine auto",
        match (&auto.kind, &gpu) {
            (EngineKind::Cuda, _) => "runs on the GPU (falls back to tract if the model cannot)",
            (_, GpuStatus::NotBuilt) => "runs tract on the CPU: this build has no GPU engine",
            _ => "runs tract on the CPU: no usable GPU (see above)",
        },
    );

    println!("\ntools");
    for (t, path, version) in &tools {
        let status = match (path, version) {
            (Some(p), Some(v)) => format!("{} ({v})", p.display()),
            (Some(p), None) => format!("{} (did not report a version)", p.display()),
            (None, _) => "not found in PATH".into(),
        };
        row(t.name, &format!("{status}; for {}", t.purpose));
    }

    println!("\ncameras");
    if cameras.is_empty() {
        row("v4l2", "no /dev/video* devices");
    }
    for (dev, name) in &cameras {
        row(dev, name.as_deref().unwrap_or("(no name in sysfs)"));
    }
    if !cfg!(feature = "v4l") {
        row(
            "v4l2",
            "this build has no USB camera support (feature v4l off)",
        );
    }

    println!("\nmodel cache");
    match &cache {
        None => row("dir", "off (profile or --no-cache)"),
        Some((dir, Ok(()))) => {
            let (n, bytes) = cache_entries(dir);
            row(
                "dir",
                &format!(
                    "{} (writable, {n} entries, {:.1} MB)",
                    dir.display(),
                    bytes as f64 / 1e6
                ),
            );
        }
        Some((dir, Err(e))) => row(
            "dir",
            &format!("{}: {e}; pass --cache-dir or --no-cache", dir.display()),
        ),
    }

    println!("\nprofile");
    row(
        "chosen",
        &format!("{} ({})", settings.profile, settings.why),
    );
    row("description", settings.profile.description);
    row(
        "threads",
        &format!("{} (override with --threads)", settings.threads),
    );
    row(
        "others",
        &PROFILES
            .iter()
            .map(|p| p.name)
            .filter(|n| *n != settings.profile.name)
            .collect::<Vec<_>>()
            .join(", "),
    );
    Ok(ExitCode::SUCCESS)
}

fn row(key: &str, value: &str) {
    println!("  {key:<14} {value}");
}

/// The executable `name` in `PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// First line a program prints for `arg` (its version), or `None`.
fn first_line(program: &Path, arg: &str) -> Option<String> {
    let out = Command::new(program)
        .arg(arg)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| !l.trim().is_empty())?.trim();
    let line = line.split(" Copyright").next().unwrap_or(line);
    Some(line.chars().take(60).collect())
}

/// `/dev/video*` devices with their sysfs names, in order.
fn video_devices() -> Vec<(String, Option<String>)> {
    let mut devices: Vec<(String, Option<String>)> = std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.strip_prefix("video")
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                        .then_some(name)
                })
                .map(|name| {
                    let label =
                        std::fs::read_to_string(format!("/sys/class/video4linux/{name}/name"))
                            .ok()
                            .map(|s| s.trim().to_string());
                    (format!("/dev/{name}"), label)
                })
                .collect()
        })
        .unwrap_or_default();
    devices.sort_by_key(|(d, _)| {
        d.trim_start_matches("/dev/video")
            .parse::<u32>()
            .unwrap_or(0)
    });
    devices
}

/// Number and total size of `.nnef.tar` entries in `dir`.
fn cache_entries(dir: &Path) -> (usize, u64) {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".nnef.tar"))
                .fold((0, 0), |(n, b), e| {
                    (n + 1, b + e.metadata().map(|m| m.len()).unwrap_or(0))
                })
        })
        .unwrap_or((0, 0))
}
