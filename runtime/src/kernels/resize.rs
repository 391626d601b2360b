//! Resampling of the last two axes (height and width) of NCHW planes: ONNX `Resize` in linear,
//! nearest or cubic mode, computed separably.
//!
//! Each axis comes as an [`AxisTaps`]: for every output index, a window of input indices
//! (already clamped into the axis) and their weights, as tract plans them. A plane is resampled
//! in two passes: along the width for every input row (a gather per output column), then along
//! the height as a weighted sum of whole resampled rows (contiguous, so it vectorizes). Planes
//! are spread over the kernels' thread pool ([`super::pool`]).

use std::cell::RefCell;

/// The resampling plan of one axis: `window` taps per output index.
#[derive(Debug, Clone, PartialEq)]
pub struct AxisTaps {
    window: usize,
    /// `[len_out][window]` input indices, each below `len_in`.
    indices: Vec<u32>,
    /// `[len_out][window]` weights.
    weights: Vec<f32>,
    len_in: usize,
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
        Ok(AxisTaps {
            window,
            indices: indices.into_iter().map(|i| i as u32).collect(),
            weights,
            len_in,
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
            if cols.window == 2 {
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

    #[test]
    fn bad_plans_are_refused() {
        assert!(AxisTaps::new(4, 2, vec![0, 1, 2], vec![1.0; 3]).is_err());
        assert!(AxisTaps::new(4, 2, vec![0, 4], vec![1.0; 2]).is_err());
        assert!(AxisTaps::new(4, 2, vec![0, 1], vec![1.0]).is_err());
        assert!(AxisTaps::new(4, 0, vec![], vec![]).is_err());
    }
}
