//! Max pooling over NCHW planes (ONNX `MaxPool`, 2-D, no dilation), separable: the maximum
//! over a window is the maximum over its rows of the maximum over its columns, so each output
//! row first takes the maximum of the input rows its window covers (a vertical pass, one vector
//! maximum per value), then slides the window along that row. YOLOv8's and YOLO11's SPPF
//! (three 5x5 stride-1 pools) took 10x ONNX Runtime's time on tract's general pooling.
//! At stride 2 (the 3x3 pools after stems) the row is first split into its even and odd
//! columns, so that every tap of the window is again a contiguous slice. With AVX-512 or AVX2,
//! the common windows (2 or 3 wide at stride 2, up to 16 wide at stride 1 with AVX-512) take
//! all those steps in one pass per output row instead ([`super::max_pool_rows`]).

use std::cell::RefCell;

use super::deinterleave::deinterleave;
use super::max_pool_rows::{pool_plane, PlaneRows, RowWindow};
use super::pool::for_each_rows;
use super::Isa;

/// A max pooling ready to run: planes, input and output sizes, window, strides, padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    planes: usize,
    in_h: usize,
    in_w: usize,
    kernel_h: usize,
    kernel_w: usize,
    stride_h: usize,
    stride_w: usize,
    pad_top: usize,
    pad_left: usize,
    out_h: usize,
    out_w: usize,
}

/// One output row's column maxima, with `-inf` on the padding around them, and at stride 2
/// their even and odd columns.
#[derive(Default)]
struct RowBuffers {
    maxima: Vec<f32>,
    even: Vec<f32>,
    odd: Vec<f32>,
}

thread_local! {
    static ROW: RefCell<RowBuffers> = RefCell::new(RowBuffers::default());
}

impl MaxPool2d {
    /// A pool of `planes` planes of `in_h x in_w`, a `kernel` (h, w), `stride` (h, w) and padding
    /// `pad_before` (top, left) giving `out_h x out_w` outputs; `None` when some output window
    /// would hold no input value (tract's result there is not a maximum of anything) or a size
    /// is zero.
    pub fn new(
        planes: usize,
        (in_h, in_w): (usize, usize),
        (kernel_h, kernel_w): (usize, usize),
        (stride_h, stride_w): (usize, usize),
        (pad_top, pad_left): (usize, usize),
        (out_h, out_w): (usize, usize),
    ) -> Option<Self> {
        let sizes = [
            planes, in_h, in_w, kernel_h, kernel_w, stride_h, stride_w, out_h, out_w,
        ];
        if sizes.contains(&0) {
            return None;
        }
        // Every window must overlap the input: its first row/column before the input's end,
        // its last one at or after the input's start.
        let covers = |out: usize, stride: usize, pad: usize, kernel: usize, len: usize| {
            (out - 1) * stride < len + pad && pad < kernel
        };
        if !covers(out_h, stride_h, pad_top, kernel_h, in_h)
            || !covers(out_w, stride_w, pad_left, kernel_w, in_w)
        {
            return None;
        }
        Some(MaxPool2d {
            planes,
            in_h,
            in_w,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_top,
            pad_left,
            out_h,
            out_w,
        })
    }

    /// Input floats.
    pub fn input_len(&self) -> usize {
        self.planes * self.in_h * self.in_w
    }

    /// Output floats.
    pub fn output_len(&self) -> usize {
        self.planes * self.out_h * self.out_w
    }

    /// Pools `input` (`[planes][in_h][in_w]`) into `output` (`[planes][out_h][out_w]`), the
    /// planes spread over the kernel pool.
    ///
    /// Panics when a buffer length does not match.
    pub fn run(&self, input: &[f32], output: &mut [f32]) {
        self.run_on(Isa::detect(), input, output)
    }

    /// [`Self::run`] with the kernels of `isa` (the portable ones where the CPU lacks it).
    ///
    /// Panics when a buffer length does not match.
    pub fn run_on(&self, isa: Isa, input: &[f32], output: &mut [f32]) {
        assert_eq!(input.len(), self.input_len(), "input length");
        assert_eq!(output.len(), self.output_len(), "output length");
        let (plane_in, plane_out) = (self.in_h * self.in_w, self.out_h * self.out_w);
        let work = self.output_len() * self.kernel_h * self.kernel_w;
        for_each_rows(output, plane_out, work, |first, planes| {
            ROW.with_borrow_mut(|row| {
                for (p, out) in planes.chunks_exact_mut(plane_out).enumerate() {
                    let c = first + p;
                    self.plane(isa, &input[c * plane_in..(c + 1) * plane_in], out, row);
                }
            });
        });
    }

