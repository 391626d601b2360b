//! Depthwise convolution of one channel over row-aligned phase planes, several output rows at
//! a time, for the common 3x3 and 5x5 kernels at stride 1 and 2.
//!
//! The plane path of [`super::depthwise`] ([`super::taps`]) loads every tap of every output
//! vector from its own unaligned address: with 16-lane vectors most of those loads cross a cache
//! line, which costs two, so the loads and not the multiply-adds bound it. Here each phase
//! plane's rows start on a vector boundary ([`row_pitch`]); an input row is loaded once per
//! output vector as two aligned vectors, the column shifts of the taps are made from them in
//! registers, and each shifted vector feeds every output row of the block that uses it (an
//! input row serves up to `kernel_h / stride_h` output rows). The block's output rows are
//! clamped in registers (ReLU, ReLU6, Clip), stored with a mask at the row's end, and any other
//! activation is applied to them while they are in L1. Written once over a small vector
//! trait, implemented with AVX-512F (16 lanes) and NEON (4 lanes).

use super::planes::PlaneGeometry;
use super::{Activation, Isa};

/// Output rows computed together at stride 1 (independent accumulators; the input rows they
/// share are loaded once).
const BLOCK_ROWS: usize = 6;

/// Output rows computed together at stride 2: fewer, so that the compiler unrolls the loops
/// over the two row phases whole and the accumulators stay in registers (with 6, the 5x5
/// kernel's loops stayed rolled, indexed its accumulators in memory and tested every tap:
/// 144 channels 56x56 -> 28x28 took 311 us, 202 on the plain phase planes).
const STRIDED_BLOCK_ROWS: usize = 3;

/// The kernel shapes this path is compiled for: (kernel side, stride), square.
const SHAPES: [(usize, usize); 4] = [(3, 1), (3, 2), (5, 1), (5, 2)];

/// Vector lanes of `isa`'s kernel, `None` where this path has none.
fn lanes(isa: Isa) -> Option<usize> {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => Some(16),
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => Some(4),
        _ => None,
    }
}

/// Whether [`run_channel`] computes `g` with `isa`.
pub(crate) fn supports(isa: Isa, g: &PlaneGeometry) -> bool {
    lanes(isa).is_some()
        && g.kernel_h == g.kernel_w
        && g.stride_h == g.stride_w
        && SHAPES.contains(&(g.kernel_h, g.stride_h))
}

/// Floats between the starts of two phase-plane rows: the output vectors of a row plus one
/// vector the shifted taps of the last one read, so that every row starts on a vector
/// boundary (and holds at least `phase_cols` values).
pub(crate) fn row_pitch(isa: Isa, g: &PlaneGeometry) -> usize {
    let lanes = lanes(isa).unwrap_or(1);
    (g.out_w.div_ceil(lanes) + 1) * lanes
}

/// Byte alignment of the phase planes [`run_channel`] reads (that of an
/// [`super::aligned_buf::AlignedBuf`]).
const PLANE_ALIGN: usize = 64;

/// Runs one channel: `phases` are its phase planes filled with rows [`row_pitch`] apart and
/// starting [`PLANE_ALIGN`]-aligned, `weights` its `kernel_h * kernel_w` taps, `out` its
/// `out_h * out_w` outputs.
///
/// Panics unless [`supports`] holds and the buffers match the geometry.
pub(crate) fn run_channel(
    isa: Isa,
    g: &PlaneGeometry,
    phases: &[f32],
    weights: &[f32],
    bias: f32,
    activation: Activation,
    out: &mut [f32],
) {
    assert!(supports(isa, g) && isa.is_supported(), "no row kernel");
    let pitch = row_pitch(isa, g);
    assert!(
        phases.len() >= g.stride_h * g.stride_w * g.phase_rows() * pitch,
        "phase planes"
    );
    assert_eq!(phases.as_ptr() as usize % PLANE_ALIGN, 0, "plane alignment");
    assert_eq!(weights.len(), g.kernel_h * g.kernel_w, "taps");
    assert_eq!(out.len(), g.out_h * g.out_w, "output plane");
    let plan = Plan {
        out_h: g.out_h,
        out_w: g.out_w,
        pitch,
        plane_len: g.phase_rows() * pitch,
        clamp: activation.clamp_bounds(),
    };
    let (phases, w, o) = (phases.as_ptr(), weights.as_ptr(), out.as_mut_ptr());
    match isa {
        // SAFETY: AVX-512F is present (checked above); the planes hold `phase_rows` rows of
        // `pitch` values per phase, 64-byte aligned, and every load reads inside them: rows
        // `y0 + i < phase_rows`, columns up to `(out_w / 16 + 1) * 16 + 15 < pitch`.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe {
            match (g.kernel_h, g.stride_h) {
                (3, 1) => x86::channel_avx512::<3, 1>(&plan, phases, w, bias, o),
                (3, 2) => x86::channel_avx512::<3, 2>(&plan, phases, w, bias, o),
                (5, 1) => x86::channel_avx512::<5, 1>(&plan, phases, w, bias, o),
                (5, 2) => x86::channel_avx512::<5, 2>(&plan, phases, w, bias, o),
                _ => unreachable!("checked by supports"),
            }
        },
        // SAFETY: NEON is part of aarch64; the planes as above with 4-value vectors.
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => unsafe {
            match (g.kernel_h, g.stride_h) {
                (3, 1) => neon::channel_neon::<3, 1>(&plan, phases, w, bias, o),
                (3, 2) => neon::channel_neon::<3, 2>(&plan, phases, w, bias, o),
                (5, 1) => neon::channel_neon::<5, 1>(&plan, phases, w, bias, o),
                (5, 2) => neon::channel_neon::<5, 2>(&plan, phases, w, bias, o),
                _ => unreachable!("checked by supports"),
            }
        },
        #[allow(unreachable_patterns)]
        _ => unreachable!("checked by supports"),
    }
    if plan.clamp.is_none() && activation != Activation::None {
        activation.apply_for(isa, out);
    }
}

