//! After vigia's convolutions are in place, two rewrites that save copies of whole maps:
//! - dense convolutions that read the same inputs the same way (the two halves tract's
//!   declutter cuts a 1x1 convolution into when its output is split: YOLO's C2f and C3k2
//!   blocks) run as one, with their filters stacked, each former output a `Slice` of the
//!   channels of the merged one ([`merge_siblings`]);
//! - a vigia convolution whose input or residual is a `Slice` of the channels of a planar tensor
//!   reads that window of the tensor in place ([`read_slices_in_place`]): the slices of a
//!   merged convolution, ShuffleNet's channel splits, and the parts of a concatenation.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::Slice;

use crate::engine::ops::vigia_conv::{ChannelWindow, ConvKernel, VigiaConv};
use crate::kernels::dense_conv::DenseConv;

/// Merges each group of dense vigia convolutions that read the same inputs through the same
/// windows with the same geometry, activation and instruction set and have no residual; how
/// many convolutions were merged into another. Vigia convolutions read their slice of the
/// merged output in place; other readers through a copy, so a group is merged only when those
/// copies move fewer channels than the input has (whose second reading the merge saves).
pub(super) fn merge_siblings(model: &mut TypedModel) -> TractResult<usize> {
    let mut groups: Vec<Vec<usize>> = vec![];
    for id in model.eval_order()? {
        if !mergeable(model, id)? {
            continue;
        }
        match groups.iter_mut().find(|g| same_product(model, g[0], id)) {
            Some(group) => group.push(id),
            None => groups.push(vec![id]),
        }
    }
    let mut merged = 0;
    for group in groups.into_iter().filter(|g| g.len() > 1) {
        let copied: usize = group
            .iter()
            .filter(|&&id| !only_vigia_reads(model, id))
            .filter_map(|&id| dense(model, id).map(|(_, conv)| conv.out_channels()))
            .sum();
        let channels = dense(model, group[0]).map_or(0, |(_, conv)| conv.geometry().channels);
        if copied < channels {
            merge(model, &group)?;
            merged += group.len() - 1;
        }
    }
    if merged > 0 {
        model.compact()?;
    }
    Ok(merged)
}

/// The dense convolution node `id` runs, when the node is a vigia one without a residual.
fn dense(model: &TypedModel, id: usize) -> Option<(&VigiaConv, &Arc<DenseConv>)> {
    let op = model.node(id).op_as::<VigiaConv>()?;
    match &op.kernel {
        ConvKernel::Dense(conv) if op.residual.is_none() => Some((op, conv)),
        _ => None,
    }
}

/// Whether node `id` is a dense vigia convolution without a residual whose output the model
/// does not return and something reads.
fn mergeable(model: &TypedModel, id: usize) -> TractResult<bool> {
    let out = OutletId::new(id, 0);
    Ok(dense(model, id).is_some()
        && !model.output_outlets()?.contains(&out)
        && !model.node(id).outputs[0].successors.is_empty())
}

/// Whether vigia convolutions alone read node `id`'s output.
fn only_vigia_reads(model: &TypedModel, id: usize) -> bool {
    model.node(id).outputs[0]
        .successors
        .iter()
        .all(|r| model.node(r.node).op_is::<VigiaConv>())
}

/// Whether nodes `a` and `b` compute products of the same columns: same inputs, windows,
/// geometry, activation, instruction set and output rank.
fn same_product(model: &TypedModel, a: usize, b: usize) -> bool {
    let (Some((op_a, a_conv)), Some((op_b, b_conv))) = (dense(model, a), dense(model, b)) else {
        return false;
    };
    model.node(a).inputs == model.node(b).inputs
        && op_a.inputs == op_b.inputs
        && a_conv.geometry() == b_conv.geometry()
        && a_conv.activation() == b_conv.activation()
        && a_conv.isa() == b_conv.isa()
        && op_a.output_shape.len() == op_b.output_shape.len()
}

/// Replaces the convolutions `group` (see [`same_product`]) by one with their filters stacked,
/// each former output a `Slice` of its channels.
fn merge(model: &mut TypedModel, group: &[usize]) -> TractResult<()> {
    let (first, conv) = dense(model, group[0]).context("a dense convolution")?;
    let (isa, geometry, activation) = (conv.isa(), *conv.geometry(), conv.activation());
    let (windows, mut shape) = (first.inputs.clone(), first.output_shape.clone());
    let (mut weights, mut bias) = (vec![], vec![]);
    let mut ranges = vec![];
    for &id in group {
        let (_, conv) = dense(model, id).context("a dense convolution")?;
        let (w, b) = conv.filters();
        let start = bias.len();
        weights.extend(w);
        bias.extend(b);
        ranges.push(start..bias.len());
    }
    let outs = bias.len();
    let name = format!("{}.merged", model.node(group[0]).name);
    let conv = DenseConv::new(isa, geometry, outs, &weights, &bias, activation)
        .map_err(|e| anyhow!("{name}: {e}"))?;
    let axis = shape.len() - 3;
    shape[axis] = outs;
    let op = VigiaConv {
        kernel: ConvKernel::Dense(Arc::new(conv)),
        output_shape: shape,
        inputs: windows,
        residual: None,
    };
    let mut patch = TypedModelPatch::new(format!("vigia merge {name}"));
    let taps = model.node(group[0]).inputs.clone();
    let mut wires = tvec![];
    for input in taps {
        wires.push(patch.tap_model(model, input)?);
    }
    let whole = patch.wire_node(&name, op, &wires)?[0];
    for (&id, range) in group.iter().zip(ranges) {
        let part = Slice::new(axis, range.start, range.end);
        let slice_name = format!("{}.slice", model.node(id).name);
        let out = patch.wire_node(slice_name, part, &[whole])?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
    }
    patch.apply(model)
}

