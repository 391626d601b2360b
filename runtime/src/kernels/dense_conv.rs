//! Dense convolution (every input channel feeds every output channel; batch 1, NCHW) as one
//! matrix product on [`super::gemm`], with bias and activation fused.
//!
//! The product's `B` rows are (input channel, kernel tap) and its columns output pixels. A 1x1
//! convolution with stride 1 and no padding reads its input as it is (row `c` is plane `c`).
//! Any other reads the input's phase planes ([`super::planes`]), where every tap of a channel
//! is a contiguous run: no im2col matrix is built, and the product packs each panel straight
//! from the planes, skipping the columns the phase layout adds, so it writes the output
//! directly.
//!
//! Phase planes larger than [`BAND_BYTES`] (the high-resolution layers of detectors: 6.6 MB for
//! YOLOv8n-640's second layer) are not filled whole: the output rows are cut into bands whose
//! planes fit in L2, and each task of the pool fills one band's planes and runs its product
//! while they are still in cache, instead of writing every plane to memory and reading it back.

use std::cell::RefCell;
use std::ops::Range;

use super::gemm::{
    self, gemm, gemm_row_lanes, gemm_serial, row_lanes_pay, Columns, PackedWeights, RowLaneWeights,
};
use super::planes::{fill_phases, PlaneGeometry};
use super::pool::{self, for_each_rows, SharedMut};
use super::{Activation, Isa};

/// Phase planes up to twice this size are filled whole; larger ones band by band of about this
/// size.
const BAND_BYTES: usize = 256 * 1024;

/// The fewest column panels of the micro-kernel a band fills.
const MIN_BAND_PANELS: usize = 8;

/// A dense convolution ready to run: geometry, packed filters and biases, activation.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseConv {
    /// The spatial geometry (`channels` is the number of input channels).
    geometry: PlaneGeometry,
    out_channels: usize,
    packed: Filters,
    activation: Activation,
    /// Where each `B` row (input channel, then tap) starts in the input or its phase planes.
    offsets: Vec<usize>,
    /// 1x1, stride 1, no padding: the input is `B` as it is.
    direct: bool,
    /// The bands of output rows run one by one (empty: the planes are filled whole).
    bands: Vec<Band>,
}

/// The filters, packed for the product that suits the output's size.
#[derive(Debug, Clone, PartialEq)]
enum Filters {
    /// Vectors along the output pixels ([`gemm`]).
    PixelLanes(PackedWeights),
    /// Vectors along the output channels ([`gemm_row_lanes`]): small maps (7x7, 14x14) whose
    /// pixels would leave a large part of the last panel empty.
    ChannelLanes(RowLaneWeights),
}

impl Filters {
    fn isa(&self) -> Isa {
        match self {
            Filters::PixelLanes(w) => w.isa(),
            Filters::ChannelLanes(w) => w.isa(),
        }
    }

    fn depth(&self) -> usize {
        match self {
            Filters::PixelLanes(w) => w.depth(),
            Filters::ChannelLanes(w) => w.depth(),
        }
    }

    /// `output = act(filters x b + bias + residual)`, spread over the current pool.
    fn product(
        &self,
        b: &Columns,
        residual: Option<&[f32]>,
        output: &mut [f32],
        activation: Activation,
    ) {
        let n = b.len();
        match self {
            Filters::PixelLanes(w) => gemm(w, b, residual, output, n, activation),
            Filters::ChannelLanes(w) => gemm_row_lanes(w, b, residual, output, n, activation),
        }
    }
}

/// Which way [`DenseConv`] lays its product's vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lanes {
    /// Whichever wastes fewer lanes on the layer's shape ([`row_lanes_pay`]).
    Auto,
    /// Along output pixels.
    Pixels,
    /// Along output channels (not for maps large enough to be cut into bands).
    Channels,
}

/// A band of output rows: the same convolution over the input rows it reads, with the padding
/// the whole input has above or below it where the band reaches the border.
#[derive(Debug, Clone, PartialEq)]
struct Band {
    /// Output rows.
    out_rows: Range<usize>,
    /// The first input row it reads.
    in_first: usize,
    /// Its geometry (`in_h` counts the rows it reads).
    geometry: PlaneGeometry,
    /// Where each `B` row starts in its phase planes.
    offsets: Vec<usize>,
}

/// Where each `B` row (input channel, then tap) starts in the phase planes of `g`.
fn plane_offsets(g: &PlaneGeometry) -> Vec<usize> {
    let (plane, tap_offsets) = (g.scratch_len(), g.tap_offsets());
    (0..g.channels)
        .flat_map(|c| tap_offsets.iter().map(move |t| c * plane + t))
        .collect()
}

