//! The spatial geometry of convolutions over NCHW planes and the phase-plane layout the kernels
//! read.
//!
//! A channel's input is copied once into zero-padded *phase planes*: for strides `sh x sw`,
//! plane `(ry, rx)` holds the padded pixels at rows `ry, ry + sh, ..` and columns `rx, rx + sw,
//! ..`. In that layout every kernel tap of every output pixel reads a contiguous run at a fixed
//! offset ([`PlaneGeometry::tap_offsets`]) over `out_h` rows of `phase_cols` values (the last
//! `phase_cols - out_w` of each row are computed and dropped), so strided convolutions need no
//! gathers and borders need no branches.

use super::deinterleave::deinterleave;
use super::Isa;

/// Largest kernel side the kernels accept (larger ones stay on tract's path).
pub const MAX_KERNEL: usize = 11;

/// The spatial shape of a convolution over `channels` input planes: kernel, strides, zero
/// padding, and the phase-plane layout the kernels read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlaneGeometry {
    pub channels: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub kernel_h: usize,
    pub kernel_w: usize,
    pub stride_h: usize,
    pub stride_w: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

impl PlaneGeometry {
    /// The geometry for an `in_h x in_w` input, a `kernel` (h, w), `stride` (h, w) and zero
    /// padding `pad_before`/`pad_after` (top, left / bottom, right); `None` when it describes
    /// no output or a kernel larger than [`MAX_KERNEL`].
    pub fn new(
        channels: usize,
        (in_h, in_w): (usize, usize),
        (kernel_h, kernel_w): (usize, usize),
        (stride_h, stride_w): (usize, usize),
        (pad_top, pad_left): (usize, usize),
        (pad_bottom, pad_right): (usize, usize),
    ) -> Option<Self> {
        let ok = channels > 0
            && in_h > 0
            && in_w > 0
            && (1..=MAX_KERNEL).contains(&kernel_h)
            && (1..=MAX_KERNEL).contains(&kernel_w)
            && stride_h > 0
            && stride_w > 0
            && in_h + pad_top + pad_bottom >= kernel_h
            && in_w + pad_left + pad_right >= kernel_w;
        if !ok {
            return None;
        }
        Some(PlaneGeometry {
            channels,
            in_h,
            in_w,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_top,
            pad_left,
            out_h: (in_h + pad_top + pad_bottom - kernel_h) / stride_h + 1,
            out_w: (in_w + pad_left + pad_right - kernel_w) / stride_w + 1,
        })
    }

    /// Rows of each phase plane.
    pub(crate) fn phase_rows(&self) -> usize {
        self.out_h + (self.kernel_h - 1) / self.stride_h
    }

    /// Columns of each phase plane (the pitch of the computed rows).
    pub(crate) fn phase_cols(&self) -> usize {
        self.out_w + (self.kernel_w - 1) / self.stride_w
    }

    /// Floats of one channel's phase planes plus the slack the last taps read into.
    pub(crate) fn scratch_len(&self) -> usize {
        self.stride_h * self.stride_w * self.phase_rows() * self.phase_cols() + self.kernel_w
    }

    /// Where each tap (row-major over the kernel) starts reading in the phase planes.
    pub(crate) fn tap_offsets(&self) -> Vec<usize> {
        let (pr, pc) = (self.phase_rows(), self.phase_cols());
        let mut offsets = Vec::with_capacity(self.kernel_h * self.kernel_w);
        for ky in 0..self.kernel_h {
            for kx in 0..self.kernel_w {
                let plane = (ky % self.stride_h) * self.stride_w + kx % self.stride_w;
                offsets.push(plane * pr * pc + (ky / self.stride_h) * pc + kx / self.stride_w);
            }
        }
        offsets
    }

    /// Input floats (`channels * in_h * in_w`).
    pub fn input_len(&self) -> usize {
        self.channels * self.in_h * self.in_w
    }

    /// Output floats (`channels * out_h * out_w`).
    pub fn output_len(&self) -> usize {
        self.channels * self.out_h * self.out_w
    }

    /// Floating-point operations of one run (a multiply-add counts two).
    pub fn flops(&self) -> u64 {
        2 * (self.output_len() * self.kernel_h * self.kernel_w) as u64
    }

