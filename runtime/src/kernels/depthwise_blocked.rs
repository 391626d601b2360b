//! Depthwise convolution over blocks of [`LANES`] channels, for small maps.
//!
//! The plane layout of [`super::depthwise`] runs along a row: on a 7x7 or 14x14 map a row
//! fills a fraction of a vector, phase planes add `kernel - 1` columns to each row, and every
//! channel pays its own setup. Here a block of channels is copied into one zero-padded,
//! channel-interleaved buffer (`[row][column][LANES]`), so each tap of each output pixel is one
//! vector multiply-add across the block's channels, whatever the map's size; the block's output
//! goes through the activation in one pass and is copied back to its planes. Both copies
//! transpose 16 x 16 values in registers where AVX-512 is present ([`super::transpose`]).

use std::cell::RefCell;

use super::aligned_buf::AlignedBuf;
use super::planes::PlaneGeometry;
use super::pool::{self, SharedMut};
use super::transpose::{lanes_to_planes, planes_to_lanes, planes_to_lanes_pitched};
use super::{Activation, Isa};

/// Channels per block (one AVX-512 vector, two AVX2 ones, four NEON ones).
pub const LANES: usize = 16;

/// One pixel of a block: its `LANES` channels.
type Lanes = [f32; LANES];

/// Filters and biases interleaved by block: line `block * taps + tap` of `weights` holds tap
/// `tap` of the block's channels (zeros past the last channel); lines are cache-line aligned,
/// so that no vector load of them splits a line.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockedFilters {
    weights: AlignedBuf,
    bias: AlignedBuf,
    blocks: usize,
}

impl BlockedFilters {
    /// Interleaves `weights` (`[channels][taps]`) and `bias` (`[channels]`).
    pub fn new(channels: usize, taps: usize, weights: &[f32], bias: &[f32]) -> Self {
        let blocks = channels.div_ceil(LANES);
        let mut w = AlignedBuf::zeroed(blocks * taps * LANES);
        let mut b = AlignedBuf::zeroed(blocks * LANES);
        let (wl, bl) = (w.as_lines_mut(), b.as_lines_mut());
        for c in 0..channels {
            let (block, lane) = (c / LANES, c % LANES);
            for t in 0..taps {
                wl[block * taps + t][lane] = weights[c * taps + t];
            }
            bl[block][lane] = bias[c];
        }
        BlockedFilters {
            weights: w,
            bias: b,
            blocks,
        }
    }
}

thread_local! {
    /// Each thread's padded input block and output block (cache-line aligned).
    static BLOCKS: RefCell<(AlignedBuf, AlignedBuf)> = RefCell::new(Default::default());
}

/// Runs the convolution of `g` on `input` (`[channels][in_h][in_w]`) into `output`
/// (`[channels][out_h][out_w]`) block by block, blocks spread over the current kernel pool.
///
/// Panics when a buffer length does not match the geometry.
pub fn run_blocked(
    isa: Isa,
    g: &PlaneGeometry,
    filters: &BlockedFilters,
    activation: Activation,
    input: &[f32],
    output: &mut [f32],
) {
    assert_eq!(input.len(), g.input_len(), "input length");
    assert_eq!(output.len(), g.output_len(), "output length");
    assert_eq!(filters.blocks, g.channels.div_ceil(LANES), "filter blocks");
    assert!(isa.is_supported(), "{} kernels on this CPU", isa.name());
    let plane_out = g.out_h * g.out_w;
    let blocks = filters.blocks;
    let out = SharedMut::new(output);
    let task = |block: usize| {
        let first = block * LANES;
        let lanes = LANES.min(g.channels - first);
        // SAFETY: the block's output planes `first..first + lanes` lie inside `output` (its
        // length was checked) and belong to this task alone.
        let planes = unsafe {
            std::slice::from_raw_parts_mut(out.get().add(first * plane_out), lanes * plane_out)
        };
        BLOCKS.with_borrow_mut(|(padded, acc)| {
            run_block(
                isa, g, filters, activation, block, input, planes, padded, acc,
            )
        });
    };
    for_each_block(g, blocks, &task);
}

