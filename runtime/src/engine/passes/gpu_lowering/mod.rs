//! Expresses the operators tract-cuda has no kernel for with operators it has, so that a graph
//! stays on the GPU instead of crossing to the CPU and back around each of them.
//!
//! On tract's decluttered model, before tract-cuda translates it: max and average pooling
//! ([`pool`]: padding, shifted slices combined by `Max` or `Add`, a strided pick), tract's
//! `Downsample` (the strided pick that strided 1x1 convolutions leave), and `Resize` ([`resize`]:
//! per resized axis, a `Gather` and a weight per interpolation tap). Every replacement computes
//! what tract's CPU operator computes; the operators it uses (`Pad`, `Slice`, `Max`, `Add`,
//! `Mul`, `Gather`, reshapes) all have tract-cuda kernels. Anything the lowering does not
//! cover (dilated or index-returning pools, average pools that exclude padding from the
//! divisor, resizes that extrapolate) stays as it was.

mod pool;
mod resize;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode, Slice};

/// What the lowering replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoweringReport {
    /// Max and average pools.
    pub pools: usize,
    /// `Downsample` nodes.
    pub downsamples: usize,
    /// `Resize` nodes.
    pub resizes: usize,
}

impl LoweringReport {
    /// Nodes replaced in total.
    pub fn replaced(&self) -> usize {
        self.pools + self.downsamples + self.resizes
    }
}

/// Replaces every pool, downsample and resize of `model` (decluttered, concrete shapes, f32 or
/// f16) that tract-cuda cannot run by GPU-ready operators computing the same values.
pub fn lower_for_gpu(model: &mut TypedModel) -> TractResult<LoweringReport> {
    let mut report = LoweringReport::default();
    for id in model.eval_order()? {
        if pool::lower_pool(model, id)? {
            report.pools += 1;
        } else if pool::lower_downsample(model, id)? {
            report.downsamples += 1;
        } else if resize::lower_resize(model, id)? {
            report.resizes += 1;
        }
    }
    if report.replaced() > 0 {
        model.compact()?;
    }
    Ok(report)
}

/// The concrete shape and type of `outlet` when it is an f32 or f16 tensor of known shape.
fn concrete(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(TVec<usize>, DatumType)>> {
    let fact = model.outlet_fact(outlet)?;
    let dt = fact.datum_type;
    if dt != f32::datum_type() && dt != f16::datum_type() {
        return Ok(None);
    }
    Ok(fact.shape.as_concrete().map(|s| (s.into(), dt)))
}

/// A scalar of type `dt` with value `v`, shaped to broadcast against a tensor of rank `rank`.
fn scalar_like(v: f32, dt: DatumType, rank: usize) -> TractResult<Tensor> {
    let mut t = tensor0(v).cast_to_dt(dt)?.into_owned();
    for _ in 0..rank {
        t.insert_axis(0)?;
    }
    Ok(t)
}

/// Pads `axis` of `x` with `before` and `after` elements of `value`.
fn pad_axis(
    patch: &mut TypedModelPatch,
    name: &str,
    x: OutletId,
    axis: usize,
    (before, after): (usize, usize),
    value: f32,
) -> TractResult<OutletId> {
    let fact = patch.outlet_fact(x)?.clone();
    let mut pads = vec![(0, 0); fact.rank()];
    pads[axis] = (before, after);
    let value = tensor0(value).cast_to_dt(fact.datum_type)?.into_owned();
    let op = Pad {
        pads,
        mode: PadMode::Constant(value.into_arc_tensor()),
    };
    Ok(patch.wire_node(name, op, &[x])?[0])
}

/// Keeps `len` elements of `axis` of `x` from `start`.
fn slice(
    patch: &mut TypedModelPatch,
    name: &str,
    x: OutletId,
    axis: usize,
    start: usize,
    len: usize,
) -> TractResult<OutletId> {
    Ok(patch.wire_node(name, Slice::new(axis, start, start + len), &[x])?[0])
}

/// Elements `0, stride, 2 stride, ...` of `axis` of `x`, `out` of them (`x` holds at least
/// `stride * (out - 1) + 1`): padded or cut to `stride * out`, split into `[out, stride]`, and
/// the first of each `stride` kept.
fn every_nth(
    patch: &mut TypedModelPatch,
    name: &str,
    x: OutletId,
    axis: usize,
    stride: usize,
    out: usize,
) -> TractResult<OutletId> {
    let len = patch.outlet_fact(x)?.shape[axis].to_usize()?;
    let want = stride * out;
    let mut x = x;
    if stride == 1 {
        return if len == out {
            Ok(x)
        } else {
            slice(patch, &format!("{name}.cut"), x, axis, 0, out)
        };
    }
    if len < want {
        x = pad_axis(
            patch,
            &format!("{name}.fill"),
            x,
            axis,
            (0, want - len),
            0.0,
        )?;
    } else if len > want {
        x = slice(patch, &format!("{name}.cut"), x, axis, 0, want)?;
    }
    let split = AxisOp::Reshape(
        axis,
        tvec![want.to_dim()],
        tvec![out.to_dim(), stride.to_dim()],
    );
    let x = patch.wire_node(format!("{name}.split"), split, &[x])?[0];
    let x = slice(patch, &format!("{name}.first"), x, axis + 1, 0, 1)?;
    Ok(patch.wire_node(format!("{name}.merge"), AxisOp::Rm(axis + 1), &[x])?[0])
}
