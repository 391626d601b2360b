//! Resampling of the last two axes (height and width) of NCHW planes: ONNX `Resize` in linear,
//! nearest or cubic mode, computed separably.
//!
//! Each axis comes as an [`AxisTaps`]: for every output index, a window of input indices
//! (already clamped into the axis) and their weights, as tract plans them. A plane is resampled
//! in two passes: along the width for every input row (a gather per output column), then along
//! the height as a weighted sum of whole resampled rows (contiguous, so it vectorizes). Planes
//! are spread over the kernels' thread pool ([`super::pool`]). An axis doubled or halved with
//! one or two taps (the 2x resampling of feature pyramids) computes its inner outputs from
//! fixed weights over contiguous slices instead of a gather per output.

use std::cell::RefCell;
use std::ops::Range;

/// The resampling plan of one axis: `window` taps per output index.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisTaps {
    window: usize,
    /// `[len_out][window]` input indices, each below `len_in`.
    indices: Vec<u32>,
    /// `[len_out][window]` weights.
    weights: Vec<f32>,
    len_in: usize,
    /// The inner outputs as fixed-weight phases, where the axis is doubled or halved.
    regular: Option<RegularTaps>,
}

/// An axis doubled (`phases` 2, `step` 1: outputs `2j` and `2j + 1` read around input `j`) or
/// halved (`phases` 1, `step` 2: output `j` reads around input `2j`): for `j` in `inner`,
/// output `phases * j + r` reads inputs `step * j + offset[r]` (and the next one when the
/// window is 2) with `weights[r]`, all non-zero.
#[derive(Debug, Clone, PartialEq)]
struct RegularTaps {
    inner: Range<usize>,
    phases: usize,
    step: usize,
    offset: [isize; 2],
    weights: [[f32; 2]; 2],
}

impl RegularTaps {
    /// The widest run of `j` whose outputs follow the phases of the middle `j`, where it
    /// covers at least half the axis.
    fn find(window: usize, indices: &[u32], weights: &[f32], len_in: usize) -> Option<Self> {
        let len_out = indices.len() / window.max(1);
        let (phases, step) = if len_out == 2 * len_in {
            (2, 1)
        } else if len_in == 2 * len_out {
            (1, 2)
        } else {
            return None;
        };
        let groups = len_out / phases;
        if !(1..=2).contains(&window) || groups < 3 {
            return None;
        }
        let mid = groups / 2;
        let phase = |x: usize| -> (isize, [f32; 2]) {
            let w = &weights[x * window..][..window];
            let first = indices[x * window] as isize - (step * (x / phases)) as isize;
            (first, [w[0], if window == 2 { w[1] } else { 0.0 }])
        };
        let found: Vec<_> = (0..phases).map(|r| phase(phases * mid + r)).collect();
        if found.iter().any(|(_, w)| w[..window].contains(&0.0)) {
            return None;
        }
        let follows = |j: usize| {
            found.iter().enumerate().all(|(r, &(first, w))| {
                let x = phases * j + r;
                (0..window).all(|k| {
                    indices[x * window + k] as isize == (step * j) as isize + first + k as isize
                        && weights[x * window + k] == w[k]
                })
            })
        };
        let start = (0..=mid).rev().take_while(|&j| follows(j)).last()?;
        let end = (mid..groups).take_while(|&j| follows(j)).last()? + 1;
        // Taps that only happen to repeat near the middle are no pattern.
        if end - start < groups / 2 {
            return None;
        }
        let last = found[phases - 1];
        Some(RegularTaps {
            inner: start..end,
            phases,
            step,
            offset: [found[0].0, last.0],
            weights: [found[0].1, last.1],
        })
    }