/// What the kernel needs of the geometry.
struct Plan {
    out_h: usize,
    out_w: usize,
    pitch: usize,
    plane_len: usize,
    clamp: Option<(f32, f32)>,
}

/// The vector operations the kernel is written in, one implementation per instruction set.
trait Vector: Copy {
    const LANES: usize;
    /// # Safety
    /// `p` aligned to the vector and readable for `LANES` values.
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn splat(x: f32) -> Self;
    /// `a * b + c`.
    unsafe fn fma(a: Self, b: Self, c: Self) -> Self;
    /// Lanes `s..s + LANES` of `a` followed by `b` (`s` at most `LANES`).
    unsafe fn shifted(a: Self, b: Self, s: usize) -> Self;
    unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self;
    /// Stores the first `n` lanes.
    ///
    /// # Safety
    /// `p` writable for `n` values.
    unsafe fn store_first(p: *mut f32, v: Self, n: usize);
}

/// `BLOCK` output rows from `y0`, all vectors of each row, for a `K x K` kernel at stride `S`.
///
/// # Safety
/// As [`run_channel`]'s kernel call: the planes readable as the plan says.
#[inline(always)]
unsafe fn rows<V: Vector, const K: usize, const S: usize, const BLOCK: usize>(
    plan: &Plan,
    phases: *const f32,
    weights: *const f32,
    bias: f32,
    y0: usize,
    out: *mut f32,
) {
    let vectors = plan.out_w.div_ceil(V::LANES);
    let bounds = plan.clamp.map(|(lo, hi)| (V::splat(lo), V::splat(hi)));
    for j in 0..vectors {
        let mut acc = [V::splat(bias); BLOCK];
        for ry in 0..S {
            // Kernel rows `ry, ry + S, ..` read phase row `ry` at plane rows `dy = 0, 1, ..`.
            let kernel_rows = (K - ry).div_ceil(S);
            for i in 0..BLOCK + kernel_rows - 1 {
                for rx in 0..S {
                    let p = phases
                        .add((ry * S + rx) * plan.plane_len + (y0 + i) * plan.pitch + j * V::LANES);
                    let a = V::load(p);
                    let b = if (K - 1 - rx) / S > 0 {
                        V::load(p.add(V::LANES))
                    } else {
                        a
                    };
                    let mut kx = rx;
                    while kx < K {
                        let v = V::shifted(a, b, kx / S);
                        for (r, acc) in acc.iter_mut().enumerate() {
                            // Output row `y0 + r` reads this plane row with kernel row `ky`.
                            if i >= r && i - r < kernel_rows {
                                let ky = ry + S * (i - r);
                                *acc = V::fma(v, V::splat(*weights.add(ky * K + kx)), *acc);
                            }
                        }
                        kx += S;
                    }
                }
            }
        }
        let n = V::LANES.min(plan.out_w - j * V::LANES);
        for (r, &v) in acc.iter().enumerate() {
            let v = match bounds {
                Some((lo, hi)) => V::clamp(v, lo, hi),
                None => v,
            };
            V::store_first(out.add((y0 + r) * plan.out_w + j * V::LANES), v, n);
        }
    }
}

/// The whole channel: blocks of [`BLOCK_ROWS`] rows ([`STRIDED_BLOCK_ROWS`] at stride 2).
///
/// # Safety
/// As [`rows`].
#[inline(always)]
unsafe fn channel<V: Vector, const K: usize, const S: usize>(
    plan: &Plan,
    phases: *const f32,
    weights: *const f32,
    bias: f32,
    out: *mut f32,
) {
    if S == 1 {
        blocks::<V, K, S, BLOCK_ROWS>(plan, phases, weights, bias, out)
    } else {
        blocks::<V, K, S, STRIDED_BLOCK_ROWS>(plan, phases, weights, bias, out)
    }
}

