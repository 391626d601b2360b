//! Dense convolution (every input channel feeds every output channel; batch 1, NCHW) as one
//! matrix product on [`super::gemm`], with bias and activation fused.
//!
//! The product's `B` rows are (input channel, kernel tap) and its columns output pixels. A 1x1
//! convolution with stride 1 and no padding reads its input as it is (row `c` is plane `c`).
//! Any other reads the input's phase planes ([`super::planes`]), where every tap of a channel
//! is a contiguous run: no im2col matrix is built, and the product packs each panel straight
//! from the planes, skipping the columns the phase layout adds, so it writes the output
//! directly.

use std::cell::RefCell;

use super::gemm::{gemm, Columns, PackedWeights};
use super::planes::{fill_phases, PlaneGeometry};
use super::pool::for_each_rows;
use super::{Activation, Isa};

/// A dense convolution ready to run: geometry, packed filters and biases, activation.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseConv {
    /// The spatial geometry (`channels` is the number of input channels).
    geometry: PlaneGeometry,
    out_channels: usize,
    packed: PackedWeights,
    activation: Activation,
    /// Where each `B` row (input channel, then tap) starts in the input or its phase planes.
    offsets: Vec<usize>,
    /// 1x1, stride 1, no padding: the input is `B` as it is.
    direct: bool,
}

