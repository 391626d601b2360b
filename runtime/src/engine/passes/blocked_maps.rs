//! Chains of dense convolutions on channel-blocked maps (`[1, C / 16, H, W, 16]`), as ONNX
//! Runtime runs ResNets on AVX-512: a dense vigia convolution whose neighbours (what it reads,
//! its residual, what reads it) are dense vigia convolutions too becomes a
//! [`VigiaBlockedConv`], and the maps between two of them stay blocked. A
//! [`VigiaReorder`] converts where a chain starts and ends; a lone convolution stays planar
//! (converting both ways would cost more than the blocked kernel saves).
//!
//! Taken: AVX-512, whole blocks of 16 input and output channels (and of the maps they read:
//! a window of a wider map's channels starts on a block), kernels up to 7x7, output maps of
//! [`MIN_PIXELS`] pixels or more, batch 1 (or
//! none: `[C, H, W]` maps become `[C / 16, H, W, 16]`), no
//! concatenation read in parts. `VIGIA_BLOCKED=0` keeps every convolution planar.

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::engine::ops::vigia_blocked_conv::VigiaBlockedConv;
use crate::engine::ops::vigia_conv::{ChannelWindow, ConvKernel, VigiaConv};
use crate::engine::ops::vigia_reorder::VigiaReorder;
use crate::kernels::blocked_conv::{BlockedConv, BLOCK};
use crate::kernels::Isa;

/// Output pixels below which a convolution stays planar: on ResNet50's 7x7 maps the planar
/// product (vectors along the output channels there) ran 6-17 % faster than the blocked
/// kernel, on its 14x14 maps 2-17 % slower (`vigia bench --profile`, one thread).
const MIN_PIXELS: usize = 100;

/// Environment variable that keeps every convolution planar when set to `0`.
pub const BLOCKED_ENV: &str = "VIGIA_BLOCKED";

/// Puts chains of dense vigia convolutions on blocked maps; how many convolutions.
pub(super) fn block_chains(model: &mut TypedModel) -> TractResult<usize> {
    if std::env::var(BLOCKED_ENV).is_ok_and(|v| v == "0") {
        return Ok(0);
    }
    let mut candidates = HashMap::new();
    for id in model.eval_order()? {
        if let Some(conv) = blocked_form(model, id)? {
            candidates.insert(id, conv);
        }
    }
    let chained: Vec<usize> = model
        .eval_order()?
        .into_iter()
        .filter(|id| candidates.contains_key(id) && has_blocked_neighbour(model, *id, &candidates))
        .collect();
    for &id in &chained {
        replace(model, id, candidates[&id].clone())?;
    }
    if !chained.is_empty() {
        cancel_reorders(model)?;
        model.compact()?;
    }
    Ok(chained.len())
}

/// The blocked form of node `id`, when it is a dense vigia convolution the blocked kernel
/// takes, reading whole blocks of planar `[1, C, H, W]` maps.
fn blocked_form(model: &TypedModel, id: usize) -> TractResult<Option<Arc<BlockedConv>>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<VigiaConv>() else {
        return Ok(None);
    };
    let ConvKernel::Dense(dense) = &op.kernel else {
        return Ok(None);
    };
    let g = *dense.geometry();
    let out_channels = dense.out_channels();
    if op.inputs.len() != 1
        || !BlockedConv::supports(dense.isa(), &g, out_channels)
        || g.out_h * g.out_w < MIN_PIXELS
    {
        return Ok(None);
    }
    let planar = |outlet: OutletId, window: ChannelWindow, (h, w): (usize, usize)| {
        model.outlet_fact(outlet).map(|fact| {
            let shape = fact.shape.as_concrete();
            let chw = match shape {
                Some(&[1, c, fh, fw]) | Some(&[c, fh, fw]) => Some((c, fh, fw)),
                _ => None,
            };
            matches!(chw, Some((c, fh, fw)) if c.is_multiple_of(BLOCK) && (fh, fw) == (h, w))
                && window.first.is_multiple_of(BLOCK)
        })
    };
    if !planar(node.inputs[0], op.inputs[0], (g.in_h, g.in_w))? {
        return Ok(None);
    }
    if let Some(window) = op.residual {
        if !planar(node.inputs[1], window, (g.out_h, g.out_w))? {
            return Ok(None);
        }
    }
    let chw = [out_channels, g.out_h, g.out_w];
    if op.output_shape.as_slice() != chw
        && op.output_shape.as_slice() != [1, chw[0], chw[1], chw[2]]
    {
        return Ok(None);
    }
    let (weights, bias) = dense.filters();
    Ok(BlockedConv::new(
        dense.isa(),
        g,
        out_channels,
        &weights,
        &bias,
        dense.activation(),
    )
    .ok()
    .map(Arc::new))
}

