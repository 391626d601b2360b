//! [`super::taps_fma`] for x86-64: AVX2+FMA (4 x 8 lanes) and AVX-512F (4 x 16 lanes).

use std::arch::x86_64::*;

/// AVX2+FMA: 32 outputs per step in four accumulators, then 8 per step, then one at a time.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and `src.add(offsets[t] + i)` must be readable for every
/// tap `t` and every `i < out.len()`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn taps_fma_avx2(
    src: *const f32,
    offsets: &[usize],
    weights: &[f32],
    bias: f32,
    out: &mut [f32],
) {
    let n = out.len();
    let dst = out.as_mut_ptr();
    let b = _mm256_set1_ps(bias);
    let mut i = 0;
    while i + 32 <= n {
        let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
        for (&off, &w) in offsets.iter().zip(weights) {
            let p = src.add(off + i);
            let w = _mm256_set1_ps(w);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(p), w, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(8)), w, a1);
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(16)), w, a2);
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(p.add(24)), w, a3);
        }
        _mm256_storeu_ps(dst.add(i), a0);
        _mm256_storeu_ps(dst.add(i + 8), a1);
        _mm256_storeu_ps(dst.add(i + 16), a2);
        _mm256_storeu_ps(dst.add(i + 24), a3);
        i += 32;
    }
    while i + 8 <= n {
        let mut a = b;
        for (&off, &w) in offsets.iter().zip(weights) {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(src.add(off + i)), _mm256_set1_ps(w), a);
        }
        _mm256_storeu_ps(dst.add(i), a);
        i += 8;
    }
    while i < n {
        let mut a = bias;
        for (&off, &w) in offsets.iter().zip(weights) {
            a = (*src.add(off + i)).mul_add(w, a);
        }
        *dst.add(i) = a;
        i += 1;
    }
}

/// AVX-512F: 64 outputs per step in four accumulators, then 16 per step, then a masked tail.
///
/// # Safety
/// The CPU must support AVX-512F, and `src.add(offsets[t] + i)` must be readable for every tap
/// `t` and every `i < out.len()`.
#[target_feature(enable = "avx512f")]
pub unsafe fn taps_fma_avx512(
    src: *const f32,
    offsets: &[usize],
    weights: &[f32],
    bias: f32,
    out: &mut [f32],
) {
    let n = out.len();
    let dst = out.as_mut_ptr();
    let b = _mm512_set1_ps(bias);
    let mut i = 0;
    while i + 64 <= n {
        let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
        for (&off, &w) in offsets.iter().zip(weights) {
            let p = src.add(off + i);
            let w = _mm512_set1_ps(w);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(p), w, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(16)), w, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(32)), w, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(p.add(48)), w, a3);
        }
        _mm512_storeu_ps(dst.add(i), a0);
        _mm512_storeu_ps(dst.add(i + 16), a1);
        _mm512_storeu_ps(dst.add(i + 32), a2);
        _mm512_storeu_ps(dst.add(i + 48), a3);
        i += 64;
    }
    while i + 16 <= n {
        let mut a = b;
        for (&off, &w) in offsets.iter().zip(weights) {
            a = _mm512_fmadd_ps(_mm512_loadu_ps(src.add(off + i)), _mm512_set1_ps(w), a);
        }
        _mm512_storeu_ps(dst.add(i), a);
        i += 16;
    }
    if i < n {
        // Masked loads read only the lanes below `n`: nothing past the source is touched.
        let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
        let mut a = b;
        for (&off, &w) in offsets.iter().zip(weights) {
            let x = _mm512_maskz_loadu_ps(mask, src.add(off + i));
            a = _mm512_fmadd_ps(x, _mm512_set1_ps(w), a);
        }
        _mm512_mask_storeu_ps(dst.add(i), mask, a);
    }
}
