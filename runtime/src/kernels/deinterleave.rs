//! Splitting a row into its even- and odd-indexed values (the two column phases of a stride-2
//! convolution) with vector shuffles per instruction set: one pass over the row for both.

use super::Isa;

/// `even[i] = src[2i]` and `odd[i] = src[2i + 1]` for every `i < even.len()`, with the shuffles
/// of `isa` (which the CPU must support).
///
/// Panics unless `odd` is as long as `even` and `src` at least twice as long.
pub fn deinterleave(isa: Isa, src: &[f32], even: &mut [f32], odd: &mut [f32]) {
    let n = even.len();
    assert!(
        odd.len() == n && src.len() >= 2 * n,
        "deinterleave: {} values into {} and {}",
        src.len(),
        n,
        odd.len()
    );
    let done = match isa {
        // SAFETY: the instruction set is present (checked) and the lengths are (above).
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 if isa.is_supported() => unsafe { x86::deinterleave_avx512(src, even, odd) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma if isa.is_supported() => unsafe { x86::deinterleave_avx2(src, even, odd) },
        // SAFETY: NEON is part of aarch64; the lengths are checked above.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe { neon::deinterleave_neon(src, even, odd) },
        _ => 0,
    };
    for i in done..n {
        even[i] = src[2 * i];
        odd[i] = src[2 * i + 1];
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 16 pairs per step (two loads, two two-source permutes), the last step masked; returns
    /// how many were split (all).
    ///
    /// # Safety
    /// AVX-512F must be present; `odd.len() == even.len()` and `src.len() >= 2 * even.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn deinterleave_avx512(src: &[f32], even: &mut [f32], odd: &mut [f32]) -> usize {
        let all = even.len();
        let n = all / 16 * 16;
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (s, e, o) = (src.as_ptr(), even.as_mut_ptr(), odd.as_mut_ptr());
        let mut i = 0;
        while i < n {
            // Reads src[2i .. 2i + 32), within 2n.
            let a = _mm512_loadu_ps(s.add(2 * i));
            let b = _mm512_loadu_ps(s.add(2 * i + 16));
            _mm512_storeu_ps(e.add(i), _mm512_permutex2var_ps(a, evens, b));
            _mm512_storeu_ps(o.add(i), _mm512_permutex2var_ps(a, odds, b));
            i += 16;
        }
        let rest = all - n;
        if rest > 0 {
            // Reads src[2n .. 2 * all) and writes the first `rest` lanes only.
            let pairs = (1u64 << (2 * rest)) - 1;
            let a = _mm512_maskz_loadu_ps(pairs as __mmask16, s.add(2 * n));
            let b = _mm512_maskz_loadu_ps((pairs >> 16) as __mmask16, s.add(2 * n + 16));
            let keep = ((1u32 << rest) - 1) as __mmask16;
            _mm512_mask_storeu_ps(e.add(n), keep, _mm512_permutex2var_ps(a, evens, b));
            _mm512_mask_storeu_ps(o.add(n), keep, _mm512_permutex2var_ps(a, odds, b));
        }
        all
    }

    /// 8 pairs per step: an in-lane shuffle, then the 64-bit halves put in order.
    ///
    /// # Safety
    /// AVX2 must be present; the lengths as [`deinterleave_avx512`].
    #[target_feature(enable = "avx2")]
    pub unsafe fn deinterleave_avx2(src: &[f32], even: &mut [f32], odd: &mut [f32]) -> usize {
        let n = even.len() / 8 * 8;
        let (s, e, o) = (src.as_ptr(), even.as_mut_ptr(), odd.as_mut_ptr());
        let mut i = 0;
        while i < n {
            let a = _mm256_loadu_ps(s.add(2 * i));
            let b = _mm256_loadu_ps(s.add(2 * i + 8));
            // Per 128-bit lane: [a0 a2 b0 b2 | a4 a6 b4 b6], then pairs (0, 2, 1, 3).
            let ev = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let od = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            let order = |v: __m256| {
                _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
            };
            _mm256_storeu_ps(e.add(i), order(ev));
            _mm256_storeu_ps(o.add(i), order(od));
            i += 8;
        }
        n
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    /// 4 pairs per step with NEON's de-interleaving load.
    ///
    /// # Safety
    /// `odd.len() == even.len()` and `src.len() >= 2 * even.len()`.
    pub unsafe fn deinterleave_neon(src: &[f32], even: &mut [f32], odd: &mut [f32]) -> usize {
        let n = even.len() / 4 * 4;
        let (s, e, o) = (src.as_ptr(), even.as_mut_ptr(), odd.as_mut_ptr());
        let mut i = 0;
        while i < n {
            let pairs = vld2q_f32(s.add(2 * i));
            vst1q_f32(e.add(i), pairs.0);
            vst1q_f32(o.add(i), pairs.1);
            i += 4;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_isa_splits_every_length_and_leaves_the_rest_alone() {
        let src: Vec<f32> = (0..140).map(|i| i as f32).collect();
        for isa in Isa::all_supported() {
            for n in 0..=70 {
                let (mut even, mut odd) = (vec![f32::NAN; n + 1], vec![f32::NAN; n + 1]);
                deinterleave(isa, &src[..2 * n], &mut even[..n], &mut odd[..n]);
                for i in 0..n {
                    assert_eq!(even[i], (2 * i) as f32, "{isa:?} n={n} even {i}");
                    assert_eq!(odd[i], (2 * i + 1) as f32, "{isa:?} n={n} odd {i}");
                }
                assert!(
                    even[n].is_nan() && odd[n].is_nan(),
                    "{isa:?} n={n}: wrote past"
                );
            }
        }
    }

    #[test]
    #[should_panic(expected = "deinterleave")]
    fn a_short_source_is_refused() {
        deinterleave(Isa::detect(), &[0.0; 5], &mut [0.0; 3], &mut [0.0; 3]);
    }
}