    /// One plane, with `buffers` for the column maxima.
    fn plane(&self, isa: Isa, input: &[f32], output: &mut [f32], buffers: &mut RowBuffers) {
        if let Some(window) = RowWindow::new(isa, self.kernel_w, self.stride_w, self.pad_left) {
            let rows = PlaneRows {
                in_h: self.in_h,
                in_w: self.in_w,
                kernel_h: self.kernel_h,
                stride_h: self.stride_h,
                pad_top: self.pad_top,
                out_h: self.out_h,
                out_w: self.out_w,
            };
            if pool_plane(isa, &rows, window, input, output) {
                return;
            }
        }
        let padded_w = (self.out_w - 1) * self.stride_w + self.kernel_w;
        // At stride 2 the row is split in two halves of `half` values (one `-inf` past an
        // odd-length row).
        let half = padded_w.div_ceil(2);
        let RowBuffers {
            maxima: row,
            even,
            odd,
        } = buffers;
        row.clear();
        row.resize(2 * half, f32::NEG_INFINITY);
        even.resize(half, 0.0);
        odd.resize(half, 0.0);
        let inside = self.pad_left..(self.pad_left + self.in_w).min(padded_w);
        for (oy, out) in output.chunks_exact_mut(self.out_w).enumerate() {
            let top = (oy * self.stride_h) as isize - self.pad_top as isize;
            let first = top.max(0) as usize;
            let end = ((top + self.kernel_h as isize) as usize).min(self.in_h);
            // The column maxima of the window's rows (at least one row: checked in `new`).
            let cols = &mut row[inside.clone()];
            let width = cols.len();
            cols.copy_from_slice(&input[first * self.in_w..][..width]);
            for y in first + 1..end {
                let src = &input[y * self.in_w..][..width];
                cols.iter_mut().zip(src).for_each(|(m, &x)| *m = max(*m, x));
            }
            // The window slid along the row (contiguous slices at stride 1, which vectorize).
            let n = self.out_w;
            if self.stride_w == 1 {
                out.copy_from_slice(&row[..n]);
                for kx in 1..self.kernel_w {
                    let taps = &row[kx..kx + n];
                    out.iter_mut().zip(taps).for_each(|(m, &x)| *m = max(*m, x));
                }
            } else if self.stride_w == 2 {
                // Column 2i + kx is even[i + kx / 2] for even kx, odd[i + kx / 2] for odd kx.
                deinterleave(isa, row, even, odd);
                out.copy_from_slice(&even[..n]);
                for kx in 1..self.kernel_w {
                    let half_row = if kx % 2 == 0 { &even[..] } else { &odd[..] };
                    let taps = &half_row[kx / 2..kx / 2 + n];
                    out.iter_mut().zip(taps).for_each(|(m, &x)| *m = max(*m, x));
                }
            } else {
                let taps = |kx: usize| row[kx..].iter().step_by(self.stride_w).take(n);
                out.iter_mut().zip(taps(0)).for_each(|(m, &x)| *m = x);
                for kx in 1..self.kernel_w {
                    out.iter_mut()
                        .zip(taps(kx))
                        .for_each(|(m, &x)| *m = max(*m, x));
                }
            }
        }
    }
}

