//! Board detection and per-board profiles (threads, input size, f16, model cache).
//!
//! The board is told from `/proc/device-tree/model` (Raspberry Pi, Jetson) and the CPU from
//! `/proc/cpuinfo` (`CPU part`, `Features`). Parsing is pure so it is tested on real text.

use std::fmt;
use std::path::{Path, PathBuf};

/// Settings vigia applies on one kind of board unless an option overrides them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Profile {
    /// Profile name (`rpi4`, `rpi5`, `jetson-nano`, `jetson-orin`, `generic-x86`, `generic-arm64`).
    pub name: &'static str,
    /// What the profile is for.
    pub description: &'static str,
    /// Threads for tract's matrix kernels (`None`: one per online CPU).
    pub threads: Option<u32>,
    /// Square input size for the default detector (`None`: the model card's size).
    pub imgsz: Option<u32>,
    /// Run the graph in f16 (only on CPUs with FP16 arithmetic).
    pub half: bool,
    /// Keep a pre-decluttered copy of each model in the cache directory.
    pub cache: bool,
}

/// Every profile `--profile` accepts, best known boards first.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "rpi4",
        description: "Raspberry Pi 4 / 400 / CM4: 4x Cortex-A72, NEON, no FP16 arithmetic",
        threads: Some(4),
        imgsz: Some(320),
        half: false,
        cache: true,
    },
    Profile {
        name: "rpi5",
        description: "Raspberry Pi 5 / CM5: 4x Cortex-A76, NEON with FP16 arithmetic",
        threads: Some(4),
        imgsz: None,
        half: true,
        cache: true,
    },
    Profile {
        name: "jetson-nano",
        description: "Jetson Nano / TX1: 4x Cortex-A57, NEON, no FP16 arithmetic on the CPU",
        threads: Some(4),
        imgsz: Some(320),
        half: false,
        cache: true,
    },
    Profile {
        name: "jetson-orin",
        description: "Jetson Orin Nano / NX / AGX: 6-12x Cortex-A78AE, NEON with FP16 arithmetic",
        threads: None,
        imgsz: None,
        half: true,
        cache: true,
    },
    Profile {
        name: "generic-arm64",
        description: "other 64-bit ARM machine: one thread (tract's default), f32",
        threads: Some(1),
        imgsz: None,
        half: false,
        cache: true,
    },
    Profile {
        name: "generic-x86",
        description: "x86-64 desktop or server: one thread (tract's default), f32",
        threads: Some(1),
        imgsz: None,
        half: false,
        // On x86-64 a cached NanoDet starts 13 ms sooner (58 -> 45 ms): not worth 15 MB per
        // model and size in the home directory of a desktop.
        cache: false,
    },
];

impl Profile {
    /// The profile called `name` (case-insensitive), or an error listing the known ones.
    pub fn named(name: &str) -> Result<&'static Profile, String> {
        PROFILES
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                format!(
                    "unknown profile '{name}' (known: auto, {})",
                    PROFILES
                        .iter()
                        .map(|p| p.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// Threads to use on a machine with `cpus` online CPUs.
    pub fn threads_for(&self, cpus: usize) -> u32 {
        self.threads.unwrap_or(cpus.clamp(1, 256) as u32)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let threads = match self.threads {
            Some(t) => t.to_string(),
            None => "all CPUs".into(),
        };
        let imgsz = match self.imgsz {
            Some(s) => format!("{s}x{s}"),
            None => "model card".into(),
        };
        write!(
            f,
            "{}: threads {threads}, input {imgsz}, {}, cache {}",
            self.name,
            if self.half { "f16" } else { "f32" },
            if self.cache { "on" } else { "off" }
        )
    }
}

/// What `/proc/cpuinfo` says about the CPU.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CpuInfo {
    /// `processor` entries (logical CPUs).
    pub processors: usize,
    /// ARM `CPU implementer` (0x41 = Arm Ltd.).
    pub implementer: Option<u32>,
    /// ARM `CPU part` (0xd08 = Cortex-A72, ...).
    pub part: Option<u32>,
    /// ARM `CPU architecture` (7 or 8).
    pub architecture: Option<u32>,
    /// x86 `model name`, or the ARM `model name` line of older kernels.
    pub model_name: Option<String>,
    /// `Hardware` line (32-bit Raspberry Pi OS and older kernels).
    pub hardware: Option<String>,
    /// `Model` line (Raspberry Pi kernels).
    pub model: Option<String>,
    /// ARM `Features` or x86 `flags`, of the first processor.
    pub features: Vec<String>,
}

impl CpuInfo {
    /// Whether the CPU lists `feature` (`asimdhp`, `avx2`, ...).
    pub fn has(&self, feature: &str) -> bool {
        self.features.iter().any(|f| f == feature)
    }

