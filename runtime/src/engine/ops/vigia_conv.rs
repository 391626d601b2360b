//! A tract operator running one of vigia's convolutions: NCHW (or CHW) f32 in, same layout
//! out, with the filters, biases and activation it was built with.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::dense_conv::DenseConv;
use crate::kernels::depthwise::DepthwiseConv;
use crate::kernels::planes::PlaneGeometry;
use crate::kernels::winograd::WinogradConv;
use crate::kernels::{Activation, Isa};

/// The convolution a [`VigiaConv`] runs.
#[derive(Debug, Clone, PartialEq)]
pub enum ConvKernel {
    /// One filter per channel, on the kernels of the given instruction set.
    Depthwise(Arc<DepthwiseConv>, Isa),
    /// Every input channel into every output channel (a matrix product).
    Dense(Arc<DenseConv>),
    /// A 3x3 stride-1 dense convolution by Winograd's F(4x4, 3x3).
    Winograd(Arc<WinogradConv>),
}

impl ConvKernel {
    fn geometry(&self) -> &PlaneGeometry {
        match self {
            ConvKernel::Depthwise(conv, _) => conv.geometry(),
            ConvKernel::Dense(conv) => conv.geometry(),
            ConvKernel::Winograd(conv) => conv.geometry(),
        }
    }

    fn activation(&self) -> Activation {
        match self {
            ConvKernel::Depthwise(conv, _) => conv.activation(),
            ConvKernel::Dense(conv) => conv.activation(),
            ConvKernel::Winograd(conv) => conv.activation(),
        }
    }

    fn isa(&self) -> Isa {
        match self {
            ConvKernel::Depthwise(_, isa) => *isa,
            ConvKernel::Dense(conv) => conv.isa(),
            ConvKernel::Winograd(conv) => conv.isa(),
        }
    }

    fn out_channels(&self) -> usize {
        match self {
            ConvKernel::Depthwise(conv, _) => conv.geometry().channels,
            ConvKernel::Dense(conv) => conv.out_channels(),
            ConvKernel::Winograd(conv) => conv.out_channels(),
        }
    }

    fn output_len(&self) -> usize {
        let g = self.geometry();
        self.out_channels() * g.out_h * g.out_w
    }

    fn macs(&self) -> usize {
        let g = self.geometry();
        match self {
            ConvKernel::Depthwise(..) => self.output_len() * g.kernel_h * g.kernel_w,
            ConvKernel::Dense(conv) => conv.macs() as usize,
            // The direct product's count, so FLOP rates compare across kernels.
            ConvKernel::Winograd(_) => self.output_len() * g.channels * 9,
        }
    }

    /// Runs on the input whose channels `parts` hold one after the other into `output`,
    /// adding `residual` before the activation (several parts and a residual: dense kernels
    /// only, the pass gives them to no other).
    fn run(
        &self,
        parts: &[&[f32]],
        residual: Option<&[f32]>,
        output: &mut [f32],
    ) -> TractResult<()> {
        match (self, parts, residual) {
            (ConvKernel::Dense(conv), parts, residual) => conv.run_parts(parts, residual, output),
            (ConvKernel::Depthwise(conv, isa), [input], None) => conv.run(*isa, input, output),
            (ConvKernel::Winograd(conv), [input], None) => conv.run(input, output),
            (_, _, Some(_)) => bail!("a residual for a kernel that takes none"),
            (_, parts, None) => bail!("{} input parts for a kernel that takes one", parts.len()),
        }
        Ok(())
    }
}

/// The channels `first..first + count` of an input tensor (`[1, C, H, W]` or `[C, H, W]`), which
/// a [`VigiaConv`] reads in place: a `Slice` of the channels, or one part of a concatenation,
/// without the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelWindow {
    /// The first channel read.
    pub first: usize,
    /// How many channels are read.
    pub count: usize,
}

impl ChannelWindow {
    /// All `count` channels of a tensor.
    pub fn whole(count: usize) -> Self {
        ChannelWindow { first: 0, count }
    }

