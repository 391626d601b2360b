//! How many full-width vector FMAs this core starts per cycle, measured once at run time.
//!
//! Cores with the same instruction set differ here: Intel's server cores run two 512-bit FMAs a
//! cycle, AMD's Zen 4 one (as two 256-bit halves). A convolution that is all FMAs (a direct
//! matrix product) then runs twice as fast, while one that trades FMAs for memory traffic
//! (Winograd's transforms) does not, so which of the two is faster depends on it.
//!
//! The probe times the same number of FMAs as one chain, each waiting for the one before (one
//! result per FMA latency), and as sixteen independent chains (as many results per cycle as
//! there are pipes), so the ratio of the two counts pipes without knowing the clock: with the
//! 4-cycle FMA latency of AVX-512 cores so far it is about 4 for one pipe and 8 for two.

use std::sync::OnceLock;

use super::Isa;

/// Set to `1` or `2` to skip the probe (for comparisons and tests).
pub const FMA_PIPES_ENV: &str = "VIGIA_FMA_PIPES";

/// Full-width FMA pipes of this core for `isa`: measured for AVX-512 (cached), `None` for the
/// instruction sets the probe does not cover.
pub fn fma_pipes(isa: Isa) -> Option<u32> {
    if isa != Isa::Avx512 {
        return None;
    }
    static PIPES: OnceLock<Option<u32>> = OnceLock::new();
    *PIPES.get_or_init(|| {
        match std::env::var(FMA_PIPES_ENV).ok().as_deref() {
            Some("1") => return Some(1),
            Some("2") => return Some(2),
            _ => {}
        }
        probe_avx512()
    })
}

/// A quarter of the FMAs each side of the probe runs (the dependent side: about 0.35 ms at 3
/// GHz).
#[cfg(target_arch = "x86_64")]
const PROBE_STEPS: usize = 1 << 16;

/// The fewest rounds the probe runs before it may stop, and the most (about 0.4 ms each).
#[cfg(target_arch = "x86_64")]
const PROBE_ROUNDS: (usize, usize) = (3, 24);

/// Dependent over independent time from which the core counts as two pipes (about 4 for one,
/// 8 for two).
#[cfg(target_arch = "x86_64")]
const TWO_PIPES_RATIO: f64 = 6.0;

#[cfg(target_arch = "x86_64")]
fn probe_avx512() -> Option<u32> {
    if !Isa::Avx512.is_supported() {
        return None;
    }
    let (mut dependent, mut independent) = (f64::MAX, f64::MAX);
    // The best time of each side over interleaved rounds, so that a clock change or a
    // preemption in one round does not decide. Another thread on the same core's other
    // hyperthread (a busy neighbour on a shared machine) takes FMA pipes from the independent
    // side only, for as long as it runs, and makes two pipes look like one: the rounds go on
    // until a quiet moment shows two, or the last round.
    for round in 1..=PROBE_ROUNDS.1 {
        let t = std::time::Instant::now();
        // SAFETY: AVX-512F is supported (checked above).
        std::hint::black_box(unsafe { avx512::dependent_chain(PROBE_STEPS * 4) });
        dependent = dependent.min(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        // SAFETY: as above.
        std::hint::black_box(unsafe { avx512::independent_chains(PROBE_STEPS / 4) });
        independent = independent.min(t.elapsed().as_secs_f64());
        // PROBE_STEPS * 4 FMAs on both sides: latency x pipes times faster when independent.
        if round >= PROBE_ROUNDS.0 && dependent / independent >= TWO_PIPES_RATIO {
            return Some(2);
        }
    }
    Some(1)
}

#[cfg(not(target_arch = "x86_64"))]
fn probe_avx512() -> Option<u32> {
    None
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;
    use std::hint::black_box;

    /// `steps` FMAs, each waiting for the one before.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dependent_chain(steps: usize) -> f32 {
        let (m, c) = (
            _mm512_set1_ps(black_box(0.999)),
            _mm512_set1_ps(black_box(0.001)),
        );
        let mut a = _mm512_set1_ps(black_box(1.0));
        for _ in 0..steps {
            a = _mm512_fmadd_ps(a, m, c);
        }
        _mm512_reduce_add_ps(a)
    }

    /// `steps` rounds of 16 independent FMAs.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn independent_chains(steps: usize) -> f32 {
        let (m, c) = (
            _mm512_set1_ps(black_box(0.999)),
            _mm512_set1_ps(black_box(0.001)),
        );
        let mut a = [_mm512_set1_ps(black_box(1.0)); 16];
        for _ in 0..steps {
            for x in a.iter_mut() {
                *x = _mm512_fmadd_ps(*x, m, c);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in a {
            sum = _mm512_add_ps(sum, x);
        }
        _mm512_reduce_add_ps(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avx512_cores_have_one_or_two_pipes_and_others_are_not_probed() {
        for isa in Isa::all_supported() {
            match fma_pipes(isa) {
                Some(p) => assert!(isa == Isa::Avx512 && (p == 1 || p == 2), "{isa:?}: {p}"),
                None => assert_ne!(isa, Isa::Avx512),
            }
        }
    }
}
