//! Chains of convolutions on channel-blocked maps (`[1, C / 16, H, W, 16]`), as ONNX Runtime
//! runs ResNets and EfficientNets on AVX-512: vigia convolutions that read one another (as
//! input or residual) form chains, each convolution of a chain becomes a [`VigiaBlockedConv`]
//! (dense) or a [`VigiaBlockedDepthwise`], and the maps between two of them stay blocked. A [`VigiaReorder`] converts where a chain starts
//! and ends, so a chain is blocked only when it computes enough per value converted
//! ([`MIN_MACS_PER_CONVERTED`]); a lone convolution stays planar. A channel concatenation that
//! only blocked convolutions read joins blocked maps ([`concat_blocked`]).
//!
//! Taken: AVX-512, whole blocks of 16 input and output channels (and of the maps they read:
//! a window of a wider map's channels starts on a block); dense kernels up to 7x7 with output
//! maps of [`MIN_PIXELS`] pixels or more, depthwise ones of any size; batch 1 (or
//! none: `[C, H, W]` maps become `[C / 16, H, W, 16]`), no
//! concatenation read in parts. `VIGIA_BLOCKED=0` keeps every convolution planar.

use std::collections::{HashMap, HashSet};

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::TypedConcat;

use crate::engine::ops::vigia_blocked_conv::VigiaBlockedConv;
use crate::engine::ops::vigia_blocked_depthwise::VigiaBlockedDepthwise;
use crate::engine::ops::vigia_conv::{ChannelWindow, ConvKernel, VigiaConv};
use crate::engine::ops::vigia_reorder::VigiaReorder;
use crate::kernels::blocked_conv::{BlockedConv, BLOCK};
use crate::kernels::depthwise::DepthwiseConv;
use crate::kernels::planes::PlaneGeometry;
use crate::kernels::Isa;

/// Output pixels below which a convolution stays planar: on ResNet50's 7x7 maps the planar
/// product (vectors along the output channels there) ran 6-17 % faster than the blocked
/// kernel, on its 14x14 maps 2-17 % slower (`vigia bench --profile`, one thread).
const MIN_PIXELS: usize = 100;

/// Multiply-adds a chain needs per value converted at its ends. ResNet50's chain (stages 2 to
/// 4) has about 6 500 and runs 10 % faster blocked; NanoDet-m's (168-1 152) and YOLOv8n's
/// (90-1 100) chains took those models 2-4 % faster; EfficientNet-Lite0's chains of dense
/// convolutions alone (16-112: a projection and the next block's expansions, between
/// depthwise layers left planar) made it 10 % slower at two threads.
const MIN_MACS_PER_CONVERTED: u64 = 150;

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
    let kept = chains_that_pay(model, &candidates)?;
    let chained: Vec<usize> = model
        .eval_order()?
        .into_iter()
        .filter(|id| kept.contains(id))
        .collect();
    for &id in &chained {
        replace(model, id, candidates[&id].clone())?;
    }
    if !chained.is_empty() {
        cancel_reorders(model)?;
        concat_blocked(model)?;
        model.compact()?;
    }
    Ok(chained.len())
}

/// A convolution's form on blocked maps.
#[derive(Debug, Clone)]
enum BlockedForm {
    Dense(Arc<BlockedConv>),
    /// A depthwise convolution and the instruction set of its kernels.
    Depthwise(Arc<DepthwiseConv>, Isa),
}

impl BlockedForm {
    fn geometry(&self) -> &PlaneGeometry {
        match self {
            BlockedForm::Dense(conv) => conv.geometry(),
            BlockedForm::Depthwise(conv, _) => conv.geometry(),
        }
    }

    fn out_channels(&self) -> usize {
        match self {
            BlockedForm::Dense(conv) => conv.out_channels(),
            BlockedForm::Depthwise(conv, _) => conv.geometry().channels,
        }
    }

    fn macs(&self) -> u64 {
        match self {
            BlockedForm::Dense(conv) => conv.macs(),
            BlockedForm::Depthwise(conv, _) => {
                let g = conv.geometry();
                (g.output_len() * g.kernel_h * g.kernel_w) as u64
            }
        }
    }
}

