//! A tract operator running vigia's [`Resize2d`]: the height and width of an f32 tensor
//! resampled (ONNX `Resize` in linear, nearest or cubic mode), the leading axes unchanged.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::resize::Resize2d;

/// A resampling of the last two axes, on vigia's kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct VigiaResize {
    /// The plans of both axes and the number of planes.
    pub resize: Arc<Resize2d>,
    /// The output shape (the input's, with the last two axes resampled).
    pub output_shape: TVec<usize>,
}

impl Eq for VigiaResize {}

impl Op for VigiaResize {
    fn name(&self) -> StaticName {
        "VigiaResize".into()
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaResize {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let len = self.resize.input_len();
        super::eval_f32("VigiaResize", input, len, &self.output_shape, |x, y| {
            self.resize.run(x, y)
        })
    }
}

impl TypedOp for VigiaResize {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }
}