/// The bands `g`'s output rows are cut into so that each band's phase planes take about
/// `band_bytes`, and each band's columns fill at least [`MIN_BAND_PANELS`] panels of `nr`
/// columns (a band of a few short rows would leave most of its last panel empty: 3-row bands
/// of a 13-pixel-wide map made NanoDet-m's 256-channel layer 40 % slower); none when the
/// whole planes take less than twice `band_bytes`, when that leaves a single band, or when a
/// band would read no input row (padding larger than the kernel).
fn bands(g: &PlaneGeometry, band_bytes: usize, nr: usize) -> Vec<Band> {
    let floats = |rows: usize| g.channels * g.stride_h * g.stride_w * rows * g.phase_cols();
    if 4 * floats(g.phase_rows()) <= 2 * band_bytes {
        return Vec::new();
    }
    let extra = (g.kernel_h - 1) / g.stride_h;
    let fewest = (band_bytes / (4 * floats(1)))
        .saturating_sub(extra)
        .max((MIN_BAND_PANELS * nr).div_ceil(g.out_w));
    if fewest >= g.out_h {
        return Vec::new();
    }
    let rows = band_rows(g.out_h, g.out_w, fewest, nr);
    let pad_right = ((g.out_w - 1) * g.stride_w + g.kernel_w).saturating_sub(g.in_w + g.pad_left);
    let mut bands = Vec::new();
    let mut first = 0;
    while first < g.out_h {
        let end = (first + rows).min(g.out_h);
        // Padded input rows `top..bottom` (negative or past `in_h`: padding).
        let top = (first * g.stride_h) as isize - g.pad_top as isize;
        let bottom = ((end - 1) * g.stride_h + g.kernel_h) as isize - g.pad_top as isize;
        let (from, to) = (top.max(0), bottom.min(g.in_h as isize));
        let geometry = (to > from)
            .then(|| {
                PlaneGeometry::new(
                    g.channels,
                    ((to - from) as usize, g.in_w),
                    (g.kernel_h, g.kernel_w),
                    (g.stride_h, g.stride_w),
                    ((from - top) as usize, g.pad_left),
                    ((bottom - to) as usize, pad_right),
                )
            })
            .flatten()
            .filter(|b| (b.out_h, b.out_w) == (end - first, g.out_w));
        let Some(geometry) = geometry else {
            return Vec::new();
        };
        bands.push(Band {
            out_rows: first..end,
            in_first: from as usize,
            offsets: plane_offsets(&geometry),
            geometry,
        });
        first = end;
    }
    bands
}