/// Makes every vigia convolution read the channel `Slice`s that feed it (its data inputs and
/// residual) from the sliced tensors in place; how many slices it reads so.
pub(super) fn read_slices_in_place(model: &mut TypedModel) -> TractResult<usize> {
    let mut read = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(op) = node.op_as::<VigiaConv>() else {
            continue;
        };
        let (mut op, mut inputs) = (op.clone(), node.inputs.clone());
        let mut changed = 0;
        for (slot, input) in inputs.iter_mut().enumerate() {
            let window = match op.inputs.get_mut(slot) {
                Some(window) => window,
                None => op.residual.as_mut().context("a residual input")?,
            };
            while let Some((source, first)) = channel_slice(model, *input)? {
                *input = source;
                window.first += first;
                changed += 1;
            }
        }
        let parts = op.inputs.len();
        let (data, residual) = inputs.split_at(parts);
        let (data, windows) = adjacent_joined(data, &op.inputs);
        if changed == 0 && data.len() == parts {
            continue;
        }
        inputs = data.into_iter().chain(residual.iter().copied()).collect();
        op.inputs = windows;
        let name = node.name.clone();
        let mut patch = TypedModelPatch::new(format!("vigia slices in place {name}"));
        let mut wires = tvec![];
        for input in inputs {
            wires.push(patch.tap_model(model, input)?);
        }
        let out = patch.wire_node(&name, op, &wires)?[0];
        patch.shunt_outside(model, OutletId::new(id, 0), out)?;
        patch.apply(model)?;
        read += changed;
    }
    if read > 0 {
        model.compact()?;
    }
    Ok(read)
}

/// The data inputs `inputs` with their `windows`, each run of consecutive windows of one tensor
/// joined into one window (the two halves of a split read back together).
fn adjacent_joined(
    inputs: &[OutletId],
    windows: &[ChannelWindow],
) -> (TVec<OutletId>, TVec<ChannelWindow>) {
    let (mut joined_inputs, mut joined): (TVec<OutletId>, TVec<ChannelWindow>) = (tvec![], tvec![]);
    for (&input, &window) in inputs.iter().zip(windows) {
        match (joined_inputs.last(), joined.last_mut()) {
            (Some(&last), Some(w)) if last == input && w.first + w.count == window.first => {
                w.count += window.count
            }
            _ => {
                joined_inputs.push(input);
                joined.push(window);
            }
        }
    }
    (joined_inputs, joined)
}

