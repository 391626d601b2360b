//! Puts vigia's kernels ([`crate::kernels`]) in place of tract's for the convolutions they
//! compute faster, in a decluttered tract model, just before tract optimizes it.
//!
//! A depthwise convolution (f32, NCHW or CHW, batch 1, constant filters and bias, no dilation,
//! kernel up to [`MAX_KERNEL`]) becomes one [`VigiaDepthwiseConv`], together with the activation
//! that follows it when nothing else reads the convolution's output (ReLU, ReLU6 or any clip,
//! LeakyReLU, HardSwish, Sigmoid, SiLU). Anything else stays tract's.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::{Max, Min};
use tract_onnx::tract_core::ops::nn::{DataFormat, HardSwish, LeakyRelu, Sigmoid, Silu};

use crate::engine::ops::depthwise_conv::VigiaDepthwiseConv;
use crate::kernels::depthwise::{DepthwiseConv, DepthwiseGeometry, MAX_KERNEL};
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
    /// Activations fused into them.
    pub fused_activations: usize,
    /// The instruction set the kernels use (`None` when nothing was replaced).
    pub isa: Option<Isa>,
}

impl KernelReport {
    /// One line for load messages, e.g. `17 depthwise conv (12 with activation) on avx512`.
    pub fn summary(&self) -> String {
        match self.isa {
            Some(isa) if self.depthwise > 0 => format!(
                "{} depthwise conv ({} with activation) on {}",
                self.depthwise,
                self.fused_activations,
                isa.name()
            ),
            _ => "none".to_string(),
        }
    }
}

/// Replaces every supported convolution of `model` (decluttered, with constant weights) by a
/// vigia operator, using the kernels of `isa`.
pub fn replace_convs(model: &mut TypedModel, isa: Isa) -> TractResult<KernelReport> {
    let mut report = KernelReport::default();
    let candidates: Vec<usize> = model
        .eval_order()?
        .into_iter()
        .filter(|&id| model.node(id).op_is::<Conv>())
        .collect();
    for id in candidates {
        let Some((conv, output_shape)) = depthwise_of(model, id)? else {
            continue;
        };
        let (activation, last) = following_activation(model, id)?;
        let op = VigiaDepthwiseConv {
            conv: Arc::new(
                DepthwiseConv::new(conv.0, conv.1, conv.2, activation)
                    .map_err(|e| anyhow!("{}: {e}", model.node(id).name))?,
            ),
            output_shape,
            isa,
        };
        let node = model.node(id);
        let mut patch = TypedModelPatch::new(format!("vigia depthwise {}", node.name));
        let input = patch.tap_model(model, node.inputs[0])?;
        let out = patch.wire_node(format!("{}.vigia", node.name), op, &[input])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), out)?;
        patch.apply(model)?;
        report.depthwise += 1;
        if activation != Activation::None {
            report.fused_activations += 1;
        }
        report.isa = Some(isa);
    }
    if report.depthwise > 0 {
        model.compact()?;
    }
    Ok(report)
}

/// Geometry, filters `[C][kh][kw]` and biases of node `id` when it is a depthwise convolution
/// the kernels take, with its output shape.
#[allow(clippy::type_complexity)]
fn depthwise_of(
    model: &TypedModel,
    id: usize,
) -> TractResult<Option<((DepthwiseGeometry, Vec<f32>, Vec<f32>), TVec<usize>)>> {
    let node = model.node(id);
    let Some(conv) = node.op_as::<Conv>() else {
        return Ok(None);
    };
    let spec = &conv.pool_spec;
    let channels = spec.input_channels;
    if conv.q_params.is_some()
        || node.inputs.len() != 3
        || channels < 2
        || conv.group != channels
        || spec.output_channels != channels
        || spec.kernel_shape.len() != 2
        || spec.dilations().iter().any(|&d| d != 1)
    {
        return Ok(None);
    }
    let input = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = input.shape.as_concrete() else {
        return Ok(None);
    };
    let (h, w) = match (spec.data_format, shape) {
        (DataFormat::NCHW, &[1, c, h, w]) | (DataFormat::CHW, &[c, h, w]) if c == channels => {
            (h, w)
        }
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
    let Some(geometry) = DepthwiseGeometry::new(
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
    let Some(weights) = filters(model, node.inputs[1], conv.kernel_fmt, channels, kh, kw)? else {
        return Ok(None);
    };
    let Some(bias) = biases(model, node.inputs[2], channels)? else {
        return Ok(None);
    };
    let output_shape: TVec<usize> = match spec.data_format {
        DataFormat::NCHW => tvec![1, channels, geometry.out_h, geometry.out_w],
        _ => tvec![channels, geometry.out_h, geometry.out_w],
    };
    Ok(Some(((geometry, weights, bias), output_shape)))
}

/// The constant filters as `[C][kh][kw]`, whatever the kernel format.
fn filters(
    model: &TypedModel,
    outlet: OutletId,
    format: KernelFormat,
    channels: usize,
    kh: usize,
    kw: usize,
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
        KernelFormat::OIHW => &[channels, 1, kh, kw],
        KernelFormat::HWIO => &[kh, kw, 1, channels],
        KernelFormat::OHWI => &[channels, kh, kw, 1],
    };
    if k.shape() != want {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(channels * kh * kw);
    for c in 0..channels {
        for y in 0..kh {
            for x in 0..kw {
                out.push(match format {
                    KernelFormat::OIHW => k[[c, 0, y, x]],
                    KernelFormat::HWIO => k[[y, x, 0, c]],
                    KernelFormat::OHWI => k[[c, y, x, 0]],
                });
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

/// The activation applied to node `id`'s only output, and the node whose output is then the
/// fused result (`id` itself when nothing is fused).
fn following_activation(model: &TypedModel, id: usize) -> TractResult<(Activation, usize)> {
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
fn sole_reader(model: &TypedModel, id: usize) -> TractResult<Option<usize>> {
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
    if node.inputs.len() != 2 {
        return Ok(None);
    }
    let other = if node.inputs[0].node == from {
        node.inputs[1]
    } else {
        node.inputs[0]
    };
    let fact = model.outlet_fact(other)?;
    let Some(c) = fact.uniform.as_ref().or(fact.konst.as_ref()) else {
        return Ok(None);
    };
    if c.datum_type() != f32::datum_type() || c.len() != 1 {
        return Ok(None);
    }
    // The constant must not broadcast the result to a larger shape.
    if fact.rank() > model.outlet_fact(OutletId::new(from, 0))?.rank() {
        return Ok(None);
    }
    let c = *c
        .to_plain_array_view::<f32>()?
        .iter()
        .next()
        .expect("one value");
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
