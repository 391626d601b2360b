//! Max pooling of a plane, each output row in a single pass over its input rows, with AVX-512
//! or AVX2: stride 2 with windows 2 or 3 columns wide (the 3x3 pools after the stems of
//! ResNet, NanoDet, SqueezeNet and ShuffleNet, VGG's 2x2), and with AVX-512 stride 1 with
//! windows up to 16 wide (YOLOv8's and YOLO11's SPPF, 5x5).
//!
//! Each vector (at stride 2 each pair) of input columns takes the maximum over the window's rows
//! straight from the input (lanes past the row read as `-inf`); at stride 2 two permutes split
//! the pair into its even and odd columns. The taps left and right of a vector are the same
//! vectors shifted across their neighbours by a permute. The general path
//! ([`super::max_pool`]) copies the rows' maximum into a buffer, de-interleaves it at stride 2
//! and slides the window over it: several passes over the row.

use super::Isa;

/// Where an output column's window lies in its input row: column `i` covers input columns
/// `stride i + first ..= stride i + last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RowWindow {
    stride: usize,
    /// Offset of the first tap (at most 0: the left padding, negated).
    first: isize,
    /// Offset of the last tap (at least 0).
    last: isize,
}

impl RowWindow {
    /// The window `width` columns wide at `stride`, `pad` columns of padding on its left, when
    /// `isa` has a one-pass kernel for it: stride 2 with `width` 2 or 3 and `pad` at most 1
    /// (AVX-512, AVX2), stride 1 with `width` up to 16 (AVX-512).
    pub(super) fn new(isa: Isa, width: usize, stride: usize, pad: usize) -> Option<Self> {
        let first = -(pad as isize);
        let last = first + width as isize - 1;
        let fits = match (isa, stride) {
            (Isa::Avx512 | Isa::Avx2Fma, 2) => (2..=3).contains(&width) && pad <= 1,
            (Isa::Avx512, 1) => (1..=16).contains(&width),
            _ => false,
        };
        (fits && pad < width).then_some(RowWindow {
            stride,
            first,
            last,
        })
    }
}

/// The rows of one plane's pooling: input `in_h x in_w`, output `out_h x out_w`, the window
/// `kernel_h` rows tall at `stride_h` with `pad_top` rows of padding above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PlaneRows {
    pub in_h: usize,
    pub in_w: usize,
    pub kernel_h: usize,
    pub stride_h: usize,
    pub pad_top: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl PlaneRows {
    /// The input rows output row `oy` pools: `first..end`.
    #[inline]
    fn rows(&self, oy: usize) -> (usize, usize) {
        let top = (oy * self.stride_h) as isize - self.pad_top as isize;
        let end = (top + self.kernel_h as isize).clamp(0, self.in_h as isize) as usize;
        (top.max(0) as usize, end)
    }
}

