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

    /// Runs into `output`, adding `residual` before the activation (dense kernels only: the
    /// pass fuses a residual into no other).
    fn run(&self, input: &[f32], residual: Option<&[f32]>, output: &mut [f32]) -> TractResult<()> {
        match (self, residual) {
            (ConvKernel::Dense(conv), residual) => conv.run_with_residual(input, residual, output),
            (ConvKernel::Depthwise(conv, isa), None) => conv.run(*isa, input, output),
            (ConvKernel::Winograd(conv), None) => conv.run(input, output),
            (_, Some(_)) => bail!("a residual for a kernel that takes none"),
        }
        Ok(())
    }
}

/// A convolution with fused bias and activation, on vigia's kernels. A second input, when
/// there is one, is a residual (shaped as the output) added before the activation.
#[derive(Debug, Clone, PartialEq)]
pub struct VigiaConv {
    /// The convolution (geometry, weights, bias, activation).
    pub kernel: ConvKernel,
    /// The output shape (the input's rank: `[1, C, H, W]` or `[C, H, W]`).
    pub output_shape: TVec<usize>,
    /// Whether a residual (the second input) is added before the activation.
    pub residual: bool,
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
            "{}x{} stride {}x{}, {} -> {} channels{}, {}, {}",
            g.kernel_h,
            g.kernel_w,
            g.stride_h,
            g.stride_w,
            g.channels,
            self.kernel.out_channels(),
            if self.residual { " + residual" } else { "" },
            self.kernel.activation().name(),
            self.kernel.isa().name()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, mut inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(
            inputs.len() == 1 + self.residual as usize,
            "{}: {} inputs",
            self.name(),
            inputs.len()
        );
        let residual = if self.residual { inputs.pop() } else { None };
        let input = args_1!(inputs);
        let g = self.kernel.geometry();
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        ensure!(
            x.len() == g.input_len(),
            "{}: input of {} values for a {}x{}x{} map",
            self.name(),
            x.len(),
            g.channels,
            g.in_h,
            g.in_w
        );
        let residual_view = residual
            .as_ref()
            .map(|r| r.try_as_plain_ram())
            .transpose()?;
        let residual = residual_view
            .as_ref()
            .map(|r| r.as_slice::<f32>())
            .transpose()?;
        if let Some(r) = residual {
            ensure!(
                r.len() == self.kernel.output_len(),
                "{}: residual of {} values for {} outputs",
                self.name(),
                r.len(),
                self.kernel.output_len()
            );
        }
        // SAFETY: the kernels write every output value.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        {
            let mut view = out.try_as_plain_ram_mut()?;
            self.kernel.run(x, residual, view.as_slice_mut::<f32>()?)?;
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for VigiaConv {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 + self.residual as usize);
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
