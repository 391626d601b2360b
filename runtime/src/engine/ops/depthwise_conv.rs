//! A tract operator running [`DepthwiseConv`]: NCHW (or CHW) f32 in, same layout out, with the
//! filters, biases and activation it was built with.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::depthwise::DepthwiseConv;
use crate::kernels::Isa;

/// Depthwise convolution with fused bias and activation, on vigia's kernels.
#[derive(Debug, Clone, PartialEq)]
pub struct VigiaDepthwiseConv {
    /// The convolution (geometry, weights, bias, activation).
    pub conv: Arc<DepthwiseConv>,
    /// The output shape (the input's rank: `[1, C, H, W]` or `[C, H, W]`).
    pub output_shape: TVec<usize>,
    /// The instruction set picked when the operator was built.
    pub isa: Isa,
}

impl Eq for VigiaDepthwiseConv {}

impl Op for VigiaDepthwiseConv {
    fn name(&self) -> StaticName {
        "VigiaDepthwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = self.conv.geometry();
        Ok(vec![format!(
            "{}x{} stride {}x{}, {} channels, {}, {}",
            g.kernel_h,
            g.kernel_w,
            g.stride_h,
            g.stride_w,
            g.channels,
            self.conv.activation().name(),
            self.isa.name()
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaDepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let g = self.conv.geometry();
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        ensure!(
            x.len() == g.input_len(),
            "VigiaDepthwiseConv: input of {} values for a {}x{}x{} map",
            x.len(),
            g.channels,
            g.in_h,
            g.in_w
        );
        // SAFETY: every element is written by `run` (one output per channel pixel).
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        self.conv.run(
            self.isa,
            x,
            out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for VigiaDepthwiseConv {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = self.conv.geometry();
        let fma = g.output_len() * g.kernel_h * g.kernel_w;
        Ok(tvec!((Cost::FMA(f32::datum_type()), fma.into())))
    }
}