    /// The outputs of the inner groups, written into `dst` from `src`.
    fn apply(&self, window: usize, src: &[f32], dst: &mut [f32]) {
        let Range { start, end } = self.inner.clone();
        let n = end - start;
        let from = |r: usize| ((self.step * start) as isize + self.offset[r]) as usize;
        let out = &mut dst[self.phases * start..self.phases * end];
        let ([a0, b0], [a1, b1]) = (self.weights[0], self.weights[1]);
        match (self.phases, window) {
            (2, 1) => {
                let (s0, s1) = (&src[from(0)..][..n], &src[from(1)..][..n]);
                for ((o, &x0), &x1) in out.chunks_exact_mut(2).zip(s0).zip(s1) {
                    o[0] = a0 * x0;
                    o[1] = a1 * x1;
                }
            }
            (2, _) => {
                let (s0, s1) = (&src[from(0)..][..n + 1], &src[from(1)..][..n + 1]);
                for (j, o) in out.chunks_exact_mut(2).enumerate() {
                    o[0] = a0 * s0[j] + b0 * s0[j + 1];
                    o[1] = a1 * s1[j] + b1 * s1[j + 1];
                }
            }
            (_, 1) => {
                let pairs = src[from(0)..][..2 * n].chunks_exact(2);
                for (o, x) in out.iter_mut().zip(pairs) {
                    *o = a0 * x[0];
                }
            }
            _ => {
                let pairs = src[from(0)..][..2 * n].chunks_exact(2);
                for (o, x) in out.iter_mut().zip(pairs) {
                    *o = a0 * x[0] + b0 * x[1];
                }
            }
        }
    }
}

impl AxisTaps {
    /// Checks that `indices` and `weights` hold whole windows of indices below `len_in`.
    pub fn new(
        len_in: usize,
        window: usize,
        indices: Vec<usize>,
        weights: Vec<f32>,
    ) -> Result<Self, String> {
        if window == 0 || indices.is_empty() || !indices.len().is_multiple_of(window) {
            return Err(format!("{} taps in windows of {window}", indices.len()));
        }
        if weights.len() != indices.len() {
            return Err(format!(
                "{} weights for {} taps",
                weights.len(),
                indices.len()
            ));
        }
        if let Some(i) = indices.iter().find(|&&i| i >= len_in) {
            return Err(format!("tap at {i} on an axis of {len_in}"));
        }
        if len_in > u32::MAX as usize {
            return Err(format!("an axis of {len_in}"));
        }
        let indices: Vec<u32> = indices.into_iter().map(|i| i as u32).collect();
        let regular = RegularTaps::find(window, &indices, &weights, len_in);
        Ok(AxisTaps {
            window,
            indices,
            weights,
            len_in,
            regular,
        })
    }

    /// Output length.
    pub fn len_out(&self) -> usize {
        self.indices.len() / self.window
    }

    /// Input length.
    pub fn len_in(&self) -> usize {
        self.len_in
    }

    /// The taps of output index `x` with a non-zero weight.
    fn taps(&self, x: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let range = x * self.window..(x + 1) * self.window;
        self.indices[range.clone()]
            .iter()
            .zip(&self.weights[range])
            .filter(|(_, &w)| w != 0.0)
            .map(|(&i, &w)| (i as usize, w))
    }
}

/// A resampling of `planes` planes of `rows.len_in() x cols.len_in()` values into
/// `rows.len_out() x cols.len_out()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Resize2d {
    planes: usize,
    rows: AxisTaps,
    cols: AxisTaps,
}

