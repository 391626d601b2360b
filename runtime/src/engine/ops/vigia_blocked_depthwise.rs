//! A tract operator running vigia's [`DepthwiseConv`] on channel-blocked maps
//! (`[1, C / 16, H, W, 16]`), with its biases and activation: the depthwise layers between the
//! blocked 1x1 convolutions of mobile networks' inverted residual blocks.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::blocked_conv::BLOCK;
use crate::kernels::depthwise::DepthwiseConv;
use crate::kernels::Isa;

/// A depthwise convolution on blocked maps. Its input is the map it reads from block
/// `input_block` on (a window of a wider map's channels).
#[derive(Debug, Clone, PartialEq)]
pub struct VigiaBlockedDepthwise {
    /// The convolution (geometry, filters, biases, activation).
    pub conv: Arc<DepthwiseConv>,
    /// The instruction set its kernels use.
    pub isa: Isa,
    /// Whether the output leads with a batch axis of 1.
    pub batch: bool,
    /// The first block of the input read.
    pub input_block: usize,
}

impl VigiaBlockedDepthwise {
    /// The output shape: `[1, channels / 16, out_h, out_w, 16]` (or without the batch axis).
    pub fn output_shape(&self) -> TVec<usize> {
        let g = self.conv.geometry();
        let blocks = [g.channels / BLOCK, g.out_h, g.out_w, BLOCK];
        self.batch.then_some(1).into_iter().chain(blocks).collect()
    }
}

impl Eq for VigiaBlockedDepthwise {}

impl Op for VigiaBlockedDepthwise {
    fn name(&self) -> StaticName {
        "VigiaBlockedDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = self.conv.geometry();
        Ok(vec![format!(
            "{}x{} stride {}x{}, {} channels, {}, blocks of {BLOCK}",
            g.kernel_h,
            g.kernel_w,
            g.stride_h,
            g.stride_w,
            g.channels,
            self.conv.activation().name(),
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaBlockedDepthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let view = input.try_as_plain_ram()?;
        let values = view.as_slice::<f32>()?;
        let g = self.conv.geometry();
        let (first, len) = (self.input_block * g.in_h * g.in_w * BLOCK, g.input_len());
        let input = values.get(first..first + len).with_context(|| {
            format!(
                "VigiaBlockedDepthwise: input of {} values, {len} wanted from {first}",
                values.len()
            )
        })?;
        // SAFETY: the kernel writes every output value.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape())? };
        self.conv.run_on_blocks(
            self.isa,
            input,
            out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for VigiaBlockedDepthwise {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.output_shape())))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = self.conv.geometry();
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (g.output_len() * g.kernel_h * g.kernel_w).into()
        )))
    }
}
