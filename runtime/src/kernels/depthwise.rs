//! Depthwise convolution (one filter per channel, batch 1, NCHW) with bias and activation fused.
//!
//! Each channel's input is copied into zero-padded *phase planes*: for strides `sh x sw`,
//! plane `(ry, rx)` holds the padded pixels at rows `ry, ry + sh, ..` and columns `rx, rx + sw,
//! ..`. In that layout every kernel tap of every output pixel reads a contiguous run at a fixed
//! offset, so the whole channel is one [`taps_fma`] call over `out_h` rows of `phase_cols`
//! values (the last `phase_cols - out_w` of each row are computed and dropped). Small maps (7x7,
//! 14x14) thus run on full vectors, strided convolutions need no gathers, and borders need no
//! branches. On the row path ([`DepthwisePath::Rows`]) a large map is filled and computed in
//! bands of output rows, so that its phase planes stay in L1 between the two. Channels are
//! spread over the kernels' thread pool ([`super::pool`]).

use std::cell::RefCell;

use super::aligned_buf::AlignedBuf;
use super::depthwise_blocked::{run_blocked, run_on_blocks, BlockedFilters};
use super::depthwise_rows;
use super::planes::{fill_phases, fill_phases_pitched, PlaneGeometry};
use super::taps::taps_fma;
use super::{Activation, Isa};

/// A depthwise convolution ready to run: geometry, per-channel filters and biases, activation.
#[derive(Debug, Clone, PartialEq)]
pub struct DepthwiseConv {
    geometry: PlaneGeometry,
    /// `[channels][kernel_h][kernel_w]`.
    weights: Vec<f32>,
    /// `[channels]`.
    bias: Vec<f32>,
    activation: Activation,
    offsets: Vec<usize>,
    /// The filters interleaved for the channel-blocked path ([`super::depthwise_blocked`]).
    blocked: BlockedFilters,
}

/// Which of the two layouts computes a depthwise convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthwisePath {
    /// Each channel's phase planes, vectors along the rows, one tap at a time.
    Planes,
    /// Each channel's phase planes with rows on vector boundaries, several output rows at a
    /// time ([`super::depthwise_rows`]; 3x3 and 5x5 kernels, stride 1 and 2, AVX-512).
    Rows,
    /// Blocks of channels interleaved, vectors across the channels.
    Blocked,
}

/// Output rows narrower than this run on the channel-blocked layout unless the row kernel
/// takes them. Measured one thread, AVX-512 (`benches/benches/kernels.rs`, `vigia_planes`
/// against `vigia_blocked`): EfficientNet-Lite0's 5x5 layers at 7x7 133 us against 235 on
/// planes, its 5x5 stride-2 layer to 7x7 122 against 249, its 14x14 layers about even
/// (122-283 against 133-296), and every map of 28x28 and up 1.1-4x slower blocked (the copies
/// in and out of the interleaved block cost more than the planes' wasted lanes).
const BLOCKED_BELOW_WIDTH: usize = 16;

/// Output rows at least this wide run on the row kernel where it has one, at stride 1 and
/// at larger strides: it fills at least half of each vector, and below these widths the
/// written-out AVX-512 kernel of the blocked layout is ahead. Measured one thread, AVX-512
/// (`vigia_rows` against `vigia_blocked`, 2026-12-06): stride 1, 480 channels 3x3 at 14x14 45
/// us against 41 blocked, 672 channels 5x5 at 14x14 122 against 87, 240 channels 5x5 at 28x28
/// 130 against 135; stride 2, 240 channels 3x3 to 14x14 37 against 54, 672 channels 5x5 to
/// 7x7 99 against 42.
const ROWS_FROM_WIDTH: [usize; 2] = [16, 8];

/// Bytes of phase planes a band of output rows fills at most on the row path: half of a
/// 48 KiB L1 data cache, the other half for the input rows and the outputs.
const BAND_BYTES: usize = 24 << 10;