thread_local! {
    /// The calling thread's phase planes, reused across runs.
    static PHASES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl DenseConv {
    /// Packs `weights` (`[out_channels][channels][kernel_h][kernel_w]`) and `bias`
    /// (`[out_channels]`) for `isa`.
    pub fn new(
        isa: Isa,
        geometry: PlaneGeometry,
        out_channels: usize,
        weights: &[f32],
        bias: &[f32],
        activation: Activation,
    ) -> Result<Self, String> {
        let g = &geometry;
        let taps = g.kernel_h * g.kernel_w;
        let depth = g.channels * taps;
        let packed = PackedWeights::new(isa, weights, bias, out_channels, depth)?;
        let direct = taps == 1
            && (g.stride_h, g.stride_w) == (1, 1)
            && (g.pad_top, g.pad_left) == (0, 0)
            && (g.out_h, g.out_w) == (g.in_h, g.in_w);
        let offsets = if direct {
            (0..g.channels).map(|c| c * g.in_h * g.in_w).collect()
        } else {
            let (plane, tap_offsets) = (g.scratch_len(), g.tap_offsets());
            (0..g.channels)
                .flat_map(|c| tap_offsets.iter().map(move |t| c * plane + t))
                .collect()
        };
        Ok(DenseConv {
            geometry,
            out_channels,
            packed,
            activation,
            offsets,
            direct,
        })
    }

    /// The geometry (`channels` counts input channels).
    pub fn geometry(&self) -> &PlaneGeometry {
        &self.geometry
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The instruction set the filters are packed for.
    pub fn isa(&self) -> Isa {
        self.packed.isa()
    }

    /// Output floats (`out_channels * out_h * out_w`).
    pub fn output_len(&self) -> usize {
        self.out_channels * self.geometry.out_h * self.geometry.out_w
    }

    /// Multiply-adds of one run.
    pub fn macs(&self) -> u64 {
        (self.output_len() * self.packed.depth()) as u64
    }

    /// Runs on `input` (`[channels][in_h][in_w]`) into `output`
    /// (`[out_channels][out_h][out_w]`), spread over tract's current thread pool.
    ///
    /// Panics when a buffer length does not match the geometry.
    pub fn run(&self, input: &[f32], output: &mut [f32]) {
        let g = &self.geometry;
        assert_eq!(input.len(), g.input_len(), "input length");
        assert_eq!(output.len(), self.output_len(), "output length");
        if self.direct {
            let b = Columns::new(input, &self.offsets, g.in_h * g.in_w).expect("planes in input");
            gemm(&self.packed, &b, output, b.len(), self.activation);
            return;
        }
        // Taken out of the thread-local for the run: a kernel pool may run work on this thread.
        let mut phases = PHASES.take();
        let plane = g.scratch_len();
        phases.resize(plane * g.channels, 0.0);
        let plane_in = g.in_h * g.in_w;
        for_each_rows(&mut phases, plane, g.input_len(), |first, chunk| {
            for (k, planes) in chunk.chunks_exact_mut(plane).enumerate() {
                let c = first + k;
                fill_phases(
                    self.isa(),
                    g,
                    &input[c * plane_in..(c + 1) * plane_in],
                    planes,
                );
            }
        });
        let n = g.out_h * g.out_w;
        let b = Columns::in_runs(&phases, &self.offsets, n, g.out_w, g.phase_cols())
            .expect("taps inside the planes");
        gemm(&self.packed, &b, output, n, self.activation);
        PHASES.set(phases);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::pool::{with_pool, Pool};
    use crate::kernels::reference::dense_conv_naive;
    use crate::kernels::test_support::{assert_close, Rng, ACTIVATIONS};
    use std::sync::Arc;

    fn check(g: PlaneGeometry, out_channels: usize, act: Activation, rng: &mut Rng) {
        let taps = g.kernel_h * g.kernel_w;
        let input = rng.values(g.input_len());
        let weights = rng.values(out_channels * g.channels * taps);
        let bias = rng.values(out_channels);
        let want = dense_conv_naive(&g, out_channels, &input, &weights, &bias, act);
        for isa in Isa::all_supported() {
            let conv = DenseConv::new(isa, g, out_channels, &weights, &bias, act).unwrap();
            for threads in [1, 2, 3] {
                let mut got = vec![f32::NAN; conv.output_len()];
                with_pool(Arc::new(Pool::new(threads)), || conv.run(&input, &mut got));
                let what = format!("{isa:?} {threads} threads {g:?} x {out_channels} {act:?}");
                assert_close(&got, &want, 1e-4, what);
            }
        }
    }

    #[test]
    fn random_shapes_strides_pads_and_activations_match_the_naive_convolution() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut tried = 0;
        while tried < 120 {
            let k = [1, 1, 3, 3, 5, 7][rng.below(6)];
            let kw = if rng.below(5) == 0 {
                [1, 3][rng.below(2)]
            } else {
                k
            };
            let s = 1 + rng.below(2);
            let (h, w) = (1 + rng.below(20), 1 + rng.below(30));
            let pads = (rng.below(k), rng.below(kw));
            let pads_end = (rng.below(k), rng.below(kw));
            let channels = 1 + rng.below(40);
            let out_channels = 1 + rng.below(40);
            let Some(g) = PlaneGeometry::new(channels, (h, w), (k, kw), (s, s), pads, pads_end)
            else {
                continue;
            };
            check(
                g,
                out_channels,
                ACTIVATIONS[rng.below(ACTIVATIONS.len())],
                &mut rng,
            );
            tried += 1;
        }
    }

    #[test]
    fn layer_shapes_of_real_detectors_match_the_naive_convolution() {
        let mut rng = Rng(17);
        // NanoDet-m's stem (3x3 s2 over RGB), a ShuffleNet 1x1 and a 3x3 over many channels.
        for (c, hw, k, s, pad, co) in [
            (3, 64, 3, 2, 1, 24),
            (58, 26, 1, 1, 0, 58),
            (96, 13, 3, 1, 1, 96),
            (300, 9, 1, 1, 0, 13),
        ] {
            let g =
                PlaneGeometry::new(c, (hw, hw), (k, k), (s, s), (pad, pad), (pad, pad)).unwrap();
            check(g, co, Activation::LeakyRelu { alpha: 0.1 }, &mut rng);
        }
    }

    #[test]
    fn wrong_weights_are_refused() {
        let g = PlaneGeometry::new(2, (4, 4), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
        let isa = Isa::Portable;
        assert!(DenseConv::new(isa, g, 3, &[0.0; 53], &[0.0; 3], Activation::None).is_err());
        assert!(DenseConv::new(isa, g, 3, &[0.0; 54], &[0.0; 2], Activation::None).is_err());
        assert!(DenseConv::new(isa, g, 3, &[0.0; 54], &[0.0; 3], Activation::None).is_ok());
    }
}