    /// Whether the CPU computes in f16 natively (ARMv8.2 FP16: `asimdhp`).
    pub fn fp16_arithmetic(&self) -> bool {
        self.has("asimdhp")
    }

    /// The core's name from its implementer and part numbers, e.g. `Cortex-A76`.
    pub fn core_name(&self) -> Option<&'static str> {
        core_name(self.implementer?, self.part?)
    }
}

/// Parses the text of `/proc/cpuinfo` (ARM or x86 layout).
pub fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        match key {
            "processor" => info.processors += 1,
            "CPU implementer" if info.implementer.is_none() => info.implementer = parse_num(value),
            "CPU part" if info.part.is_none() => info.part = parse_num(value),
            "CPU architecture" if info.architecture.is_none() => {
                info.architecture = value.parse().ok()
            }
            "model name" if info.model_name.is_none() => info.model_name = Some(value.into()),
            "Hardware" => info.hardware = Some(value.into()),
            "Model" => info.model = Some(value.into()),
            "Features" | "flags" if info.features.is_empty() => {
                info.features = value.split_whitespace().map(String::from).collect()
            }
            _ => {}
        }
    }
    info
}

fn parse_num(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Name of an ARM core from its `CPU implementer` and `CPU part`.
pub fn core_name(implementer: u32, part: u32) -> Option<&'static str> {
    Some(match (implementer, part) {
        (0x41, 0xd03) => "Cortex-A53",
        (0x41, 0xd04) => "Cortex-A35",
        (0x41, 0xd05) => "Cortex-A55",
        (0x41, 0xd07) => "Cortex-A57",
        (0x41, 0xd08) => "Cortex-A72",
        (0x41, 0xd09) => "Cortex-A73",
        (0x41, 0xd0a) => "Cortex-A75",
        (0x41, 0xd0b) => "Cortex-A76",
        (0x41, 0xd0c) => "Neoverse-N1",
        (0x41, 0xd0d) => "Cortex-A77",
        (0x41, 0xd40) => "Neoverse-V1",
        (0x41, 0xd41) => "Cortex-A78",
        (0x41, 0xd42) => "Cortex-A78AE",
        (0x41, 0xd44) => "Cortex-X1",
        (0x41, 0xd46) => "Cortex-A510",
        (0x41, 0xd47) => "Cortex-A710",
        (0x41, 0xd49) => "Neoverse-N2",
        (0x41, 0xd4b) => "Cortex-A78C",
        (0x4e, 0x004) => "NVIDIA Carmel",
        _ => return None,
    })
}

