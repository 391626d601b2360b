//! A tract operator running vigia's [`MaxPool2d`]: ONNX `MaxPool` over the last two axes of an
//! f32 NCHW (or CHW) tensor.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::max_pool::MaxPool2d;

/// A 2-D max pooling, on vigia's kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VigiaMaxPool {
    /// The planes, window, strides and padding.
    pub pool: MaxPool2d,
    /// The output shape.
    pub output_shape: TVec<usize>,
}

impl Op for VigiaMaxPool {
    fn name(&self) -> StaticName {
        "VigiaMaxPool".into()
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaMaxPool {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let len = self.pool.input_len();
        super::eval_f32("VigiaMaxPool", input, len, &self.output_shape, |x, y| {
            self.pool.run(x, y)
        })
    }
}

impl TypedOp for VigiaMaxPool {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }
}