/// Runs `task(block)` for each of `blocks`, spread over the current kernel pool when the
/// convolution of `g` is worth it.
fn for_each_block(g: &PlaneGeometry, blocks: usize, task: &(dyn Fn(usize) + Sync)) {
    let work = g.output_len() * g.kernel_h * g.kernel_w;
    if work < pool::MIN_PARALLEL_WORK {
        (0..blocks).for_each(task);
    } else {
        pool::current().run(blocks, task);
    }
}

/// One block of channels into its output planes.
#[allow(clippy::too_many_arguments)]
fn run_block(
    isa: Isa,
    g: &PlaneGeometry,
    filters: &BlockedFilters,
    activation: Activation,
    block: usize,
    input: &[f32],
    planes: &mut [f32],
    padded: &mut AlignedBuf,
    acc: &mut AlignedBuf,
) {
    let (ph, pw) = padded_size(g);
    let first = block * LANES;
    let lanes = planes.len() / (g.out_h * g.out_w);
    padded.ensure(ph * pw * LANES);
    let padded = &mut padded.as_lines_mut()[..ph * pw];
    padded.fill([0.0; LANES]);
    let plane_in = g.in_h * g.in_w;
    // The rows and columns the windows reach.
    let rows = g.in_h.min(ph.saturating_sub(g.pad_top));
    let cols = g.in_w.min(pw.saturating_sub(g.pad_left));
    let block_in = &input[first * plane_in..];
    let inside = &mut padded[g.pad_top * pw + g.pad_left..];
    if cols == g.in_w {
        // Whole rows: 16 pixels a transpose across the rows' ends.
        planes_to_lanes_pitched(
            isa,
            block_in,
            plane_in,
            lanes,
            (rows * cols, cols, pw),
            inside,
        );
    } else {
        for y in 0..rows {
            let dst = &mut inside[y * pw..][..cols];
            planes_to_lanes(isa, &block_in[y * g.in_w..], plane_in, lanes, dst);
        }
    }
    acc.ensure(g.out_h * g.out_w * LANES);
    let acc = &mut acc.as_lines_mut()[..g.out_h * g.out_w];
    block_output(isa, g, filters, activation, block, pw, padded, acc);
    lanes_to_planes(isa, acc, lanes, g.out_h * g.out_w, planes);
}

/// The activated sums (bias plus taps) of block `block` over `padded` into `out`: the block's output pixels from its
/// zero-padded input (`pw` pixels a row).
#[allow(clippy::too_many_arguments)]
fn block_output(
    isa: Isa,
    g: &PlaneGeometry,
    filters: &BlockedFilters,
    activation: Activation,
    block: usize,
    pw: usize,
    padded: &[Lanes],
    out: &mut [Lanes],
) {
    let taps = g.kernel_h * g.kernel_w;
    let weights = &filters.weights.as_lines()[block * taps..(block + 1) * taps];
    let bias = &filters.bias.as_lines()[block];
    // SAFETY (both): the CPU supports the instruction set (checked by the callers).
    let applied = match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { x86::block_avx512(g, pw, padded, weights, bias, activation, out) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => {
            unsafe { x86::block_avx2(g, pw, padded, weights, bias, out) };
            false
        }
        _ => {
            block_taps::<false>(g, pw, padded, weights, bias, out);
            false
        }
    };
    if !applied {
        activation.apply_for(isa, out.as_flattened_mut());
    }
}

