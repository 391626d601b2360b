//! [`super::taps_fma`] for aarch64 NEON (4 x 4 lanes).

use std::arch::aarch64::*;

/// NEON: 16 outputs per step in four accumulators, then 4 per step, then one at a time.
///
/// # Safety
/// `src.add(offsets[t] + i)` must be readable for every tap `t` and every `i < out.len()`.
#[target_feature(enable = "neon")]
pub unsafe fn taps_fma_neon(
    src: *const f32,
    offsets: &[usize],
    weights: &[f32],
    bias: f32,
    out: &mut [f32],
) {
    let n = out.len();
    let dst = out.as_mut_ptr();
    let b = vdupq_n_f32(bias);
    let mut i = 0;
    while i + 16 <= n {
        let (mut a0, mut a1, mut a2, mut a3) = (b, b, b, b);
        for (&off, &w) in offsets.iter().zip(weights) {
            let p = src.add(off + i);
            a0 = vfmaq_n_f32(a0, vld1q_f32(p), w);
            a1 = vfmaq_n_f32(a1, vld1q_f32(p.add(4)), w);
            a2 = vfmaq_n_f32(a2, vld1q_f32(p.add(8)), w);
            a3 = vfmaq_n_f32(a3, vld1q_f32(p.add(12)), w);
        }
        vst1q_f32(dst.add(i), a0);
        vst1q_f32(dst.add(i + 4), a1);
        vst1q_f32(dst.add(i + 8), a2);
        vst1q_f32(dst.add(i + 12), a3);
        i += 16;
    }
    while i + 4 <= n {
        let mut a = b;
        for (&off, &w) in offsets.iter().zip(weights) {
            a = vfmaq_n_f32(a, vld1q_f32(src.add(off + i)), w);
        }
        vst1q_f32(dst.add(i), a);
        i += 4;
    }
    while i < n {
        let mut a = bias;
        for (&off, &w) in offsets.iter().zip(weights) {
            a = (*src.add(off + i)).mul_add(w, a);
        }
        *dst.add(i) = a;
        i += 1;
    }
}