/// Whether a candidate feeds node `id` (its input or residual) or reads its output.
fn has_blocked_neighbour(
    model: &TypedModel,
    id: usize,
    candidates: &HashMap<usize, Arc<BlockedConv>>,
) -> bool {
    let node = model.node(id);
    node.inputs.iter().any(|i| candidates.contains_key(&i.node))
        || node.outputs[0]
            .successors
            .iter()
            .any(|s| candidates.contains_key(&s.node))
}

/// Puts `conv` in place of node `id`, between a conversion to blocks of each map it reads and
/// one back to planes of its output.
fn replace(model: &mut TypedModel, id: usize, conv: Arc<BlockedConv>) -> TractResult<()> {
    let node = model.node(id);
    let op = node
        .op_as::<VigiaConv>()
        .context("a vigia convolution")?
        .clone();
    let name = node.name.clone();
    let inputs = node.inputs.clone();
    let g = *conv.geometry();
    let mut patch = TypedModelPatch::new(format!("blocked maps {name}"));
    let mut wires = tvec![];
    for (i, outlet) in inputs.iter().enumerate() {
        let fact = model.outlet_fact(*outlet)?;
        let shape = fact.shape.as_concrete().context("a concrete shape")?;
        let [.., channels, height, width] = *shape else {
            bail!("{name}: an input of shape {shape:?}");
        };
        let reorder = VigiaReorder {
            to_blocked: true,
            batch: shape.len() == 4,
            channels,
            height,
            width,
            isa: Isa::Avx512,
        };
        let tapped = patch.tap_model(model, *outlet)?;
        let what = if i == 0 { "input" } else { "residual" };
        wires.push(patch.wire_node(format!("{name}.{what}.blocked"), reorder, &[tapped])?[0]);
    }
    let batch = op.output_shape.len() == 4;
    let blocked = VigiaBlockedConv {
        conv: conv.clone(),
        batch,
        input_block: op.inputs[0].first / BLOCK,
        residual_block: op.residual.map(|w| w.first / BLOCK),
    };
    let out = patch.wire_node(format!("{name}.blocked"), blocked, &wires)?[0];
    let planes = VigiaReorder {
        to_blocked: false,
        batch,
        channels: conv.out_channels(),
        height: g.out_h,
        width: g.out_w,
        isa: Isa::Avx512,
    };
    let planes = patch.wire_node(format!("{name}.planes"), planes, &[out])?[0];
    patch.shunt_outside(model, OutletId::new(id, 0), planes)?;
    patch.apply(model)
}

/// Drops the conversions the replacements leave between two blocked convolutions: a map
/// converted to planes and back is read blocked where it was made, and a map converted to
/// blocks twice is converted once.
fn cancel_reorders(model: &mut TypedModel) -> TractResult<()> {
    let mut converted: HashMap<OutletId, OutletId> = HashMap::new();
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<VigiaReorder>() else {
            continue;
        };
        if !op.to_blocked {
            continue;
        }
        let source = node.inputs[0];
        let producer = model.node(source.node);
        let blocked = match producer.op_as::<VigiaReorder>() {
            Some(back) if !back.to_blocked => Some(producer.inputs[0]),
            _ => converted.get(&source).copied(),
        };
        match blocked {
            Some(blocked) => {
                let mut patch = TypedModelPatch::new(format!("blocked maps kept {}", node.name));
                let tapped = patch.tap_model(model, blocked)?;
                patch.shunt_outside(model, OutletId::new(id, 0), tapped)?;
                patch.apply(model)?;
            }
            None => {
                converted.insert(source, OutletId::new(id, 0));
            }
        }
    }
    Ok(())
}
