//! What follows a convolution and folds into vigia's kernel: per-channel multiplications and
//! additions (a bias, an unfolded BatchNorm), folded into the filters and biases, then one
//! activation, applied in the kernel's epilogue. Only steps that alone read the previous
//! output are taken, so nothing else sees a changed value.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::{Add, Max, Min, Mul};
use tract_onnx::tract_core::ops::nn::{HardSwish, LeakyRelu, Sigmoid, Silu};

use crate::kernels::Activation;

/// A per-channel operation on a convolution's output that folds into its filters and biases.
pub(super) enum ChannelAffine {
    /// `y = x * s[c]`.
    Scale(Vec<f32>),
    /// `y = x + s[c]`.
    Shift(Vec<f32>),
}

impl ChannelAffine {
    /// Folds the step into filters (`out_channels` equal rows) and biases.
    pub(super) fn fold(&self, weights: &mut [f32], bias: &mut [f32]) {
        let per_channel = weights.len() / bias.len();
        match self {
            ChannelAffine::Scale(s) => {
                for ((row, b), &s) in weights.chunks_exact_mut(per_channel).zip(bias).zip(s) {
                    row.iter_mut().for_each(|w| *w *= s);
                    *b *= s;
                }
            }
            ChannelAffine::Shift(s) => bias.iter_mut().zip(s).for_each(|(b, s)| *b += s),
        }
    }
}

/// The multiplication or addition by a per-channel constant that alone reads node `id`'s
/// output, with the node computing it.
pub(super) fn channel_affine_step(
    model: &TypedModel,
    id: usize,
    channel_axis: usize,
    channels: usize,
) -> TractResult<Option<(usize, ChannelAffine)>> {
    let Some(next) = sole_reader(model, id)? else {
        return Ok(None);
    };
    let node = model.node(next);
    let Some(bin) = node.op_as::<TypedBinOp>() else {
        return Ok(None);
    };
    if node.inputs.len() != 2 || !(bin.0.is::<Add>() || bin.0.is::<Mul>()) {
        return Ok(None);
    }
    let other = if node.inputs[0].node == id {
        node.inputs[1]
    } else {
        node.inputs[0]
    };
    let out_rank = model.outlet_fact(OutletId::new(id, 0))?.rank();
    let fact = model.outlet_fact(other)?;
    let Some(c) = fact.konst.as_ref() else {
        return Ok(None);
    };
    if c.datum_type() != f32::datum_type() || c.rank() > out_rank {
        return Ok(None);
    }
    // Dimensions align from the right: only the channel axis may differ from 1.
    let offset = out_rank - c.rank();
    let per_channel = c
        .shape()
        .iter()
        .enumerate()
        .all(|(i, &d)| d == 1 || (i + offset == channel_axis && d == channels));
    if !per_channel {
        return Ok(None);
    }
    let values: Vec<f32> = c.to_plain_array_view::<f32>()?.iter().copied().collect();
    let values = if values.len() == 1 {
        vec![values[0]; channels]
    } else {
        values
    };
    Ok(Some((
        next,
        if bin.0.is::<Add>() {
            ChannelAffine::Shift(values)
        } else {
            ChannelAffine::Scale(values)
        },
    )))
}

/// The activation applied to node `id`'s only output, and the node whose output is then the
/// fused result (`id` itself when nothing is fused).
pub(super) fn following_activation(
    model: &TypedModel,
    id: usize,
) -> TractResult<(Activation, usize)> {
    if let Some((scale, end)) = decomposed_hard_swish(model, id)? {
        return Ok((Activation::ScaledHardSwish { scale }, end));
    }
    let mut activation = Activation::None;
    let mut last = id;
    // At most two steps: Max then Min (ReLU6, clip) or Min then Max.
    for _ in 0..2 {
        let Some(next) = sole_reader(model, last)? else {
            break;
        };
        let node = model.node(next);
        let step = if let Some(ew) = node.op_as::<ElementWiseOp>() {
            if activation != Activation::None {
                None
            } else if ew.0.is::<HardSwish>() {
                Some(Activation::HardSwish)
            } else if ew.0.is::<Sigmoid>() {
                Some(Activation::Sigmoid)
            } else if ew.0.is::<Silu>() {
                Some(Activation::Silu)
            } else {
                ew.0.downcast_ref::<LeakyRelu>()
                    .map(|l| Activation::LeakyRelu { alpha: l.alpha })
            }
        } else if let Some(bin) = node.op_as::<TypedBinOp>() {
            clip_step(model, node, bin, last, activation)?
        } else {
            None
        };
        match step {
            Some(a) => {
                activation = a;
                last = next;
            }
            None => break,
        }
    }
    Ok((activation, last))
}