/// The device-tree model string without its trailing NUL.
pub fn parse_device_tree_model(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_end_matches('\0').trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The profile for a machine, and why it was chosen.
pub fn choose_profile(
    device_tree_model: Option<&str>,
    cpu: &CpuInfo,
    arch: &str,
) -> (&'static Profile, String) {
    let pick = |name: &str, why: String| (Profile::named(name).expect("built-in profile"), why);
    let model = device_tree_model
        .or(cpu.model.as_deref())
        .unwrap_or_default();
    let lower = model.to_ascii_lowercase();
    if lower.contains("raspberry pi 5") || lower.contains("compute module 5") {
        return pick("rpi5", format!("device tree model '{model}'"));
    }
    if lower.contains("raspberry pi 4")
        || lower.contains("raspberry pi 400")
        || lower.contains("compute module 4")
    {
        return pick("rpi4", format!("device tree model '{model}'"));
    }
    if lower.contains("jetson") && lower.contains("orin") {
        return pick("jetson-orin", format!("device tree model '{model}'"));
    }
    if lower.contains("jetson") && (lower.contains("nano") || lower.contains("tx1")) {
        return pick("jetson-nano", format!("device tree model '{model}'"));
    }
    // No known board: go by the CPU core.
    if let Some(core) = cpu.core_name() {
        let by_core = match core {
            "Cortex-A72" => Some("rpi4"),
            "Cortex-A76" => Some("rpi5"),
            "Cortex-A57" => Some("jetson-nano"),
            "Cortex-A78AE" => Some("jetson-orin"),
            _ => None,
        };
        if let Some(name) = by_core {
            return pick(name, format!("CPU core {core}"));
        }
    }
    match arch {
        "x86_64" | "x86" => pick("generic-x86", format!("{arch} CPU")),
        _ if cpu.fp16_arithmetic() => {
            // An unknown ARMv8.2+ core: FP16 arithmetic pays off like on the A76.
            let mut why = format!("{arch} CPU with FP16 arithmetic (asimdhp)");
            if let Some(core) = cpu.core_name() {
                why = format!("{core}, {why}");
            }
            pick("jetson-orin", why)
        }
        _ => pick(
            "generic-arm64",
            format!(
                "{arch} CPU{}",
                cpu.core_name()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_else(|| " not identified from /proc/cpuinfo".into())
            ),
        ),
    }
}

/// What vigia found on this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Machine {
    /// `/proc/device-tree/model`, when the machine has a device tree.
    pub device_tree_model: Option<String>,
    /// Parsed `/proc/cpuinfo` (empty when unreadable).
    pub cpu: CpuInfo,
    /// CPUs this process may run on.
    pub online_cpus: usize,
    /// Architecture this binary was built for.
    pub arch: &'static str,
    /// Total memory in MiB (`/proc/meminfo`).
    pub memory_mib: Option<u64>,
}

impl Machine {
    /// Reads the device tree, `/proc/cpuinfo` and `/proc/meminfo` of this machine.
    pub fn probe() -> Machine {
        Self::probe_root(Path::new("/"))
    }

    /// The same, with `/proc` read under `root` (a copy of a board's files).
    pub fn probe_root(root: &Path) -> Machine {
        let device_tree_model = std::fs::read(root.join("proc/device-tree/model"))
            .ok()
            .and_then(|raw| parse_device_tree_model(&raw));
        let cpu = std::fs::read_to_string(root.join("proc/cpuinfo"))
            .map(|t| parse_cpuinfo(&t))
            .unwrap_or_default();
        let memory_mib = std::fs::read_to_string(root.join("proc/meminfo"))
            .ok()
            .and_then(|t| parse_meminfo_mib(&t));
        let online_cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(cpu.processors.max(1));
        Machine {
            device_tree_model,
            cpu,
            online_cpus,
            arch: std::env::consts::ARCH,
            memory_mib,
        }
    }

    /// The profile for this machine and why.
    pub fn profile(&self) -> (&'static Profile, String) {
        choose_profile(self.device_tree_model.as_deref(), &self.cpu, self.arch)
    }
}