/// The blocked form of node `id`, when it is a vigia convolution the blocked kernels take,
/// reading whole blocks of planar `[1, C, H, W]` maps.
fn blocked_form(model: &TypedModel, id: usize) -> TractResult<Option<BlockedForm>> {
    let node = model.node(id);
    let Some(op) = node.op_as::<VigiaConv>() else {
        return Ok(None);
    };
    let form = match &op.kernel {
        ConvKernel::Dense(dense) => {
            let g = *dense.geometry();
            if !BlockedConv::supports(dense.isa(), &g, dense.out_channels())
                || g.out_h * g.out_w < MIN_PIXELS
            {
                return Ok(None);
            }
            let (weights, bias) = dense.filters();
            let conv = BlockedConv::new(
                dense.isa(),
                g,
                dense.out_channels(),
                &weights,
                &bias,
                dense.activation(),
            );
            match conv {
                Ok(conv) => BlockedForm::Dense(Arc::new(conv)),
                Err(_) => return Ok(None),
            }
        }
        ConvKernel::Depthwise(conv, isa)
            if *isa == Isa::Avx512 && conv.geometry().channels.is_multiple_of(BLOCK) =>
        {
            BlockedForm::Depthwise(conv.clone(), *isa)
        }
        _ => return Ok(None),
    };
    let g = *form.geometry();
    if op.inputs.len() != 1 {
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
        if matches!(form, BlockedForm::Depthwise(..))
            || !planar(node.inputs[1], window, (g.out_h, g.out_w))?
        {
            return Ok(None);
        }
    }
    let chw = [form.out_channels(), g.out_h, g.out_w];
    if op.output_shape.as_slice() != chw
        && op.output_shape.as_slice() != [1, chw[0], chw[1], chw[2]]
    {
        return Ok(None);
    }
    Ok(Some(form))
}

/// The candidates in chains worth blocking: the chains (candidates joined through the maps one
/// reads from another, as input or residual) of two convolutions or more with at least
/// [`MIN_MACS_PER_CONVERTED`] multiply-adds per value converted at their ends.
fn chains_that_pay(
    model: &TypedModel,
    candidates: &HashMap<usize, BlockedForm>,
) -> TractResult<HashSet<usize>> {
    // Union-find over the candidates: each one joined to the candidates it reads.
    let mut parent: HashMap<usize, usize> = candidates.keys().map(|&id| (id, id)).collect();
    fn root(parent: &mut HashMap<usize, usize>, mut id: usize) -> usize {
        while parent[&id] != id {
            let up = parent[&parent[&id]];
            parent.insert(id, up);
            id = up;
        }
        id
    }
    for &id in candidates.keys() {
        for input in &model.node(id).inputs {
            if candidates.contains_key(&input.node) {
                let (a, b) = (root(&mut parent, id), root(&mut parent, input.node));
                parent.insert(a, b);
            }
        }
    }
    // Per chain: its convolutions, multiply-adds and the maps converted at its ends.
    let outputs = model.output_outlets()?.to_vec();
    let mut chains: HashMap<usize, (Vec<usize>, u64, HashSet<OutletId>)> = HashMap::new();
    for (&id, conv) in candidates {
        let node = model.node(id);
        let mut ends: Vec<OutletId> = node
            .inputs
            .iter()
            .filter(|i| !candidates.contains_key(&i.node))
            .copied()
            .collect();
        let out = OutletId::new(id, 0);
        let read_planar = node.outputs[0]
            .successors
            .iter()
            .any(|s| !candidates.contains_key(&s.node));
        if read_planar || outputs.contains(&out) {
            ends.push(out);
        }
        let chain = chains.entry(root(&mut parent, id)).or_default();
        chain.0.push(id);
        chain.1 += conv.macs();
        chain.2.extend(ends);
    }
    let mut kept = HashSet::new();
    for (members, macs, ends) in chains.into_values() {
        let mut converted = 0u64;
        for end in &ends {
            converted += model.outlet_fact(*end)?.shape.volume().to_usize()? as u64;
        }
        if members.len() >= 2 && macs >= MIN_MACS_PER_CONVERTED * converted.max(1) {
            kept.extend(members);
        }
    }
    Ok(kept)
}