/// Blocks of `BLOCK` rows, then the remaining rows (fewer than 6) in one block.
///
/// # Safety
/// As [`rows`].
#[inline(always)]
unsafe fn blocks<V: Vector, const K: usize, const S: usize, const BLOCK: usize>(
    plan: &Plan,
    phases: *const f32,
    weights: *const f32,
    bias: f32,
    out: *mut f32,
) {
    let mut y0 = 0;
    while y0 + BLOCK <= plan.out_h {
        rows::<V, K, S, BLOCK>(plan, phases, weights, bias, y0, out);
        y0 += BLOCK;
    }
    match plan.out_h - y0 {
        0 => {}
        1 => rows::<V, K, S, 1>(plan, phases, weights, bias, y0, out),
        2 => rows::<V, K, S, 2>(plan, phases, weights, bias, y0, out),
        3 => rows::<V, K, S, 3>(plan, phases, weights, bias, y0, out),
        4 => rows::<V, K, S, 4>(plan, phases, weights, bias, y0, out),
        5 => rows::<V, K, S, 5>(plan, phases, weights, bias, y0, out),
        _ => unreachable!("fewer than BLOCK rows remain"),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{channel, Plan, Vector};

    /// 16 lanes of AVX-512F.
    #[derive(Clone, Copy)]
    struct Zmm(__m512);

    impl Vector for Zmm {
        const LANES: usize = 16;

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Zmm(_mm512_load_ps(p))
        }

        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Zmm(_mm512_set1_ps(x))
        }

        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
            Zmm(_mm512_fmadd_ps(a.0, b.0, c.0))
        }

        #[inline(always)]
        unsafe fn shifted(a: Self, b: Self, s: usize) -> Self {
            let (a, b) = (_mm512_castps_si512(a.0), _mm512_castps_si512(b.0));
            Zmm(_mm512_castsi512_ps(match s {
                0 => a,
                1 => _mm512_alignr_epi32::<1>(b, a),
                2 => _mm512_alignr_epi32::<2>(b, a),
                3 => _mm512_alignr_epi32::<3>(b, a),
                4 => _mm512_alignr_epi32::<4>(b, a),
                _ => unreachable!("shifts of kernels up to 5 wide"),
            }))
        }

        #[inline(always)]
        unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self {
            // `max` first, as the scalar clip: a NaN becomes the lower bound.
            Zmm(_mm512_min_ps(_mm512_max_ps(v.0, lo.0), hi.0))
        }

        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: Self, n: usize) {
            if n == 16 {
                _mm512_storeu_ps(p, v.0)
            } else {
                _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, v.0)
            }
        }
    }

    /// # Safety
    /// The CPU must support AVX-512F; the planes as [`super::run_channel`] checks.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn channel_avx512<const K: usize, const S: usize>(
        plan: &Plan,
        phases: *const f32,
        weights: *const f32,
        bias: f32,
        out: *mut f32,
    ) {
        channel::<Zmm, K, S>(plan, phases, weights, bias, out)
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    use super::{channel, Plan, Vector};

    /// 4 lanes of NEON.
    #[derive(Clone, Copy)]
    struct Q(float32x4_t);

    impl Vector for Q {
        const LANES: usize = 4;

        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Q(vld1q_f32(p))
        }

        #[inline(always)]
        unsafe fn splat(x: f32) -> Self {
            Q(vdupq_n_f32(x))
        }

        #[inline(always)]
        unsafe fn fma(a: Self, b: Self, c: Self) -> Self {
            Q(vfmaq_f32(c.0, a.0, b.0))
        }

        #[inline(always)]
        unsafe fn shifted(a: Self, b: Self, s: usize) -> Self {
            Q(match s {
                0 => a.0,
                1 => vextq_f32::<1>(a.0, b.0),
                2 => vextq_f32::<2>(a.0, b.0),
                3 => vextq_f32::<3>(a.0, b.0),
                4 => b.0,
                _ => unreachable!("shifts of kernels up to 5 wide"),
            })
        }

        #[inline(always)]
        unsafe fn clamp(v: Self, lo: Self, hi: Self) -> Self {
            // The number-preferring max and min, as the scalar clip: a NaN becomes the lower
            // bound.
            Q(vminnmq_f32(vmaxnmq_f32(v.0, lo.0), hi.0))
        }

        #[inline(always)]
        unsafe fn store_first(p: *mut f32, v: Self, n: usize) {
            if n == 4 {
                vst1q_f32(p, v.0)
            } else {
                let mut lanes = [0f32; 4];
                vst1q_f32(lanes.as_mut_ptr(), v.0);
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), p, n);
            }
        }
    }

    /// # Safety
    /// The planes as [`super::run_channel`] checks.
    pub(super) unsafe fn channel_neon<const K: usize, const S: usize>(
        plan: &Plan,
        phases: *const f32,
        weights: *const f32,
        bias: f32,
        out: *mut f32,
    ) {
        channel::<Q, K, S>(plan, phases, weights, bias, out)
    }
}
