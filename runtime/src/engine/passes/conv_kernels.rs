//! Puts vigia's kernels ([`crate::kernels`]) in place of tract's for the convolutions they
//! compute faster, in a decluttered tract model, just before tract optimizes it.
//!
//! f32, batch 1, constant filters and bias, no dilation, kernel up to [`MAX_KERNEL`]:
//! - a depthwise convolution becomes a [`ConvKernel::Depthwise`];
//! - a dense one (group 1: KxK, strided, padded, and the 1x1 convolutions tract's declutter
//!   turned into an `EinSum`) becomes a [`ConvKernel::Dense`] (a matrix product), or a
//!   [`ConvKernel::Winograd`] for 3x3 stride-1 layers where that pays;
//! - a 1x1 convolution over a `Concat`, which tract's declutter splits into one `EinSum` per
//!   part and a chain of `Add`s (YOLOv8's C2f blocks), becomes one dense convolution again,
//!   which reads the parts where they are (no concatenation is copied);
//! - a classifier's fully connected layer ([`super::vector_product`]) becomes a dense 1x1
//!   convolution over one pixel where the channel-lane product computes it (AVX-512, up to
//!   8 MiB of weights).
//!
//! The kernels compute NCHW (or CHW) planes. Layers tract keeps channels-last (NHWC, HWC: the
//! first layers of a graph fed NHWC images) are taken too, with a transposition on each side
//! that tract's optimizer cancels between consecutive layers where it can.
//!
//! Dense convolutions with few output channels and a short depth (3-channel stems) stay tract's,
//! which is faster there. Each replaced convolution takes along what follows it when nothing
//! else reads the convolution's output ([`super::conv_epilogue`]): per-channel multiplications
//! and additions folded into its filters and biases, then one activation. Grouped convolutions
//! and anything else stay tract's.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::math::Add;
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::constant_product::constant_product;
use super::conv_epilogue::{channel_affine_step, following_activation, sole_reader};
use super::sliced_parts::sliced_whole;
use super::strided_input::strided_source;
use super::vector_product::vector_product;
use crate::engine::ops::vigia_conv::{ChannelWindow, ConvKernel, VigiaConv};
use crate::kernels::dense_conv::DenseConv;
use crate::kernels::depthwise::DepthwiseConv;
use crate::kernels::fma_pipes::fma_pipes;
use crate::kernels::gemm::row_lanes_pay;
use crate::kernels::planes::{PlaneGeometry, MAX_KERNEL};
use crate::kernels::winograd::WinogradConv;
use crate::kernels::{Activation, Isa};

/// Which kernels compute the convolutions (`--kernels`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Kernels {
    /// vigia's kernels where they apply, tract's elsewhere (the default).
    #[default]
    Vigia,
    /// tract's own kernels throughout.
    Tract,
}

impl std::str::FromStr for Kernels {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "vigia" => Ok(Kernels::Vigia),
            "tract" => Ok(Kernels::Tract),
            _ => Err(format!("unknown kernels '{s}' (vigia or tract)")),
        }
    }
}

/// What the pass replaced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct KernelReport {
    /// Depthwise convolutions now on vigia's kernels.
    pub depthwise: usize,
    /// Dense convolutions (1x1 and KxK, group 1) now on vigia's matrix product.
    pub dense: usize,
    /// Of those, 3x3 stride-1 ones computed by Winograd's F(4x4, 3x3).
    pub winograd: usize,
    /// Of those, fully connected layers (`[1, C]` by `[O, C]`: one pixel).
    pub fully_connected: usize,
    /// Of those, 1x1 ones with a stride, read straight from their input (tract's declutter
    /// writes them as `Downsample`s and a product).
    pub strided_pointwise: usize,
    /// Activations fused into them.
    pub fused_activations: usize,
    /// Skip connections (`Add`s of another tensor) fused into them.
    pub residual_adds: usize,
    /// Dense convolutions run together with another that reads the same input (their filters
    /// stacked).
    pub merged: usize,
    /// Channel slices and parts of concatenations the convolutions read in place (no copy).
    pub slices_in_place: usize,
    /// Convolutions (dense and depthwise) chained on channel-blocked maps
    /// ([`super::blocked_maps`]).
    pub blocked: usize,
    /// 1x1 expansions run together with the depthwise convolution that reads them, a group of
    /// channels at a time ([`super::expand_depthwise`]).
    pub expansions_joined: usize,
    /// `MaxPool` nodes on vigia's pooling kernel ([`super::pool_kernels`]).
    pub max_pools: usize,
    /// `Resize` nodes (linear, cubic) on vigia's resampling kernel
    /// ([`super::resize_kernels`]).
    pub resizes: usize,
    /// `Softmax` nodes (last axis) on vigia's softmax kernel ([`super::softmax_kernels`]).
    pub softmaxes: usize,
    /// The instruction set the kernels use (`None` when nothing was replaced).
    pub isa: Option<Isa>,
}