/// `MemTotal` of `/proc/meminfo`, in MiB.
pub fn parse_meminfo_mib(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Model cache directory: `$VIGIA_CACHE_DIR`, else `$XDG_CACHE_HOME/vigia`, else `~/.cache/vigia`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("VIGIA_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("vigia"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".cache").join("vigia"))
}

/// Command-line choices that override the board profile.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--profile` (`auto` or absent: detect the board).
    pub profile: Option<String>,
    /// `--threads`.
    pub threads: Option<u32>,
    /// `--imgsz`.
    pub imgsz: Option<u32>,
    /// `--half` (`Some(true)`) or `--no-half` (`Some(false)`).
    pub half: Option<bool>,
    /// `--cache-dir`.
    pub cache_dir: Option<PathBuf>,
    /// `--no-cache`.
    pub no_cache: bool,
}

/// The settings a run uses: the profile's, overridden by the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The profile in force.
    pub profile: &'static Profile,
    /// Why that profile (detected board, CPU, or `--profile`).
    pub why: String,
    /// Matrix-kernel threads.
    pub threads: u32,
    /// Input size override (`None`: the model card's).
    pub imgsz: Option<u32>,
    /// f16 inference.
    pub half: bool,
    /// Model cache directory (`None`: no cache).
    pub cache_dir: Option<PathBuf>,
}

