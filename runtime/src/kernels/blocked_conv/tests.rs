use std::sync::Arc;

use super::*;
use crate::kernels::blocked_layout::{from_blocked, to_blocked};
use crate::kernels::pool::{with_pool, Pool};
use crate::kernels::reference::dense_conv_naive;
use crate::kernels::test_support::{assert_close, Rng, ACTIVATIONS};

/// Runs the blocked convolution on planar `input` (and `residual`) through the layout
/// conversions, returning planar output.
fn run_planar(conv: &BlockedConv, input: &[f32], residual: Option<&[f32]>) -> Vec<f32> {
    let g = conv.geometry();
    let (in_px, out_px) = (g.in_h * g.in_w, g.out_h * g.out_w);
    let mut blocked_in = vec![0.0; input.len()];
    to_blocked(Isa::Avx512, input, in_px, &mut blocked_in);
    let blocked_residual = residual.map(|r| {
        let mut b = vec![0.0; r.len()];
        to_blocked(Isa::Avx512, r, out_px, &mut b);
        b
    });
    let mut blocked_out = vec![f32::NAN; conv.output_len()];
    conv.run(&blocked_in, blocked_residual.as_deref(), &mut blocked_out);
    let mut out = vec![0.0; blocked_out.len()];
    from_blocked(Isa::Avx512, &blocked_out, out_px, &mut out);
    out
}

/// The naive convolution plus the residual before the activation.
fn reference(
    g: &PlaneGeometry,
    out_channels: usize,
    (input, weights, bias): (&[f32], &[f32], &[f32]),
    residual: Option<&[f32]>,
    activation: Activation,
) -> Vec<f32> {
    let mut want = dense_conv_naive(g, out_channels, input, weights, bias, Activation::None);
    if let Some(r) = residual {
        want.iter_mut().zip(r).for_each(|(w, r)| *w += r);
    }
    activation.apply(&mut want);
    want
}

#[allow(clippy::too_many_arguments)]
fn check(
    rng: &mut Rng,
    (channels, out_channels): (usize, usize),
    (in_h, in_w): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (pt, pl, pb, pr): (usize, usize, usize, usize),
    with_residual: bool,
    activation: Activation,
) {
    let Some(g) = PlaneGeometry::new(
        channels,
        (in_h, in_w),
        (kh, kw),
        (sh, sw),
        (pt, pl),
        (pb, pr),
    ) else {
        return;
    };
    let input = rng.values(channels * in_h * in_w);
    let weights = rng.values(out_channels * channels * kh * kw);
    let bias = rng.values(out_channels);
    let residual = with_residual.then(|| rng.values(out_channels * g.out_h * g.out_w));
    let conv = BlockedConv::new(Isa::Avx512, g, out_channels, &weights, &bias, activation).unwrap();
    let want = reference(
        &g,
        out_channels,
        (&input, &weights, &bias),
        residual.as_deref(),
        activation,
    );
    let what = format!(
        "{channels}->{out_channels} {in_h}x{in_w} k{kh}x{kw} s{sh}x{sw} pad {pt},{pl},{pb},{pr} \
         residual {with_residual} {}",
        activation.name()
    );
    for threads in [1, 2] {
        let got = with_pool(Arc::new(Pool::new(threads)), || {
            run_planar(&conv, &input, residual.as_deref())
        });
        assert_close(&got, &want, 1e-4, format!("{what}, {threads} threads"));
    }
}

#[test]
fn blocked_convolutions_match_the_naive_reference() {
    if !Isa::Avx512.is_supported() {
        eprintln!("skipped: no AVX-512 on this CPU, blocked convolutions do not run here");
        return;
    }
    let mut rng = Rng(42);
    // ResNet50's shapes, scaled down in channels: 1x1 (flat walk), 3x3 pad 1, strided.
    let cases = [
        ((64, 64), (56, 56), (1, 1), (1, 1), (0, 0, 0, 0)),
        ((32, 64), (14, 14), (3, 3), (1, 1), (1, 1, 1, 1)),
        ((32, 48), (28, 28), (3, 3), (2, 2), (1, 1, 1, 1)),
        ((64, 128), (14, 14), (1, 1), (2, 2), (0, 0, 0, 0)),
        ((16, 80), (7, 7), (3, 3), (1, 1), (1, 1, 1, 1)),
        ((48, 16), (9, 13), (5, 5), (1, 2), (2, 2, 2, 2)),
        ((16, 32), (1, 1), (3, 3), (1, 1), (1, 1, 1, 1)),
        ((16, 16), (3, 20), (7, 7), (1, 1), (3, 3, 3, 3)),
        ((32, 16), (8, 8), (2, 2), (2, 2), (0, 0, 1, 1)),
        ((16, 32), (5, 6), (1, 1), (1, 1), (0, 0, 1, 1)),
    ];
    for (i, &(ch, size, k, s, pad)) in cases.iter().enumerate() {
        let activation = ACTIVATIONS[i % ACTIVATIONS.len()];
        check(&mut rng, ch, size, k, s, pad, i % 2 == 0, activation);
    }
    for _ in 0..40 {
        let ch = (16 * (1 + rng.below(4)), 16 * (1 + rng.below(9)));
        let size = (1 + rng.below(17), 1 + rng.below(17));
        let k = (1 + rng.below(5), 1 + rng.below(5));
        let s = (1 + rng.below(2), 1 + rng.below(2));
        let pad = (rng.below(3), rng.below(3), rng.below(3), rng.below(3));
        let activation = ACTIVATIONS[rng.below(ACTIVATIONS.len())];
        let residual = rng.below(2) == 1;
        check(&mut rng, ch, size, k, s, pad, residual, activation);
    }
}

#[test]
fn large_filters_run_in_pieces_of_groups_and_input_blocks() {
    if !Isa::Avx512.is_supported() {
        eprintln!("skipped: no AVX-512 on this CPU, blocked convolutions do not run here");
        return;
    }
    // 256 -> 80 channels 3x3: 180 KiB of filters per group of four output blocks, 720 KiB in
    // all, so a task runs several pieces and the later ones add to what the first stored.
    let mut rng = Rng(9);
    check(
        &mut rng,
        (512, 80),
        (6, 7),
        (3, 3),
        (1, 1),
        (1, 1, 1, 1),
        true,
        Activation::RELU,
    );
    check(
        &mut rng,
        (256, 16),
        (5, 5),
        (3, 3),
        (2, 2),
        (1, 1, 1, 1),
        false,
        Activation::Silu,
    );
}

#[test]
fn unsupported_shapes_are_refused() {
    let g = PlaneGeometry::new(24, (8, 8), (3, 3), (1, 1), (1, 1), (1, 1)).unwrap();
    assert!(!BlockedConv::supports(Isa::Avx512, &g, 32));
    assert!(BlockedConv::new(
        Isa::Avx2Fma,
        g,
        32,
        &[0.0; 32 * 24 * 9],
        &[0.0; 32],
        Activation::None
    )
    .is_err());
    let g = PlaneGeometry::new(16, (8, 8), (9, 9), (1, 1), (4, 4), (4, 4)).unwrap();
    assert!(!BlockedConv::supports(Isa::Avx512, &g, 16));
}