/// Rows per band, from `fewest` to twice as many (planes up to twice the band size still sit
/// in L2), that leave the fewest empty columns in the bands' last panels of `nr` columns, the
/// fewest rows among equals (the planes closest to the band size). A band's partial last panel
/// costs a whole panel's multiply-adds: five rows of NanoDet-m's 52-pixel-wide stride-2 layer
/// (260 columns, 9 panels for 8.1) waste a tenth of them, eight (416, 13 panels) none.
fn band_rows(out_h: usize, out_w: usize, fewest: usize, nr: usize) -> usize {
    let empty = |rows: usize| {
        let (whole, rest) = (out_h / rows, out_h % rows);
        let gap = |r: usize| (r * out_w).div_ceil(nr) * nr - r * out_w;
        whole * gap(rows) + if rest > 0 { gap(rest) } else { 0 }
    };
    (fewest..=(2 * fewest).min(out_h - 1))
        .min_by_key(|&rows| (empty(rows), rows))
        .unwrap_or(fewest)
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
        Self::with_lanes(
            isa,
            geometry,
            out_channels,
            weights,
            bias,
            activation,
            Lanes::Auto,
        )
    }

    /// As [`Self::new`], the product's vectors laid along `lanes`; an error for channel lanes
    /// on a map large enough to be cut into bands.
    pub fn with_lanes(
        isa: Isa,
        geometry: PlaneGeometry,
        out_channels: usize,
        weights: &[f32],
        bias: &[f32],
        activation: Activation,
        lanes: Lanes,
    ) -> Result<Self, String> {
        let g = &geometry;
        let taps = g.kernel_h * g.kernel_w;
        let depth = g.channels * taps;
        let direct = taps == 1
            && (g.stride_h, g.stride_w) == (1, 1)
            && (g.pad_top, g.pad_left) == (0, 0)
            && (g.out_h, g.out_w) == (g.in_h, g.in_w);
        let (offsets, bands) = if direct {
            (
                (0..g.channels).map(|c| c * g.in_h * g.in_w).collect(),
                Vec::new(),
            )
        } else {
            (plane_offsets(g), bands(g, BAND_BYTES, gemm::tile(isa).1))
        };
        let pixels = g.out_h * g.out_w;
        let channel_lanes = match lanes {
            Lanes::Auto => bands.is_empty() && row_lanes_pay(isa, out_channels, depth, pixels),
            Lanes::Pixels => false,
            Lanes::Channels if bands.is_empty() => true,
            Lanes::Channels => return Err(format!("channel lanes on a map of {pixels} pixels")),
        };
        let packed = if channel_lanes {
            Filters::ChannelLanes(RowLaneWeights::new(
                isa,
                weights,
                bias,
                out_channels,
                depth,
            )?)
        } else {
            Filters::PixelLanes(PackedWeights::new(isa, weights, bias, out_channels, depth)?)
        };
        Ok(DenseConv {
            geometry,
            out_channels,
            packed,
            activation,
            offsets,
            direct,
            bands,
        })
    }

    /// The same convolution cut into bands of about `band_bytes` of phase planes (tests reach
    /// the banded path on small shapes with it).
    #[cfg(test)]
    fn with_band_bytes(mut self, band_bytes: usize) -> Self {
        if !self.direct {
            self.bands = bands(&self.geometry, band_bytes, 1);
        }
        self
    }

    /// The geometry (`channels` counts input channels).
    pub fn geometry(&self) -> &PlaneGeometry {
        &self.geometry
    }

    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.out_channels
    }

    /// The filters (`[out][channel][kh][kw]`) and biases it was built with (any per-channel
    /// steps folded in).
    pub fn filters(&self) -> (Vec<f32>, Vec<f32>) {
        match &self.packed {
            Filters::PixelLanes(w) => w.unpacked(),
            Filters::ChannelLanes(w) => w.unpacked(),
        }
    }

    /// The way the product's vectors are laid ([`Lanes::Pixels`] or [`Lanes::Channels`]).
    pub fn lanes(&self) -> Lanes {
        match self.packed {
            Filters::PixelLanes(_) => Lanes::Pixels,
            Filters::ChannelLanes(_) => Lanes::Channels,
        }
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
        self.run_with_residual(input, None, output)
    }

    /// [`Self::run`] with `residual` (shaped as the output) added before the activation: a
    /// skip connection (ResNet's, EfficientNet's) summed while each tile is in registers.
    ///
    /// Panics when a buffer length does not match the geometry.
    pub fn run_with_residual(&self, input: &[f32], residual: Option<&[f32]>, output: &mut [f32]) {
        self.run_parts(&[input], residual, output)
    }

    /// [`Self::run_with_residual`] on an input given as `parts`, whole planes each, whose
    /// channels one after the other are the input's: the tensors a concatenation would join,
    /// read where they are.
    ///
    /// Panics when the parts do not hold the input's planes or a buffer length does not match
    /// the geometry.
    pub fn run_parts(&self, parts: &[&[f32]], residual: Option<&[f32]>, output: &mut [f32]) {
        let g = &self.geometry;
        let plane_in = g.in_h * g.in_w;
        assert!(
            parts
                .iter()
                .all(|p| p.len().is_multiple_of(plane_in.max(1))),
            "parts of whole planes"
        );
        let total: usize = parts.iter().map(|p| p.len()).sum();
        assert_eq!(total, g.input_len(), "input length");
        assert_eq!(output.len(), self.output_len(), "output length");
        if let Some(r) = residual {
            assert_eq!(r.len(), output.len(), "residual length");
        }
        let channel = |c: usize| channel_plane(parts, plane_in, c);
        if self.direct {
            if let [input] = parts {
                let b = Columns::new(input, &self.offsets, plane_in).expect("planes in input");
                self.packed.product(&b, residual, output, self.activation);
            } else {
                let rows: Vec<&[f32]> = (0..g.channels).map(channel).collect();
                let b = Columns::from_rows(&rows, plane_in).expect("whole planes");
                self.packed.product(&b, residual, output, self.activation);
            }
            return;
        }
        if !self.bands.is_empty() {
            return self.run_bands(&channel, residual, output);
        }
        // Taken out of the thread-local for the run: a kernel pool may run work on this thread.
        let mut phases = PHASES.take();
        let plane = g.scratch_len();
        phases.resize(plane * g.channels, 0.0);
        for_each_rows(&mut phases, plane, g.input_len(), |first, chunk| {
            for (k, planes) in chunk.chunks_exact_mut(plane).enumerate() {
                fill_phases(self.isa(), g, channel(first + k), planes);
            }
        });
        let n = g.out_h * g.out_w;
        let b = Columns::in_runs(&phases, &self.offsets, n, g.out_w, g.phase_cols())
            .expect("taps inside the planes");
        self.packed.product(&b, residual, output, self.activation);
        PHASES.set(phases);
    }

    /// [`Self::run`] band by band, one band per task of the pool; `channel(c)` is input plane
    /// `c`.
    fn run_bands<'a>(
        &self,
        channel: &(dyn Fn(usize) -> &'a [f32] + Sync),
        residual: Option<&[f32]>,
        output: &mut [f32],
    ) {
        let g = &self.geometry;
        let plane_out = g.out_h * g.out_w;
        let Filters::PixelLanes(packed) = &self.packed else {
            unreachable!("channel lanes are never cut into bands")
        };
        let out = SharedMut::new(output);
        pool::current().run(self.bands.len(), &|i| {
            let band = &self.bands[i];
            let bg = &band.geometry;
            let mut phases = PHASES.take();
            let plane = bg.scratch_len();
            phases.resize(plane * g.channels, 0.0);
            let rows = band.in_first * g.in_w..(band.in_first + bg.in_h) * g.in_w;
            for (c, planes) in phases.chunks_exact_mut(plane).enumerate() {
                fill_phases(self.isa(), bg, &channel(c)[rows.clone()], planes);
            }
            let n = bg.out_h * g.out_w;
            let b = Columns::in_runs(&phases, &band.offsets, n, g.out_w, bg.phase_cols())
                .expect("taps inside the band's planes");
            // SAFETY: the band's output rows of every channel, `out_rows.start * out_w +
            // c * plane_out + (0..n)`, lie inside `output` (its length was checked) and belong to
            // this task alone: the bands cut the rows into disjoint ranges.
            unsafe {
                let first = band.out_rows.start * g.out_w;
                let c = SharedMut::at(out, first);
                let residual = residual.map(|r| r[first..].as_ptr());
                gemm_serial(packed, &b, residual, c, plane_out, self.activation);
            }
            PHASES.set(phases);
        });
    }
}