/// Runs the convolution of `g` on channel-blocked maps: `input` `[channels / LANES][in_h]
/// [in_w][LANES]` into `output` `[channels / LANES][out_h][out_w][LANES]` (`channels` a
/// multiple of [`LANES`]), blocks spread over the current kernel pool. Each block's input rows
/// are copied into its zero-padded buffer as they are, and its output computed in place: no
/// transposes.
///
/// Panics when the channels are not whole blocks or a buffer length does not match the
/// geometry.
pub fn run_on_blocks(
    isa: Isa,
    g: &PlaneGeometry,
    filters: &BlockedFilters,
    activation: Activation,
    input: &[f32],
    output: &mut [f32],
) {
    assert!(g.channels.is_multiple_of(LANES), "channels in whole blocks");
    assert_eq!(input.len(), g.input_len(), "input length");
    assert_eq!(output.len(), g.output_len(), "output length");
    assert_eq!(filters.blocks, g.channels / LANES, "filter blocks");
    assert!(isa.is_supported(), "{} kernels on this CPU", isa.name());
    let (plane_in, plane_out) = (g.in_h * g.in_w, g.out_h * g.out_w);
    let (input, _) = input.as_chunks::<LANES>();
    let out = SharedMut::new(output);
    let task = |block: usize| {
        // SAFETY: the block's `plane_out` pixels lie inside `output` (its length was checked)
        // and belong to this task alone.
        let block_out = unsafe {
            std::slice::from_raw_parts_mut(
                out.get().add(block * plane_out * LANES) as *mut Lanes,
                plane_out,
            )
        };
        let block_in = &input[block * plane_in..(block + 1) * plane_in];
        BLOCKS.with_borrow_mut(|(padded, _)| {
            let (ph, pw) = padded_size(g);
            padded.ensure(ph * pw * LANES);
            let padded = &mut padded.as_lines_mut()[..ph * pw];
            pad_block(g, block_in, pw, padded);
            block_output(isa, g, filters, activation, block, pw, padded, block_out);
        });
    };
    for_each_block(g, filters.blocks, &task);
}

/// Copies a block's pixels (`[in_h][in_w]`) into `padded` (`pw` a row), zeros around them.
fn pad_block(g: &PlaneGeometry, block_in: &[Lanes], pw: usize, padded: &mut [Lanes]) {
    let ph = padded.len() / pw;
    // The rows and columns the windows reach.
    let (top, left) = (g.pad_top.min(ph), g.pad_left.min(pw));
    let rows = g.in_h.min(ph - top);
    let cols = g.in_w.min(pw - left);
    let zero = [0.0; LANES];
    padded[..top * pw].fill(zero);
    padded[(top + rows) * pw..].fill(zero);
    for y in 0..rows {
        let line = &mut padded[(top + y) * pw..][..pw];
        line[..left].fill(zero);
        line[left..left + cols].copy_from_slice(&block_in[y * g.in_w..][..cols]);
        line[left + cols..].fill(zero);
    }
}

/// Rows and columns of the padded block: exactly what the windows cover.
fn padded_size(g: &PlaneGeometry) -> (usize, usize) {
    (
        (g.out_h - 1) * g.stride_h + g.kernel_h,
        (g.out_w - 1) * g.stride_w + g.kernel_w,
    )
}

