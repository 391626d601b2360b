//! The activation loops compiled with x86-64 vector extensions. Sigmoid and SiLU are written out
//! in intrinsics: the compiler turns `x / (1 + e)` into a division, one every 10 cycles a vector
//! on AVX-512, which costs as much as a short-depth tile's multiply-adds; here the reciprocal is
//! the `rcp` estimate refined by one Newton step (two FMAs), within a few ulp of the division.
//! The other activations are the portable loops, vectorized for the target feature.

use std::arch::x86_64::*;

use super::{apply_rows, Activation, EXP_POLY, LN2_HI, LN2_LO, ROUND, ROUND_BITS};

/// The largest `-x` the sigmoid takes the exponential of: `1 + e^80` has a normal reciprocal,
/// which `rcp` estimates (it flushes subnormal results to zero, and `-inf * 0` would be NaN
/// where SiLU is `-inf`); below `x = -80` the sigmoid is under `2e-35` either way.
const LOGISTIC_CAP: f32 = 80.0;

/// `e^x` per lane, as [`super::exp_vectorizable`] computes it, with `2^n` by `vscalefps`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn exp_avx512(x: __m512) -> __m512 {
    // `max(lo, x)` and `min(hi, x)` return `x` when it is NaN: NaN stays NaN.
    let x = _mm512_min_ps(
        _mm512_set1_ps(88.0),
        _mm512_max_ps(_mm512_set1_ps(-87.0), x),
    );
    let round = _mm512_set1_ps(ROUND);
    let n = _mm512_sub_ps(
        _mm512_fmadd_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E), round),
        round,
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_POLY[0]);
    for c in &EXP_POLY[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
    }
    let one = _mm512_set1_ps(1.0);
    let e = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, one));
    _mm512_scalef_ps(e, n)
}

/// `1 / (1 + e^-x)` per lane.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn sigmoid_avx512(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let minus_x = _mm512_min_ps(
        _mm512_set1_ps(LOGISTIC_CAP),
        _mm512_sub_ps(_mm512_setzero_ps(), x),
    );
    let d = _mm512_add_ps(one, exp_avx512(minus_x));
    let y = _mm512_rcp14_ps(d);
    // One Newton step: y + y (1 - d y).
    _mm512_fmadd_ps(y, _mm512_fnmadd_ps(d, y, one), y)
}

/// `x / (1 + e^-x)` per lane.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn silu_avx512(x: __m512) -> __m512 {
    _mm512_mul_ps(x, sigmoid_avx512(x))
}

/// `e^x` per lane, as [`super::exp_vectorizable`] computes it.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn exp_avx2(x: __m256) -> __m256 {
    let x = _mm256_min_ps(
        _mm256_set1_ps(88.0),
        _mm256_max_ps(_mm256_set1_ps(-87.0), x),
    );
    let round = _mm256_set1_ps(ROUND);
    let rounded = _mm256_fmadd_ps(x, _mm256_set1_ps(std::f32::consts::LOG2_E), round);
    let n = _mm256_sub_ps(rounded, round);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_POLY[0]);
    for c in &EXP_POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let one = _mm256_set1_ps(1.0);
    let e = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, one));
    // `n + 127` from the rounding sum's low bits, shifted into the exponent field.
    let bits = _mm256_sub_epi32(
        _mm256_castps_si256(rounded),
        _mm256_set1_epi32((ROUND_BITS - 127) as i32),
    );
    _mm256_mul_ps(e, _mm256_castsi256_ps(_mm256_slli_epi32::<23>(bits)))
}

/// `1 / (1 + e^-x)` per lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sigmoid_avx2(x: __m256) -> __m256 {
    let one = _mm256_set1_ps(1.0);
    let minus_x = _mm256_min_ps(
        _mm256_set1_ps(LOGISTIC_CAP),
        _mm256_sub_ps(_mm256_setzero_ps(), x),
    );
    let d = _mm256_add_ps(one, exp_avx2(minus_x));
    let y = _mm256_rcp_ps(d);
    _mm256_fmadd_ps(y, _mm256_fnmadd_ps(d, y, one), y)
}

/// `x / (1 + e^-x)` per lane.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn silu_avx2(x: __m256) -> __m256 {
    _mm256_mul_ps(x, sigmoid_avx2(x))
}