thread_local! {
    /// Per-thread rows resampled along the width.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Resize2d {
    /// `planes` planes (batch times channels) resampled along `rows` and `cols`.
    pub fn new(planes: usize, rows: AxisTaps, cols: AxisTaps) -> Self {
        Resize2d { planes, rows, cols }
    }

    /// Input floats.
    pub fn input_len(&self) -> usize {
        self.planes * self.rows.len_in() * self.cols.len_in()
    }

    /// Output floats.
    pub fn output_len(&self) -> usize {
        self.planes * self.rows.len_out() * self.cols.len_out()
    }

    /// Runs on `input` into `output`, planes spread over the current kernel pool.
    ///
    /// Panics when a buffer length does not match.
    pub fn run(&self, input: &[f32], output: &mut [f32]) {
        assert_eq!(input.len(), self.input_len(), "input length");
        assert_eq!(output.len(), self.output_len(), "output length");
        let plane_in = self.rows.len_in() * self.cols.len_in();
        let plane_out = self.rows.len_out() * self.cols.len_out();
        let work = self.output_len() * (self.rows.window + self.cols.window);
        super::pool::for_each_rows(output, plane_out, work, |first, chunk: &mut [f32]| {
            SCRATCH.with_borrow_mut(|scratch| {
                for (k, out) in chunk.chunks_exact_mut(plane_out).enumerate() {
                    let p = first + k;
                    self.run_plane(&input[p * plane_in..(p + 1) * plane_in], out, scratch);
                }
            })
        });
    }

    /// One plane: every input row along the width into `scratch`, then whole rows along the
    /// height into `out`.
    fn run_plane(&self, input: &[f32], out: &mut [f32], scratch: &mut Vec<f32>) {
        let (w_in, w_out) = (self.cols.len_in(), self.cols.len_out());
        let h_in = self.rows.len_in();
        scratch.resize(h_in * w_out, 0.0);
        let cols = &self.cols;
        for (src, dst) in input
            .chunks_exact(w_in)
            .zip(scratch.chunks_exact_mut(w_out))
        {
            // Taps of weight zero are left out (not multiplied: an infinite input stays
            // infinite, as in tract). Two taps (linear, nearest) in one straight loop.
            let tap = |i: u32, w: f32| if w != 0.0 { w * src[i as usize] } else { 0.0 };
            if let Some(d) = &cols.regular {
                d.apply(cols.window, src, dst);
                // The outputs before and after the inner run, gathered.
                let (first, last) = (d.phases * d.inner.start, d.phases * d.inner.end);
                for x in (0..first).chain(last..w_out) {
                    let at = x * cols.window..(x + 1) * cols.window;
                    let (i, w) = (&cols.indices[at.clone()], &cols.weights[at]);
                    dst[x] = i.iter().zip(w).map(|(&i, &w)| tap(i, w)).sum();
                }
            } else if cols.window == 2 {
                let taps = cols
                    .indices
                    .chunks_exact(2)
                    .zip(cols.weights.chunks_exact(2));
                for (d, (i, w)) in dst.iter_mut().zip(taps) {
                    *d = tap(i[0], w[0]) + tap(i[1], w[1]);
                }
            } else {
                let taps = cols
                    .indices
                    .chunks_exact(cols.window)
                    .zip(cols.weights.chunks_exact(cols.window));
                for (d, (i, w)) in dst.iter_mut().zip(taps) {
                    *d = i.iter().zip(w).map(|(&i, &w)| tap(i, w)).sum();
                }
            }
        }
        for (y, dst) in out.chunks_exact_mut(w_out).enumerate() {
            let mut taps = self.rows.taps(y);
            match taps.next() {
                None => dst.fill(0.0),
                Some((i, w)) => {
                    let row = &scratch[i * w_out..(i + 1) * w_out];
                    for (d, s) in dst.iter_mut().zip(row) {
                        *d = w * s;
                    }
                }
            }
            for (i, w) in taps {
                let row = &scratch[i * w_out..(i + 1) * w_out];
                for (d, s) in dst.iter_mut().zip(row) {
                    *d += w * s;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::pool::{with_pool, Pool};
    use crate::kernels::test_support::{assert_close, Rng};
    use std::sync::Arc;

    /// Random taps: `window` indices anywhere in the axis, weights in [-2, 2), some zero.
    fn random_taps(rng: &mut Rng, len_in: usize, len_out: usize, window: usize) -> AxisTaps {
        let n = len_out * window;
        let indices = (0..n).map(|_| rng.below(len_in)).collect();
        let weights = (0..n)
            .map(|_| if rng.below(4) == 0 { 0.0 } else { rng.value() })
            .collect();
        AxisTaps::new(len_in, window, indices, weights).unwrap()
    }

    /// The 2D sum term by term, in f64.
    fn naive(planes: usize, rows: &AxisTaps, cols: &AxisTaps, input: &[f32]) -> Vec<f32> {
        let (h_in, w_in) = (rows.len_in(), cols.len_in());
        let mut out = vec![];
        for p in 0..planes {
            for y in 0..rows.len_out() {
                for x in 0..cols.len_out() {
                    let mut s = 0f64;
                    for ky in 0..rows.window {
                        for kx in 0..cols.window {
                            let iy = rows.indices[y * rows.window + ky] as usize;
                            let ix = cols.indices[x * cols.window + kx] as usize;
                            let w = rows.weights[y * rows.window + ky] as f64
                                * cols.weights[x * cols.window + kx] as f64;
                            s += w * input[(p * h_in + iy) * w_in + ix] as f64;
                        }
                    }
                    out.push(s as f32);
                }
            }
        }
        out
    }

    #[test]
    fn random_plans_match_the_term_by_term_sum_on_one_to_three_threads() {
        let mut rng = Rng(5);
        for _ in 0..60 {
            let planes = 1 + rng.below(6);
            let (h_in, w_in) = (1 + rng.below(20), 1 + rng.below(30));
            let (h_out, w_out) = (1 + rng.below(40), 1 + rng.below(60));
            let window = [1, 2, 2, 4][rng.below(4)];
            let rows = random_taps(&mut rng, h_in, h_out, window);
            let cols = random_taps(&mut rng, w_in, w_out, window);
            let input = rng.values(planes * h_in * w_in);
            let want = naive(planes, &rows, &cols, &input);
            let resize = Resize2d::new(planes, rows, cols);
            for threads in 1..=3 {
                let mut got = vec![f32::NAN; resize.output_len()];
                with_pool(Arc::new(Pool::new(threads)), || {
                    resize.run(&input, &mut got)
                });
                assert_close(&got, &want, 1e-5, format!("{threads} threads"));
            }
        }
    }

    /// ONNX `Resize` linear (window 2) or nearest (window 1), half-pixel, from `len` to
    /// `len * scale`, clamped at the edges as tract plans it.
    fn scaled_taps(len: usize, scale: f32, window: usize) -> AxisTaps {
        let (mut indices, mut weights) = (vec![], vec![]);
        for x in 0..(len as f32 * scale) as usize {
            let at = (x as f32 + 0.5) / scale - 0.5;
            let low = at.floor();
            let frac = at - low;
            let clamp = |i: f32| (i.max(0.0) as usize).min(len - 1);
            if window == 2 {
                indices.extend([clamp(low), clamp(low + 1.0)]);
                weights.extend([1.0 - frac, frac]);
            } else {
                indices.push(clamp((x as f32 / scale).floor()));
                weights.push(1.0);
            }
        }
        AxisTaps::new(len, window, indices, weights).unwrap()
    }

    #[test]
    fn doubled_and_halved_axes_run_as_phases_and_match_the_sum() {
        let mut rng = Rng(9);
        for (len, scale, window) in [
            (13, 2.0, 2),
            (26, 2.0, 2),
            (3, 2.0, 2),
            (40, 2.0, 1),
            (7, 2.0, 1),
            (52, 0.5, 2),
            (26, 0.5, 2),
            (14, 0.5, 1),
        ] {
            let cols = scaled_taps(len, scale, window);
            let inner = cols.regular.clone().expect("a regular axis").inner;
            let groups = if scale > 1.0 { len } else { len / 2 };
            assert!(
                inner.len() >= groups - 2,
                "{len} x {scale}: inner {inner:?}"
            );
            let rows = scaled_taps(len, scale, window);
            let planes = 3;
            let input = rng.values(planes * len * len);
            let want = naive(planes, &rows, &cols, &input);
            let resize = Resize2d::new(planes, rows, cols);
            let mut got = vec![f32::NAN; resize.output_len()];
            resize.run(&input, &mut got);
            assert_close(
                &got,
                &want,
                1e-6,
                format!("{len} x {scale}, window {window}"),
            );
        }
        // Not doubled: three times as long, or random taps.
        for _ in 0..20 {
            assert!(random_taps(&mut rng, 10, 20, 2).regular.is_none());
            assert!(random_taps(&mut rng, 20, 10, 2).regular.is_none());
        }
        let tripled = AxisTaps::new(4, 1, (0..12).map(|x| x / 3).collect(), vec![1.0; 12]);
        assert!(tripled.unwrap().regular.is_none());
    }

    #[test]
    fn bad_plans_are_refused() {
        assert!(AxisTaps::new(4, 2, vec![0, 1, 2], vec![1.0; 3]).is_err());
        assert!(AxisTaps::new(4, 2, vec![0, 4], vec![1.0; 2]).is_err());
        assert!(AxisTaps::new(4, 2, vec![0, 1], vec![1.0]).is_err());
        assert!(AxisTaps::new(4, 0, vec![], vec![]).is_err());
    }
}
