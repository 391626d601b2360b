//! 3x3 stride-1 convolution by Winograd's minimal filtering F(4x4, 3x3) (batch 1, NCHW), with
//! bias and activation fused.
//!
//! Each 4x4 block of output pixels (a *tile*) comes from a 6x6 window of the input. Both the
//! window and the filter are taken into a 6x6 transform domain (`V = Bᵀ d B`, `U = G g Gᵀ`),
//! where the convolution is an element-wise product summed over input channels, and the sum is
//! taken back to 4x4 pixels (`Y = Aᵀ M A`). Summed over channels, the 36 element-wise
//! products are 36 matrix products `M[ξ] = U[ξ] V[ξ]` (output x input channels times input
//! channels x tiles) on [`super::gemm`]'s micro-kernel: 36 multiply-adds per tile and channel
//! pair where the direct product takes 144, a quarter.
//!
//! The filters are transformed and packed once at load. At run time the tiles go in blocks of
//! the micro-kernel's width (`NR`); for each block, one task transforms its windows straight
//! into packed `B` panels, runs the 36 products into a scratch that stays in L2, and takes each
//! output tile back with the bias and activation on the way out. The horizontal stride of 4
//! between windows is taken out once per input row by splitting it into four column phases,
//! so every transform step runs on contiguous vectors of tiles.
//!
//! The transform points are 0, ±1, ±2 (Lavin and Gray); the result differs from the direct
//! sum by f32 roundings of the larger intermediate terms: below 2e-5 of the layer's largest
//! pre-activation sum (tested against the naive convolution), so a pixel whose sum cancels
//! out can be off by more than its own value's 1e-5.

use std::cell::RefCell;
use std::ops::Range;

use super::gemm::{copy_short, panel_product, tile, PackedWeights};
use super::planes::PlaneGeometry;
use super::pool::{self, SharedMut};
use super::{Activation, Isa};

/// Side of the transformed window.
const ALPHA: usize = 6;
/// Transformed points per tile.
const POINTS: usize = ALPHA * ALPHA;
/// Output pixels per tile side.
const TILE: usize = 4;
/// The widest micro-kernel tile (`NR`), the most tiles a block holds. The transforms always
/// compute the micro-kernel's `NR` tiles (fixed-length loops the compiler vectorizes) and keep
/// the first `n`.
const MAX_NR: usize = 32;
/// Values per column phase of the split input rows: a block's tiles plus one, rounded up to
/// whole 16-lane vectors.
const PITCH: usize = 48;

/// One column phase of a split row.
type Phase = [f32; PITCH];
/// Six rows (window rows or point rows), each split into four column phases.
type SplitRows = [[Phase; 4]; ALPHA];

/// `G`: the filter transform (3 taps to 6 points).
const G: [[f64; 3]; ALPHA] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// A 3x3 stride-1 dense convolution ready to run by F(4x4, 3x3): geometry, transformed and
/// packed filters, biases, activation.
#[derive(Debug, Clone, PartialEq)]
pub struct WinogradConv {
    geometry: PlaneGeometry,
    out_channels: usize,
    isa: Isa,
    /// `U[ξ]` for the 36 points: `out_channels x channels`, packed for the micro-kernel.
    filters: Vec<PackedWeights>,
    bias: Vec<f32>,
    activation: Activation,
}

