//! Micro-kernels of [`super`] for x86-64: AVX-512F (12 x 32) and AVX2+FMA (6 x 16).
//!
//! Each computes one `MR x NR` tile of `C = A B` over `k` steps: per step it loads one row of
//! the packed B panel (`NR` values, two vectors) and broadcasts each of the `MR` values of the
//! packed A panel, so the `2 MR` accumulators never leave the registers. A clamp (ReLU, ReLU6)
//! is applied to the accumulators before they are stored. Each kernel also comes for fewer
//! rows (`ROWS < MR`, the last panel of an `M` that is not a multiple of `MR`), reading the
//! same packed panels and writing only those rows: no scratch tile, no multiply-adds on the
//! panel's zero rows.

use std::arch::x86_64::*;

/// AVX-512F, the first `ROWS` (at most 12) rows of a 12-row panel x 32 columns (up to 24
/// accumulators).
///
/// # Safety
/// The CPU must support AVX-512F; `a` must hold `12 k` values, `b` `32 k`, `bias` `ROWS`, and
/// `c` `ROWS` rows of 32 writable values `ldc` apart.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
pub unsafe fn tile_avx512<const ROWS: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    accumulate: bool,
    clamp: Option<&(f32, f32)>,
) {
    const MR: usize = 12;
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    for (r, row) in acc.iter_mut().enumerate() {
        *row = if accumulate {
            let p = c.add(r * ldc);
            [_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))]
        } else {
            let v = _mm512_set1_ps(*bias.add(r));
            [v, v]
        };
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        let b0 = _mm512_loadu_ps(b);
        let b1 = _mm512_loadu_ps(b.add(16));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*a.add(r));
            row[0] = _mm512_fmadd_ps(x, b0, row[0]);
            row[1] = _mm512_fmadd_ps(x, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(32);
    }
    // Clamped as part of the store loop: a separate pass over `acc` would keep it on the stack.
    if let Some(&(lo, hi)) = clamp {
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        for (r, row) in acc.iter().enumerate() {
            let p = c.add(r * ldc);
            _mm512_storeu_ps(p, _mm512_min_ps(_mm512_max_ps(row[0], lo), hi));
            _mm512_storeu_ps(p.add(16), _mm512_min_ps(_mm512_max_ps(row[1], lo), hi));
        }
    } else {
        for (r, row) in acc.iter().enumerate() {
            let p = c.add(r * ldc);
            _mm512_storeu_ps(p, row[0]);
            _mm512_storeu_ps(p.add(16), row[1]);
        }
    }
}

/// AVX2+FMA, the first `ROWS` (at most 6) rows of a 6-row panel x 16 columns (up to 12
/// accumulators).
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` must hold `6 k` values, `b` `16 k`, `bias` `ROWS`, and
/// `c` `ROWS` rows of 16 writable values `ldc` apart.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
pub unsafe fn tile_avx2<const ROWS: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    accumulate: bool,
    clamp: Option<&(f32, f32)>,
) {
    const MR: usize = 6;
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    for (r, row) in acc.iter_mut().enumerate() {
        *row = if accumulate {
            let p = c.add(r * ldc);
            [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))]
        } else {
            let v = _mm256_set1_ps(*bias.add(r));
            [v, v]
        };
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        let b0 = _mm256_loadu_ps(b);
        let b1 = _mm256_loadu_ps(b.add(8));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = _mm256_set1_ps(*a.add(r));
            row[0] = _mm256_fmadd_ps(x, b0, row[0]);
            row[1] = _mm256_fmadd_ps(x, b1, row[1]);
        }
        a = a.add(MR);
        b = b.add(16);
    }
    // Clamped as part of the store loop: a separate pass over `acc` would keep it on the stack.
    if let Some(&(lo, hi)) = clamp {
        let (lo, hi) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        for (r, row) in acc.iter().enumerate() {
            let p = c.add(r * ldc);
            _mm256_storeu_ps(p, _mm256_min_ps(_mm256_max_ps(row[0], lo), hi));
            _mm256_storeu_ps(p.add(8), _mm256_min_ps(_mm256_max_ps(row[1], lo), hi));
        }
    } else {
        for (r, row) in acc.iter().enumerate() {
            let p = c.add(r * ldc);
            _mm256_storeu_ps(p, row[0]);
            _mm256_storeu_ps(p.add(8), row[1]);
        }
    }
}
