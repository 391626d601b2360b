//! The AVX-512 micro-kernel of [`super::BlockedConv`]: `OB` blocks of 16 output channels at `P`
//! pixels of one output row, their `OB x P` sums in registers across every input block and tap.

use std::arch::x86_64::*;

use super::{Start, Tile, BLOCK};
use crate::kernels::activation::x86::{sigmoid_avx512, silu_avx512};
use crate::kernels::activation::InRegisters;

/// One tile: for each input block and tap, 16 steps of `OB` filter vectors (the 16 output
/// channels of each block) times one input value of each pixel, broadcast.
///
/// # Safety
/// The CPU must support AVX-512F; `t` must describe readable inputs, filters, biases and
/// residual and a writable output as [`Tile`] says, for `OB` blocks and `P` pixels.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tile_avx512<const OB: usize, const P: usize>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); OB]; P];
    for o in 0..OB {
        let bias = _mm512_loadu_ps(t.bias.add(o * BLOCK));
        for (p, sums) in acc.iter_mut().enumerate() {
            let at = o * t.out_block + p * BLOCK;
            sums[o] = match t.start {
                Start::Bias => bias,
                Start::Residual => _mm512_add_ps(bias, _mm512_loadu_ps(t.residual.add(at))),
                Start::Output => _mm512_loadu_ps(t.out.add(at)),
            };
        }
    }
    let taps = std::slice::from_raw_parts(t.taps, t.n_taps);
    let tap_floats = BLOCK * OB * BLOCK;
    for b in 0..t.blocks {
        let input = t.input.add(b * t.in_block);
        let weights = t.weights.add(b * t.w_block);
        for &(offset, tap) in taps {
            let x = input.offset(offset);
            let w = weights.add(tap * tap_floats);
            for c in 0..BLOCK {
                let mut filters = [_mm512_setzero_ps(); OB];
                for (o, f) in filters.iter_mut().enumerate() {
                    *f = _mm512_load_ps(w.add((c * OB + o) * BLOCK));
                }
                for (p, sums) in acc.iter_mut().enumerate() {
                    let v = _mm512_set1_ps(*x.add(p * t.pixel_step + c));
                    for (s, f) in sums.iter_mut().zip(&filters) {
                        *s = _mm512_fmadd_ps(*f, v, *s);
                    }
                }
            }
        }
    }
    let post = |v: __m512| match t.post {
        None => v,
        Some(InRegisters::Clamp(lo, hi)) => {
            _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi))
        }
        Some(InRegisters::Leaky(alpha)) => {
            let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, _mm512_setzero_ps());
            _mm512_mask_mul_ps(v, negative, v, _mm512_set1_ps(alpha))
        }
        Some(InRegisters::Sigmoid) => sigmoid_avx512(v),
        Some(InRegisters::Silu) => silu_avx512(v),
    };
    for (p, sums) in acc.iter().enumerate() {
        for (o, &s) in sums.iter().enumerate() {
            _mm512_storeu_ps(t.out.add(o * t.out_block + p * BLOCK), post(s));
        }
    }
}
