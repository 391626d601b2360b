//! Moving blocks of 16 channels between planes (`[channel][pixel]`, NCHW) and lanes
//! (`[pixel][channel]`, one vector per pixel), 16 x 16 values at a time transposed in
//! registers, for the kernels that compute across channels on small maps.

use super::Isa;

/// `dst[x][p] = src[p * stride + x]` for `x < n`, `p < planes`, and zero for the lanes
/// `planes..16`: `planes` rows of `n` values (one per channel) into `n` vectors of lanes,
/// transposed in registers on AVX-512 (a copy value by value elsewhere).
///
/// Panics unless `planes <= 16`, `dst` holds `n` lines and `src` reaches the last row's end.
pub fn planes_to_lanes(isa: Isa, src: &[f32], stride: usize, planes: usize, dst: &mut [[f32; 16]]) {
    let n = dst.len();
    planes_to_lanes_pitched(isa, src, stride, planes, (n, n.max(1), n.max(1)), dst)
}

/// [`planes_to_lanes`] for `n` pixels in rows of `width` that go to rows `pitch` lines apart
/// in `dst` (the inside of a padded block): pixel `x`'s vector is line `(x / width) * pitch +
/// x % width`. Transposes take 16 pixels across row ends, so a 7x7 map takes four instead of
/// one per row.
///
/// Panics unless `planes <= 16`, `0 < width <= pitch`, `dst` reaches the last pixel's line and
/// `src` the last row's end.
pub fn planes_to_lanes_pitched(
    isa: Isa,
    src: &[f32],
    stride: usize,
    planes: usize,
    (n, width, pitch): (usize, usize, usize),
    dst: &mut [[f32; 16]],
) {
    assert!(planes <= 16, "{planes} planes in a block of 16");
    assert!(
        0 < width && width <= pitch,
        "rows of {width} lines {pitch} apart"
    );
    let line = |x: usize| (x / width) * pitch + x % width;
    assert!(n == 0 || line(n - 1) < dst.len(), "pixels past the block");
    assert!(
        planes == 0 || src.len() >= (planes - 1) * stride + n,
        "rows past the source"
    );
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && isa.is_supported() {
        // SAFETY: AVX-512F is present; the extents are checked above.
        return unsafe {
            x86::planes_to_lanes_avx512(src.as_ptr(), stride, planes, (n, width, pitch), dst)
        };
    }
    let _ = isa;
    for x in 0..n {
        for (p, v) in dst[line(x)].iter_mut().enumerate() {
            *v = if p < planes { src[p * stride + x] } else { 0.0 };
        }
    }
}

