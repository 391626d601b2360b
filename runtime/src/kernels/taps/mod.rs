//! The inner loop of direct convolutions: `out[i] = bias + sum_t w[t] * src[offset[t] + i]`.
//!
//! A convolution over a zero-padded (and, for strides, phase-split) plane is exactly this: each
//! kernel tap reads the plane shifted by a fixed offset. Written once per instruction set with
//! several independent accumulators so the FMA units stay busy.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

use super::Isa;

/// Computes `out[i] = bias + sum_t weights[t] * src[offsets[t] + i]` for every `i` of `out`
/// with the kernel for `isa` (which the CPU must support: take it from [`Isa::detect`] or
/// [`Isa::all_supported`]).
///
/// Panics when `offsets` and `weights` differ in length or a tap would read past `src`.
pub fn taps_fma(
    isa: Isa,
    src: &[f32],
    offsets: &[usize],
    weights: &[f32],
    bias: f32,
    out: &mut [f32],
) {
    assert_eq!(offsets.len(), weights.len(), "one weight per tap");
    let n = out.len();
    if n == 0 {
        return;
    }
    let reach = offsets.iter().max().map_or(0, |m| m + n);
    assert!(reach <= src.len(), "a tap reads past the source");
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => {
            assert!(std::is_x86_feature_detected!("avx512f"));
            // SAFETY: AVX-512F is present (checked above) and every read is in bounds (checked
            // above: offset + i < offset + n <= src.len()).
            unsafe { x86_64::taps_fma_avx512(src.as_ptr(), offsets, weights, bias, out) }
        }
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            assert!(std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma"));
            // SAFETY: AVX2 and FMA are present and every read is in bounds (checked above).
            unsafe { x86_64::taps_fma_avx2(src.as_ptr(), offsets, weights, bias, out) }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            // SAFETY: NEON is part of aarch64 and every read is in bounds (checked above).
            unsafe { aarch64::taps_fma_neon(src.as_ptr(), offsets, weights, bias, out) }
        }
        _ => taps_fma_portable(src, offsets, weights, bias, out),
    }
}

/// Block length of the portable kernel: the block's accumulators stay in registers or L1.
const BLOCK: usize = 64;

/// The portable kernel: blocks of [`BLOCK`] outputs, every tap accumulated into the block.
fn taps_fma_portable(src: &[f32], offsets: &[usize], weights: &[f32], bias: f32, out: &mut [f32]) {
    for (b, chunk) in out.chunks_mut(BLOCK).enumerate() {
        let start = b * BLOCK;
        let mut acc = [bias; BLOCK];
        let acc = &mut acc[..chunk.len()];
        for (&off, &w) in offsets.iter().zip(weights) {
            let s = &src[off + start..off + start + acc.len()];
            for (a, x) in acc.iter_mut().zip(s) {
                *a += x * w;
            }
        }
        chunk.copy_from_slice(acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum in f64, one term at a time.
    fn naive(src: &[f32], offsets: &[usize], weights: &[f32], bias: f32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let s: f64 = offsets
                    .iter()
                    .zip(weights)
                    .map(|(&o, &w)| w as f64 * src[o + i] as f64)
                    .sum();
                (s + bias as f64) as f32
            })
            .collect()
    }

    #[test]
    fn every_isa_matches_the_naive_sum_at_every_length() {
        let src: Vec<f32> = (0..700)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect();
        let offsets = [0usize, 1, 2, 33, 34, 35, 66, 67, 68];
        let weights = [0.5f32, -1.25, 2.0, 0.125, -0.75, 1.5, 0.3, -0.2, 0.9];
        for isa in Isa::all_supported() {
            for n in [
                1usize, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 511, 600,
            ] {
                let mut out = vec![f32::NAN; n];
                taps_fma(isa, &src, &offsets, &weights, 0.25, &mut out);
                let want = naive(&src, &offsets, &weights, 0.25, n);
                for (i, (g, w)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                        "{isa:?} n={n} i={i}: {g} vs {w}"
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "reads past")]
    fn reading_past_the_source_is_refused() {
        let src = [0.0f32; 10];
        let mut out = [0.0f32; 8];
        taps_fma(Isa::detect(), &src, &[3], &[1.0], 0.0, &mut out);
    }
}