/// Sigmoid (`SILU` false) or SiLU of `len` values from `src` into `dst` (which may be `src`).
///
/// # Safety
/// The CPU must support AVX-512F; `src` must hold `len` readable values, `dst` `len` writable.
#[target_feature(enable = "avx512f")]
unsafe fn logistic_avx512<const SILU: bool>(src: *const f32, dst: *mut f32, len: usize) {
    let f = |v| {
        if SILU {
            silu_avx512(v)
        } else {
            sigmoid_avx512(v)
        }
    };
    let mut i = 0;
    while i + 16 <= len {
        _mm512_storeu_ps(dst.add(i), f(_mm512_loadu_ps(src.add(i))));
        i += 16;
    }
    if i < len {
        let mask: __mmask16 = (1 << (len - i)) - 1;
        let v = f(_mm512_maskz_loadu_ps(mask, src.add(i)));
        _mm512_mask_storeu_ps(dst.add(i), mask, v);
    }
}

/// [`logistic_avx512`] with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `src` and `dst` as [`logistic_avx512`].
#[target_feature(enable = "avx2,fma")]
unsafe fn logistic_avx2<const SILU: bool>(src: *const f32, dst: *mut f32, len: usize) {
    let f = |v| if SILU { silu_avx2(v) } else { sigmoid_avx2(v) };
    let mut i = 0;
    while i + 8 <= len {
        _mm256_storeu_ps(dst.add(i), f(_mm256_loadu_ps(src.add(i))));
        i += 8;
    }
    if i < len {
        // The tail through a full vector, so that every value gets the same arithmetic.
        let mut tail = [0f32; 8];
        std::ptr::copy_nonoverlapping(src.add(i), tail.as_mut_ptr(), len - i);
        _mm256_storeu_ps(tail.as_mut_ptr(), f(_mm256_loadu_ps(tail.as_ptr())));
        std::ptr::copy_nonoverlapping(tail.as_ptr(), dst.add(i), len - i);
    }
}

/// # Safety
/// The CPU must support AVX-512F; the rows as [`Activation::apply_rows_for`].
#[target_feature(enable = "avx512f")]
pub unsafe fn apply_rows_avx512(
    activation: Activation,
    first: *mut f32,
    rows: usize,
    width: usize,
    pitch: usize,
) {
    let row = |r: usize| first.add(r * pitch);
    match activation {
        Activation::Sigmoid => {
            (0..rows).for_each(|r| logistic_avx512::<false>(row(r), row(r), width))
        }
        Activation::Silu => (0..rows).for_each(|r| logistic_avx512::<true>(row(r), row(r), width)),
        _ => apply_rows(activation, first, rows, width, pitch),
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA; the rows as [`Activation::apply_rows_for`].
#[target_feature(enable = "avx2,fma")]
pub unsafe fn apply_rows_avx2(
    activation: Activation,
    first: *mut f32,
    rows: usize,
    width: usize,
    pitch: usize,
) {
    let row = |r: usize| first.add(r * pitch);
    match activation {
        Activation::Sigmoid => {
            (0..rows).for_each(|r| logistic_avx2::<false>(row(r), row(r), width))
        }
        Activation::Silu => (0..rows).for_each(|r| logistic_avx2::<true>(row(r), row(r), width)),
        _ => apply_rows(activation, first, rows, width, pitch),
    }
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn apply_avx512(activation: Activation, xs: &mut [f32]) {
    apply_rows_avx512(activation, xs.as_mut_ptr(), 1, xs.len(), xs.len())
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn apply_avx2(activation: Activation, xs: &mut [f32]) {
    apply_rows_avx2(activation, xs.as_mut_ptr(), 1, xs.len(), xs.len())
}

/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub unsafe fn apply_into_avx512(activation: Activation, src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "activation lengths");
    let (s, d, len) = (src.as_ptr(), dst.as_mut_ptr(), src.len());
    match activation {
        Activation::Sigmoid => logistic_avx512::<false>(s, d, len),
        Activation::Silu => logistic_avx512::<true>(s, d, len),
        _ => activation.apply_into(src, dst),
    }
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn apply_into_avx2(activation: Activation, src: &[f32], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "activation lengths");
    let (s, d, len) = (src.as_ptr(), dst.as_mut_ptr(), src.len());
    match activation {
        Activation::Sigmoid => logistic_avx2::<false>(s, d, len),
        Activation::Silu => logistic_avx2::<true>(s, d, len),
        _ => activation.apply_into(src, dst),
    }
}