impl Overrides {
    /// Resolves the profile and applies the overrides. The profile's input size applies only to
    /// the default detector (`default_model`); a user's model keeps its card's size.
    pub fn settings(&self, default_model: bool) -> Result<Settings, String> {
        let machine = Machine::probe();
        let (profile, why) = match self.profile.as_deref() {
            None => machine.profile(),
            Some(s) if s.eq_ignore_ascii_case("auto") => machine.profile(),
            Some(s) => (Profile::named(s)?, "--profile".into()),
        };
        let cache_dir = if self.no_cache || !profile.cache {
            self.cache_dir.clone().filter(|_| !self.no_cache)
        } else {
            self.cache_dir.clone().or_else(default_cache_dir)
        };
        Ok(Settings {
            profile,
            why,
            threads: self
                .threads
                .unwrap_or_else(|| profile.threads_for(machine.online_cpus)),
            imgsz: self
                .imgsz
                .or(if default_model { profile.imgsz } else { None }),
            half: self.half.unwrap_or(profile.half),
            cache_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RPI4: &str = include_str!("../../targets/fixtures/rpi4-cpuinfo.txt");
    const RPI4_ARMV7: &str = include_str!("../../targets/fixtures/rpi4-armv7-cpuinfo.txt");
    const RPI5: &str = include_str!("../../targets/fixtures/rpi5-cpuinfo.txt");
    const NANO: &str = include_str!("../../targets/fixtures/jetson-nano-cpuinfo.txt");
    const ORIN: &str = include_str!("../../targets/fixtures/jetson-orin-cpuinfo.txt");
    const X86: &str = include_str!("../../targets/fixtures/x86-xeon-cpuinfo.txt");

    fn dt(raw: &str) -> Option<String> {
        parse_device_tree_model(raw.as_bytes())
    }

    #[test]
    fn raspberry_pi_4() {
        let cpu = parse_cpuinfo(RPI4);
        assert_eq!(cpu.processors, 4);
        assert_eq!(cpu.core_name(), Some("Cortex-A72"));
        assert!(cpu.has("asimd") && !cpu.fp16_arithmetic());
        assert_eq!(cpu.model.as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
        let model = dt(include_str!("../../targets/fixtures/rpi4-model.txt"));
        assert_eq!(model.as_deref(), Some("Raspberry Pi 4 Model B Rev 1.4"));
        let (p, why) = choose_profile(model.as_deref(), &cpu, "aarch64");
        assert_eq!(p.name, "rpi4");
        assert!(why.contains("Raspberry Pi 4"), "{why}");
        assert!(!p.half);
        // No device tree (a container): the CPU part still tells the board class.
        let (p, why) = choose_profile(None, &CpuInfo { model: None, ..cpu }, "aarch64");
        assert_eq!((p.name, why.as_str()), ("rpi4", "CPU core Cortex-A72"));
    }

    #[test]
    fn raspberry_pi_4_on_32_bit_os() {
        let cpu = parse_cpuinfo(RPI4_ARMV7);
        assert_eq!(cpu.architecture, Some(7));
        assert_eq!(cpu.core_name(), Some("Cortex-A72"));
        assert!(cpu.has("neon") && cpu.has("vfpv4"));
        assert_eq!(cpu.hardware.as_deref(), Some("BCM2711"));
        let (p, _) = choose_profile(None, &cpu, "arm");
        assert_eq!(p.name, "rpi4");
    }

    #[test]
    fn raspberry_pi_5() {
        let cpu = parse_cpuinfo(RPI5);
        assert_eq!(cpu.processors, 4);
        assert_eq!(cpu.core_name(), Some("Cortex-A76"));
        assert!(cpu.fp16_arithmetic() && cpu.has("asimddp"));
        let model = dt(include_str!("../../targets/fixtures/rpi5-model.txt"));
        let (p, _) = choose_profile(model.as_deref(), &cpu, "aarch64");
        assert_eq!(p.name, "rpi5");
        assert!(p.half);
    }

    #[test]
    fn jetson_nano() {
        let cpu = parse_cpuinfo(NANO);
        assert_eq!(cpu.processors, 4);
        assert_eq!(cpu.core_name(), Some("Cortex-A57"));
        assert_eq!(
            cpu.model_name.as_deref(),
            Some("ARMv8 Processor rev 1 (v8l)")
        );
        assert!(!cpu.fp16_arithmetic());
        let model = dt(include_str!("../../targets/fixtures/jetson-nano-model.txt"));
        let (p, why) = choose_profile(model.as_deref(), &cpu, "aarch64");
        assert_eq!(p.name, "jetson-nano");
        assert!(why.contains("NVIDIA Jetson Nano"), "{why}");
    }

    #[test]
    fn jetson_orin() {
        let cpu = parse_cpuinfo(ORIN);
        assert_eq!(cpu.processors, 6);
        assert_eq!(cpu.core_name(), Some("Cortex-A78AE"));
        assert!(cpu.fp16_arithmetic());
        let model = dt(include_str!("../../targets/fixtures/jetson-orin-model.txt"));
        let (p, _) = choose_profile(model.as_deref(), &cpu, "aarch64");
        assert_eq!(p.name, "jetson-orin");
        assert!(p.half);
        assert_eq!(p.threads_for(6), 6);
    }

    #[test]
    fn x86_machine() {
        let cpu = parse_cpuinfo(X86);
        assert_eq!(cpu.processors, 2);
        assert_eq!(cpu.implementer, None);
        assert!(cpu.has("avx2") && cpu.has("fma"));
        assert_eq!(
            cpu.model_name.as_deref(),
            Some("Intel(R) Xeon(R) Processor")
        );
        let (p, _) = choose_profile(None, &cpu, "x86_64");
        assert_eq!(p.name, "generic-x86");
        assert_eq!(p.threads_for(2), 1);
    }

    #[test]
    fn arm_binary_reading_a_foreign_cpuinfo() {
        // qemu-user shows the host's x86 /proc/cpuinfo to an aarch64 binary.
        let (p, why) = choose_profile(None, &parse_cpuinfo(X86), "aarch64");
        assert_eq!(p.name, "generic-arm64");
        assert!(why.contains("not identified"), "{why}");
    }

    #[test]
    fn profile_names_and_errors() {
        assert_eq!(Profile::named("RPI5").unwrap().name, "rpi5");
        let err = Profile::named("pi9").unwrap_err();
        assert!(err.contains("pi9") && err.contains("jetson-orin"), "{err}");
        assert_eq!(
            parse_meminfo_mib("MemTotal:        8056484 kB\n"),
            Some(7867)
        );
        assert_eq!(parse_device_tree_model(b"\0"), None);
    }
}