/// Pools one plane, `out[oy][i] = max` over the rows of `oy`'s window and the window's taps `d`
/// of `input[y][stride i + d]` (`-inf` outside the row); `false` (nothing written) where the
/// CPU lacks `isa` or `window` was made for another instruction set.
///
/// Panics when a buffer is shorter than its plane or an output row's window holds no input
/// row.
pub(super) fn pool_plane(
    isa: Isa,
    plane: &PlaneRows,
    window: RowWindow,
    input: &[f32],
    output: &mut [f32],
) -> bool {
    assert!(
        input.len() >= plane.in_h * plane.in_w,
        "input plane too short"
    );
    assert!(
        output.len() >= plane.out_h * plane.out_w,
        "output plane too short"
    );
    // The first and last windows cover input rows (the ones between do then).
    for oy in [0, plane.out_h.saturating_sub(1)] {
        let (first, end) = plane.rows(oy);
        assert!(first < end, "output row {oy} pools no input row");
    }
    if !isa.is_supported() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let RowWindow {
            stride,
            first,
            last,
        } = window;
        let (src, dst) = (input.as_ptr(), output.as_mut_ptr());
        // SAFETY (every arm): the CPU has the instruction set (checked); every window's rows
        // lie inside the input plane and the kernels read no lane at or past `in_w` of a row;
        // they write the `out_h x out_w` outputs (lengths checked above); the window's offsets
        // are the ones `RowWindow::new` lets through for `isa`.
        unsafe {
            match (isa, stride) {
                (Isa::Avx512, 2) => x86::stride2_avx512(plane, (first, last), src, dst),
                (Isa::Avx2Fma, 2) => x86::stride2_avx2(plane, (first, last), src, dst),
                (Isa::Avx512, 1) => x86::stride1_avx512(plane, (first, last), src, dst),
                _ => return false,
            }
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = window;
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::PlaneRows;

    /// The lanes below `width - from` set, for a masked load or store.
    #[inline(always)]
    fn mask16(width: usize, from: usize) -> __mmask16 {
        let left = width.saturating_sub(from);
        if left >= 16 {
            0xFFFF
        } else {
            (1u16 << left) - 1
        }
    }

    /// Stride 2 (taps -1 to 2): 16 output columns per step from 32 input columns, the last step
    /// masked.
    ///
    /// # Safety
    /// AVX-512F must be present; `src` must hold the input plane and `dst` the output plane of
    /// `plane`, every output row's window at least one input row; `-1 <= first <= 0 <= last <=
    /// 2`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn stride2_avx512(
        plane: &PlaneRows,
        (first, last): (isize, isize),
        src: *const f32,
        dst: *mut f32,
    ) {
        let neg = _mm512_set1_ps(f32::NEG_INFINITY);
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let (w, n) = (plane.in_w, plane.out_w);
        for oy in 0..plane.out_h {
            let (top, end) = plane.rows(oy);
            let rows = src.add(top * w);
            // The even and odd columns of the rows' maximum over input columns 32c..32c + 32.
            let columns = |c: usize| -> (__m512, __m512) {
                let x = 32 * c;
                let (low, high) = (mask16(w, x), mask16(w, x + 16));
                let (mut a, mut b) = (neg, neg);
                for r in 0..end - top {
                    // Masked-off lanes are neither read nor faulted on.
                    let row = rows.add(r * w).wrapping_add(x);
                    a = _mm512_max_ps(a, _mm512_mask_loadu_ps(neg, low, row));
                    b = _mm512_max_ps(b, _mm512_mask_loadu_ps(neg, high, row.wrapping_add(16)));
                }
                (
                    _mm512_permutex2var_ps(a, evens, b),
                    _mm512_permutex2var_ps(a, odds, b),
                )
            };
            let out = dst.add(oy * n);
            let mut previous_odd = neg;
            let mut current = columns(0);
            for c in 0..n.div_ceil(16) {
                // The next step's columns (all `-inf` past the row): their first even column is
                // this step's last tap at offset 2.
                let next = columns(c + 1);
                let (even, odd) = current;
                // Every window here has its tap 0 (column 2i).
                let mut m = even;
                if first == -1 {
                    // Column 2i - 1: the odd column before, the last one of the previous step.
                    let before = _mm512_alignr_epi32::<15>(
                        _mm512_castps_si512(odd),
                        _mm512_castps_si512(previous_odd),
                    );
                    m = _mm512_max_ps(m, _mm512_castsi512_ps(before));
                }
                if last >= 1 {
                    m = _mm512_max_ps(m, odd);
                }
                if last == 2 {
                    // Column 2i + 2: the next even column, the first one of the next step.
                    let after = _mm512_alignr_epi32::<1>(
                        _mm512_castps_si512(next.0),
                        _mm512_castps_si512(even),
                    );
                    m = _mm512_max_ps(m, _mm512_castsi512_ps(after));
                }
                _mm512_mask_storeu_ps(out.add(16 * c), mask16(n, 16 * c), m);
                previous_odd = odd;
                current = next;
            }
        }
    }

    /// Stride 2 (taps -1 to 2): 8 output columns per step from 16 input columns, the last step
    /// masked.
    ///
    /// # Safety
    /// AVX2 must be present; as [`stride2_avx512`] otherwise.
    #[target_feature(enable = "avx2")]
    pub unsafe fn stride2_avx2(
        plane: &PlaneRows,
        (first, last): (isize, isize),
        src: *const f32,
        dst: *mut f32,
    ) {
        let neg = _mm256_set1_ps(f32::NEG_INFINITY);
        let iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let (w, n) = (plane.in_w, plane.out_w);
        let lanes = |width: usize, from: usize| -> __m256i {
            let left = width.saturating_sub(from).min(8) as i32;
            _mm256_cmpgt_epi32(_mm256_set1_epi32(left), iota)
        };
        // Lane i of a vector moved to lane i - 1 (forward) or i + 1 (back), rotating.
        let forward = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
        let back = _mm256_setr_epi32(7, 0, 1, 2, 3, 4, 5, 6);
        let load = |row: *const f32, x: usize| -> __m256 {
            if x + 8 <= w {
                return _mm256_loadu_ps(row.add(x));
            }
            let mask = lanes(w, x);
            // Masked-off lanes are neither read nor faulted on; they become `-inf`.
            let v = _mm256_maskload_ps(row.wrapping_add(x), mask);
            _mm256_blendv_ps(neg, v, _mm256_castsi256_ps(mask))
        };
        // Within each 128-bit half a0 a2 b0 b2 | a4 a6 b4 b6, then the 64-bit pairs reordered
        // into a0 a2 a4 a6 b0 b2 b4 b6.
        let split = |v: __m256| {
            _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v)))
        };
        for oy in 0..plane.out_h {
            let (top, end) = plane.rows(oy);
            let rows = src.add(top * w);
            // The even and odd columns of the rows' maximum over input columns 16c..16c + 16.
            let columns = |c: usize| -> (__m256, __m256) {
                let x = 16 * c;
                let (mut a, mut b) = (neg, neg);
                for r in 0..end - top {
                    let row = rows.add(r * w);
                    a = _mm256_max_ps(a, load(row, x));
                    b = _mm256_max_ps(b, load(row, x + 8));
                }
                (
                    split(_mm256_shuffle_ps::<0b10_00_10_00>(a, b)),
                    split(_mm256_shuffle_ps::<0b11_01_11_01>(a, b)),
                )
            };
            let out = dst.add(oy * n);
            let mut previous_odd = neg;
            let mut current = columns(0);
            for c in 0..n.div_ceil(8) {
                let next = columns(c + 1);
                let (even, odd) = current;
                let mut m = even;
                if first == -1 {
                    let before = _mm256_blend_ps::<0b0000_0001>(
                        _mm256_permutevar8x32_ps(odd, back),
                        _mm256_permutevar8x32_ps(previous_odd, back),
                    );
                    m = _mm256_max_ps(m, before);
                }
                if last >= 1 {
                    m = _mm256_max_ps(m, odd);
                }
                if last == 2 {
                    let after = _mm256_blend_ps::<0b1000_0000>(
                        _mm256_permutevar8x32_ps(even, forward),
                        _mm256_permutevar8x32_ps(next.0, forward),
                    );
                    m = _mm256_max_ps(m, after);
                }
                if 8 * c + 8 <= n {
                    _mm256_storeu_ps(out.add(8 * c), m);
                } else {
                    _mm256_maskstore_ps(out.add(8 * c), lanes(n, 8 * c), m);
                }
                previous_odd = odd;
                current = next;
            }
        }
    }

    /// Stride 1 (taps -15 to 15, at most 16): 16 output columns per step, each tap the rows'
    /// maximum of this step's columns shifted by a permute across the previous or next step's,
    /// the last step masked.
    ///
    /// # Safety
    /// AVX-512F must be present; as [`stride2_avx512`] otherwise, with `-15 <= first <= 0 <=
    /// last <= 15` and `last - first < 16`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn stride1_avx512(
        plane: &PlaneRows,
        (first, last): (isize, isize),
        src: *const f32,
        dst: *mut f32,
    ) {
        let neg = _mm512_set1_ps(f32::NEG_INFINITY);
        let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        // Tap `d` (not 0): lane `i` takes lane `i + d` of (this, next) for `d > 0`, lane
        // `i + 16 + d` of (previous, this) for `d < 0`.
        let mut shifts = [(0isize, iota); 16];
        let mut count = 0;
        for d in (first..=last).filter(|&d| d != 0) {
            let base = if d > 0 { d } else { 16 + d };
            shifts[count] = (d, _mm512_add_epi32(iota, _mm512_set1_epi32(base as i32)));
            count += 1;
        }
        let shifts = &shifts[..count];
        let (w, n) = (plane.in_w, plane.out_w);
        for oy in 0..plane.out_h {
            let (top, end) = plane.rows(oy);
            let rows = src.add(top * w);
            // The rows' maximum over input columns 16c..16c + 16.
            let columns = |c: usize| -> __m512 {
                let (x, mask) = (16 * c, mask16(w, 16 * c));
                let mut v = neg;
                for r in 0..end - top {
                    // Masked-off lanes are neither read nor faulted on.
                    let row = rows.add(r * w).wrapping_add(x);
                    v = _mm512_max_ps(v, _mm512_mask_loadu_ps(neg, mask, row));
                }
                v
            };
            let out = dst.add(oy * n);
            let (mut previous, mut current) = (neg, columns(0));
            for c in 0..n.div_ceil(16) {
                let next = columns(c + 1);
                let mut m = current;
                for &(d, shift) in shifts {
                    let tap = if d > 0 {
                        _mm512_permutex2var_ps(current, shift, next)
                    } else {
                        _mm512_permutex2var_ps(previous, shift, current)
                    };
                    m = _mm512_max_ps(m, tap);
                }
                _mm512_mask_storeu_ps(out.add(16 * c), mask16(n, 16 * c), m);
                previous = current;
                current = next;
            }
        }
    }
}