/// `acc[pixel] = bias + sum_t weights[t] * padded[window(pixel, t)]`, lane by lane, [`PIXELS`]
/// pixels of a row at a time (independent sums, so that the multiply-adds of one pixel do not
/// wait for each other); with `FMA` each step is one fused multiply-add (only where the
/// instruction set has it: elsewhere `mul_add` is a library call).
#[inline(always)]
fn block_taps<const FMA: bool>(
    g: &PlaneGeometry,
    pw: usize,
    padded: &[Lanes],
    weights: &[Lanes],
    bias: &Lanes,
    acc: &mut [Lanes],
) {
    for (oy, row) in acc.chunks_exact_mut(g.out_w).enumerate() {
        let mut chunks = row.chunks_exact_mut(PIXELS);
        let mut ox = 0;
        for out in &mut chunks {
            pixels::<PIXELS, FMA>(g, pw, padded, weights, bias, oy, ox, out);
            ox += PIXELS;
        }
        // The rest of the row at once too (a 7- or 14-wide row is mostly rest): sums of
        // single pixels would each wait on their own chain of multiply-adds.
        let rest = chunks.into_remainder();
        match rest.len() {
            0 => {}
            1 => pixels::<1, FMA>(g, pw, padded, weights, bias, oy, ox, rest),
            2 => pixels::<2, FMA>(g, pw, padded, weights, bias, oy, ox, rest),
            3 => pixels::<3, FMA>(g, pw, padded, weights, bias, oy, ox, rest),
            4 => pixels::<4, FMA>(g, pw, padded, weights, bias, oy, ox, rest),
            5 => pixels::<5, FMA>(g, pw, padded, weights, bias, oy, ox, rest),
            6 => pixels::<6, FMA>(g, pw, padded, weights, bias, oy, ox, rest),
            _ => pixels::<7, FMA>(g, pw, padded, weights, bias, oy, ox, rest),
        }
    }
}

/// Pixels computed together by [`block_taps`].
const PIXELS: usize = 8;

/// `P` pixels of output row `oy` from column `ox` into `out`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pixels<const P: usize, const FMA: bool>(
    g: &PlaneGeometry,
    pw: usize,
    padded: &[Lanes],
    weights: &[Lanes],
    bias: &Lanes,
    oy: usize,
    ox: usize,
    out: &mut [Lanes],
) {
    let mut sums = [*bias; P];
    let span = (P - 1) * g.stride_w + g.kernel_w;
    for ky in 0..g.kernel_h {
        let base = (oy * g.stride_h + ky) * pw + ox * g.stride_w;
        let window = &padded[base..base + span];
        for (kx, w) in weights[ky * g.kernel_w..(ky + 1) * g.kernel_w]
            .iter()
            .enumerate()
        {
            for (p, sum) in sums.iter_mut().enumerate() {
                let x = &window[p * g.stride_w + kx];
                for l in 0..LANES {
                    sum[l] = if FMA {
                        x[l].mul_add(w[l], sum[l])
                    } else {
                        sum[l] + x[l] * w[l]
                    };
                }
            }
        }
    }
    out.copy_from_slice(&sums);
}