    /// Output rows `first..first + rows` alone: their geometry, over the input from row
    /// `skip` on (the second value), so that a map too large for the cache runs band by band
    /// on phase planes that stay in it. `None` where the band reads no input row (padding
    /// wider than the kernel).
    pub(crate) fn band(&self, first: usize, rows: usize) -> Option<(PlaneGeometry, usize)> {
        // The band's first phase row is padded row `top`: input row `top - pad_top`.
        let top = first * self.stride_h;
        let skip = top.saturating_sub(self.pad_top);
        if rows == 0 || first + rows > self.out_h || skip >= self.in_h {
            return None;
        }
        let band = PlaneGeometry {
            in_h: self.in_h - skip,
            pad_top: self.pad_top + skip - top,
            out_h: rows,
            ..*self
        };
        Some((band, skip))
    }
}

/// Copies one input channel into its zero-padded phase planes (the slack after them stays as it
/// is: only dropped columns read it; so do the row phases no tap reads), with the shuffles of
/// `isa` for stride-2 columns.
pub(crate) fn fill_phases(isa: Isa, g: &PlaneGeometry, plane: &[f32], phases: &mut [f32]) {
    fill_phases_pitched(isa, g, g.phase_cols(), plane, phases)
}

/// [`fill_phases`] with the rows of each phase plane `pitch` (at least `phase_cols`) values
/// apart; the values past `phase_cols` in each row stay as they are.
///
/// Panics when `plane` is shorter than the input or `phases` than the planes.
pub(crate) fn fill_phases_pitched(
    isa: Isa,
    g: &PlaneGeometry,
    pitch: usize,
    plane: &[f32],
    phases: &mut [f32],
) {
    let (pr, pc) = (g.phase_rows(), g.phase_cols());
    assert!(pitch >= pc, "row pitch {pitch} under {pc} columns");
    let plane_len = pr * pitch;
    assert!(plane.len() >= g.in_h * g.in_w, "input plane");
    let planes = g.stride_h.min(g.kernel_h) * g.stride_w;
    assert!(
        phases.len() >= (planes - 1) * plane_len + (pr - 1) * pitch + pc,
        "phase planes"
    );
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && g.stride_w <= 2 && isa.is_supported() {
        // SAFETY: AVX-512F is present; the input plane and every phase row written are inside
        // the slices (checked above).
        unsafe { x86::fill_phases_avx512(g, pitch, plane, phases) };
        return;
    }
    // Row phases at or past the kernel's height are read by no tap (a 1x1 kernel with stride
    // 2 reads only even rows): left as they are.
    for ry in 0..g.stride_h.min(g.kernel_h) {
        for j in 0..pr {
            let iy = (j * g.stride_h + ry) as isize - g.pad_top as isize;
            let row = |rx: usize| (ry * g.stride_w + rx) * plane_len + j * pitch;
            if iy < 0 || iy >= g.in_h as isize {
                for rx in 0..g.stride_w {
                    phases[row(rx)..row(rx) + pc].fill(0.0);
                }
                continue;
            }
            let src = &plane[iy as usize * g.in_w..(iy as usize + 1) * g.in_w];
            match g.stride_w {
                // Padded column i reads input column i - pad_left.
                1 => pad_row(src, g.pad_left, &mut phases[row(0)..row(0) + pc]),
                // Input column c lands in phase (c + pad_left) % 2 at column (c + pad_left) / 2:
                // the row's even and odd values go straight to their planes in one pass.
                2 => {
                    let pad = g.pad_left;
                    let (even_row, even_at) = (row(pad % 2), (pad / 2).min(pc));
                    let (odd_row, odd_at) = (row((pad + 1) % 2), pc.min(pad.div_ceil(2)));
                    let evens = g.in_w.div_ceil(2).min(pc - even_at);
                    let odds = (g.in_w / 2).min(pc - odd_at);
                    let (even, odd) = two_rows(phases, even_row, odd_row, pc);
                    let n = evens.min(odds);
                    let (e, o) = (&mut even[even_at..], &mut odd[odd_at..]);
                    deinterleave(isa, &src[..2 * n], &mut e[..n], &mut o[..n]);
                    for t in n..evens {
                        e[t] = src[2 * t];
                    }
                    for t in n..odds {
                        o[t] = src[2 * t + 1];
                    }
                    even[..even_at].fill(0.0);
                    even[even_at + evens..].fill(0.0);
                    odd[..odd_at].fill(0.0);
                    odd[odd_at + odds..].fill(0.0);
                }
                sw => {
                    for rx in 0..sw {
                        // Padded column i reads input column i * stride + rx - pad_left: zeros
                        // before the first column that lands inside the input and after the
                        // last, every stride-th input value in between.
                        let out = &mut phases[row(rx)..row(rx) + pc];
                        let first = g.pad_left.saturating_sub(rx).div_ceil(sw).min(pc);
                        let end = (g.in_w + g.pad_left)
                            .saturating_sub(rx)
                            .div_ceil(sw)
                            .clamp(first, pc);
                        out[..first].fill(0.0);
                        out[end..].fill(0.0);
                        if end > first {
                            let start = first * sw + rx - g.pad_left;
                            gather_strided(&src[start..], sw, &mut out[first..end]);
                        }
                    }
                }
            }
        }
    }
}