/// Output rows per band on the row path: as many as keep the band's phase planes within
/// [`BAND_BYTES`], in whole blocks of six rows (the kernel's blocks at stride 1, two at stride
/// 2); the whole map where it fits.
fn band_rows(g: &PlaneGeometry, pitch: usize) -> usize {
    let row_bytes = g.stride_h * g.stride_w * pitch * std::mem::size_of::<f32>();
    let rows = (BAND_BYTES / row_bytes).saturating_sub((g.kernel_h - 1) / g.stride_h);
    if rows >= g.out_h {
        return g.out_h;
    }
    let rows = (rows / 6 * 6).max(6);
    // A last band that starts in the bottom padding (wider than the kernel) reads no input:
    // such maps run whole.
    let last = (g.out_h - 1) / rows * rows;
    if g.band(last, g.out_h - last).is_none() {
        return g.out_h;
    }
    rows
}

thread_local! {
    /// Per-thread phase planes and accumulator rows, reused across channels and runs.
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
    /// Per-thread phase planes of the row kernel (cache-line aligned).
    static ALIGNED_PHASES: RefCell<AlignedBuf> = RefCell::new(AlignedBuf::default());
}

impl DepthwiseConv {
    /// Checks that `weights` holds `channels * kernel_h * kernel_w` values and `bias` one per
    /// channel.
    pub fn new(
        geometry: PlaneGeometry,
        weights: Vec<f32>,
        bias: Vec<f32>,
        activation: Activation,
    ) -> Result<Self, String> {
        let g = &geometry;
        let want = g.channels * g.kernel_h * g.kernel_w;
        if weights.len() != want {
            return Err(format!("{} weights for {want} taps", weights.len()));
        }
        if bias.len() != g.channels {
            return Err(format!("{} biases for {} channels", bias.len(), g.channels));
        }
        let offsets = geometry.tap_offsets();
        let blocked = BlockedFilters::new(g.channels, g.kernel_h * g.kernel_w, &weights, &bias);
        Ok(DepthwiseConv {
            geometry,
            weights,
            bias,
            activation,
            offsets,
            blocked,
        })
    }

    /// The geometry.
    pub fn geometry(&self) -> &PlaneGeometry {
        &self.geometry
    }

    /// The fused activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Runs on `input` (`[channels][in_h][in_w]`) into `output` (`[channels][out_h][out_w]`)
    /// with the kernels of `isa`, channels spread over the current kernel pool.
    ///
    /// Panics when a buffer length does not match the geometry.
    pub fn run(&self, isa: Isa, input: &[f32], output: &mut [f32]) {
        self.run_on(self.path(isa), isa, input, output)
    }

    /// The layout [`Self::run`] takes with `isa`.
    pub fn path(&self, isa: Isa) -> DepthwisePath {
        let width = self.geometry.out_w;
        let rows_from = ROWS_FROM_WIDTH[usize::from(self.geometry.stride_w > 1)];
        if width >= rows_from && depthwise_rows::supports(isa, &self.geometry) {
            DepthwisePath::Rows
        } else if width < BLOCKED_BELOW_WIDTH {
            DepthwisePath::Blocked
        } else {
            DepthwisePath::Planes
        }
    }

    /// Whether `path` can compute this convolution with `isa` ([`DepthwisePath::Rows`] has
    /// kernels for some shapes and instruction sets only).
    pub fn has_path(&self, path: DepthwisePath, isa: Isa) -> bool {
        path != DepthwisePath::Rows || depthwise_rows::supports(isa, &self.geometry)
    }

    /// [`Self::run`] on the given layout (benchmarks and tests compare them).
    ///
    /// Panics where [`Self::has_path`] does not hold.
    pub fn run_on(&self, path: DepthwisePath, isa: Isa, input: &[f32], output: &mut [f32]) {
        if path == DepthwisePath::Blocked {
            let (g, act) = (&self.geometry, self.activation);
            return run_blocked(isa, g, &self.blocked, act, input, output);
        }
        let g = &self.geometry;
        assert_eq!(input.len(), g.input_len(), "input length");
        assert_eq!(output.len(), g.output_len(), "output length");
        let (plane_in, plane_out) = (g.in_h * g.in_w, g.out_h * g.out_w);
        let work = g.output_len() * g.kernel_h * g.kernel_w;
        super::pool::for_each_rows(output, plane_out, work, |first, chunk: &mut [f32]| {
            let planes = &input[first * plane_in..];
            self.run_planes(path, isa, first, planes, chunk);
        });
    }