/// [`block_taps`] compiled with x86-64 vector extensions, and written out with AVX-512
/// intrinsics for the square 3x3 and 5x5 kernels of stride 1 and 2.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{block_taps, padded_size, Lanes, PlaneGeometry, PIXELS};
    use crate::kernels::transpose::x86::unroll16;
    use crate::kernels::Activation;

    /// Whether `activation` was applied too: a clamp (ReLU, ReLU6) is, in registers, by the
    /// written-out kernels; other activations are left to a pass over `acc`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F and FMA.
    #[target_feature(enable = "avx512f,fma")]
    pub unsafe fn block_avx512(
        g: &PlaneGeometry,
        pw: usize,
        padded: &[Lanes],
        weights: &[Lanes],
        bias: &Lanes,
        activation: Activation,
        acc: &mut [Lanes],
    ) -> bool {
        let clamp = match activation {
            Activation::None => Some((f32::NEG_INFINITY, f32::INFINITY)),
            other => other.clamp_bounds(),
        };
        let bounds = clamp.unwrap_or((f32::NEG_INFINITY, f32::INFINITY));
        let square = g.kernel_h == g.kernel_w && g.stride_h == g.stride_w;
        let fixed = match (square, g.kernel_h, g.stride_h) {
            (true, 3, 1) => block_fixed::<3, 1>,
            (true, 3, 2) => block_fixed::<3, 2>,
            (true, 5, 1) => block_fixed::<5, 1>,
            (true, 5, 2) => block_fixed::<5, 2>,
            _ => {
                block_taps::<true>(g, pw, padded, weights, bias, acc);
                return activation == Activation::None;
            }
        };
        fixed(g, pw, padded, weights, bias, bounds, acc);
        clamp.is_some()
    }

    /// [`block_taps`] for a `K x K` kernel of stride `S`, clamped to `bounds`: up to
    /// [`PIXELS`] pixels of a row a step, their sums held in registers across the `K * K`
    /// taps (each tap one weight vector and one multiply-add per pixel, the input read from
    /// memory by the multiply-add).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn block_fixed<const K: usize, const S: usize>(
        g: &PlaneGeometry,
        pw: usize,
        padded: &[Lanes],
        weights: &[Lanes],
        bias: &Lanes,
        (lo, hi): (f32, f32),
        acc: &mut [Lanes],
    ) {
        let (ph, want_pw) = padded_size(g);
        assert!(pw == want_pw && padded.len() >= ph * pw, "padded block");
        assert!(weights.len() == K * K, "{} taps for {K}x{K}", weights.len());
        assert!(acc.len() == g.out_h * g.out_w, "output block");
        let (src, w) = (
            padded.as_ptr() as *const f32,
            weights.as_ptr() as *const f32,
        );
        let dst = acc.as_mut_ptr() as *mut f32;
        let bias = _mm512_loadu_ps(bias.as_ptr());
        let bounds = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        for oy in 0..g.out_h {
            let mut ox = 0;
            while ox < g.out_w {
                let n = PIXELS.min(g.out_w - ox);
                // The windows of pixels `ox..ox + n` lie in rows `oy * S..oy * S + K`,
                // columns `ox * S..(ox + n - 1) * S + K` of the block (`padded_size`).
                let at = src.add((oy * S * pw + ox * S) * 16);
                let out = dst.add((oy * g.out_w + ox) * 16);
                match n {
                    8 => pixels::<K, S, 8>(at, pw, w, bias, bounds, out),
                    7 => pixels::<K, S, 7>(at, pw, w, bias, bounds, out),
                    6 => pixels::<K, S, 6>(at, pw, w, bias, bounds, out),
                    5 => pixels::<K, S, 5>(at, pw, w, bias, bounds, out),
                    4 => pixels::<K, S, 4>(at, pw, w, bias, bounds, out),
                    3 => pixels::<K, S, 3>(at, pw, w, bias, bounds, out),
                    2 => pixels::<K, S, 2>(at, pw, w, bias, bounds, out),
                    _ => pixels::<K, S, 1>(at, pw, w, bias, bounds, out),
                }
                ox += n;
            }
        }
    }

    /// `P` pixels from the window corner `at` (rows `pw` lines apart), clamped, into `out`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn pixels<const K: usize, const S: usize, const P: usize>(
        at: *const f32,
        pw: usize,
        weights: *const f32,
        bias: __m512,
        (lo, hi): (__m512, __m512),
        out: *mut f32,
    ) {
        const { assert!(P <= 16) };
        // Sixteen, as `unroll16!` walks; the sums past `P` are never touched.
        let mut sums = [bias; 16];
        for ky in 0..K {
            let row = at.add(ky * pw * 16);
            for kx in 0..K {
                let w = _mm512_loadu_ps(weights.add((ky * K + kx) * 16));
                unroll16!(|p| if p < P {
                    let x = _mm512_loadu_ps(row.add((p * S + kx) * 16));
                    sums[p] = _mm512_fmadd_ps(x, w, sums[p]);
                });
            }
        }
        unroll16!(|p| if p < P {
            _mm512_storeu_ps(
                out.add(p * 16),
                _mm512_min_ps(_mm512_max_ps(sums[p], lo), hi),
            );
        });
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn block_avx2(
        g: &PlaneGeometry,
        pw: usize,
        padded: &[Lanes],
        weights: &[Lanes],
        bias: &Lanes,
        acc: &mut [Lanes],
    ) {
        block_taps::<true>(g, pw, padded, weights, bias, acc)
    }
}
