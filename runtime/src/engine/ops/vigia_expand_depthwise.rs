//! A tract operator running vigia's [`ExpandDepthwise`]: a 1x1 expansion and the depthwise
//! convolution that reads it, on planar maps, a group of expanded channels at a time.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::expand_depthwise::ExpandDepthwise;

/// The two layers of an inverted residual block's start, joined: the input is the expansion's
/// (`[1, C, H, W]` or `[C, H, W]`), the output the depthwise convolution's (`output_shape`).
#[derive(Debug, Clone, PartialEq)]
pub struct VigiaExpandDepthwise {
    pub fused: Arc<ExpandDepthwise>,
    pub output_shape: TVec<usize>,
}

impl Eq for VigiaExpandDepthwise {}

impl Op for VigiaExpandDepthwise {
    fn name(&self) -> StaticName {
        "VigiaExpandDepthwise".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let d = self.fused.depthwise().geometry();
        Ok(vec![format!(
            "1x1 expansion to {} channels, then {}x{} depthwise stride {}x{}, {} channels a group",
            d.channels,
            d.kernel_h,
            d.kernel_w,
            d.stride_h,
            d.stride_w,
            self.fused.group_channels(),
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaExpandDepthwise {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        super::eval_f32(
            "VigiaExpandDepthwise",
            input,
            self.fused.input_len(),
            &self.output_shape,
            |x, y| self.fused.run(x, y),
        )
    }
}

impl TypedOp for VigiaExpandDepthwise {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 && inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (self.fused.macs() as usize).into()
        )))
    }
}