    /// Runs channels `first..` on the calling thread alone, as many as `output` holds planes:
    /// `input` holds their input planes (`[channels][in_h][in_w]`, from channel `first`),
    /// `output` their output planes. For kernels that split their work over the pool
    /// themselves, and run a depthwise convolution over a few channels at a time.
    ///
    /// Panics on [`DepthwisePath::Blocked`] (whole blocks of channels), or when the buffers do
    /// not hold whole planes of the same channels.
    pub fn run_planes(
        &self,
        path: DepthwisePath,
        isa: Isa,
        first: usize,
        input: &[f32],
        output: &mut [f32],
    ) {
        assert!(path != DepthwisePath::Blocked, "channel by channel");
        let g = &self.geometry;
        let (plane_in, plane_out) = (g.in_h * g.in_w, g.out_h * g.out_w);
        let channels = output.len() / plane_out;
        assert!(output.len() == channels * plane_out, "whole output planes");
        assert!(first + channels <= g.channels, "channels past the last");
        assert!(input.len() >= channels * plane_in, "input planes");
        for (k, out_plane) in output.chunks_exact_mut(plane_out).enumerate() {
            let channel = &input[k * plane_in..(k + 1) * plane_in];
            if path == DepthwisePath::Rows {
                self.run_channel_rows(isa, first + k, channel, out_plane);
            } else {
                self.run_channel(isa, first + k, channel, out_plane);
            }
        }
    }

    /// Runs on channel-blocked maps (`[channels / 16][h][w][16]`, `channels` a multiple of
    /// 16) with the kernels of `isa`, blocks spread over the current kernel pool
    /// ([`super::depthwise_blocked::run_on_blocks`]).
    ///
    /// Panics when the channels are not whole blocks or a buffer length does not match the
    /// geometry.
    pub fn run_on_blocks(&self, isa: Isa, input: &[f32], output: &mut [f32]) {
        let (g, act) = (&self.geometry, self.activation);
        run_on_blocks(isa, g, &self.blocked, act, input, output)
    }

    /// One channel on [`DepthwisePath::Rows`], in bands of output rows whose phase planes fit
    /// in L1 ([`band_rows`]).
    fn run_channel_rows(&self, isa: Isa, c: usize, channel: &[f32], out_plane: &mut [f32]) {
        let g = &self.geometry;
        let taps = g.kernel_h * g.kernel_w;
        let pitch = depthwise_rows::row_pitch(isa, g);
        let (weights, bias) = (&self.weights[c * taps..(c + 1) * taps], self.bias[c]);
        let band_rows = band_rows(g, pitch);
        ALIGNED_PHASES.with_borrow_mut(|phases| {
            for first in (0..g.out_h).step_by(band_rows) {
                let rows = band_rows.min(g.out_h - first);
                let (band, skip) = g.band(first, rows).expect("bands checked by band_rows");
                let len = g.stride_h * g.stride_w * band.phase_rows() * pitch;
                phases.ensure(len);
                let phases = &mut phases.as_mut_slice()[..len];
                fill_phases_pitched(isa, &band, pitch, &channel[skip * g.in_w..], phases);
                let out = &mut out_plane[first * g.out_w..(first + rows) * g.out_w];
                depthwise_rows::run_channel(
                    isa,
                    &band,
                    phases,
                    weights,
                    bias,
                    self.activation,
                    out,
                );
            }
        });
    }

