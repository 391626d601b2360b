//! Dense convolution over channel-blocked maps (`[C / 16][H][W][16]`: the 16 channels of a
//! pixel in one vector), with bias, a residual and the activation fused, on AVX-512.
//!
//! In this layout a convolution needs no packing of its input: a tile of `OB` blocks of 16
//! output channels at `P` pixels of one output row keeps its `OB x P` sums in registers, and
//! for each input channel of each tap multiplies `OB` filter vectors by each pixel's input
//! value, broadcast straight from the map. The input blocks a tile reads are short sequential
//! runs (the same pixels of each block), which the hardware prefetchers follow, where the
//! planar product ([`super::gemm`]) gathers one value a row from planes a whole map apart.
//! Between such convolutions the maps stay blocked ([`super::blocked_layout`] converts at the
//! ends of a chain).
//!
//! Filters are packed once, per group of up to four output blocks: `[input block][tap][input
//! channel][output block][16]`. A task streams groups and input blocks in pieces of about
//! [`WEIGHT_BLOCK_BYTES`] (held in L2) over its pixels, a band of [`BAND_PIXELS`] at a time,
//! and each band runs against one group's filters [`L1_WEIGHT_BYTES`] at a time (held in L1),
//! so that the tiles stream only their inputs; the sums of every piece after the first are
//! added to what the one before stored.

#[cfg(target_arch = "x86_64")]
mod x86_64;

use std::cell::Cell;
use std::ops::Range;

pub use super::blocked_layout::BLOCK;

use super::activation::InRegisters;
use super::aligned_buf::AlignedBuf;
use super::gemm::{part, prefetch};
use super::planes::PlaneGeometry;
use super::pool::{self, SharedMut, MIN_PARALLEL_WORK};
use super::{Activation, Isa};

/// Output blocks per group (the most a tile computes at once).
const GROUP_BLOCKS: usize = 4;
/// Pixels per tile (`4 x 6` sums, four filter vectors and a broadcast in 32 registers).
const TILE_PIXELS: usize = 6;
/// The largest kernel side taken.
pub const MAX_BLOCKED_KERNEL: usize = 7;
/// Taps of the largest kernel.
const MAX_TAPS: usize = MAX_BLOCKED_KERNEL * MAX_BLOCKED_KERNEL;
/// Bytes of filters a task runs over its pixels at a time (in L2 beside the tiles' inputs).
const WEIGHT_BLOCK_BYTES: usize = 512 * 1024;
/// Bytes of one group's filters the tiles of a band run against before the next input blocks
/// (in L1, so that the tiles stream only their inputs).
const L1_WEIGHT_BYTES: usize = 24 * 1024;
/// Output pixels per band: the band's inputs and outputs stay in L2 while its tiles run
/// against each L1 piece of the filters in turn.
const BAND_PIXELS: usize = 192;

/// What a tile's sums start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// The biases (first piece of filters, no residual).
    Bias,
    /// The biases plus the residual (first piece).
    Residual,
    /// What the piece before stored.
    Output,
}

/// One call of the micro-kernel: `OB` output blocks at `P` pixels of one output row (read by
/// the x86-64 kernel alone: no other target runs blocked convolutions).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Tile {
    /// The input at its first block read: each tap's offset is added to it.
    input: *const f32,
    /// Floats between input blocks.
    in_block: usize,
    /// Floats between the inputs of two neighbouring pixels of the tile (stride x 16).
    pixel_step: usize,
    /// `(input offset of the first pixel, tap index)` for each tap inside the map.
    taps: *const (isize, usize),
    n_taps: usize,
    /// Input blocks read.
    blocks: usize,
    /// The group's filters at its first block read.
    weights: *const f32,
    /// Floats of the group's filters per input block.
    w_block: usize,
    /// The biases of the first output block.
    bias: *const f32,
    /// The residual at the tile (read when `start` is [`Start::Residual`]).
    residual: *const f32,
    /// The output at the tile's first block and pixel.
    out: *mut f32,
    /// Floats between output blocks.
    out_block: usize,
    start: Start,
    /// The activation applied before the store (last piece only).
    post: Option<InRegisters>,
}

