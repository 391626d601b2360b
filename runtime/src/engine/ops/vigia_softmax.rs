//! A tract operator running vigia's [`softmax_rows`]: ONNX `Softmax` over the last axis of an
//! f32 tensor.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::softmax::softmax_rows;
use crate::kernels::Isa;

/// A softmax along the last axis, on vigia's kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VigiaSoftmax {
    /// The shape of the input and output.
    pub shape: TVec<usize>,
    /// The instruction set of the kernel.
    pub isa: Isa,
}

impl Op for VigiaSoftmax {
    fn name(&self) -> StaticName {
        "VigiaSoftmax".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("last axis, {}", self.isa.name())])
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaSoftmax {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let len = self.shape.iter().product();
        let row = *self.shape.last().context("a scalar softmax")?;
        super::eval_f32("VigiaSoftmax", input, len, &self.shape, |x, y| {
            softmax_rows(self.isa, x, y, row)
        })
    }
}

impl TypedOp for VigiaSoftmax {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.shape)))
    }
}
