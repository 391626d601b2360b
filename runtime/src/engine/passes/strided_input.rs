//! A 1x1 convolution with a stride reaches vigia's pass as tract's declutter leaves it: a
//! pointwise product over `Downsample`s of its input, one per strided axis (ResNet's
//! projection shortcuts). Reading through them gives the pass the
//! strided convolution back, which the dense kernel computes straight from the input instead
//! of two copies through tract's generic `Downsample`.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Downsample;

/// The outlet `outlet` takes every `strides.0`-th row and `strides.1`-th column of, through a
/// chain of `Downsample`s on `h_axis` and `w_axis` (at most one per axis, offset 0): that
/// outlet and the strides, or `outlet` itself and `(1, 1)`. A `Downsample` others read too
/// stays for them.
pub(super) fn strided_source(
    model: &TypedModel,
    outlet: OutletId,
    h_axis: usize,
    w_axis: usize,
) -> (OutletId, (usize, usize)) {
    let (mut outlet, mut strides) = (outlet, (1, 1));
    loop {
        let node = model.node(outlet.node);
        let Some(down) = node.op_as::<Downsample>() else {
            break;
        };
        if down.modulo != 0 || down.stride < 2 {
            break;
        }
        let stride = down.stride as usize;
        match down.axis {
            a if a == h_axis && strides.0 == 1 => strides.0 = stride,
            a if a == w_axis && strides.1 == 1 => strides.1 = stride,
            _ => break,
        }
        outlet = node.inputs[0];
    }
    (outlet, strides)
}