impl KernelReport {
    /// Convolutions replaced, of both kinds.
    pub fn replaced(&self) -> usize {
        self.depthwise + self.dense
    }

    /// One line for load messages, e.g. `17 depthwise + 40 dense conv (12 by Winograd, 1 fully
    /// connected, 50 with activation, 9 with residual, 4 merged, 20 slices read in place, 30 on
    /// blocked maps, 4 expansions joined to their depthwise) on avx512 (2 FMA pipes), 3 max
    /// pool, 4 resize`.
    pub fn summary(&self) -> String {
        let convs = match self.isa {
            Some(isa) if self.replaced() > 0 => Some(format!(
                "{} depthwise + {} dense conv ({} by Winograd, {} fully connected, {} with \
                 activation, {} with residual, {} merged, {} slices read in place, {} on blocked \
                 maps, {} expansions joined to their depthwise) on {}{}",
                self.depthwise,
                self.dense,
                self.winograd,
                self.fully_connected,
                self.fused_activations,
                self.residual_adds,
                self.merged,
                self.slices_in_place,
                self.blocked,
                self.expansions_joined,
                isa.name(),
                fma_pipes(isa).map_or(String::new(), |p| format!(
                    " ({p} FMA pipe{})",
                    if p == 1 { "" } else { "s" }
                ))
            )),
            _ => None,
        };
        let pools = (self.max_pools > 0).then(|| format!("{} max pool", self.max_pools));
        let resizes = (self.resizes > 0).then(|| format!("{} resize", self.resizes));
        let softmaxes = (self.softmaxes > 0).then(|| format!("{} softmax", self.softmaxes));
        let parts: Vec<String> = convs
            .into_iter()
            .chain(pools)
            .chain(resizes)
            .chain(softmaxes)
            .collect();
        if parts.is_empty() {
            "none".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// A convolution the kernels take, read from the graph: its geometry, output channels,
/// filters `[out][in / group][kh][kw]` and biases, and whether it is depthwise.
struct ConvParts {
    geometry: PlaneGeometry,
    out_channels: usize,
    weights: Vec<f32>,
    bias: Vec<f32>,
    depthwise: bool,
    /// The output's rank (4 for NCHW or NHWC, 3 for CHW or HWC).
    rank: usize,
    /// A fully connected layer's output instead: its shape (`O` values) and the axis of `O`.
    flat_output: Option<(TVec<usize>, usize)>,
    /// Whether the data input, and the output, hold the channels on their last axis (NHWC,
    /// HWC): the kernels then read and write through transpositions around them.
    input_channels_last: bool,
    output_channels_last: bool,
    /// The data inputs, concatenated along the channels when there are several.
    inputs: TVec<OutletId>,
}

/// Replaces every supported convolution of `model` (decluttered, with constant weights) by a
/// vigia operator, using the kernels of `isa`.
pub fn replace_convs(model: &mut TypedModel, isa: Isa) -> TractResult<KernelReport> {
    let mut report = KernelReport::default();
    // Sums of split 1x1 convolutions first: their parts would otherwise be taken one by one.
    let sums: Vec<usize> = model
        .eval_order()?
        .into_iter()
        .filter(|&id| is_add(model.node(id)))
        .collect();
    for id in sums {
        if let Some(parts) = split_pointwise_parts(model, id)? {
            replace(model, id, parts, isa, &mut report)?;
        }
    }
    let candidates: Vec<usize> = model
        .eval_order()?
        .into_iter()
        .filter(|&id| model.node(id).op_is::<Conv>() || model.node(id).op_is::<EinSum>())
        .collect();
    for id in candidates {
        let parts = match conv_parts(model, id)? {
            Some(parts) => parts,
            None => match pointwise_einsum_parts(model, id)? {
                Some(parts) => parts,
                None => match fully_connected_parts(model, id, isa)? {
                    Some(parts) => parts,
                    None => continue,
                },
            },
        };
        replace(model, id, parts, isa, &mut report)?;
    }
    if report.replaced() > 0 {
        model.compact()?;
    }
    Ok(report)
}

/// Puts a vigia convolution in place of node `id` (read as `parts`) and of the per-channel
/// steps and activation that follow it.
fn replace(
    model: &mut TypedModel,
    id: usize,
    parts: ConvParts,
    isa: Isa,
    report: &mut KernelReport,
) -> TractResult<()> {
    let ConvParts {
        geometry,
        out_channels,
        mut weights,
        mut bias,
        depthwise,
        rank,
        flat_output,
        input_channels_last,
        output_channels_last,
        inputs,
    } = parts;
    if !depthwise && tract_is_faster(isa, &geometry, out_channels) {
        return Ok(());
    }
    let channel_axis = match (&flat_output, output_channels_last) {
        (Some((_, axis)), _) => *axis,
        (None, true) => rank - 1,
        (None, false) => rank - 3,
    };
    let mut last = id;
    while let Some((next, step)) = channel_affine_step(model, last, channel_axis, out_channels)? {
        step.fold(&mut weights, &mut bias);
        last = next;
    }
    // A skip connection summed before the activation (ResNet's, EfficientNet's), on the dense
    // kernel's planar output.
    let by_winograd = winograd_pays(isa, &geometry, out_channels);
    let residual = if depthwise || by_winograd || output_channels_last || flat_output.is_some() {
        None
    } else {
        residual_add(model, last)?
    };
    if let Some((add, _)) = residual {
        last = add;
    }
    let (activation, last) = following_activation(model, last)?;
    let name = model.node(id).name.clone();
    let kernel = if depthwise {
        ConvKernel::Depthwise(
            Arc::new(
                DepthwiseConv::new(geometry, weights, bias, activation)
                    .map_err(|e| anyhow!("{name}: {e}"))?,
            ),
            isa,
        )
    } else if by_winograd {
        ConvKernel::Winograd(Arc::new(
            WinogradConv::new(isa, geometry, out_channels, &weights, &bias, activation)
                .map_err(|e| anyhow!("{name}: {e}"))?,
        ))
    } else {
        ConvKernel::Dense(Arc::new(
            DenseConv::new(isa, geometry, out_channels, &weights, &bias, activation)
                .map_err(|e| anyhow!("{name}: {e}"))?,
        ))
    };
    let output_shape: TVec<usize> = match (&flat_output, rank) {
        (Some((shape, _)), _) => shape.clone(),
        (None, 4) => tvec![1, out_channels, geometry.out_h, geometry.out_w],
        (None, _) => tvec![out_channels, geometry.out_h, geometry.out_w],
    };
    let mut patch = TypedModelPatch::new(format!("vigia conv {name}"));
    let mut wires = tvec![];
    let mut windows = tvec![];
    for &input in &inputs {
        wires.push(patch.tap_model(model, input)?);
        // One input holds all the channels; the parts of a concatenation (planar, `[1]chw`)
        // their own.
        let channels = if inputs.len() == 1 {
            geometry.channels
        } else {
            let fact = model.outlet_fact(input)?;
            match fact.shape.as_concrete() {
                Some(shape) if shape.len() >= 3 => shape[shape.len() - 3],
                _ => bail!("{name}: a part of shape {:?}", fact.shape),
            }
        };
        windows.push(ChannelWindow::whole(channels));
    }
    if input_channels_last {
        ensure!(wires.len() == 1, "{name}: channels-last input in parts");
        let r = patch.outlet_fact(wires[0])?.rank();
        let to_planes = AxisOp::Move(r - 1, r - 3);
        wires[0] = patch.wire_node(format!("{name}.vigia.to_planes"), to_planes, &wires)?[0];
    }
    let op = VigiaConv {
        kernel,
        output_shape,
        inputs: windows,
        residual: residual.map(|_| ChannelWindow::whole(out_channels)),
    };
    if wires.len() > 1 {
        report.slices_in_place += wires.len();
    }
    if let Some((_, skip)) = residual {
        wires.push(patch.tap_model(model, skip)?);
        report.residual_adds += 1;
    }
    let mut out = patch.wire_node(format!("{name}.vigia"), op, &wires)?[0];
    if output_channels_last {
        let to_last = AxisOp::Move(rank - 3, rank - 1);
        out = patch.wire_node(format!("{name}.vigia.to_channels_last"), to_last, &[out])?[0];
    }
    patch.shunt_outside(model, OutletId::new(last, 0), out)?;
    patch.apply(model)?;
    if depthwise {
        report.depthwise += 1;
    } else {
        report.dense += 1;
    }
    if by_winograd {
        report.winograd += 1;
    }
    if flat_output.is_some() {
        report.fully_connected += 1;
    }
    let g = &geometry;
    if !depthwise && (g.kernel_h, g.kernel_w) == (1, 1) && (g.stride_h, g.stride_w) != (1, 1) {
        report.strided_pointwise += 1;
    }
    if activation != Activation::None {
        report.fused_activations += 1;
    }
    report.isa = Some(isa);
    Ok(())
}

/// Whether tract's own path computes this dense convolution faster: on instruction sets whose
/// micro-kernels cannot stop short of a whole panel of rows, fewer output channels than two
/// panels and a short depth, where the padded rows and the scratch tiles outweigh the product
/// (the 3-channel stems of detectors). With row kernels (AVX-512, AVX2) vigia's path is the
/// faster one: YOLOv8n's stem 1.6 ms against tract's 2.4 (`benches/benches/kernels.rs`), and
/// EfficientNet-Lite0's first 32->16 projection 0.63 ms on tract where ORT takes 0.12.
fn tract_is_faster(isa: Isa, geometry: &PlaneGeometry, out_channels: usize) -> bool {
    let depth = geometry.channels * geometry.kernel_h * geometry.kernel_w;
    !crate::kernels::gemm::has_row_kernels(isa)
        && out_channels < 2 * crate::kernels::gemm::tile(isa).0
        && depth < 64
}

/// Whether a 3x3 stride-1 dense convolution runs faster by Winograd's F(4x4, 3x3) than as a
/// direct product (`VIGIA_WINOGRAD=0` keeps them all direct, for comparisons). Winograd does a
/// quarter of the multiplications but adds transforms that stream every tile through memory,
/// so it pays where the product dominates and the direct product is slow: it depends on the
/// core's FMA pipes ([`fma_pipes`]).
///
/// One pipe (AMD EPYC, Zen 4; `benches/benches/kernels.rs`, one thread): 1.3-1.9x faster from
/// 16 to 256 channels and maps of 14x14 and up; 2.7x slower on ResNet50's 512-channel 7x7
/// layers (4 tiles fill an eighth of the product's columns); layers with 8-16 channels on a
/// side run faster direct (YOLO11n-320's 8->16 at 80x80 0.43 -> 0.31 ms), 32->32 at 80x80 17 %
/// faster by Winograd. So: at least 16 tiles of 4x4 pixels and 32 channels on both sides.
///
/// Two pipes (Intel Xeon with AMX; NanoDet-m's layers, `vigia bench --profile`): the direct
/// product runs at 100-135 GFLOP/s and Winograd loses on every map of 26x26 and under (128->128
/// at 13x13 0.47 ms direct against 0.90, 128->128 at 26x26 1.51 against 1.76) and with 32-64
/// channels at 52x52 (64->64 1.57 against 1.68); it wins with many tiles and channels (128->128
/// at 52x52 5.68 -> 4.12 ms, 32->32 at 104x104 1.96 -> 1.79). So: at least 64 tiles, and
/// tiles times the smaller channel count at least 16384 (128 channels at 52x52). Since `B`
/// panels are packed by masked loads the direct product also wins with 32 channels (NanoDet-m's
/// 32->32 at 104x104 2.20 -> 1.68 ms; criterion: 32->32 at 80x80 0.97 direct against 1.10,
/// 64->64 at 80x80 3.33 against 2.77), so 64 channels at least.
fn winograd_pays(isa: Isa, geometry: &PlaneGeometry, out_channels: usize) -> bool {
    let g = geometry;
    let tiles = g.out_h.div_ceil(4) * g.out_w.div_ceil(4);
    let channels = g.channels.min(out_channels);
    let pays = match fma_pipes(isa) {
        Some(pipes) if pipes >= 2 => tiles >= 64 && tiles * channels >= 16384 && channels >= 64,
        _ => tiles >= 16,
    };
    (g.kernel_h, g.kernel_w, g.stride_h, g.stride_w) == (3, 3, 1, 1)
        && pays
        && channels >= 32
        && std::env::var(WINOGRAD_ENV).map_or(true, |v| v != "0")
}

/// Set to `0` to compute every dense convolution as a direct product.
pub const WINOGRAD_ENV: &str = "VIGIA_WINOGRAD";

/// The `Add` that alone reads node `id`'s output and sums it with another f32 tensor of the
/// same shape (not a constant, not `id`'s output again), and that tensor.
fn residual_add(model: &TypedModel, id: usize) -> TractResult<Option<(usize, OutletId)>> {
    let Some(next) = sole_reader(model, id)? else {
        return Ok(None);
    };
    let node = model.node(next);
    if !is_add(node) {
        return Ok(None);
    }
    let mine = OutletId::new(id, 0);
    let skip = match (node.inputs[0] == mine, node.inputs[1] == mine) {
        (true, false) => node.inputs[1],
        (false, true) => node.inputs[0],
        _ => return Ok(None),
    };
    let (fact, out) = (model.outlet_fact(skip)?, model.outlet_fact(mine)?);
    let same = fact.shape.as_concrete().is_some() && fact.shape == out.shape;
    if !same || fact.datum_type != f32::datum_type() || fact.konst.is_some() {
        return Ok(None);
    }
    Ok(Some((next, skip)))
}

/// Whether `node` adds two tensors.
fn is_add(node: &TypedNode) -> bool {
    node.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<Add>()) && node.inputs.len() == 2
}

/// Node `id`, an `Add`, as the top of a sum of 1x1 convolutions over parts of a split
/// `Concat`: one 1x1 convolution over the parts concatenated (filters side by side).
fn split_pointwise_parts(model: &TypedModel, id: usize) -> TractResult<Option<ConvParts>> {
    let Some(terms) = sum_terms(model, id)? else {
        return Ok(None);
    };
    // Only the top of the chain: a larger sum reading this one takes it whole.
    if let Some(reader) = sole_reader(model, id)? {
        if is_add(model.node(reader)) && sum_terms(model, reader)?.is_some() {
            return Ok(None);
        }
    }
    let mut pieces = Vec::with_capacity(terms.len());
    for &t in &terms {
        match pointwise_einsum_parts(model, t)? {
            Some(p) if !p.input_channels_last && !p.output_channels_last => pieces.push(p),
            _ => return Ok(None),
        }
    }
    let first = &pieces[0];
    let (h, w, outs, rank) = (
        first.geometry.in_h,
        first.geometry.in_w,
        first.out_channels,
        first.rank,
    );
    // Each part planar (`[1]chw`, ranks may differ: tract drops the batch axis of some), read
    // where it is.
    for p in &pieces {
        let planar = model
            .outlet_fact(p.inputs[0])?
            .shape
            .as_concrete()
            .is_some_and(|s| s.len() == 3 || (s.len() == 4 && s[0] == 1));
        if (p.geometry.in_h, p.geometry.in_w, p.out_channels, p.rank) != (h, w, outs, rank)
            || !planar
        {
            return Ok(None);
        }
    }
    let channels: usize = pieces.iter().map(|p| p.geometry.channels).sum();
    let mut weights = Vec::with_capacity(outs * channels);
    for o in 0..outs {
        for p in &pieces {
            let c = p.geometry.channels;
            weights.extend_from_slice(&p.weights[o * c..(o + 1) * c]);
        }
    }
    let Some(geometry) = PlaneGeometry::new(channels, (h, w), (1, 1), (1, 1), (0, 0), (0, 0))
    else {
        return Ok(None);
    };
    let inputs: TVec<OutletId> = pieces.iter().flat_map(|p| p.inputs.clone()).collect();
    // The parts may be the slices of one tensor (a `Concat` others read too): that tensor.
    let input_rank = model.outlet_fact(first.inputs[0])?.rank();
    let inputs = match sliced_whole(model, &inputs, input_rank - 3)? {
        Some(whole) => tvec![whole],
        None => inputs,
    };
    Ok(Some(ConvParts {
        geometry,
        out_channels: outs,
        weights,
        bias: vec![0.0; outs],
        depthwise: false,
        rank,
        flat_output: None,
        input_channels_last: false,
        output_channels_last: false,
        inputs,
    }))
}

/// The `EinSum` nodes an `Add` chain rooted at node `id` sums (at least two), each read only
/// by the chain; `None` when anything else is in it.
fn sum_terms(model: &TypedModel, id: usize) -> TractResult<Option<Vec<usize>>> {
    let node = model.node(id);
    if !is_add(node) {
        return Ok(None);
    }
    let mut terms = vec![];
    for input in &node.inputs {
        let from = model.node(input.node);
        if input.slot != 0 || sole_reader(model, from.id)? != Some(id) {
            return Ok(None);
        }
        if from.op_is::<EinSum>() {
            terms.push(from.id);
        } else {
            match sum_terms(model, from.id)? {
                Some(more) => terms.extend(more),
                None => return Ok(None),
            }
        }
    }
    Ok(Some(terms))
}

/// Node `id` as a convolution the kernels take: depthwise, or dense (group 1).
fn conv_parts(model: &TypedModel, id: usize) -> TractResult<Option<ConvParts>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let channels = spec.input_channels;
    let out_channels = spec.output_channels;
    let depthwise = channels >= 2 && conv.group == channels && out_channels == channels;
    if conv.q_params.is_some()
        || node.inputs.len() != 3
        || !(depthwise || conv.group == 1)
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    let (h, w, rank, channels_last) = match (spec.data_format, shape) {
        (DataFormat::NCHW, &[1, c, h, w]) if c == channels => (h, w, 4, false),
        (DataFormat::CHW, &[c, h, w]) if c == channels => (h, w, 3, false),
        (DataFormat::NHWC, &[1, h, w, c]) if c == channels => (h, w, 4, true),
        (DataFormat::HWC, &[h, w, c]) if c == channels => (h, w, 3, true),
        _ => return Ok(None),
    };
    if input.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
    if kh > MAX_KERNEL || kw > MAX_KERNEL {
        return Ok(None);
    }
    let padding = spec.computed_padding(&[h, w]);
    let strides = spec.strides();
    let Some(geometry) = PlaneGeometry::new(
        channels,
        (h, w),
        (kh, kw),
        (strides[0], strides[1]),
        (padding[0].pad_before, padding[1].pad_before),
        (padding[0].pad_after, padding[1].pad_after),
    ) else {
        return Ok(None);
    };
    if (geometry.out_h, geometry.out_w) != (padding[0].convoluted, padding[1].convoluted) {
        return Ok(None);
    }
    let per_group = if depthwise { 1 } else { channels };
    let filter_shape = (out_channels, per_group, kh, kw);
    let Some(weights) = filters(model, node.inputs[1], conv.kernel_fmt, filter_shape)? else {
        return Ok(None);
    };
    let Some(bias) = biases(model, node.inputs[2], out_channels)? else {
        return Ok(None);
    };
    Ok(Some(ConvParts {
        geometry,
        out_channels,
        weights,
        bias,
        depthwise,
        rank,
        flat_output: None,
        input_channels_last: channels_last,
        output_channels_last: channels_last,
        inputs: tvec![node.inputs[0]],
    }))
}

/// Node `id` as a 1x1 convolution that tract's declutter wrote as an `EinSum`: data `[n]chw`
/// or `[n]hwc` (a graph fed NHWC images keeps that layout down to where tract's declutter
/// transposes it), constant `[out][in]` filters, output `[n]ohw` or `[n]hwo`, batch 1, the
/// batch axis possibly dropped or added.
fn pointwise_einsum_parts(model: &TypedModel, id: usize) -> TractResult<Option<ConvParts>> {
    let Some(product) = constant_product(model, id)? else {
        return Ok(None);
    };
    let (xs, fs, os) = (
        &product.data_axes,
        &product.constant_axes,
        &product.output_axes,
    );
    let [o, c] = fs[..] else {
        return Ok(None);
    };
    let Some(input) = PointwiseLayout::of(xs, c) else {
        return Ok(None);
    };
    let Some(output) = PointwiseLayout::of(os, o) else {
        return Ok(None);
    };
    // The same pixels on both sides. An output batch axis is the input's, or one the einsum
    // adds (`IHW,OI->NOHW`: YOLOv8's box and class heads), which has size 1 (checked below).
    let added_batch = output
        .batch
        .filter(|b| output.batch != input.batch && !xs.contains(b) && !fs.contains(b));
    if (output.h, output.w) != (input.h, input.w)
        || (output.batch.is_some() && output.batch != input.batch && added_batch.is_none())
        || xs.contains(&o)
        || os.contains(&c)
    {
        return Ok(None);
    }
    if added_batch.is_some() {
        let out = model.outlet_fact(OutletId::new(id, 0))?;
        if out.shape.as_concrete().map(|s| s.first() == Some(&1)) != Some(true) {
            return Ok(None);
        }
    }
    let Some((channels, h, w)) = product
        .data_fact
        .shape
        .as_concrete()
        .and_then(|shape| input.channels_h_w(shape))
    else {
        return Ok(None);
    };
    let k = product.constant;
    if k.rank() != 2 || k.shape()[1] != channels {
        return Ok(None);
    }
    let out_channels = k.shape()[0];
    let weights: Vec<f32> = k.to_plain_array_view::<f32>()?.iter().copied().collect();
    // A strided 1x1 convolution: the einsum reads `Downsample`s of the planes.
    let (source, strides) = if input.channels_last {
        (product.data, (1, 1))
    } else {
        let axis = |a: char| xs.iter().position(|&c| c == a).expect("an input axis");
        strided_source(model, product.data, axis(input.h), axis(input.w))
    };
    let Some((_, in_h, in_w)) = model
        .outlet_fact(source)?
        .shape
        .as_concrete()
        .and_then(|shape| input.channels_h_w(shape))
    else {
        return Ok(None);
    };
    let Some(geometry) =
        PlaneGeometry::new(channels, (in_h, in_w), (1, 1), strides, (0, 0), (0, 0))
            .filter(|g| (g.out_h, g.out_w) == (h, w))
    else {
        return Ok(None);
    };
    Ok(Some(ConvParts {
        geometry,
        out_channels,
        weights,
        bias: vec![0.0; out_channels],
        depthwise: false,
        rank: os.len(),
        flat_output: None,
        input_channels_last: input.channels_last,
        output_channels_last: output.channels_last,
        inputs: tvec![source],
    }))
}

/// The most weights a fully connected layer on vigia's kernels has (8 MiB of f32: ResNet50's
/// 2048 -> 1000 at two threads 0.66 -> 0.32 ms, EfficientNet-Lite0's 1280 -> 1000 0.42 ->
/// 0.16). Beyond, tract's multithreaded matrix-vector product streams the weights faster
/// (VGG19's 16-411 MB layers: 19.1 ms against 21.5 at two threads).
const MAX_FULLY_CONNECTED_WEIGHTS: usize = 1 << 21;

/// Node `id` as a fully connected layer ([`vector_product`]) where `isa`'s channel-lane
/// product computes it: a 1x1 convolution over one pixel, its output `O` values. Elsewhere a
/// one-column product would fill one lane of each vector, and tract's matrix-vector product
/// stays; so it does for layers above [`MAX_FULLY_CONNECTED_WEIGHTS`].
fn fully_connected_parts(
    model: &TypedModel,
    id: usize,
    isa: Isa,
) -> TractResult<Option<ConvParts>> {
    let Some(product) = vector_product(model, id)? else {
        return Ok(None);
    };
    let (channels, out_channels) = (product.channels, product.out_channels);
    if !row_lanes_pay(isa, out_channels, channels, 1)
        || channels * out_channels > MAX_FULLY_CONNECTED_WEIGHTS
    {
        return Ok(None);
    }
    let Some(geometry) = PlaneGeometry::new(channels, (1, 1), (1, 1), (1, 1), (0, 0), (0, 0))
    else {
        return Ok(None);
    };
    Ok(Some(ConvParts {
        geometry,
        out_channels,
        weights: product.weights,
        bias: vec![0.0; out_channels],
        depthwise: false,
        rank: product.output_shape.len(),
        flat_output: Some((product.output_shape, product.channel_axis)),
        input_channels_last: false,
        output_channels_last: false,
        inputs: tvec![product.input],
    }))
}

/// The axes of an einsum operand holding an image: `[n]chw` or `[n]hwc`.
struct PointwiseLayout {
    batch: Option<char>,
    h: char,
    w: char,
    channels_last: bool,
}

impl PointwiseLayout {
    /// `axes` read with `c` as the channel axis.
    fn of(axes: &[char], c: char) -> Option<Self> {
        let (batch, rest) = match axes.len() {
            4 => (Some(axes[0]), &axes[1..]),
            3 => (None, axes),
            _ => return None,
        };
        match *rest {
            [c2, h, w] if c2 == c => Some(PointwiseLayout {
                batch,
                h,
                w,
                channels_last: false,
            }),
            [h, w, c2] if c2 == c => Some(PointwiseLayout {
                batch,
                h,
                w,
                channels_last: true,
            }),
            _ => None,
        }
    }