/// When `outlet` is a `Slice` of the channels of a planar tensor (`[1, C, H, W]` or
/// `[C, H, W]`), that tensor and the first channel of the slice.
fn channel_slice(model: &TypedModel, outlet: OutletId) -> TractResult<Option<(OutletId, usize)>> {
    let node = model.node(outlet.node);
    let Some(slice) = node.op_as::<Slice>() else {
        return Ok(None);
    };
    let source = node.inputs[0];
    let fact = model.outlet_fact(source)?;
    let Some(shape) = fact.shape.as_concrete() else {
        return Ok(None);
    };
    let rank = shape.len();
    let planar = rank >= 3 && slice.axis == rank - 3 && shape[..rank - 3].iter().all(|&d| d == 1);
    let (Ok(start), Ok(end)) = (slice.start.to_usize(), slice.end.to_usize()) else {
        return Ok(None);
    };
    let ok =
        planar && fact.datum_type == f32::datum_type() && start < end && end <= shape[rank - 3];
    Ok(ok.then_some((source, start)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::depthwise::DepthwiseConv;
    use crate::kernels::planes::PlaneGeometry;
    use crate::kernels::test_support::Rng;
    use crate::kernels::{Activation, Isa};

    const HW: usize = 5;

    /// A vigia convolution over `channels` input planes of `HW x HW` into `outs` channels
    /// (dense `k x k`, or depthwise), reading `windows`.
    fn conv(
        rng: &mut Rng,
        k: usize,
        channels: usize,
        outs: usize,
        depthwise: bool,
        windows: &[ChannelWindow],
    ) -> VigiaConv {
        let p = k / 2;
        let g = PlaneGeometry::new(channels, (HW, HW), (k, k), (1, 1), (p, p), (p, p)).unwrap();
        let act = Activation::Silu;
        let kernel = if depthwise {
            let w = rng.values(channels * k * k);
            let conv = DepthwiseConv::new(g, w, rng.values(channels), act).unwrap();
            ConvKernel::Depthwise(Arc::new(conv), Isa::detect())
        } else {
            let w = rng.values(outs * channels * k * k);
            let conv = DenseConv::new(Isa::detect(), g, outs, &w, &rng.values(outs), act).unwrap();
            ConvKernel::Dense(Arc::new(conv))
        };
        VigiaConv {
            kernel,
            output_shape: tvec![1, outs, HW, HW],
            inputs: windows.into(),
            residual: None,
        }
    }

    fn whole(count: usize) -> ChannelWindow {
        ChannelWindow::whole(count)
    }

    /// `x` (8 channels) into two 1x1 convolutions (4 and 6 channels) read by a 3x3 one and a
    /// depthwise one, a third 1x1 one over a `Slice` of `x`'s channels 2..6, and a fourth
    /// over `x` and the first's output as two parts.
    fn model(rng: &mut Rng) -> TypedModel {
        let mut m = TypedModel::default();
        let x = m.add_source("x", f32::fact([1, 8, HW, HW])).unwrap();
        let a = m.wire_node("a", conv(rng, 1, 8, 4, false, &[whole(8)]), &[x]);
        let a = a.unwrap()[0];
        let b = m.wire_node("b", conv(rng, 1, 8, 6, false, &[whole(8)]), &[x]);
        let b = b.unwrap()[0];
        let a3 = m.wire_node("a3", conv(rng, 3, 4, 3, false, &[whole(4)]), &[a]);
        let b3 = m.wire_node("b3", conv(rng, 3, 6, 6, true, &[whole(6)]), &[b]);
        let mid = m.wire_node("mid", Slice::new(1, 2, 6), &[x]).unwrap()[0];
        let c = m.wire_node("c", conv(rng, 1, 4, 5, false, &[whole(4)]), &[mid]);
        let parts = [whole(8), whole(4)];
        let d = m.wire_node("d", conv(rng, 1, 12, 2, false, &parts), &[x, a]);
        let outs = [a3.unwrap()[0], b3.unwrap()[0], c.unwrap()[0], d.unwrap()[0]];
        m.select_output_outlets(&outs).unwrap();
        m
    }

    fn run(m: TypedModel, input: &Tensor) -> Vec<Vec<f32>> {
        let out = m
            .into_runnable()
            .unwrap()
            .run(tvec![input.clone().into_tvalue()])
            .unwrap();
        out.iter()
            .map(|o| {
                o.to_plain_array_view::<f32>()
                    .unwrap()
                    .iter()
                    .copied()
                    .collect()
            })
            .collect()
    }

    #[test]
    fn merged_convolutions_and_slices_read_in_place_give_the_same_outputs() {
        let mut rng = Rng(7);
        let before = model(&mut Rng(11));
        let mut after = before.clone();
        let input = Tensor::from_shape(&[1, 8, HW, HW], &rng.values(8 * HW * HW)).unwrap();
        // `a` and `b` read `x` alike: one product; `a`'s readers are all vigia convolutions.
        assert_eq!(merge_siblings(&mut after).unwrap(), 1);
        // The merged output's slices as `a3`, `b3` and `d` read them, and `c`'s slice of `x`.
        assert_eq!(read_slices_in_place(&mut after).unwrap(), 4);
        let slices = after.nodes().iter().filter(|n| n.op_is::<Slice>()).count();
        assert_eq!(slices, 0, "{after}");
        let d = after.nodes().iter().find(|n| n.name == "d").unwrap();
        let op = d.op_as::<VigiaConv>().unwrap();
        assert_eq!(
            op.inputs[..],
            [whole(8), ChannelWindow { first: 0, count: 4 }]
        );
        let (want, got) = (run(before, &input), run(after, &input));
        for (w, g) in want.iter().zip(&got) {
            assert_eq!(w.len(), g.len());
            for (a, b) in w.iter().zip(g) {
                assert!((a - b).abs() <= 1e-5 * a.abs().max(1.0), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn consecutive_windows_of_one_tensor_are_joined() {
        let (x, y) = (OutletId::new(1, 0), OutletId::new(2, 0));
        let w = |first, count| ChannelWindow { first, count };
        let (inputs, windows) =
            adjacent_joined(&[x, x, y, x], &[w(0, 4), w(4, 2), w(0, 3), w(6, 1)]);
        assert_eq!(inputs[..], [x, y, x]);
        assert_eq!(windows[..], [w(0, 6), w(0, 3), w(6, 1)]);
        // Not adjacent: kept apart.
        let (inputs, _) = adjacent_joined(&[x, x], &[w(0, 4), w(5, 2)]);
        assert_eq!(inputs.len(), 2);
    }
}
