//! Joins a 1x1 expansion and the depthwise convolution that alone reads it into one
//! [`VigiaExpandDepthwise`], where the expanded map is too large for L2
//! ([`MIN_EXPANDED_BYTES`]): the start of an inverted residual block on a large map, whose
//! expanded channels are then convolved a group at a time while they are in cache
//! ([`crate::kernels::expand_depthwise`]). AVX-512 only (measured there).

use tract_onnx::prelude::*;

use crate::engine::ops::vigia_conv::{ChannelWindow, ConvKernel, VigiaConv};
use crate::engine::ops::vigia_expand_depthwise::VigiaExpandDepthwise;
use crate::kernels::expand_depthwise::ExpandDepthwise;
use crate::kernels::Isa;

/// Bytes of expanded map from which the two layers are joined: EfficientNet-Lite0's blocks 1
/// to 4 (4.8 MB to 750 KB) took 0.25 ms, 65, 47 and 15 us less joined (`vigia bench
/// --profile`, one thread).
const MIN_EXPANDED_BYTES: usize = 1 << 19;

/// Bytes of input up to which the two layers are joined: each group reads all of it, from L2
/// where it fits. CenterNet-MobileNetV3's expansions of 16-24 channels at 128x128 and 256x256
/// (1.5-4 MB) made it 10 % slower at two threads, each group reading them from memory.
const MAX_INPUT_BYTES: usize = 1 << 20;

/// Joins every expansion and depthwise convolution worth it; how many pairs.
pub(super) fn join_expansions(model: &mut TypedModel) -> TractResult<usize> {
    let mut joined = 0;
    for id in model.eval_order()? {
        let Some(op) = joined_op(model, id)? else {
            continue;
        };
        let node = model.node(id);
        let expand = model.node(node.inputs[0].node);
        let mut patch = TypedModelPatch::new(format!("expansion and depthwise {}", node.name));
        let input = patch.tap_model(model, expand.inputs[0])?;
        let name = format!("{}.with-expansion", node.name);
        let out = patch.wire_node(name, op, &[input])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        patch.apply(model)?;
        joined += 1;
    }
    if joined > 0 {
        model.compact()?;
    }
    Ok(joined)
}

/// The joined operator for node `id`, when it is a depthwise vigia convolution reading the
/// whole output of a 1x1 expansion that nothing else reads, on AVX-512.
fn joined_op(model: &TypedModel, id: usize) -> TractResult<Option<VigiaExpandDepthwise>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<VigiaConv>() else {
        return Ok(None);
    };
    let ConvKernel::Depthwise(depthwise, isa) = &op.kernel else {
        return Ok(None);
    };
    let channels = depthwise.geometry().channels;
    if *isa != Isa::Avx512
        || op.residual.is_some()
        || op.inputs.as_slice() != [ChannelWindow::whole(channels)]
    {
        return Ok(None);
    }
    let source = node.inputs[0];
    let producer = model.node(source.node);
    let Some(expand_op) = producer.op_as::<VigiaConv>() else {
        return Ok(None);
    };
    let ConvKernel::Dense(expand) = &expand_op.kernel else {
        return Ok(None);
    };
    let in_channels = expand.geometry().channels;
    if expand_op.residual.is_some()
        || expand_op.inputs.as_slice() != [ChannelWindow::whole(in_channels)]
        || producer.outputs[0].successors.len() != 1
        || model.output_outlets()?.contains(&source)
        || expand.output_len() * size_of::<f32>() < MIN_EXPANDED_BYTES
    {
        return Ok(None);
    }
    let Ok(fused) = ExpandDepthwise::new(expand, depthwise.clone(), *isa) else {
        return Ok(None);
    };
    // The expansion's input is read whole: its tensor holds exactly its channels.
    let input = model.outlet_fact(producer.inputs[0])?;
    if input
        .shape
        .as_concrete()
        .map(|s| s.iter().product::<usize>())
        != Some(fused.input_len())
        || fused.input_len() * size_of::<f32>() > MAX_INPUT_BYTES
    {
        return Ok(None);
    }
    Ok(Some(VigiaExpandDepthwise {
        fused: Arc::new(fused),
        output_shape: op.output_shape.clone(),
    }))
}