    /// The window's values in `values` (whole planes of `plane` values each).
    fn of<'a>(&self, values: &'a [f32], plane: usize, what: &str) -> TractResult<&'a [f32]> {
        let range = self.first * plane..(self.first + self.count) * plane;
        ensure!(
            plane > 0 && values.len().is_multiple_of(plane) && range.end <= values.len(),
            "{what}: channels {}..{} of a tensor of {} values in planes of {plane}",
            self.first,
            self.first + self.count,
            values.len()
        );
        Ok(&values[range])
    }
}

/// A convolution with fused bias and activation, on vigia's kernels. Its data inputs (one, or
/// for a dense kernel the parts of a concatenation) each give a window of their channels; a
/// last input, when there is one, is a residual (a window shaped as the output) added before
/// the activation.
#[derive(Debug, Clone, PartialEq)]
pub struct VigiaConv {
    /// The convolution (geometry, weights, bias, activation).
    pub kernel: ConvKernel,
    /// The output shape (the input's rank: `[1, C, H, W]` or `[C, H, W]`).
    pub output_shape: TVec<usize>,
    /// The channels each data input gives, in order.
    pub inputs: TVec<ChannelWindow>,
    /// The channels of the residual (the last input) added before the activation, if any.
    pub residual: Option<ChannelWindow>,
}

impl VigiaConv {
    /// Inputs the operator takes: its data inputs and the residual.
    fn wires(&self) -> usize {
        self.inputs.len() + self.residual.is_some() as usize
    }
}

impl Eq for VigiaConv {}

impl Op for VigiaConv {
    fn name(&self) -> StaticName {
        match self.kernel {
            ConvKernel::Depthwise(..) => "VigiaDepthwiseConv".into(),
            ConvKernel::Dense(_) => "VigiaDenseConv".into(),
            ConvKernel::Winograd(_) => "VigiaWinogradConv".into(),
        }
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = self.kernel.geometry();
        Ok(vec![format!(
            "{}x{} stride {}x{}, {} -> {} channels{}{}, {}, {}",
            g.kernel_h,
            g.kernel_w,
            g.stride_h,
            g.stride_w,
            g.channels,
            self.kernel.out_channels(),
            if self.inputs.len() > 1 {
                format!(" in {} parts", self.inputs.len())
            } else {
                String::new()
            },
            if self.residual.is_some() {
                " + residual"
            } else {
                ""
            },
            self.kernel.activation().name(),
            self.kernel.isa().name()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let name = self.name();
        ensure!(
            inputs.len() == self.wires(),
            "{name}: {} inputs for {}",
            inputs.len(),
            self.wires()
        );
        let g = self.kernel.geometry();
        let views = inputs
            .iter()
            .map(|i| i.try_as_plain_ram())
            .collect::<TractResult<Vec<_>>>()?;
        let values = views
            .iter()
            .map(|v| v.as_slice::<f32>())
            .collect::<TractResult<Vec<_>>>()?;
        let plane_in = g.in_h * g.in_w;
        let parts = self
            .inputs
            .iter()
            .zip(&values)
            .map(|(w, x)| w.of(x, plane_in, &name))
            .collect::<TractResult<Vec<_>>>()?;
        let channels: usize = self.inputs.iter().map(|w| w.count).sum();
        ensure!(
            channels == g.channels,
            "{name}: inputs of {channels} channels for a {}x{}x{} map",
            g.channels,
            g.in_h,
            g.in_w
        );
        let residual = match self.residual {
            Some(w) => {
                ensure!(
                    w.count == self.kernel.out_channels(),
                    "{name}: residual of {} channels for {} outputs",
                    w.count,
                    self.kernel.out_channels()
                );
                Some(w.of(values[self.inputs.len()], g.out_h * g.out_w, &name)?)
            }
            None => None,
        };
        // SAFETY: the kernels write every output value.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        {
            let mut view = out.try_as_plain_ram_mut()?;
            self.kernel
                .run(&parts, residual, view.as_slice_mut::<f32>()?)?;
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for VigiaConv {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == self.wires());
        ensure!(inputs.iter().all(|i| i.datum_type == f32::datum_type()));
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            self.kernel.macs().into()
        )))
    }
}