/// Puts `form` in place of node `id`, between a conversion to blocks of each map it reads and
/// one back to planes of its output.
fn replace(model: &mut TypedModel, id: usize, form: BlockedForm) -> TractResult<()> {
    let node = model.node(id);
    let op = node
        .op_as::<VigiaConv>()
        .context("a vigia convolution")?
        .clone();
    let name = node.name.clone();
    let inputs = node.inputs.clone();
    let g = *form.geometry();
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
    let input_block = op.inputs[0].first / BLOCK;
    let blocked: Box<dyn TypedOp> = match &form {
        BlockedForm::Dense(conv) => Box::new(VigiaBlockedConv {
            conv: conv.clone(),
            batch,
            input_block,
            residual_block: op.residual.map(|w| w.first / BLOCK),
        }),
        BlockedForm::Depthwise(conv, isa) => Box::new(VigiaBlockedDepthwise {
            conv: conv.clone(),
            isa: *isa,
            batch,
            input_block,
        }),
    };
    let out = patch.wire_node(format!("{name}.blocked"), blocked, &wires)?[0];
    let planes = VigiaReorder {
        to_blocked: false,
        batch,
        channels: form.out_channels(),
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

/// Concatenates on blocked maps the channels of parts of which at least one is a blocked map
/// converted to planes (the others planar maps of whole blocks of channels), where only
/// conversions back to blocks read the result (NanoDet-m's joins of two branches before a
/// strided convolution): along the blocks' axis, each planar part converted alone, the
/// blocked parts' and the result's conversions dropped.
fn concat_blocked(model: &mut TypedModel) -> TractResult<()> {
    let outputs = model.output_outlets()?.to_vec();
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(concat) = node.op_as::<TypedConcat>() else {
            continue;
        };
        let out = OutletId::new(id, 0);
        let rank = model.outlet_fact(out)?.rank();
        let batch = rank == 4;
        let reorder = |outlet: OutletId, to_blocked: bool| {
            model
                .node(outlet.node)
                .op_as::<VigiaReorder>()
                .filter(|r| r.to_blocked == to_blocked && r.batch == batch)
                .is_some()
        };
        // Each part: the blocked map behind its conversion, or the planar map's dimensions.
        let mut parts = vec![];
        for input in &node.inputs {
            if reorder(*input, false) {
                parts.push(Err(model.node(input.node).inputs[0]));
                continue;
            }
            let shape = model
                .outlet_fact(*input)?
                .shape
                .as_concrete()
                .map(|s| s.to_vec());
            match shape.as_deref() {
                Some(&[1, c, h, w]) | Some(&[c, h, w]) if c.is_multiple_of(BLOCK) => {
                    parts.push(Ok((*input, c, h, w)))
                }
                _ => break,
            }
        }
        let readers = &node.outputs[0].successors;
        let read_blocked = !readers.is_empty()
            && readers
                .iter()
                .all(|r| reorder(OutletId::new(r.node, 0), true));
        if !(rank == 3 || batch)
            || concat.axis != rank - 3
            || outputs.contains(&out)
            || parts.len() != node.inputs.len()
            || parts.iter().all(|p| p.is_ok())
            || !read_blocked
        {
            continue;
        }
        let mut patch = TypedModelPatch::new(format!("blocked maps concatenated {}", node.name));
        let mut wires = tvec![];
        for (i, part) in parts.into_iter().enumerate() {
            wires.push(match part {
                Err(blocked) => patch.tap_model(model, blocked)?,
                Ok((planar, channels, height, width)) => {
                    let tapped = patch.tap_model(model, planar)?;
                    let to_blocked = VigiaReorder {
                        to_blocked: true,
                        batch,
                        channels,
                        height,
                        width,
                        isa: Isa::Avx512,
                    };
                    let name = format!("{}.part-{i}.blocked", node.name);
                    patch.wire_node(name, to_blocked, &[tapped])?[0]
                }
            });
        }
        let axis = concat.axis;
        let name = format!("{}.blocked", node.name);
        let joined = patch.wire_node(name, TypedConcat { axis }, &wires)?[0];
        for reader in readers {
            patch.shunt_outside(model, OutletId::new(reader.node, 0), joined)?;
        }
        patch.apply(model)?;
    }
    Ok(())
}
