//! Naive implementations, written for clarity: what the kernels are tested against.

use super::planes::PlaneGeometry;
use super::Activation;

/// Depthwise convolution computed pixel by pixel in f64, with explicit bounds checks.
pub fn depthwise_naive(
    g: &PlaneGeometry,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    activation: Activation,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(g.output_len());
    for c in 0..g.channels {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let mut sum = bias[c] as f64;
                for ky in 0..g.kernel_h {
                    for kx in 0..g.kernel_w {
                        let iy = (oy * g.stride_h + ky) as isize - g.pad_top as isize;
                        let ix = (ox * g.stride_w + kx) as isize - g.pad_left as isize;
                        if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                            continue;
                        }
                        let x = input[(c * g.in_h + iy as usize) * g.in_w + ix as usize];
                        let w = weights[(c * g.kernel_h + ky) * g.kernel_w + kx];
                        sum += x as f64 * w as f64;
                    }
                }
                out.push(activation.apply_one(sum as f32));
            }
        }
    }
    out
}

/// Dense convolution (`weights` as `[out_channels][channels][kernel_h][kernel_w]`) computed
/// pixel by pixel in f64, with explicit bounds checks.
pub fn dense_conv_naive(
    g: &PlaneGeometry,
    out_channels: usize,
    input: &[f32],
    weights: &[f32],
    bias: &[f32],
    activation: Activation,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(out_channels * g.out_h * g.out_w);
    for o in 0..out_channels {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                let mut sum = bias[o] as f64;
                for c in 0..g.channels {
                    for ky in 0..g.kernel_h {
                        for kx in 0..g.kernel_w {
                            let iy = (oy * g.stride_h + ky) as isize - g.pad_top as isize;
                            let ix = (ox * g.stride_w + kx) as isize - g.pad_left as isize;
                            if iy < 0 || ix < 0 || iy >= g.in_h as isize || ix >= g.in_w as isize {
                                continue;
                            }
                            let x = input[(c * g.in_h + iy as usize) * g.in_w + ix as usize];
                            let w =
                                weights[((o * g.channels + c) * g.kernel_h + ky) * g.kernel_w + kx];
                            sum += x as f64 * w as f64;
                        }
                    }
                }
                out.push(activation.apply_one(sum as f32));
            }
        }
    }
    out
}