/// One thread's buffers for a block of tiles.
struct Scratch {
    /// Transformed windows, `[ξ][channel][NR]` (36 packed `B` panels).
    windows: Vec<f32>,
    /// The products, `[ξ][padded out channel][NR]`.
    products: Vec<f32>,
    /// Six input rows split into four column phases (column `4 k + c` at `[row][c][k]`).
    phases: Box<SplitRows>,
    /// The same after the vertical transform, `[point row][phase][k]`.
    rows: Box<SplitRows>,
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch {
            windows: Vec::new(),
            products: Vec::new(),
            phases: Box::new([[[0.0; PITCH]; 4]; ALPHA]),
            rows: Box::new([[[0.0; PITCH]; 4]; ALPHA]),
        }
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl WinogradConv {
    /// Transforms and packs `weights` (`[out_channels][channels][3][3]`) for `isa`; `None`
    /// when `geometry` is not a 3x3 stride-1 convolution.
    pub fn new(
        isa: Isa,
        geometry: PlaneGeometry,
        out_channels: usize,
        weights: &[f32],
        bias: &[f32],
        activation: Activation,
    ) -> Result<Self, String> {
        let g = &geometry;
        if (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) != (3, 3, 1, 1) {
            return Err(format!(
                "Winograd F(4x4, 3x3) takes 3x3 stride-1 convolutions, not {}x{} stride {}x{}",
                g.kernel_h, g.kernel_w, g.stride_h, g.stride_w
            ));
        }
        let depth = g.channels;
        if weights.len() != out_channels * depth * 9 {
            return Err(format!(
                "{} weights for {out_channels} x {depth} x 3 x 3",
                weights.len()
            ));
        }
        if bias.len() != out_channels {
            return Err(format!("{} biases for {out_channels} channels", bias.len()));
        }
        let mut points = vec![vec![0f32; out_channels * depth]; POINTS];
        for (pair, filter) in weights.chunks_exact(9).enumerate() {
            for (xi, u) in transform_filter(filter).into_iter().enumerate() {
                points[xi][pair] = u as f32;
            }
        }
        let zeros = vec![0f32; out_channels];
        let filters = points
            .iter()
            .map(|u| PackedWeights::new(isa, u, &zeros, out_channels, depth))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(WinogradConv {
            geometry,
            out_channels,
            isa,
            filters,
            bias: bias.to_vec(),
            activation,
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
        self.isa
    }

    /// Output floats (`out_channels * out_h * out_w`).
    pub fn output_len(&self) -> usize {
        self.out_channels * self.geometry.out_h * self.geometry.out_w
    }

    /// Tiles per output row and column.
    fn tiles(&self) -> (usize, usize) {
        let g = &self.geometry;
        (g.out_h.div_ceil(TILE), g.out_w.div_ceil(TILE))
    }

    /// Runs on `input` (`[channels][in_h][in_w]`) into `output`
    /// (`[out_channels][out_h][out_w]`), blocks of tiles spread over the kernel pool.
    ///
    /// Panics when a buffer length does not match the geometry.
    pub fn run(&self, input: &[f32], output: &mut [f32]) {
        let g = &self.geometry;
        assert_eq!(input.len(), g.input_len(), "input length");
        assert_eq!(output.len(), self.output_len(), "output length");
        assert!(
            self.isa.is_supported(),
            "{} kernels on this CPU",
            self.isa.name()
        );
        let (tiles_h, tiles_w) = self.tiles();
        let (mr, nr) = tile(self.isa);
        let blocks = (tiles_h * tiles_w).div_ceil(nr);
        let pool = pool::current();
        // Fewer blocks than threads: each block's output channels are cut into parts too, and
        // every part transforms the block's windows itself (the transform is the smaller
        // share of the work, and the parts then share nothing).
        let m_panels = self.out_channels.div_ceil(mr);
        let parts = pool.threads().div_ceil(blocks).min(m_panels);
        let out = SharedMut::new(output);
        let task = |t: usize| {
            let (b, part) = (t / parts, t % parts);
            let panels = (m_panels * part / parts)..(m_panels * (part + 1) / parts);
            SCRATCH.with_borrow_mut(|scratch| {
                // SAFETY: the tiles of block `b` in the channels of `panels` are this task's
                // alone; the output holds every pixel of the geometry (checked above).
                unsafe { self.run_block(b, panels, input, out, scratch) }
            })
        };
        let macs = self.output_len() * g.channels * 9;
        if macs < pool::MIN_PARALLEL_WORK {
            (0..blocks * parts).for_each(task);
        } else {
            pool.run(blocks * parts, &task);
        }
    }

    /// Block `b`'s output channels in row panels `panels`, compiled for the instruction set.
    ///
    /// # Safety
    /// No other thread may write those pixels of `out`, which must hold the whole output.
    unsafe fn run_block(
        &self,
        b: usize,
        panels: Range<usize>,
        input: &[f32],
        out: SharedMut,
        s: &mut Scratch,
    ) {
        match self.isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => x86::block_avx512(self, b, panels, input, out, s),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => x86::block_avx2(self, b, panels, input, out, s),
            _ => self.block(b, panels, input, out, s),
        }
    }

    /// The block's tiles as segments of one tile row: `(tile row, first tile column, tiles,
    /// first position in the block)`.
    fn segments(&self, b: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
        let (tiles_h, tiles_w) = self.tiles();
        let nr = tile(self.isa).1;
        let (first, end) = (b * nr, ((b + 1) * nr).min(tiles_h * tiles_w));
        let mut at = first;
        std::iter::from_fn(move || {
            (at < end).then(|| {
                let (ty, tx) = (at / tiles_w, at % tiles_w);
                let n = (tiles_w - tx).min(end - at);
                let seg = (ty, tx, n, at - first);
                at += n;
                seg
            })
        })
    }

    /// Block `b`: transform its windows, run the 36 products for the row panels `panels`,
    /// write those output channels' tiles.
    ///
    /// # Safety
    /// As [`Self::run_block`].
    #[inline(always)]
    unsafe fn block(
        &self,
        b: usize,
        panels: Range<usize>,
        input: &[f32],
        out: SharedMut,
        s: &mut Scratch,
    ) {
        // The transforms run over exactly the micro-kernel's width.
        match tile(self.isa).1 {
            32 => self.block_of::<32>(b, panels, input, out, s),
            16 => self.block_of::<16>(b, panels, input, out, s),
            _ => self.block_of::<8>(b, panels, input, out, s),
        }
    }

    /// [`Self::block`] with transforms over `W` tiles (the micro-kernel's `NR`).
    ///
    /// # Safety
    /// As [`Self::run_block`].
    #[inline(always)]
    unsafe fn block_of<const W: usize>(
        &self,
        b: usize,
        panels: Range<usize>,
        input: &[f32],
        out: SharedMut,
        s: &mut Scratch,
    ) {
        let g = &self.geometry;
        let (mr, nr) = tile(self.isa);
        assert!(
            nr <= W && W <= MAX_NR,
            "transforms over {W} tiles for NR = {nr}"
        );
        let (depth, rows_out) = (g.channels, panels.len() * mr);
        let channels = (panels.start * mr)..(panels.end * mr).min(self.out_channels);
        grow(&mut s.windows, POINTS * depth * nr);
        // The output transform reads `MAX_NR` products from any tile position.
        grow(&mut s.products, POINTS * rows_out * nr + MAX_NR);
        // Columns of the last block past the last tile keep stale values: their products are
        // never read.
        let plane_in = g.in_h * g.in_w;
        for (ty, tx, n, at) in self.segments(b) {
            for c in 0..depth {
                let plane = &input[c * plane_in..(c + 1) * plane_in];
                split_window_rows(g, plane, (ty, tx, n), &mut s.phases);
                transform_rows::<W>(&s.phases, &mut s.rows);
                let dst = &mut s.windows[c * nr + at..];
                transform_columns::<W>(n, &s.rows, dst, depth * nr);
            }
        }
        for (xi, filters) in self.filters.iter().enumerate() {
            panel_product(
                filters,
                panels.clone(),
                &s.windows[xi * depth * nr..(xi + 1) * depth * nr],
                &mut s.products[xi * rows_out * nr..(xi + 1) * rows_out * nr],
            );
        }
        let plane_out = g.out_h * g.out_w;
        for (ty, tx, n, at) in self.segments(b) {
            for o in channels.clone() {
                let products = &s.products[(o - channels.start) * nr + at..];
                let plane = out.get().add(o * plane_out);
                self.write_tiles::<W>(o, products, rows_out * nr, (ty, tx, n), plane);
            }
        }
    }

    /// Takes `n` tiles of output channel `o` back to pixels (`Y = Aᵀ M A`), adds the bias,
    /// applies the activation and writes them into `plane` (the channel's pixels).
    ///
    /// # Safety
    /// `plane` must point to the channel's `out_h x out_w` pixels, and no other thread may
    /// write these tiles.
    #[inline(always)]
    unsafe fn write_tiles<const W: usize>(
        &self,
        o: usize,
        products: &[f32],
        pitch: usize,
        (ty, tx, n): (usize, usize, usize),
        plane: *mut f32,
    ) {
        let g = &self.geometry;
        let bias = self.bias[o];
        let m = |xi: usize| -> &[f32; W] {
            products[xi * pitch..xi * pitch + W]
                .try_into()
                .expect("a row of products")
        };
        // Down the point rows first: s[i][j] for output row i and point column j.
        let mut s = [[[0f32; W]; ALPHA]; TILE];
        // `j` picks a column in each of the four output rows.
        #[allow(clippy::needless_range_loop)]
        for j in 0..ALPHA {
            let (m0, m1, m2, m3, m4, m5) =
                (m(j), m(6 + j), m(12 + j), m(18 + j), m(24 + j), m(30 + j));
            for k in 0..W {
                let (a, b) = (m1[k] + m2[k], m1[k] - m2[k]);
                let (c, d) = (m3[k] + m4[k], m3[k] - m4[k]);
                s[0][j][k] = m0[k] + a + c;
                s[1][j][k] = b + 2.0 * d;
                s[2][j][k] = a + 4.0 * c;
                s[3][j][k] = b + 8.0 * d + m5[k];
            }
        }
        // Then across, one output row at a time, with the bias; the four pixels of each tile
        // interleave into the row.
        let x0 = TILE * tx;
        let width = (TILE * n).min(g.out_w - x0);
        let mut row = [0f32; TILE * MAX_NR];
        for (i, r) in s.iter().enumerate() {
            let y = TILE * ty + i;
            if y >= g.out_h {
                break;
            }
            for (k, px) in row[..TILE * W].chunks_exact_mut(TILE).enumerate() {
                let (a, b) = (r[1][k] + r[2][k], r[1][k] - r[2][k]);
                let (c, d) = (r[3][k] + r[4][k], r[3][k] - r[4][k]);
                px[0] = r[0][k] + a + c + bias;
                px[1] = b + 2.0 * d + bias;
                px[2] = a + 4.0 * c + bias;
                px[3] = b + 8.0 * d + r[5][k] + bias;
            }
            let dst = std::slice::from_raw_parts_mut(plane.add(y * g.out_w + x0), width);
            self.activation.apply_into_for(self.isa, &row[..width], dst);
        }
    }
}

/// Copies the six input rows under tile row `ty`, tiles `tx..tx + n` (with the zero padding
/// around the plane) into `phases`, column `4 k + c` of the window at `[row][c][k]`.
#[inline(always)]
fn split_window_rows(
    g: &PlaneGeometry,
    plane: &[f32],
    (ty, tx, n): (usize, usize, usize),
    phases: &mut SplitRows,
) {
    let x_start = (TILE * tx) as isize - g.pad_left as isize;
    let width = TILE * (n + 1);
    for (r, dst) in phases.iter_mut().enumerate() {
        let y = (TILE * ty + r) as isize - g.pad_top as isize;
        if y < 0 || y >= g.in_h as isize {
            *dst = [[0.0; PITCH]; 4];
            continue;
        }
        let row = &plane[y as usize * g.in_w..(y as usize + 1) * g.in_w];
        if x_start >= 0 && x_start as usize + width <= g.in_w {
            let src = &row[x_start as usize..x_start as usize + width];
            let [p0, p1, p2, p3] = dst;
            for (k, q) in src.chunks_exact(4).enumerate() {
                p0[k] = q[0];
                p1[k] = q[1];
                p2[k] = q[2];
                p3[k] = q[3];
            }
        } else {
            for (c, phase) in dst.iter_mut().enumerate() {
                for (k, v) in phase[..=n].iter_mut().enumerate() {
                    let x = x_start + (TILE * k + c) as isize;
                    *v = if x >= 0 && x < g.in_w as isize {
                        row[x as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// `Bᵀ d` down the six rows of `phases`, for every phase, into `rows`.
#[inline(always)]
fn transform_rows<const W: usize>(phases: &SplitRows, rows: &mut SplitRows) {
    for c in 0..4 {
        let d = |r: usize| &phases[r][c];
        let (d0, d1, d2, d3, d4, d5) = (d(0), d(1), d(2), d(3), d(4), d(5));
        for k in 0..=W {
            let (v0, v1, v2, v3, v4, v5) = (d0[k], d1[k], d2[k], d3[k], d4[k], d5[k]);
            rows[0][c][k] = 4.0 * v0 - 5.0 * v2 + v4;
            rows[1][c][k] = (v3 + v4) - 4.0 * (v1 + v2);
            rows[2][c][k] = (v4 - v3) + 4.0 * (v1 - v2);
            rows[3][c][k] = (v4 - v2) + 2.0 * (v3 - v1);
            rows[4][c][k] = (v4 - v2) - 2.0 * (v3 - v1);
            rows[5][c][k] = 4.0 * v1 - 5.0 * v3 + v5;
        }
    }
}

/// `(Bᵀ d) B` across the columns of `rows` for `n` tiles: point `(i, j)` of tile `k` goes to
/// `dst[(6 i + j) * pitch + k]`.
#[inline(always)]
fn transform_columns<const W: usize>(n: usize, rows: &SplitRows, dst: &mut [f32], pitch: usize) {
    for (i, r) in rows.iter().enumerate() {
        let e = |c: usize, shift: usize| -> &[f32; W] {
            r[c][shift..shift + W].try_into().expect("a phase")
        };
        let (e0, e1, e2, e3, e4, e5) = (e(0, 0), e(1, 0), e(2, 0), e(3, 0), e(0, 1), e(1, 1));
        let mut v = [[0f32; W]; ALPHA];
        for k in 0..W {
            let (a0, a1, a2, a3, a4, a5) = (e0[k], e1[k], e2[k], e3[k], e4[k], e5[k]);
            v[0][k] = 4.0 * a0 - 5.0 * a2 + a4;
            v[1][k] = (a3 + a4) - 4.0 * (a1 + a2);
            v[2][k] = (a4 - a3) + 4.0 * (a1 - a2);
            v[3][k] = (a4 - a2) + 2.0 * (a3 - a1);
            v[4][k] = (a4 - a2) - 2.0 * (a3 - a1);
            v[5][k] = 4.0 * a1 - 5.0 * a3 + a5;
        }
        for (j, point) in v.iter().enumerate() {
            let at = (ALPHA * i + j) * pitch;
            if n == W {
                // A full block: a fixed-length copy the compiler keeps in registers.
                let to: &mut [f32; W] = (&mut dst[at..at + W]).try_into().expect("n");
                *to = *point;
            } else {
                // A partial block (a segment of a tile row): inline steps, no call to `memcpy`
                // for a few dozen bytes.
                copy_short(&mut dst[at..at + n], &point[..n]);
            }
        }
    }
}

/// [`WinogradConv::block`] compiled for x86-64's vector extensions.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Range, Scratch, SharedMut, WinogradConv};

    /// # Safety
    /// The CPU must support AVX-512F; otherwise as [`WinogradConv::block`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn block_avx512(
        conv: &WinogradConv,
        b: usize,
        panels: Range<usize>,
        input: &[f32],
        out: SharedMut,
        s: &mut Scratch,
    ) {
        conv.block(b, panels, input, out, s)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; otherwise as [`WinogradConv::block`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2(
        conv: &WinogradConv,
        b: usize,
        panels: Range<usize>,
        input: &[f32],
        out: SharedMut,
        s: &mut Scratch,
    ) {
        conv.block(b, panels, input, out, s)
    }
}

/// `U = G g Gᵀ` for one 3x3 filter, in f64, as 36 points row-major.
fn transform_filter(filter: &[f32]) -> [f64; POINTS] {
    let mut gg = [[0f64; 3]; ALPHA];
    for (i, row) in G.iter().enumerate() {
        for c in 0..3 {
            gg[i][c] = (0..3).map(|r| row[r] * filter[r * 3 + c] as f64).sum();
        }
    }
    let mut u = [0f64; POINTS];
    for i in 0..ALPHA {
        for j in 0..ALPHA {
            u[i * ALPHA + j] = (0..3).map(|c| gg[i][c] * G[j][c]).sum();
        }
    }
    u
}

/// Grows `buf` to at least `len` values.
fn grow(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::pool::{with_pool, Pool};
    use crate::kernels::reference::dense_conv_naive;
    use crate::kernels::test_support::{Rng, ACTIVATIONS};
    use std::sync::Arc;

    /// Panics when a value of `got` is further from `want` than `tolerance` times `scale`:
    /// the transforms round sums of several products, so a pixel whose sum cancels out keeps
    /// an error of the scale of the layer's sums, not of its own value.
    fn assert_close_to_scale(got: &[f32], want: &[f32], scale: f32, tolerance: f32, what: String) {
        assert_eq!(got.len(), want.len(), "{what}: lengths");
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= tolerance * scale,
                "{what} at {i}: {a} vs {b} (scale {scale})"
            );
        }
    }

    fn check(g: PlaneGeometry, out_channels: usize, act: Activation, rng: &mut Rng) {
        let input = rng.values(g.input_len());
        let weights = rng.values(out_channels * g.channels * 9);
        let bias = rng.values(out_channels);
        let want = dense_conv_naive(&g, out_channels, &input, &weights, &bias, act);
        // The scale of the sums: the largest output before the activation (at least 1).
        let sums = dense_conv_naive(&g, out_channels, &input, &weights, &bias, Activation::None);
        let scale = sums.iter().fold(1f32, |m, v| m.max(v.abs()));
        for isa in Isa::all_supported() {
            let conv = WinogradConv::new(isa, g, out_channels, &weights, &bias, act).unwrap();
            for threads in [1, 2, 3] {
                let mut got = vec![f32::NAN; conv.output_len()];
                with_pool(Arc::new(Pool::new(threads)), || conv.run(&input, &mut got));
                let what = format!("{isa:?} {threads} threads {g:?} x {out_channels} {act:?}");
                assert_close_to_scale(&got, &want, scale, 2e-5, what);
            }
        }
    }

    #[test]
    fn random_shapes_pads_and_activations_match_the_naive_convolution() {
        let mut rng = Rng(0x5EED_0F43);
        let mut tried = 0;
        while tried < 100 {
            let (h, w) = (1 + rng.below(30), 1 + rng.below(45));
            let pads = (rng.below(3), rng.below(3));
            let pads_end = (rng.below(3), rng.below(3));
            let channels = 1 + rng.below(40);
            let out_channels = 1 + rng.below(40);
            let Some(g) = PlaneGeometry::new(channels, (h, w), (3, 3), (1, 1), pads, pads_end)
            else {
                continue;
            };
            let act = ACTIVATIONS[rng.below(ACTIVATIONS.len())];
            check(g, out_channels, act, &mut rng);
            tried += 1;
        }
    }

    #[test]
    fn layer_shapes_of_real_detectors_match_the_naive_convolution() {
        let mut rng = Rng(23);
        // YOLOv8n's C2f bottleneck at 160x160 (cut to 40 rows), its head at 80x80, a ResNet50
        // 3x3 and one deeper than a block of the product's K (300 > 256 channels).
        for (c, (h, w), co) in [
            (16, (40, 160), 16),
            (64, (20, 80), 80),
            (64, (56, 56), 64),
            (300, (9, 13), 26),
        ] {
            let g = PlaneGeometry::new(c, (h, w), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
            check(g, co, Activation::Silu, &mut rng);
        }
    }

    #[test]
    fn other_kernels_and_bad_weights_are_refused() {
        let isa = Isa::Portable;
        let act = Activation::None;
        let g = PlaneGeometry::new(2, (8, 8), (3, 3), (2, 2), (1, 1), (1, 1)).unwrap();
        assert!(WinogradConv::new(isa, g, 3, &[0.0; 54], &[0.0; 3], act).is_err());
        let g = PlaneGeometry::new(2, (8, 8), (5, 5), (1, 1), (2, 2), (2, 2)).unwrap();
        assert!(WinogradConv::new(isa, g, 3, &[0.0; 150], &[0.0; 3], act).is_err());
        let g = PlaneGeometry::new(2, (8, 8), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
        assert!(WinogradConv::new(isa, g, 3, &[0.0; 53], &[0.0; 3], act).is_err());
        assert!(WinogradConv::new(isa, g, 3, &[0.0; 54], &[0.0; 2], act).is_err());
        assert!(WinogradConv::new(isa, g, 3, &[0.0; 54], &[0.0; 3], act).is_ok());
    }
}