    /// One channel on [`DepthwisePath::Planes`].
    fn run_channel(&self, isa: Isa, c: usize, channel: &[f32], out_plane: &mut [f32]) {
        let g = &self.geometry;
        let taps = g.kernel_h * g.kernel_w;
        let pc = g.phase_cols();
        SCRATCH.with_borrow_mut(|(phases, acc)| {
            let len = g.scratch_len();
            if phases.len() < len {
                phases.resize(len, 0.0);
            }
            fill_phases(isa, g, channel, phases);
            let n = g.out_h * pc;
            if acc.len() < n {
                acc.resize(n, 0.0);
            }
            let acc = &mut acc[..n];
            taps_fma(
                isa,
                &phases[..len],
                &self.offsets,
                &self.weights[c * taps..(c + 1) * taps],
                self.bias[c],
                acc,
            );
            // The activation on the way out, in one pass with the copy.
            for (row, out_row) in acc
                .chunks_exact(pc)
                .zip(out_plane.chunks_exact_mut(g.out_w))
            {
                self.activation
                    .apply_into_for(isa, &row[..g.out_w], out_row);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::blocked_layout::{from_blocked, to_blocked};
    use crate::kernels::reference::depthwise_naive;
    use crate::kernels::test_support::{assert_close, Rng, ACTIVATIONS};

    fn check(g: PlaneGeometry, act: Activation, rng: &mut Rng) {
        let input = rng.values(g.input_len());
        let weights = rng.values(g.channels * g.kernel_h * g.kernel_w);
        let bias = rng.values(g.channels);
        let want = depthwise_naive(&g, &input, &weights, &bias, act);
        let conv = DepthwiseConv::new(g, weights, bias, act).unwrap();
        for isa in Isa::all_supported() {
            for path in [
                DepthwisePath::Planes,
                DepthwisePath::Rows,
                DepthwisePath::Blocked,
            ] {
                if !conv.has_path(path, isa) {
                    continue;
                }
                let mut got = vec![f32::NAN; g.output_len()];
                conv.run_on(path, isa, &input, &mut got);
                assert_close(&got, &want, 1e-5, format!("{isa:?} {path:?} {g:?} {act:?}"));
            }
            if g.channels.is_multiple_of(16) {
                let (pixels_in, pixels_out) = (g.in_h * g.in_w, g.out_h * g.out_w);
                let mut blocked_in = vec![f32::NAN; g.input_len()];
                to_blocked(isa, &input, pixels_in, &mut blocked_in);
                let mut blocked_out = vec![f32::NAN; g.output_len()];
                conv.run_on_blocks(isa, &blocked_in, &mut blocked_out);
                let mut got = vec![f32::NAN; g.output_len()];
                from_blocked(isa, &blocked_out, pixels_out, &mut got);
                assert_close(
                    &got,
                    &want,
                    1e-5,
                    format!("{isa:?} blocked maps {g:?} {act:?}"),
                );
            }
        }
    }

    #[test]
    fn channel_blocked_maps_match_the_naive_convolution() {
        let mut rng = Rng(17);
        let mut tried = 0;
        while tried < 80 {
            let k = [1, 3, 3, 5, 5, 7][rng.below(6)];
            let s = 1 + rng.below(2);
            let (h, w) = (1 + rng.below(30), 1 + rng.below(30));
            let pads = (rng.below(k), rng.below(k));
            let pads_end = (rng.below(k), rng.below(k));
            let channels = 16 * (1 + rng.below(3));
            let Some(g) = PlaneGeometry::new(channels, (h, w), (k, k), (s, s), pads, pads_end)
            else {
                continue;
            };
            check(g, ACTIVATIONS[rng.below(ACTIVATIONS.len())], &mut rng);
            tried += 1;
        }
        // Several threads, each its share of the blocks.
        let g = PlaneGeometry::new(64, (28, 28), (5, 5), (2, 2), (2, 2), (2, 2)).unwrap();
        let pool = std::sync::Arc::new(crate::kernels::pool::Pool::new(2));
        crate::kernels::pool::with_pool(pool, || check(g, Activation::RELU, &mut rng));
    }

    #[test]
    fn random_shapes_strides_pads_and_activations_match_the_naive_convolution() {
        let mut rng = Rng(7);
        let mut tried = 0;
        while tried < 300 {
            let k = [1, 3, 3, 5, 5, 7][rng.below(6)];
            let kw = if rng.below(5) == 0 {
                [1, 3, 5][rng.below(3)]
            } else {
                k
            };
            let s = 1 + rng.below(3);
            let sw = if rng.below(5) == 0 {
                1 + rng.below(3)
            } else {
                s
            };
            let (h, w) = (1 + rng.below(24), 1 + rng.below(40));
            let pads = (rng.below(k), rng.below(kw));
            let pads_end = (rng.below(k), rng.below(kw));
            let channels = 1 + rng.below(40);
            let Some(g) = PlaneGeometry::new(channels, (h, w), (k, kw), (s, sw), pads, pads_end)
            else {
                continue;
            };
            check(g, ACTIVATIONS[rng.below(ACTIVATIONS.len())], &mut rng);
            tried += 1;
        }
    }

    #[test]
    fn the_row_kernel_matches_the_naive_convolution_on_every_row_block_and_column_tail() {
        let mut rng = Rng(5);
        for (k, s) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            for h in [1, 2, 5, 6, 7, 11, 12, 13, 25] {
                for w in [1, 15, 16, 17, 33, 58] {
                    let p = k / 2;
                    let g = PlaneGeometry::new(3, (h, w), (k, k), (s, s), (p, p), (p, p)).unwrap();
                    for act in ACTIVATIONS {
                        check(g, act, &mut rng);
                    }
                }
            }
        }
    }

    #[test]
    fn maps_larger_than_a_band_match_the_naive_convolution() {
        let mut rng = Rng(13);
        for (k, s) in [(3, 1), (3, 2), (5, 1), (5, 2)] {
            for (h, w) in [(70, 200), (41, 131)] {
                let p = k / 2;
                let g = PlaneGeometry::new(2, (h, w), (k, k), (s, s), (p, p), (p, p)).unwrap();
                let pitch = (g.out_w.div_ceil(16) + 1) * 16;
                assert!(band_rows(&g, pitch) < g.out_h, "{g:?} runs in bands");
                check(g, ACTIVATIONS[rng.below(ACTIVATIONS.len())], &mut rng);
            }
        }
        // Bottom padding wider than the kernel: the last band would read no input row.
        let g = PlaneGeometry::new(2, (4, 200), (3, 3), (1, 1), (1, 1), (30, 1)).unwrap();
        assert_eq!(band_rows(&g, 224), g.out_h);
        check(g, Activation::RELU, &mut rng);
    }

    #[test]
    fn odd_inputs_run_or_are_refused() {
        let mut rng = Rng(11);
        // 1-pixel-wide and 1-pixel-tall maps, padding larger than the map.
        for (h, w) in [(1, 1), (1, 9), (9, 1), (2, 2)] {
            let g = PlaneGeometry::new(3, (h, w), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
            check(g, Activation::None, &mut rng);
            let g = PlaneGeometry::new(3, (h, w), (5, 5), (2, 2), (2, 2), (2, 2)).unwrap();
            check(g, Activation::RELU, &mut rng);
        }
        // Windows that see only padding produce the bias.
        let g = PlaneGeometry::new(2, (1, 1), (3, 3), (1, 1), (4, 4), (4, 4)).unwrap();
        check(g, Activation::None, &mut rng);
        // No output, a kernel too large: refused.
        assert!(PlaneGeometry::new(1, (2, 2), (3, 3), (1, 1), (0, 0), (0, 0)).is_none());
        assert!(PlaneGeometry::new(1, (64, 64), (13, 13), (1, 1), (6, 6), (6, 6)).is_none());
        assert!(PlaneGeometry::new(0, (8, 8), (3, 3), (1, 1), (1, 1), (1, 1)).is_none());
    }

    #[test]
    fn wrong_buffer_sizes_are_refused() {
        let g = PlaneGeometry::new(2, (4, 4), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
        assert!(DepthwiseConv::new(g, vec![0.0; 17], vec![0.0; 2], Activation::None).is_err());
        assert!(DepthwiseConv::new(g, vec![0.0; 18], vec![0.0; 3], Activation::None).is_err());
    }
}
