//! The instruction set the kernels use on this CPU, detected once at run time.

use std::sync::OnceLock;

/// Instruction sets the kernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isa {
    /// x86-64 with AVX-512F (16 lanes).
    Avx512,
    /// x86-64 with AVX2 and FMA (8 lanes).
    Avx2Fma,
    /// aarch64 Advanced SIMD (4 lanes; always present on aarch64).
    Neon,
    /// Plain Rust, vectorized by the compiler for the build's baseline.
    Portable,
}

impl Isa {
    /// The best instruction set this CPU supports (cached; `VIGIA_ISA=portable|avx2|neon`
    /// lowers it, for comparisons and tests).
    pub fn detect() -> Isa {
        static ISA: OnceLock<Isa> = OnceLock::new();
        *ISA.get_or_init(|| {
            let best = Self::best_supported();
            match std::env::var("VIGIA_ISA").ok().as_deref() {
                Some("portable") => Isa::Portable,
                Some("avx2") if best == Isa::Avx512 => Isa::Avx2Fma,
                _ => best,
            }
        })
    }

    /// Every instruction set this CPU can run, best first (for tests that compare them).
    pub fn all_supported() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2Fma, Isa::Neon, Isa::Portable]
            .into_iter()
            .filter(|isa| isa.is_supported())
            .collect()
    }

    /// Whether this CPU (and this build's architecture) can run the kernels of `self`.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => {
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            Isa::Portable => true,
            // Another architecture's instruction set.
            _ => false,
        }
    }

    fn best_supported() -> Isa {
        Self::all_supported()[0]
    }

    /// Short name for reports (`avx512`, `avx2+fma`, `neon`, `portable`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2+fma",
            Isa::Neon => "neon",
            Isa::Portable => "portable",
        }
    }
}
