//! Micro-kernel of [`super`] for aarch64 NEON: 8 rows x 8 columns (16 accumulators), a clamp
//! (ReLU, ReLU6) or LeakyReLU applied to the accumulators before they are stored.

use std::arch::aarch64::*;

use super::Start;
use crate::kernels::activation::InRegisters;

/// NEON, 8 rows x 8 columns.
///
/// # Safety
/// `a` must hold `8 k` values, `b` `8 k`, `bias` 8, and `c` 8 rows of 8 writable values `ldc`
/// apart (and a [`Start::Residual`] as many readable ones).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
pub unsafe fn tile_neon(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    bias: *const f32,
    start: Start,
    post: Option<&InRegisters>,
) {
    const MR: usize = 8;
    let mut acc = [[vdupq_n_f32(0.0); 2]; MR];
    for (r, row) in acc.iter_mut().enumerate() {
        *row = match start {
            Start::Output => {
                let p = c.add(r * ldc);
                [vld1q_f32(p), vld1q_f32(p.add(4))]
            }
            Start::Bias => {
                let v = vdupq_n_f32(*bias.add(r));
                [v, v]
            }
            Start::Residual(from) => {
                let (p, v) = (from.add(r * ldc), vdupq_n_f32(*bias.add(r)));
                [
                    vaddq_f32(vld1q_f32(p), v),
                    vaddq_f32(vld1q_f32(p.add(4)), v),
                ]
            }
        };
    }
    let (mut a, mut b) = (a, b);
    for _ in 0..k {
        let b0 = vld1q_f32(b);
        let b1 = vld1q_f32(b.add(4));
        for (r, row) in acc.iter_mut().enumerate() {
            let x = *a.add(r);
            row[0] = vfmaq_n_f32(row[0], b0, x);
            row[1] = vfmaq_n_f32(row[1], b1, x);
        }
        a = a.add(MR);
        b = b.add(8);
    }
    // The activation is part of each store loop: a separate pass over `acc` would keep it on
    // the stack.
    macro_rules! store {
        ($v:ident => $y:expr) => {
            for (r, row) in acc.iter().enumerate() {
                let p = c.add(r * ldc);
                let $v = row[0];
                vst1q_f32(p, $y);
                let $v = row[1];
                vst1q_f32(p.add(4), $y);
            }
        };
    }
    match post {
        None => store!(v => v),
        Some(&InRegisters::Clamp(lo, hi)) => {
            let (lo, hi) = (vdupq_n_f32(lo), vdupq_n_f32(hi));
            store!(v => vminq_f32(vmaxq_f32(v, lo), hi))
        }
        Some(&InRegisters::Leaky(alpha)) => {
            store!(v => vbslq_f32(vcltzq_f32(v), vmulq_n_f32(v, alpha), v))
        }
        // No NEON form (`Activation::in_registers` does not offer it here): per stored value.
        Some(&other) => {
            store!(v => v);
            for r in 0..MR {
                for j in 0..8 {
                    let p = c.add(r * ldc + j);
                    *p = other.apply_one(*p);
                }
            }
        }
    }
}