/// The larger of two values as one compare and select (one vector instruction), where
/// `f32::max` adds NaN fix-ups; a NaN in the input propagates or not as in tract's pooling
/// (which compares the same way), and no model feeds NaN to a pool.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::pool::{with_pool, Pool};
    use crate::kernels::test_support::Rng;
    use std::sync::Arc;

    /// The maximum of each window, straight from the definition.
    fn naive(p: &MaxPool2d, input: &[f32]) -> Vec<f32> {
        let mut out = vec![];
        for c in 0..p.planes {
            for oy in 0..p.out_h {
                for ox in 0..p.out_w {
                    let mut m = f32::NEG_INFINITY;
                    for ky in 0..p.kernel_h {
                        for kx in 0..p.kernel_w {
                            let y = (oy * p.stride_h + ky) as isize - p.pad_top as isize;
                            let x = (ox * p.stride_w + kx) as isize - p.pad_left as isize;
                            if (0..p.in_h as isize).contains(&y)
                                && (0..p.in_w as isize).contains(&x)
                            {
                                m = m.max(
                                    input[c * p.in_h * p.in_w + y as usize * p.in_w + x as usize],
                                );
                            }
                        }
                    }
                    out.push(m);
                }
            }
        }
        out
    }

    #[test]
    fn random_windows_strides_and_pads_match_the_definition() {
        let mut rng = Rng(0x5EED);
        let mut tried = 0;
        while tried < 300 {
            let (kh, kw) = (1 + rng.below(6), 1 + rng.below(6));
            let (sh, sw) = (1 + rng.below(3), 1 + rng.below(3));
            let (h, w) = (1 + rng.below(14), 1 + rng.below(14));
            let (pt, pl) = (rng.below(kh), rng.below(kw));
            let (pb, pr) = (rng.below(kh), rng.below(kw));
            if h + pt + pb < kh || w + pl + pr < kw {
                continue;
            }
            let out = ((h + pt + pb - kh) / sh + 1, (w + pl + pr - kw) / sw + 1);
            let planes = 1 + rng.below(5);
            let Some(p) = MaxPool2d::new(planes, (h, w), (kh, kw), (sh, sw), (pt, pl), out) else {
                continue;
            };
            let input = rng.values(p.input_len());
            let want = naive(&p, &input);
            for threads in [1, 2] {
                let mut got = vec![f32::NAN; p.output_len()];
                with_pool(Arc::new(Pool::new(threads)), || p.run(&input, &mut got));
                assert_eq!(got, want, "{p:?}, {threads} threads");
            }
            tried += 1;
        }
    }

    #[test]
    fn stride_two_pools_match_the_definition_on_every_instruction_set() {
        // NanoDet-m's 3x3 stride-2 pool after its stem, and odd widths around a vector.
        for (c, (h, w), k, pad) in [
            (24, (208, 208), 3, 0),
            (3, (33, 33), 3, 1),
            (2, (17, 35), 2, 0),
            (2, (40, 31), 5, 2),
        ] {
            let out = ((h + 2 * pad - k) / 2 + 1, (w + 2 * pad - k) / 2 + 1);
            let p = MaxPool2d::new(c, (h, w), (k, k), (2, 2), (pad, pad), out).unwrap();
            let input = Rng(11).values(p.input_len());
            let want = naive(&p, &input);
            for isa in Isa::all_supported() {
                let mut got = vec![f32::NAN; p.output_len()];
                let mut buffers = RowBuffers::default();
                let (plane_in, plane_out) = (h * w, out.0 * out.1);
                for (i, o) in input.chunks(plane_in).zip(got.chunks_mut(plane_out)) {
                    p.plane(isa, i, o, &mut buffers);
                }
                assert_eq!(got, want, "{p:?} on {}", isa.name());
            }
        }
    }

    #[test]
    fn one_pass_rows_match_the_definition_at_every_width() {
        // Widths around the vectors of every instruction set; at stride 2 windows 2 and 3 wide
        // with and without left padding, at stride 1 windows 1 to 16 wide padded from none to
        // all but one column; windows of 1 to 3 rows (padding above and below).
        let windows = [
            (2, 2, 0),
            (2, 2, 1),
            (2, 3, 0),
            (2, 3, 1),
            (1, 1, 0),
            (1, 2, 1),
            (1, 3, 1),
            (1, 5, 2),
            (1, 5, 0),
            (1, 4, 3),
            (1, 16, 15),
            (1, 16, 0),
        ];
        for w in 1..=70usize {
            for (stride, k, pad) in windows {
                for (h, kh, pad_top) in [(5, 3, 1), (4, 2, 0), (3, 1, 0)] {
                    let out_w = (w + 2 * pad).saturating_sub(k) / stride + 1;
                    let out_h = (h + 2 * pad_top - kh) / 2 + 1;
                    let pool = MaxPool2d::new(
                        2,
                        (h, w),
                        (kh, k),
                        (2, stride),
                        (pad_top, pad),
                        (out_h, out_w),
                    );
                    let Some(pool) = pool else {
                        continue;
                    };
                    let input = Rng(w as u64).values(pool.input_len());
                    let want = naive(&pool, &input);
                    for isa in Isa::all_supported() {
                        let mut got = vec![f32::NAN; pool.output_len()];
                        pool.run_on(isa, &input, &mut got);
                        assert_eq!(got, want, "{pool:?} on {}", isa.name());
                    }
                }
            }
        }
    }

    #[test]
    fn sppf_pool_matches_the_definition() {
        // YOLOv8n-640's SPPF: 5x5, stride 1, padding 2 over 128 planes of 20x20.
        let p = MaxPool2d::new(128, (20, 20), (5, 5), (1, 1), (2, 2), (20, 20)).unwrap();
        let input = Rng(3).values(p.input_len());
        let mut got = vec![0.0; p.output_len()];
        with_pool(Arc::new(Pool::new(2)), || p.run(&input, &mut got));
        assert_eq!(got, naive(&p, &input));
    }

    #[test]
    fn windows_outside_the_input_are_refused() {
        // Padding as large as the kernel: the first window holds only padding.
        assert!(MaxPool2d::new(1, (4, 4), (2, 2), (1, 1), (2, 0), (5, 3)).is_none());
        // An output row past the input.
        assert!(MaxPool2d::new(1, (4, 4), (2, 2), (2, 2), (0, 0), (4, 2)).is_none());
        assert!(MaxPool2d::new(0, (4, 4), (2, 2), (1, 1), (0, 0), (3, 3)).is_none());
        assert!(MaxPool2d::new(1, (4, 4), (2, 2), (1, 1), (0, 0), (3, 3)).is_some());
    }
}