/// `dst[p * stride + x] = src[x][p]` for `x < src.len()`, `p < planes`: the inverse of
/// [`planes_to_lanes`], lanes past `planes` left out.
///
/// Panics unless `planes <= 16` and `dst` reaches the last row's end.
pub fn lanes_to_planes(isa: Isa, src: &[[f32; 16]], planes: usize, stride: usize, dst: &mut [f32]) {
    let n = src.len();
    assert!(planes <= 16, "{planes} planes in a block of 16");
    assert!(
        planes == 0 || dst.len() >= (planes - 1) * stride + n,
        "rows past the output"
    );
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && isa.is_supported() {
        // SAFETY: AVX-512F is present; the extents are checked above.
        return unsafe { x86::lanes_to_planes_avx512(src, planes, stride, dst.as_mut_ptr()) };
    }
    let _ = isa;
    for (x, line) in src.iter().enumerate() {
        for (p, &v) in line.iter().take(planes).enumerate() {
            dst[p * stride + x] = v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use std::arch::x86_64::*;

    /// `$body` once for each constant `$i` in `0..16`. An array of vectors indexed only by
    /// constants stays in registers; a loop over a count known at run time (`take(n)`) keeps
    /// it on the stack, loaded and stored around every transpose.
    macro_rules! unroll16 {
        (|$i:ident| $body:expr) => {
            unroll16!(@each $i $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
        };
        (@each $i:ident $body:expr; $($n:literal)*) => {{
            $({
                let $i: usize = $n;
                $body;
            })*
        }};
    }
    pub(crate) use unroll16;

    /// The mask of the first `n` lanes (`n <= 16`).
    fn first(n: usize) -> __mmask16 {
        if n >= 16 {
            0xffff
        } else {
            (1u16 << n) - 1
        }
    }

    /// [`super::planes_to_lanes_pitched`]: 16 columns of every row a step, masked at the
    /// row's end.
    ///
    /// # Safety
    /// AVX-512F must be present; `src` must hold `planes` rows of `n` values `stride` apart
    /// and `dst` the line of every pixel (`(x / width) * pitch + x % width`).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn planes_to_lanes_avx512(
        src: *const f32,
        stride: usize,
        planes: usize,
        (n, width, pitch): (usize, usize, usize),
        dst: &mut [[f32; 16]],
    ) {
        let out = dst.as_mut_ptr() as *mut f32;
        // The pixel `x` and its line, moved along together.
        let (mut x, mut row, mut col) = (0, 0, 0);
        while x < n {
            let cols = 16.min(n - x);
            let mut v = [_mm512_setzero_ps(); 16];
            unroll16!(|p| if p < planes {
                v[p] = _mm512_maskz_loadu_ps(first(cols), src.add(p * stride + x));
            });
            let t = transpose16(v);
            unroll16!(|i| if i < cols {
                _mm512_storeu_ps(out.add((row * pitch + col) * 16), t[i]);
                col += 1;
                if col == width {
                    (row, col) = (row + 1, 0);
                }
            });
            x += cols;
        }
    }

    /// [`super::lanes_to_planes`]: 16 lines a step, stored as masked row pieces.
    ///
    /// # Safety
    /// AVX-512F must be present; `dst` must hold `planes` rows of `src.len()` values `stride`
    /// apart.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn lanes_to_planes_avx512(
        src: &[[f32; 16]],
        planes: usize,
        stride: usize,
        dst: *mut f32,
    ) {
        let (n, lines) = (src.len(), src.as_ptr() as *const f32);
        let mut x = 0;
        while x < n {
            let cols = 16.min(n - x);
            let mut v = [_mm512_setzero_ps(); 16];
            // Lines past the last are read again from the last: their columns are not stored.
            unroll16!(|i| v[i] = _mm512_loadu_ps(lines.add((x + i.min(cols - 1)) * 16)));
            let t = transpose16(v);
            unroll16!(|p| if p < planes {
                _mm512_mask_storeu_ps(dst.add(p * stride + x), first(cols), t[p]);
            });
            x += cols;
        }
    }

    /// The 16 x 16 transpose of `a` (row `i` is `a[i]`): unpacks within 128-bit lanes, then
    /// lane shuffles.
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn transpose16(a: [__m512; 16]) -> [__m512; 16] {
        // Pairs of rows interleaved: t[2i] holds columns 4L, 4L + 1 of rows 2i, 2i + 1 in lane L.
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]);
        }
        // s[4i + p], lane L: column 4L + p of rows 4i..4i + 4.
        let mut s = [_mm512_setzero_ps(); 16];
        let pd = _mm512_castps_pd;
        for i in 0..4 {
            let (x0, x1, x2, x3) = (
                pd(t[4 * i]),
                pd(t[4 * i + 1]),
                pd(t[4 * i + 2]),
                pd(t[4 * i + 3]),
            );
            s[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(x0, x2));
            s[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x0, x2));
            s[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(x1, x3));
            s[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(x1, x3));
        }
        // Column 4L + p: lane L of s[p], s[4 + p], s[8 + p], s[12 + p].
        let mut out = [_mm512_setzero_ps(); 16];
        for p in 0..4 {
            let low = _mm512_shuffle_f32x4::<0x44>(s[p], s[4 + p]);
            let high = _mm512_shuffle_f32x4::<0xEE>(s[p], s[4 + p]);
            let low2 = _mm512_shuffle_f32x4::<0x44>(s[8 + p], s[12 + p]);
            let high2 = _mm512_shuffle_f32x4::<0xEE>(s[8 + p], s[12 + p]);
            out[p] = _mm512_shuffle_f32x4::<0x88>(low, low2);
            out[4 + p] = _mm512_shuffle_f32x4::<0xDD>(low, low2);
            out[8 + p] = _mm512_shuffle_f32x4::<0x88>(high, high2);
            out[12 + p] = _mm512_shuffle_f32x4::<0xDD>(high, high2);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::test_support::Rng;

    #[test]
    fn pixels_go_to_the_rows_of_a_padded_block() {
        let mut rng = Rng(22);
        // A 7x7 map into an 11-wide padded block, rows of 1, 16 and 17, a single pixel.
        for (planes, n, width, pitch) in [
            (16, 49, 7, 11),
            (9, 34, 17, 20),
            (16, 48, 16, 16),
            (3, 5, 1, 2),
            (16, 1, 1, 1),
        ] {
            let stride = n + 3;
            let src = rng.values((planes - 1) * stride + n);
            for isa in Isa::all_supported() {
                let lines = ((n - 1) / width) * pitch + (n - 1) % width + 1;
                let mut dst = vec![[f32::NAN; 16]; lines + 2];
                planes_to_lanes_pitched(isa, &src, stride, planes, (n, width, pitch), &mut dst);
                let mut written = vec![false; dst.len()];
                for x in 0..n {
                    let line = (x / width) * pitch + x % width;
                    written[line] = true;
                    for (p, &v) in dst[line].iter().enumerate() {
                        let want = if p < planes { src[p * stride + x] } else { 0.0 };
                        assert_eq!(v, want, "{} {n} in {width}/{pitch}: {x}, {p}", isa.name());
                    }
                }
                for (line, w) in dst.iter().zip(&written) {
                    assert!(
                        *w || line.iter().all(|v| v.is_nan()),
                        "a padding line written"
                    );
                }
            }
        }
    }

    #[test]
    fn blocks_go_to_lanes_and_back_for_any_width_and_channel_count() {
        let mut rng = Rng(21);
        for (planes, n, stride) in [
            (16, 49, 49),
            (16, 16, 20),
            (5, 37, 40),
            (1, 3, 3),
            (16, 1, 7),
        ] {
            let src = rng.values((planes.max(1) - 1) * stride + n);
            for isa in Isa::all_supported() {
                let mut lanes = vec![[f32::NAN; 16]; n];
                planes_to_lanes(isa, &src, stride, planes, &mut lanes);
                for (x, line) in lanes.iter().enumerate() {
                    for (p, &v) in line.iter().enumerate() {
                        let want = if p < planes { src[p * stride + x] } else { 0.0 };
                        assert_eq!(v, want, "{planes} planes of {n}: pixel {x}, lane {p}");
                    }
                }
                let mut back = vec![f32::NAN; src.len()];
                lanes_to_planes(isa, &lanes, planes, stride, &mut back);
                for p in 0..planes {
                    for x in 0..n {
                        assert_eq!(back[p * stride + x], src[p * stride + x], "back: {p}, {x}");
                    }
                    // Between rows (the stride's gap) nothing is written.
                    for x in n..stride.min(back.len() - p * stride) {
                        assert!(back[p * stride + x].is_nan(), "gap written at {p}, {x}");
                    }
                }
            }
        }
    }
}
