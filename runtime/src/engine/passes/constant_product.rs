//! An f32 `EinSum` of two operands, one of them constant (filters, weights): the form tract's
//! declutter gives 1x1 convolutions and fully connected layers, as the pass reads it.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

/// The data input and the constant of the `EinSum`, and the axes of each side.
pub(super) struct ConstantProduct<'a> {
    /// The data input.
    pub data: OutletId,
    pub data_fact: &'a TypedFact,
    /// The constant (filters, weights).
    pub constant: &'a Arc<Tensor>,
    pub data_axes: Vec<char>,
    pub constant_axes: Vec<char>,
    pub output_axes: Vec<char>,
}

/// Node `id` as a [`ConstantProduct`]: an unquantized f32 `EinSum` of two f32 inputs, exactly
/// one of them constant; else `None`.
pub(super) fn constant_product(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<ConstantProduct<'_>>> {
    let node = model.node(id);
    let Some(einsum) = node.op_as::<EinSum>() else {
        return Ok(None);
    };
    if einsum.q_params.is_some()
        || einsum.operating_dt != f32::datum_type()
        || node.inputs.len() != 2
    {
        return Ok(None);
    }
    let facts = [
        model.outlet_fact(node.inputs[0])?,
        model.outlet_fact(node.inputs[1])?,
    ];
    let (x, f, constant) = match (&facts[0].konst, &facts[1].konst) {
        (None, Some(k)) => (0, 1, k),
        (Some(k), None) => (1, 0, k),
        _ => return Ok(None),
    };
    if facts[x].datum_type != f32::datum_type() || constant.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let (ins, outs) = einsum.axes.to_strs();
    Ok(Some(ConstantProduct {
        data: node.inputs[x],
        data_fact: facts[x],
        constant,
        data_axes: ins[x].chars().collect(),
        constant_axes: ins[f].chars().collect(),
        output_axes: outs[0].chars().collect(),
    }))
}
