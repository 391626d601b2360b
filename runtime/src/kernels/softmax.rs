//! Softmax along contiguous rows (the last axis: the attention weights of YOLO11's PSA block,
//! 2 x 400 rows of 400 at 640x640): per row the maximum, `e^(x - max)` written to the output
//! while it is summed, then one scale by the sum's reciprocal, three passes over a row that
//! stays in L1. On x86-64 the exponential is the vector one of the activations
//! ([`super::activation`]); the rows are spread over the kernel pool.

use super::activation::exp_vectorizable;
use super::pool::for_each_rows;
use super::Isa;

/// Writes the softmax of each row of `row_len` values of `src` into `dst`, with `isa`'s
/// vectors.
///
/// Panics when `src` is not whole rows, `dst` not as long, or `isa` not supported by the CPU.
pub fn softmax_rows(isa: Isa, src: &[f32], dst: &mut [f32], row_len: usize) {
    assert!(
        row_len > 0 && src.len().is_multiple_of(row_len),
        "rows of {row_len} in {} values",
        src.len()
    );
    assert_eq!(src.len(), dst.len(), "output length");
    assert!(isa.is_supported(), "{} kernels on this CPU", isa.name());
    for_each_rows(dst, row_len, 8 * src.len(), |first, rows| {
        let src = &src[first * row_len..];
        for (row, from) in rows
            .chunks_exact_mut(row_len)
            .zip(src.chunks_exact(row_len))
        {
            softmax_row(isa, from, row);
        }
    });
}

/// One row `src` into `dst`, with `isa`'s vectors (supported: checked by the caller).
fn softmax_row(isa: Isa, src: &[f32], dst: &mut [f32]) {
    match isa {
        // SAFETY: the CPU has the instruction set (checked by `softmax_rows`); the rows have one
        // length.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::softmax_row_avx512(src, dst) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { x86::softmax_row_avx2(src, dst) },
        _ => softmax_row_portable(src, dst),
    }
}

/// One row in plain loops (vectorized by the compiler where it can).
fn softmax_row_portable(src: &[f32], row: &mut [f32]) {
    let max = src.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = 0.0;
    for (x, &v) in row.iter_mut().zip(src) {
        *x = exp_vectorizable(v - max);
        sum += *x;
    }
    let scale = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= scale;
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::kernels::activation::x86::{exp_avx2, exp_avx512};

    /// [`super::softmax_row_portable`] in 16-lane vectors, the tail by masked loads and stores.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `src` must be as long as `row`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn softmax_row_avx512(src: &[f32], row: &mut [f32]) {
        debug_assert_eq!(src.len(), row.len());
        let (len, s, p) = (row.len(), src.as_ptr(), row.as_mut_ptr());
        let mask = |at: usize| -> __mmask16 {
            let left = len - at;
            if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            }
        };
        let low = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut max = low;
        for at in (0..len).step_by(16) {
            max = _mm512_max_ps(max, _mm512_mask_loadu_ps(low, mask(at), s.add(at)));
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut sum = _mm512_setzero_ps();
        for at in (0..len).step_by(16) {
            let m = mask(at);
            let x = _mm512_maskz_loadu_ps(m, s.add(at));
            let e = _mm512_maskz_mov_ps(m, exp_avx512(_mm512_sub_ps(x, max)));
            sum = _mm512_add_ps(sum, e);
            _mm512_mask_storeu_ps(p.add(at), m, e);
        }
        let scale = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
        for at in (0..len).step_by(16) {
            let m = mask(at);
            let x = _mm512_maskz_loadu_ps(m, p.add(at));
            _mm512_mask_storeu_ps(p.add(at), m, _mm512_mul_ps(x, scale));
        }
    }

    /// [`super::softmax_row_portable`] in 8-lane vectors, the tail in scalars.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA; `src` must be as long as `row`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax_row_avx2(src: &[f32], row: &mut [f32]) {
        debug_assert_eq!(src.len(), row.len());
        let (len, s, p) = (row.len(), src.as_ptr(), row.as_mut_ptr());
        let whole = len - len % 8;
        let mut max8 = _mm256_set1_ps(f32::NEG_INFINITY);
        for at in (0..whole).step_by(8) {
            max8 = _mm256_max_ps(max8, _mm256_loadu_ps(s.add(at)));
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), max8);
        let max = lanes
            .iter()
            .chain(&src[whole..])
            .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let max8 = _mm256_set1_ps(max);
        let mut sum8 = _mm256_setzero_ps();
        for at in (0..whole).step_by(8) {
            let e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s.add(at)), max8));
            sum8 = _mm256_add_ps(sum8, e);
            _mm256_storeu_ps(p.add(at), e);
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), sum8);
        let mut sum: f32 = lanes.iter().sum();
        for (x, &v) in row[whole..].iter_mut().zip(&src[whole..]) {
            *x = super::exp_vectorizable(v - max);
            sum += *x;
        }
        let scale = 1.0 / sum;
        let scale8 = _mm256_set1_ps(scale);
        for at in (0..whole).step_by(8) {
            _mm256_storeu_ps(p.add(at), _mm256_mul_ps(_mm256_loadu_ps(p.add(at)), scale8));
        }
        for x in &mut row[whole..] {
            *x *= scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::pool::{with_pool, Pool};
    use crate::kernels::test_support::Rng;
    use std::sync::Arc;

    /// The definition in f64.
    fn naive(row: &[f32]) -> Vec<f32> {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
        let e: Vec<f64> = row.iter().map(|&x| (x as f64 - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|v| (v / sum) as f32).collect()
    }

    #[test]
    fn rows_match_the_definition_on_every_instruction_set() {
        let mut rng = Rng(21);
        for row_len in [1, 2, 7, 8, 15, 16, 17, 33, 64, 100, 400] {
            for rows in [1, 3, 40] {
                // Logits of attention size, some large (the maximum must be taken out first).
                let data: Vec<f32> = rng
                    .values(rows * row_len)
                    .iter()
                    .enumerate()
                    .map(|(i, v)| if i % 11 == 0 { v * 90.0 } else { v * 8.0 })
                    .collect();
                let want: Vec<f32> = data.chunks(row_len).flat_map(naive).collect();
                for isa in Isa::all_supported() {
                    for threads in [1, 2] {
                        let mut got = vec![f32::NAN; data.len()];
                        with_pool(Arc::new(Pool::new(threads)), || {
                            softmax_rows(isa, &data, &mut got, row_len)
                        });
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (g - w).abs() <= 1e-6 + 1e-5 * w.abs(),
                                "{isa:?} {rows}x{row_len} at {i}: {g} vs {w}"
                            );
                        }
                        for row in got.chunks(row_len) {
                            let sum: f32 = row.iter().sum();
                            assert!((sum - 1.0).abs() < 1e-5, "{isa:?} row sums to {sum}");
                        }
                    }
                }
            }
        }
    }
}