/// The `len` values from `a` and from `b` (two different rows of `phases`, `len` apart or more).
fn two_rows(phases: &mut [f32], a: usize, b: usize, len: usize) -> (&mut [f32], &mut [f32]) {
    if a < b {
        let (first, second) = phases.split_at_mut(b);
        (&mut first[a..a + len], &mut second[..len])
    } else {
        let (first, second) = phases.split_at_mut(a);
        (&mut second[..len], &mut first[b..b + len])
    }
}

/// `out[i] = src[i - pad]` where that is inside `src`, zero elsewhere.
fn pad_row(src: &[f32], pad: usize, out: &mut [f32]) {
    let left = pad.min(out.len());
    out[..left].fill(0.0);
    let take = (out.len() - left).min(src.len());
    out[left..left + take].copy_from_slice(&src[..take]);
    out[left + take..].fill(0.0);
}

/// `dst[i] = src[i * stride]`; stride 2 (most strided layers) as pairs of known size, which the
/// compiler turns into vector shuffles.
#[inline]
fn gather_strided(src: &[f32], stride: usize, dst: &mut [f32]) {
    if stride == 2 {
        let pairs = src.chunks_exact(2);
        let paired = pairs.len().min(dst.len());
        for (v, pair) in dst[..paired].iter_mut().zip(pairs) {
            *v = pair[0];
        }
        // The last value when `src` ends on the first of a pair.
        for (i, v) in dst.iter_mut().enumerate().skip(paired) {
            *v = src[i * 2];
        }
    } else {
        for (v, x) in dst.iter_mut().zip(src.chunks(stride)) {
            *v = x[0];
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::PlaneGeometry;

    /// Lanes `t` of a 16-value load from column `first` of a row of `width` values that fall
    /// inside the row.
    #[inline(always)]
    fn inside(first: isize, width: usize) -> __mmask16 {
        let lo = (-first).clamp(0, 16) as u32;
        let hi = (width as isize - first).clamp(0, 16) as u32;
        if hi <= lo {
            return 0;
        }
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as __mmask16
    }

    /// [`super::fill_phases_pitched`] for column strides 1 and 2, a column of vectors at a
    /// time: each phase-row vector is one masked load of its input row whose lanes outside the
    /// row read as zero (at stride 2, two loads split by two permutes into the even and the odd
    /// column phase). The masks depend on the column only, so the loop over the rows is loads,
    /// permutes and stores: no branch for the padding, no copy or fill call per row. Writes
    /// columns `0..phase_cols` of each row.
    ///
    /// # Safety
    /// AVX-512F must be present; `plane` holds `in_h * in_w` values and `phases` every phase
    /// row written (`stride_h.min(kernel_h) x stride_w` planes of `phase_rows` rows `pitch`
    /// apart, `phase_cols` values each); `stride_w` is 1 or 2.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fill_phases_avx512(
        g: &PlaneGeometry,
        pitch: usize,
        plane: &[f32],
        phases: &mut [f32],
    ) {
        let (pr, pc, sh, sw) = (g.phase_rows(), g.phase_cols(), g.stride_h, g.stride_w);
        let plane_len = pr * pitch;
        let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odds = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let zero = _mm512_setzero_ps();
        let (src, dst) = (plane.as_ptr(), phases.as_mut_ptr());
        for col in (0..pc).step_by(16) {
            let keep = ((1u32 << (pc - col).min(16)) - 1) as __mmask16;
            // Phase column `col + t` of column phase `rx` is input column
            // `first + t * sw + rx`: lane `t * sw + rx` of the values loaded from `first`.
            let first = (col * sw) as isize - g.pad_left as isize;
            let (low, high) = (inside(first, g.in_w), inside(first + 16, g.in_w));
            // Row phases at or past the kernel's height are read by no tap: left as they are.
            for ry in 0..sh.min(g.kernel_h) {
                // Phase row `j` reads input row `j * sh + ry - pad_top`: these are inside.
                let inner_from = g.pad_top.saturating_sub(ry).div_ceil(sh).min(pr);
                let inner_to = (g.in_h + g.pad_top)
                    .saturating_sub(ry)
                    .div_ceil(sh)
                    .clamp(inner_from, pr);
                let out = dst.add(ry * sw * plane_len + col);
                for j in (0..inner_from).chain(inner_to..pr) {
                    for rx in 0..sw {
                        _mm512_mask_storeu_ps(out.add(rx * plane_len + j * pitch), keep, zero);
                    }
                }
                if inner_from == inner_to {
                    continue;
                }
                let top = inner_from * sh + ry - g.pad_top;
                // Lanes outside the row are masked off and never read.
                let mut row = src.add(top * g.in_w).wrapping_offset(first);
                let step = sh * g.in_w;
                for j in inner_from..inner_to {
                    let at = out.add(j * pitch);
                    let a = _mm512_maskz_loadu_ps(low, row);
                    if sw == 1 {
                        _mm512_mask_storeu_ps(at, keep, a);
                    } else {
                        let b = _mm512_maskz_loadu_ps(high, row.wrapping_add(16));
                        _mm512_mask_storeu_ps(at, keep, _mm512_permutex2var_ps(a, evens, b));
                        let odd = _mm512_permutex2var_ps(a, odds, b);
                        _mm512_mask_storeu_ps(at.add(plane_len), keep, odd);
                    }
                    row = row.wrapping_add(step);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::Rng;

    #[test]
    fn every_instruction_set_fills_the_same_phase_planes() {
        let mut rng = Rng(3);
        for _ in 0..400 {
            let (k, s) = (1 + rng.below(7), 1 + rng.below(3));
            let (kw, sw) = (1 + rng.below(7), 1 + rng.below(3));
            let (h, w) = (1 + rng.below(20), 1 + rng.below(70));
            let pads = (rng.below(k), rng.below(kw));
            let pads_end = (rng.below(k), rng.below(kw));
            let Some(g) = PlaneGeometry::new(1, (h, w), (k, kw), (s, sw), pads, pads_end) else {
                continue;
            };
            let pc = g.phase_cols();
            let pitch = pc + [0, 1, 16][rng.below(3)];
            let plane = rng.values(h * w);
            let len = s * sw * g.phase_rows() * pitch;
            let mut want = vec![f32::NAN; len];
            fill_phases_pitched(Isa::Portable, &g, pitch, &plane, &mut want);
            for isa in Isa::all_supported() {
                let mut got = vec![f32::NAN; len];
                fill_phases_pitched(isa, &g, pitch, &plane, &mut got);
                for (r, (got, want)) in got.chunks(pitch).zip(want.chunks(pitch)).enumerate() {
                    let (got, want) = (&got[..pc], &want[..pc]);
                    let same = got
                        .iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{isa:?} {g:?} pitch {pitch} row {r}: {got:?} != {want:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn bands_fill_the_phase_rows_of_the_whole_map() {
        let mut rng = Rng(9);
        for _ in 0..300 {
            let (k, s) = ([3, 5][rng.below(2)], 1 + rng.below(2));
            let (h, w) = (1 + rng.below(30), 1 + rng.below(20));
            let p = rng.below(k);
            let Some(g) = PlaneGeometry::new(1, (h, w), (k, k), (s, s), (p, p), (p, p)) else {
                continue;
            };
            let (pr, pc) = (g.phase_rows(), g.phase_cols());
            let plane = rng.values(h * w);
            let mut whole = vec![f32::NAN; s * s * pr * pc];
            fill_phases(Isa::Portable, &g, &plane, &mut whole);
            let rows = 1 + rng.below(g.out_h);
            for first in (0..g.out_h).step_by(rows) {
                let rows = rows.min(g.out_h - first);
                let Some((band, skip)) = g.band(first, rows) else {
                    continue;
                };
                let bpr = band.phase_rows();
                assert_eq!((bpr, band.phase_cols()), (rows + (k - 1) / s, pc));
                let mut got = vec![f32::NAN; s * s * bpr * pc];
                fill_phases(Isa::detect(), &band, &plane[skip * w..], &mut got);
                for phase in 0..s.min(k) * s {
                    for j in 0..bpr {
                        let got = &got[(phase * bpr + j) * pc..][..pc];
                        let want = &whole[(phase * pr + first + j) * pc..][..pc];
                        assert_eq!(got, want, "{g:?} band {first}+{rows} phase {phase} row {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn strided_gathers_take_every_stride_th_value_to_the_end() {
        let src: Vec<f32> = (0..11).map(|i| i as f32).collect();
        for stride in 1..=4 {
            for n in 0..=src.len().div_ceil(stride) {
                let mut dst = vec![f32::NAN; n];
                gather_strided(&src, stride, &mut dst);
                let want: Vec<f32> = (0..n).map(|i| (i * stride) as f32).collect();
                assert_eq!(dst, want, "stride {stride}, {n} values");
            }
        }
    }
}