/// A dense convolution over blocked maps: geometry, packed filters, biases and activation.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockedConv {
    /// The spatial geometry (`channels` counts input channels).
    geometry: PlaneGeometry,
    /// The geometry the tiles walk: a 1x1 stride-1 convolution without padding as one row of
    /// all the map's pixels, so that tiles run across row ends.
    walk: PlaneGeometry,
    out_channels: usize,
    weights: AlignedBuf,
    /// Where each group's filters start in `weights`.
    group_starts: Vec<usize>,
    bias: Vec<f32>,
    activation: Activation,
}

impl BlockedConv {
    /// Whether this convolution can run blocked on `isa`: AVX-512, whole blocks of input and
    /// output channels, kernels up to [`MAX_BLOCKED_KERNEL`].
    pub fn supports(isa: Isa, g: &PlaneGeometry, out_channels: usize) -> bool {
        cfg!(target_arch = "x86_64")
            && isa == Isa::Avx512
            && g.channels.is_multiple_of(BLOCK)
            && out_channels > 0
            && out_channels.is_multiple_of(BLOCK)
            && g.kernel_h <= MAX_BLOCKED_KERNEL
            && g.kernel_w <= MAX_BLOCKED_KERNEL
    }

    /// Packs `weights` (`[out_channels][channels][kernel_h][kernel_w]`) and `bias`
    /// (`[out_channels]`) for a convolution of geometry `geometry` followed by `activation`.
    pub fn new(
        isa: Isa,
        geometry: PlaneGeometry,
        out_channels: usize,
        weights: &[f32],
        bias: &[f32],
        activation: Activation,
    ) -> Result<Self, String> {
        let g = geometry;
        if !Self::supports(isa, &g, out_channels) {
            return Err(format!(
                "{} -> {} channels, {}x{} kernel on {}: not a blocked convolution",
                g.channels,
                out_channels,
                g.kernel_h,
                g.kernel_w,
                isa.name()
            ));
        }
        if !isa.is_supported() {
            return Err(format!("{} kernels on this CPU", isa.name()));
        }
        let taps = g.kernel_h * g.kernel_w;
        let depth = g.channels * taps;
        if weights.len() != out_channels * depth || bias.len() != out_channels {
            return Err(format!(
                "{} weights and {} biases for {out_channels} x {depth}",
                weights.len(),
                bias.len()
            ));
        }
        let (in_blocks, out_blocks) = (g.channels / BLOCK, out_channels / BLOCK);
        let groups = out_blocks.div_ceil(GROUP_BLOCKS);
        let width = |group: usize| GROUP_BLOCKS.min(out_blocks - group * GROUP_BLOCKS);
        let mut group_starts = Vec::with_capacity(groups);
        let mut total = 0;
        for group in 0..groups {
            group_starts.push(total);
            total += in_blocks * taps * BLOCK * width(group) * BLOCK;
        }
        let mut packed = AlignedBuf::zeroed(total);
        let data = packed.as_mut_slice();
        for (oc, filter) in weights.chunks_exact(depth).enumerate() {
            let (group, o) = (oc / BLOCK / GROUP_BLOCKS, oc / BLOCK % GROUP_BLOCKS);
            let ob = width(group);
            for (c, taps_of_c) in filter.chunks_exact(taps).enumerate() {
                for (t, &w) in taps_of_c.iter().enumerate() {
                    let step = (c / BLOCK * taps + t) * BLOCK + c % BLOCK;
                    data[group_starts[group] + (step * ob + o) * BLOCK + oc % BLOCK] = w;
                }
            }
        }
        let flat = g.kernel_h == 1
            && g.kernel_w == 1
            && g.stride_h == 1
            && g.stride_w == 1
            && (g.out_h, g.out_w) == (g.in_h, g.in_w);
        let walk = if flat {
            PlaneGeometry {
                in_h: 1,
                in_w: g.in_h * g.in_w,
                out_h: 1,
                out_w: g.out_h * g.out_w,
                ..g
            }
        } else {
            g
        };
        Ok(BlockedConv {
            geometry: g,
            walk,
            out_channels,
            weights: packed,
            group_starts,
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

    /// Floats of the blocked input.
    pub fn input_len(&self) -> usize {
        let g = &self.geometry;
        g.channels * g.in_h * g.in_w
    }

    /// Floats of the blocked output (and residual).
    pub fn output_len(&self) -> usize {
        let g = &self.geometry;
        self.out_channels * g.out_h * g.out_w
    }

    /// Multiply-adds of one run.
    pub fn macs(&self) -> u64 {
        let g = &self.geometry;
        (self.output_len() * g.channels * g.kernel_h * g.kernel_w) as u64
    }

    /// Groups of output blocks.
    fn groups(&self) -> usize {
        self.group_starts.len()
    }

    /// Output blocks in `group`.
    fn group_width(&self, group: usize) -> usize {
        GROUP_BLOCKS.min(self.out_channels / BLOCK - group * GROUP_BLOCKS)
    }

    /// Runs on `input` (blocked, `[channels / 16][in_h][in_w][16]`) into `output` (blocked,
    /// `[out_channels / 16][out_h][out_w][16]`), adding `residual` (shaped as the output)
    /// before the activation, spread over the current kernel pool.
    ///
    /// Panics when a buffer's length does not match the geometry.
    pub fn run(&self, input: &[f32], residual: Option<&[f32]>, output: &mut [f32]) {
        assert_eq!(input.len(), self.input_len(), "blocked convolution input");
        assert_eq!(
            output.len(),
            self.output_len(),
            "blocked convolution output"
        );
        if let Some(r) = residual {
            assert_eq!(r.len(), self.output_len(), "blocked convolution residual");
        }
        let pool = pool::current();
        let (spatial, grouped) = self.split(pool.threads());
        let out = SharedMut::new(output);
        let task = |t: usize| {
            let groups = part(self.groups(), grouped, t / spatial);
            let (rows, cols) = self.spatial_part(spatial, t % spatial);
            // SAFETY: the tasks cover disjoint groups or pixels of the output, whose length
            // (and the input's and residual's) is checked above; `supports` and `new`
            // checked that the CPU runs the kernels.
            unsafe { self.run_part(input, residual, out, groups, rows, cols) }
        };
        pool.run(spatial * grouped, &task);
    }

    /// How many parts to cut the pixels and the groups into for `threads`: pixels, unless
    /// there are too few to share or the filters are large (the 7x7 and 14x14 layers with
    /// 512-2048 channels), where each task streams only its groups' filters.
    fn split(&self, threads: usize) -> (usize, usize) {
        if threads < 2 || (self.macs() as usize) < MIN_PARALLEL_WORK {
            return (1, 1);
        }
        let w = &self.walk;
        let units = if w.out_h > 1 {
            w.out_h
        } else {
            w.out_w.div_ceil(TILE_PIXELS)
        };
        let filter_bytes = size_of_val(self.weights.as_slice());
        let groups = self.groups();
        if groups >= threads && (filter_bytes > 2 * WEIGHT_BLOCK_BYTES || units < 2 * threads) {
            (1, groups.min(2 * threads))
        } else {
            (units.min(2 * threads), 1)
        }
    }

    /// Output rows and columns of spatial part `i` of `parts`: bands of rows, or runs of whole
    /// tiles of the walk's single row.
    fn spatial_part(&self, parts: usize, i: usize) -> (Range<usize>, Range<usize>) {
        let w = &self.walk;
        if w.out_h > 1 {
            (part(w.out_h, parts, i), 0..w.out_w)
        } else {
            let tiles = part(w.out_w.div_ceil(TILE_PIXELS), parts, i);
            let end = (tiles.end * TILE_PIXELS).min(w.out_w);
            (0..1, tiles.start * TILE_PIXELS..end)
        }
    }

    /// Where the filters of `group` for input `blocks` start in the packed filters, and how
    /// many values they take.
    fn filters_of(&self, group: usize, blocks: Range<usize>) -> (*const f32, usize) {
        let g = &self.geometry;
        let w_block = g.kernel_h * g.kernel_w * BLOCK * self.group_width(group) * BLOCK;
        let start = self.group_starts[group] + blocks.start * w_block;
        (
            self.weights.as_slice()[start..].as_ptr(),
            blocks.len() * w_block,
        )
    }

    /// Bytes of the filters of `groups` per input block.
    fn group_block_bytes(&self, groups: Range<usize>) -> usize {
        let g = &self.geometry;
        let per_block = g.kernel_h * g.kernel_w * BLOCK * BLOCK * size_of::<f32>();
        groups
            .map(|group| self.group_width(group) * per_block)
            .sum()
    }

    /// One task: `groups` over the output `rows` x `cols`, a piece of the filters at a time.
    ///
    /// # Safety
    /// The task's part of `out` must be writable by it alone; the buffers as [`Self::run`]
    /// checks; the CPU must support AVX-512F.
    unsafe fn run_part(
        &self,
        input: &[f32],
        residual: Option<&[f32]>,
        out: SharedMut,
        groups: Range<usize>,
        rows: Range<usize>,
        cols: Range<usize>,
    ) {
        let in_blocks = self.geometry.channels / BLOCK;
        let mut g0 = groups.start;
        while g0 < groups.end {
            let mut g1 = g0 + 1;
            while g1 < groups.end
                && self.group_block_bytes(g0..g1 + 1) * in_blocks <= WEIGHT_BLOCK_BYTES
            {
                g1 += 1;
            }
            let pieces = even_chunks(
                in_blocks,
                WEIGHT_BLOCK_BYTES / self.group_block_bytes(g0..g1),
            );
            for blocks in pieces {
                for (band_rows, band_cols) in self.bands(rows.clone(), cols.clone()) {
                    let tiles = band_rows.len() * band_cols.len().div_ceil(TILE_PIXELS);
                    for group in g0..g1 {
                        let fit = L1_WEIGHT_BYTES / self.group_block_bytes(group..group + 1);
                        let subs: Vec<_> = even_chunks(blocks.len(), fit)
                            .map(|sub| blocks.start + sub.start..blocks.start + sub.end)
                            .collect();
                        for (i, sub) in subs.iter().enumerate() {
                            // The filters the band reads next, asked for into L2 a share per
                            // tile: from memory they would stall the next piece's first tiles.
                            let next = match subs.get(i + 1) {
                                Some(next) => Some((group, next.clone())),
                                None => (group + 1 < g1).then(|| (group + 1, subs[0].clone())),
                            };
                            let ahead = next.map(|(g, b)| self.filters_of(g, b));
                            let piece = Piece {
                                group,
                                blocks: sub.clone(),
                                first: sub.start == 0,
                                last: sub.end == in_blocks,
                                ahead,
                                ahead_per_tile: ahead
                                    .map_or(0, |(_, len)| len.div_ceil(tiles.max(1))),
                                ahead_done: Cell::new(0),
                            };
                            for y in band_rows.clone() {
                                self.run_row(input, residual, out, &piece, y, band_cols.clone());
                            }
                        }
                    }
                }
            }
            g0 = g1;
        }
    }

    /// The task's `rows` x `cols` cut into bands of about [`BAND_PIXELS`] output pixels: rows,
    /// or runs of whole tiles of the walk's single row.
    fn bands(
        &self,
        rows: Range<usize>,
        cols: Range<usize>,
    ) -> impl Iterator<Item = (Range<usize>, Range<usize>)> {
        let w = &self.walk;
        let (step, flat) = if w.out_h > 1 {
            ((BAND_PIXELS / w.out_w).max(1), false)
        } else {
            (BAND_PIXELS.div_ceil(TILE_PIXELS) * TILE_PIXELS, true)
        };
        let span = if flat { cols.clone() } else { rows.clone() };
        span.clone().step_by(step).map(move |start| {
            let part = start..(start + step).min(span.end);
            if flat {
                (rows.clone(), part)
            } else {
                (part, cols.clone())
            }
        })
    }

    /// Output row `y`, columns `cols`, of one piece of the filters: tiles of up to
    /// [`TILE_PIXELS`] pixels whose taps all lie inside the map's width, and one pixel at a
    /// time at the padded edges.
    ///
    /// # Safety
    /// As [`Self::run_part`].
    unsafe fn run_row(
        &self,
        input: &[f32],
        residual: Option<&[f32]>,
        out: SharedMut,
        piece: &Piece,
        y: usize,
        cols: Range<usize>,
    ) {
        let g = &self.walk;
        let top = (y * g.stride_h) as isize - g.pad_top as isize;
        let rows_in =
            (-top).max(0) as usize..(g.in_h as isize - top).clamp(0, g.kernel_h as isize) as usize;
        let inside_from = g.pad_left.div_ceil(g.stride_w);
        let inside_to = if g.in_w + g.pad_left >= g.kernel_w {
            (g.in_w + g.pad_left - g.kernel_w) / g.stride_w + 1
        } else {
            0
        };
        let mut x = cols.start;
        while x < cols.end {
            let (pixels, taps_x) = if x >= inside_from && x < inside_to {
                (TILE_PIXELS.min(inside_to.min(cols.end) - x), 0..g.kernel_w)
            } else {
                let left = (x * g.stride_w) as isize - g.pad_left as isize;
                let from = (-left).max(0) as usize;
                let to = (g.in_w as isize - left).clamp(0, g.kernel_w as isize) as usize;
                (1, from..to.max(from))
            };
            if let Some((ahead, len)) = piece.ahead {
                let done = piece.ahead_done.get();
                if done < len {
                    prefetch(
                        ahead.wrapping_add(done),
                        piece.ahead_per_tile.min(len - done),
                    );
                    piece.ahead_done.set(done + piece.ahead_per_tile);
                }
            }
            self.run_tile(
                input,
                residual,
                out,
                piece,
                (y, x, pixels),
                (rows_in.clone(), taps_x),
            );
            x += pixels;
        }
    }

    /// The tile at output row `y`, column `x`, `pixels` wide, over the kernel rows and columns
    /// `taps` (those inside the map), for the piece's group.
    ///
    /// # Safety
    /// As [`Self::run_part`].
    unsafe fn run_tile(
        &self,
        input: &[f32],
        residual: Option<&[f32]>,
        out: SharedMut,
        piece: &Piece,
        (y, x, pixels): (usize, usize, usize),
        (taps_y, taps_x): (Range<usize>, Range<usize>),
    ) {
        let g = &self.walk;
        let mut taps = [(0isize, 0usize); MAX_TAPS];
        let mut n_taps = 0;
        for ky in taps_y {
            let iy = (y * g.stride_h + ky) as isize - g.pad_top as isize;
            for kx in taps_x.clone() {
                let ix = (x * g.stride_w + kx) as isize - g.pad_left as isize;
                taps[n_taps] = (
                    (iy * g.in_w as isize + ix) * BLOCK as isize,
                    ky * g.kernel_w + kx,
                );
                n_taps += 1;
            }
        }
        let (in_plane, out_plane) = (g.in_h * g.in_w * BLOCK, g.out_h * g.out_w * BLOCK);
        let start = match (piece.first, residual) {
            (true, Some(_)) => Start::Residual,
            (true, None) => Start::Bias,
            (false, _) => Start::Output,
        };
        let post = if piece.last {
            self.activation.in_registers(Isa::Avx512)
        } else {
            None
        };
        let group = piece.group;
        let ob = self.group_width(group);
        let first_block = group * GROUP_BLOCKS;
        let at = first_block * out_plane + (y * g.out_w + x) * BLOCK;
        let (weights, values) = self.filters_of(group, piece.blocks.clone());
        let tile = Tile {
            input: input.as_ptr().add(piece.blocks.start * in_plane),
            in_block: in_plane,
            pixel_step: g.stride_w * BLOCK,
            taps: taps.as_ptr(),
            n_taps,
            blocks: piece.blocks.len(),
            weights,
            w_block: values / piece.blocks.len().max(1),
            bias: self.bias.as_ptr().add(first_block * BLOCK),
            residual: residual.map_or(std::ptr::null(), |r| r.as_ptr().add(at)),
            out: out.get().add(at),
            out_block: out_plane,
            start,
            post,
        };
        tile_kernel(ob, pixels, &tile);
        if piece.last && post.is_none() && self.activation != Activation::None {
            for o in 0..ob {
                let values = std::slice::from_raw_parts_mut(
                    out.get().add(at + o * out_plane),
                    pixels * BLOCK,
                );
                self.activation.apply_for(Isa::Avx512, values);
            }
        }
    }
}

/// A piece of the filters a task runs over a band of pixels: one group, some input blocks.
struct Piece {
    group: usize,
    blocks: Range<usize>,
    /// Whether the piece reads the first input blocks (its sums start from the biases).
    first: bool,
    /// Whether it reads the last (it applies the activation).
    last: bool,
    /// The filters read after this piece (start, values), prefetched while it runs.
    ahead: Option<(*const f32, usize)>,
    /// Values of `ahead` prefetched before each tile.
    ahead_per_tile: usize,
    /// Values of `ahead` prefetched so far.
    ahead_done: Cell<usize>,
}

/// The micro-kernel for `ob` output blocks and `pixels` pixels.
///
/// # Safety
/// As [`x86_64::tile_avx512`]; `ob <= GROUP_BLOCKS`, `pixels <= TILE_PIXELS`.
#[cfg(target_arch = "x86_64")]
unsafe fn tile_kernel(ob: usize, pixels: usize, t: &Tile) {
    macro_rules! widths {
        ($ob:literal) => {
            match pixels {
                1 => x86_64::tile_avx512::<$ob, 1>(t),
                2 => x86_64::tile_avx512::<$ob, 2>(t),
                3 => x86_64::tile_avx512::<$ob, 3>(t),
                4 => x86_64::tile_avx512::<$ob, 4>(t),
                5 => x86_64::tile_avx512::<$ob, 5>(t),
                6 => x86_64::tile_avx512::<$ob, 6>(t),
                _ => unreachable!("{pixels} pixels in a tile"),
            }
        };
    }
    match ob {
        1 => widths!(1),
        2 => widths!(2),
        3 => widths!(3),
        4 => widths!(4),
        _ => unreachable!("{ob} output blocks in a group"),
    }
}

/// No blocked kernels off x86-64 ([`BlockedConv::supports`] is false there).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_kernel(_ob: usize, _pixels: usize, _t: &Tile) {
    unreachable!("blocked convolutions run on AVX-512 only")
}

/// `0..len` cut into the fewest nearly equal ranges of at most `most` (at least 1).
fn even_chunks(len: usize, most: usize) -> impl Iterator<Item = Range<usize>> {
    let parts = len.div_ceil(most.max(1)).max(1);
    (0..parts).map(move |i| part(len, parts, i))
}

#[cfg(test)]
mod tests;
