//! `Resize` as one `Gather` and one weight per interpolation tap along each resized axis:
//! `out[.., x, ..] = sum_k w[x, k] * in[.., idx[x, k], ..]`, with tract's own plan (`idx`, `w`)
//! for the node's interpolator and coordinate transform, so the values are the CPU's.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::Gather;
use tract_onnx::tract_core::ops::math::{add, mul};
use tract_onnx::tract_core::ops::nn::resize::Resize;

use super::concrete;

/// Replaces node `id` when it is a `Resize` with constant scales or sizes; false otherwise.
pub(super) fn lower_resize(model: &mut TypedModel, id: usize) -> TractResult<bool> {
    let node = model.node(id);
    let Some(op) = node.op_as::<Resize>() else {
        return Ok(false);
    };
    let input = node.inputs[0];
    let (Some((shape, dt)), Some((out_shape, _))) = (
        concrete(model, input)?,
        concrete(model, OutletId::new(id, 0))?,
    ) else {
        return Ok(false);
    };
    let rank = shape.len();
    // The scales the CPU op uses: the constant input when it has one per axis, else the ratio
    // of the lengths.
    let given: Option<Vec<f32>> = match op.optional_scales_input {
        Some(ix) => match &model.outlet_fact(node.inputs[ix])?.konst {
            Some(t) if t.len() == rank => Some(
                t.cast_to::<f32>()?
                    .try_as_plain_ram()?
                    .as_slice::<f32>()?
                    .to_vec(),
            ),
            Some(_) => None,
            None => return Ok(false),
        },
        None => None,
    };
    let scales: Vec<f32> = given.unwrap_or_else(|| {
        out_shape
            .iter()
            .zip(&shape)
            .map(|(o, i)| *o as f32 / *i as f32)
            .collect()
    });
    let mut plans = vec![];
    for axis in 0..rank {
        let (len_in, len_out) = (shape[axis], out_shape[axis]);
        if len_in == len_out && scales[axis] == 1.0 {
            continue;
        }
        let plan = op.plan_axis(scales[axis], len_in, len_out);
        if plan.extrapolated.iter().any(|&e| e) {
            return Ok(false);
        }
        plans.push((axis, plan));
    }
    let name = node.name.clone();
    let mut patch = TypedModelPatch::new(format!("gpu lowering {name}"));
    let mut x = patch.tap_model(model, input)?;
    for (axis, plan) in plans {
        let len_out = out_shape[axis];
        let mut acc: Option<OutletId> = None;
        for k in 0..plan.window {
            let weights: Vec<f32> = (0..len_out)
                .map(|o| plan.weights[o * plan.window + k])
                .collect();
            if weights.iter().all(|&w| w == 0.0) {
                continue;
            }
            let indices: Vec<i64> = (0..len_out)
                .map(|o| plan.indices[o * plan.window + k] as i64)
                .collect();
            let indices = patch.add_const(format!("{name}.idx{axis}_{k}"), tensor1(&indices))?;
            let mut term = patch.wire_node(
                format!("{name}.gather{axis}_{k}"),
                Gather::new(axis),
                &[x, indices],
            )?[0];
            if weights.iter().any(|&w| w != 1.0) {
                let mut w_shape = vec![1; rank];
                w_shape[axis] = len_out;
                let w = tensor1(&weights)
                    .into_shape(&w_shape)?
                    .cast_to_dt(dt)?
                    .into_owned();
                let w = patch.add_const(format!("{name}.w{axis}_{k}"), w)?;
                term = patch.wire_node(format!("{name}.weigh{axis}_{k}"), mul(), &[term, w])?[0];
            }
            acc = Some(match acc {
                None => term,
                Some(a) => patch.wire_node(format!("{name}.sum{axis}_{k}"), add(), &[a, term])?[0],
            });
        }
        let Some(resampled) = acc else {
            return Ok(false);
        };
        x = resampled;
    }
    patch.shunt_outside(model, OutletId::new(id, 0), x)?;
    patch.apply(model)?;
    Ok(true)
}