/// Plane `c` of the input whose channels `parts` hold one after the other (`plane` values each).
fn channel_plane<'a>(parts: &[&'a [f32]], plane: usize, mut c: usize) -> &'a [f32] {
    for part in parts {
        let planes = part.len() / plane.max(1);
        if c < planes {
            return &part[c * plane..(c + 1) * plane];
        }
        c -= planes;
    }
    panic!("channel past the parts")
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
        let residual = rng.values(want.len());
        let linear = dense_conv_naive(&g, out_channels, &input, &weights, &bias, Activation::None);
        let want_residual: Vec<f32> = linear
            .iter()
            .zip(&residual)
            .map(|(y, r)| act.apply_one(y + r))
            .collect();
        for isa in Isa::all_supported() {
            let conv = |lanes| {
                DenseConv::with_lanes(isa, g, out_channels, &weights, &bias, act, lanes).unwrap()
            };
            let whole = conv(Lanes::Pixels);
            // Bands of one to a few rows (or none, where the planes are smaller).
            let banded = whole
                .clone()
                .with_band_bytes(4 * g.channels * 8 * g.phase_cols());
            let with_bands = !whole.bands.is_empty();
            let mut convs = vec![(whole, "whole"), (banded, "in bands")];
            // Channel lanes for every map not cut into bands.
            let channels =
                DenseConv::with_lanes(isa, g, out_channels, &weights, &bias, act, Lanes::Channels);
            match channels {
                Ok(channels) => convs.push((channels, "by channel lanes")),
                Err(e) => assert!(with_bands, "{e}"),
            }
            for (conv, how) in convs {
                for threads in [1, 2, 3] {
                    let mut got = vec![f32::NAN; conv.output_len()];
                    with_pool(Arc::new(Pool::new(threads)), || conv.run(&input, &mut got));
                    let what =
                        format!("{isa:?} {threads} threads {how} {g:?} x {out_channels} {act:?}");
                    assert_close(&got, &want, 1e-4, what.clone());
                    // A residual added before the activation.
                    let mut got = vec![f32::NAN; conv.output_len()];
                    with_pool(Arc::new(Pool::new(threads)), || {
                        conv.run_with_residual(&input, Some(&residual), &mut got)
                    });
                    assert_close(&got, &want_residual, 1e-4, format!("{what} with residual"));
                    // The input in parts of whole planes, each in its own allocation (the
                    // tensors a concatenation would join).
                    let plane = g.in_h * g.in_w;
                    let cuts = [g.channels / 3, g.channels / 2, g.channels];
                    let mut parts: Vec<Vec<f32>> = vec![];
                    let mut from = 0;
                    for cut in cuts.into_iter().filter(|&c| c > 0) {
                        if cut > from {
                            parts.push(input[from * plane..cut * plane].to_vec());
                            from = cut;
                        }
                    }
                    let parts: Vec<&[f32]> = parts.iter().map(Vec::as_slice).collect();
                    let mut got = vec![f32::NAN; conv.output_len()];
                    with_pool(Arc::new(Pool::new(threads)), || {
                        conv.run_parts(&parts, Some(&residual), &mut got)
                    });
                    let what = format!("{what} in {} parts", parts.len());
                    assert_close(&got, &want_residual, 1e-4, what);
                }
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
    fn bands_cover_every_output_row_once_and_read_inside_the_input() {
        for (h, k, s, pad) in [(40, 3, 2, 1), (41, 5, 1, 2), (33, 7, 2, 3), (12, 1, 2, 0)] {
            let g = PlaneGeometry::new(4, (h, 9), (k, k), (s, s), (pad, pad), (pad, pad)).unwrap();
            for band_bytes in [1, 4 * 4 * 4 * 2 * g.phase_cols(), 1 << 30] {
                let bands = bands(&g, band_bytes, 1);
                if band_bytes == 1 << 30 {
                    assert!(bands.is_empty());
                    continue;
                }
                assert!(bands.len() > 1, "{g:?} in bands of {band_bytes} bytes");
                let mut next = 0;
                for b in &bands {
                    assert_eq!(b.out_rows.start, next);
                    assert_eq!(b.geometry.out_h, b.out_rows.len());
                    assert!(b.in_first + b.geometry.in_h <= g.in_h);
                    next = b.out_rows.end;
                }
                assert_eq!(next, g.out_h);
            }
        }
    }

    #[test]
    fn band_rows_leave_the_fewest_empty_columns() {
        // NanoDet-m's 64 -> 64 stride-2 layer: 52 columns a row, at least 5 rows a band.
        assert_eq!(band_rows(52, 52, 5, 32), 8);
        // 26 columns, at least 10 rows: 11 + 11 + 4 rows leave 28 columns empty, as 13 + 13
        // do (10 + 10 + 6: 60).
        assert_eq!(band_rows(26, 26, 10, 32), 11);
        // Rows of whole panels: the fewest rows.
        assert_eq!(band_rows(160, 160, 5, 32), 5);
        // Never all the rows in one band.
        assert_eq!(band_rows(6, 7, 5, 32), 5);
    }

    #[test]
    fn bands_fill_whole_panels_or_are_not_cut() {
        // NanoDet-m's 256-channel 3x3 s2 layer on a 13x13 output: too few columns to cut.
        let g = PlaneGeometry::new(256, (28, 28), (3, 3), (2, 2), (0, 0), (0, 0)).unwrap();
        assert!(bands(&g, BAND_BYTES, 32).is_empty());
        // 26 columns a row: bands of at least 10 rows (8 panels of 32).
        let g = PlaneGeometry::new(128, (54, 54), (3, 3), (2, 2), (0, 0), (0, 0)).unwrap();
        let cut = bands(&g, BAND_BYTES, 32);
        assert!(cut.len() >= 2);
        assert!(cut[..cut.len() - 1]
            .iter()
            .all(|b| b.out_rows.len() * 26 >= 8 * 32));
    }

    #[test]
    fn a_detector_layer_large_enough_to_band_matches_the_naive_convolution() {
        // YOLOv8n's second layer (16 -> 32, 3x3 stride 2) on a 96x160 map: 4 bands at the
        // default size.
        let g = PlaneGeometry::new(16, (96, 160), (3, 3), (2, 2), (1, 1), (1, 1)).unwrap();
        let conv = DenseConv::new(
            Isa::Portable,
            g,
            4,
            &[0.0; 4 * 144],
            &[0.0; 4],
            Activation::None,
        )
        .unwrap();
        assert!(conv.bands.len() >= 2, "{} bands", conv.bands.len());
        check(g, 32, Activation::Silu, &mut Rng(5));
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
