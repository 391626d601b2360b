//! Max and average pools, and tract's `Downsample`, as padding, shifted slices and strided
//! picks.
//!
//! A pool of kernel `k` and stride `s` along one axis, `o` outputs, is the input padded (with
//! -inf for max, 0 for average), the `k` slices of length `s (o - 1) + 1` starting at
//! `0..k` combined element-wise, then every `s`-th element. Axes are pooled one after the
//! other, which is exact for max and sum.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::math::{add, max, mul};
use tract_onnx::tract_core::ops::Downsample;

use super::{concrete, every_nth, pad_axis, scalar_like, slice};

/// How a pool combines its window.
#[derive(Clone, Copy, PartialEq)]
enum Combine {
    Max,
    /// A sum, divided by the kernel's size when `normalize`.
    Sum {
        normalize: bool,
    },
}

/// Replaces node `id` when it is a pool this lowering covers; false otherwise.
pub(super) fn lower_pool(model: &mut TypedModel, id: usize) -> TractResult<bool> {
    let node = model.node(id);
    let (spec, combine) = if let Some(op) = node.op_as::<MaxPool>() {
        if op.with_index_outputs.is_some() {
            return Ok(false);
        }
        (op.pool_spec.clone(), Combine::Max)
    } else if let Some(op) = node.op_as::<SumPool>() {
        // Excluding the padding from the divisor makes it vary along the border.
        if op.normalize && !op.count_include_pad && !pads_nothing(&op.pool_spec, model, node)? {
            return Ok(false);
        }
        (
            op.pool_spec.clone(),
            Combine::Sum {
                normalize: op.normalize,
            },
        )
    } else {
        return Ok(false);
    };
    if spec.dilations().iter().any(|&d| d != 1) {
        return Ok(false);
    }
    let input = node.inputs[0];
    let Some((shape, dt)) = concrete(model, input)? else {
        return Ok(false);
    };
    let data_shape = spec.data_format.shape(shape.clone())?;
    let hw_axes: Vec<usize> = data_shape.hw_axes().collect();
    let padding = spec.computed_padding(data_shape.hw_dims());
    let strides = spec.strides();
    let name = node.name.clone();
    let mut patch = TypedModelPatch::new(format!("gpu lowering {name}"));
    let mut x = patch.tap_model(model, input)?;
    let fill = if combine == Combine::Max {
        f32::NEG_INFINITY
    } else {
        0.0
    };
    for (i, &axis) in hw_axes.iter().enumerate() {
        let (k, s) = (spec.kernel_shape[i], strides[i]);
        let (before, out) = (padding[i].pad_before, padding[i].convoluted);
        let span = s * (out - 1) + 1;
        // Pad in front as the pool does, and behind as far as the last window reaches.
        let behind = (span + k - 1).saturating_sub(shape[axis] + before);
        if before + behind > 0 {
            let pad_name = format!("{name}.pad{axis}");
            x = pad_axis(&mut patch, &pad_name, x, axis, (before, behind), fill)?;
        }
        let mut acc = slice(&mut patch, &format!("{name}.tap{axis}_0"), x, axis, 0, span)?;
        for j in 1..k {
            let tap = slice(
                &mut patch,
                &format!("{name}.tap{axis}_{j}"),
                x,
                axis,
                j,
                span,
            )?;
            let op = if combine == Combine::Max {
                max()
            } else {
                add()
            };
            acc = patch.wire_node(format!("{name}.acc{axis}_{j}"), op, &[acc, tap])?[0];
        }
        x = every_nth(
            &mut patch,
            &format!("{name}.stride{axis}"),
            acc,
            axis,
            s,
            out,
        )?;
    }
    if combine == (Combine::Sum { normalize: true }) {
        let size: usize = spec.kernel_shape.iter().product();
        let scale = scalar_like(1.0 / size as f32, dt, shape.len())?;
        let scale = patch.add_const(format!("{name}.scale"), scale)?;
        x = patch.wire_node(format!("{name}.mean"), mul(), &[x, scale])?[0];
    }
    patch.shunt_outside(model, OutletId::new(id, 0), x)?;
    patch.apply(model)?;
    Ok(true)
}

/// Whether `spec` pads nothing on the node's input.
fn pads_nothing(spec: &PoolSpec, model: &TypedModel, node: &TypedNode) -> TractResult<bool> {
    let Some((shape, _)) = concrete(model, node.inputs[0])? else {
        return Ok(false);
    };
    let data_shape = spec.data_format.shape(shape)?;
    Ok(spec
        .computed_padding(data_shape.hw_dims())
        .iter()
        .all(|p| p.pad_before == 0 && p.pad_after == 0))
}

/// Replaces node `id` when it is a forward `Downsample`; false otherwise.
pub(super) fn lower_downsample(model: &mut TypedModel, id: usize) -> TractResult<bool> {
    let node = model.node(id);
    let Some(op) = node.op_as::<Downsample>() else {
        return Ok(false);
    };
    if op.stride <= 0 {
        return Ok(false);
    }
    let input = node.inputs[0];
    let (Some((shape, _)), Some((out_shape, _))) = (
        concrete(model, input)?,
        concrete(model, OutletId::new(id, 0))?,
    ) else {
        return Ok(false);
    };
    let (axis, stride, start) = (op.axis, op.stride as usize, op.modulo);
    let out = out_shape[axis];
    if out == 0 || start + stride * (out - 1) >= shape[axis] {
        return Ok(false);
    }
    let name = node.name.clone();
    let mut patch = TypedModelPatch::new(format!("gpu lowering {name}"));
    let mut x = patch.tap_model(model, input)?;
    if start > 0 {
        x = slice(
            &mut patch,
            &format!("{name}.skip"),
            x,
            axis,
            start,
            shape[axis] - start,
        )?;
    }
    let x = every_nth(&mut patch, &format!("{name}.pick"), x, axis, stride, out)?;
    patch.shunt_outside(model, OutletId::new(id, 0), x)?;
    patch.apply(model)?;
    Ok(true)
}