/// The single node reading node `id`'s only output, when that output is not a model output.
pub(super) fn sole_reader(model: &TypedModel, id: usize) -> TractResult<Option<usize>> {
    let outlet = OutletId::new(id, 0);
    if model.node(id).outputs.len() != 1 || model.output_outlets()?.contains(&outlet) {
        return Ok(None);
    }
    Ok(match model.outlet_successors(outlet) {
        [only] => Some(only.node),
        _ => None,
    })
}

/// `Max(x, c)` or `Min(x, c)` with a constant scalar `c`, folded into the clip so far.
fn clip_step(
    model: &TypedModel,
    node: &TypedNode,
    bin: &TypedBinOp,
    from: usize,
    so_far: Activation,
) -> TractResult<Option<Activation>> {
    let (lo, hi) = match so_far {
        Activation::None => (f32::NEG_INFINITY, f32::INFINITY),
        Activation::Clip { min, max } => (min, max),
        _ => return Ok(None),
    };
    let Some(c) = scalar_operand(model, node.id, from)? else {
        return Ok(None);
    };
    Ok(if bin.0.is::<Max>() {
        Some(Activation::Clip {
            min: lo.max(c),
            max: hi,
        })
    } else if bin.0.is::<Min>() {
        Some(Activation::Clip {
            min: lo,
            max: hi.min(c),
        })
    } else {
        None
    })
}

/// A hard swish written out in elementary operators on node `id`'s output, as TensorFlow
/// exports MobileNetV3: `Mul(Mul(x, s), Min(Max(Add(x, 3), 0), 6))` with `s` near 1/6 (the
/// clip's two bounds in either order, each product's operands in either order), every
/// intermediate read once; its scale `s` and the node computing the result.
fn decomposed_hard_swish(model: &TypedModel, id: usize) -> TractResult<Option<(f32, usize)>> {
    let outlet = OutletId::new(id, 0);
    if model.node(id).outputs.len() != 1 || model.output_outlets()?.contains(&outlet) {
        return Ok(None);
    }
    let readers: Vec<usize> = model
        .outlet_successors(outlet)
        .iter()
        .map(|i| i.node)
        .collect();
    let [a, b] = readers[..] else {
        return Ok(None);
    };
    let is = |node: usize, check: fn(&TypedBinOp) -> bool| {
        model.node(node).op_as::<TypedBinOp>().is_some_and(check)
    };
    let (scaled, shifted) = if is(a, |b| b.0.is::<Mul>()) && is(b, |b| b.0.is::<Add>()) {
        (a, b)
    } else if is(b, |b| b.0.is::<Mul>()) && is(a, |b| b.0.is::<Add>()) {
        (b, a)
    } else {
        return Ok(None);
    };
    // 1/6 as exported, possibly rounded through f16 on the way (0.16662598).
    let Some(scale) = scalar_operand(model, scaled, id)? else {
        return Ok(None);
    };
    if (scale - 1.0 / 6.0).abs() > 1e-3 || scalar_operand(model, shifted, id)? != Some(3.0) {
        return Ok(None);
    }
    // The clip after the shift: two steps, Max then Min or Min then Max.
    let mut clip = Activation::None;
    let mut last = shifted;
    for _ in 0..2 {
        let Some(next) = sole_reader(model, last)? else {
            return Ok(None);
        };
        let node = model.node(next);
        let Some(bin) = node.op_as::<TypedBinOp>() else {
            return Ok(None);
        };
        match clip_step(model, node, bin, last, clip)? {
            Some(c) => clip = c,
            None => return Ok(None),
        }
        last = next;
    }
    if clip != (Activation::Clip { min: 0.0, max: 6.0 }) {
        return Ok(None);
    }
    let (Some(end), Some(end2)) = (sole_reader(model, scaled)?, sole_reader(model, last)?) else {
        return Ok(None);
    };
    let product = model.node(end);
    let operands: Vec<usize> = product.inputs.iter().map(|i| i.node).collect();
    let both = operands.len() == 2 && operands.contains(&scaled) && operands.contains(&last);
    Ok((end == end2 && is(end, |b| b.0.is::<Mul>()) && both).then_some((scale, end)))
}

/// The constant scalar that binary node `id` combines with node `from`'s output, if it is one
/// (and does not broadcast the result to a larger shape).
fn scalar_operand(model: &TypedModel, id: usize, from: usize) -> TractResult<Option<f32>> {
    let node = model.node(id);
    if node.inputs.len() != 2 {
        return Ok(None);
    }
    let other = match (node.inputs[0].node == from, node.inputs[1].node == from) {
        (true, false) => node.inputs[1],
        (false, true) => node.inputs[0],
        _ => return Ok(None),
    };
    let fact = model.outlet_fact(other)?;
    let Some(c) = fact.uniform.as_ref().or(fact.konst.as_ref()) else {
        return Ok(None);
    };
    if c.datum_type() != f32::datum_type()
        || c.len() != 1
        || fact.rank() > model.outlet_fact(OutletId::new(from, 0))?.rank()
    {
        return Ok(None);
    }
    Ok(c.to_plain_array_view::<f32>()?.iter().next().copied())
}