    /// `(channels, h, w)` of a concrete batch-1 shape in this layout.
    fn channels_h_w(&self, shape: &[usize]) -> Option<(usize, usize, usize)> {
        let rest = match (self.batch, shape) {
            (Some(_), [1, rest @ ..]) | (None, rest) => rest,
            _ => return None,
        };
        match (rest, self.channels_last) {
            (&[c, h, w], false) | (&[h, w, c], true) => Some((c, h, w)),
            _ => None,
        }
    }
}

/// The constant filters as `[out][in][kh][kw]`, whatever the kernel format.
fn filters(
    model: &TypedModel,
    outlet: OutletId,
    format: KernelFormat,
    (outs, ins, kh, kw): (usize, usize, usize, usize),
) -> TractResult<Option<Vec<f32>>> {
    let fact = model.outlet_fact(outlet)?;
    let Some(k) = fact.konst.as_ref() else {
        return Ok(None);
    };
    if k.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let k = k.to_plain_array_view::<f32>()?;
    let want: &[usize] = match format {
        KernelFormat::OIHW => &[outs, ins, kh, kw],
        KernelFormat::HWIO => &[kh, kw, ins, outs],
        KernelFormat::OHWI => &[outs, kh, kw, ins],
    };
    if k.shape() != want {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(outs * ins * kh * kw);
    for o in 0..outs {
        for i in 0..ins {
            for y in 0..kh {
                for x in 0..kw {
                    out.push(match format {
                        KernelFormat::OIHW => k[[o, i, y, x]],
                        KernelFormat::HWIO => k[[y, x, i, o]],
                        KernelFormat::OHWI => k[[o, y, x, i]],
                    });
                }
            }
        }
    }
    Ok(Some(out))
}

/// The constant bias as one value per channel (a scalar is broadcast).
fn biases(model: &TypedModel, outlet: OutletId, channels: usize) -> TractResult<Option<Vec<f32>>> {
    let fact = model.outlet_fact(outlet)?;
    let Some(b) = fact.konst.as_ref() else {
        return Ok(None);
    };
    if b.datum_type() != f32::datum_type() {
        return Ok(None);
    }
    let b = b.to_plain_array_view::<f32>()?;
    Ok(match b.len() {
        1 => Some(vec![*b.iter().next().expect("one value"); channels]),
        n if n == channels => Some(b.iter().copied().collect()),
        _ => None,
    })
}
