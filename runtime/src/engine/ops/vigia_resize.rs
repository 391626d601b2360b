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
        let view = input.try_as_plain_ram()?;
        let x = view.as_slice::<f32>()?;
        ensure!(
            x.len() == self.resize.input_len(),
            "VigiaResize: input of {} values where {} were planned",
            x.len(),
            self.resize.input_len()
        );
        // SAFETY: the kernel writes every output value.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape)? };
        self.resize
            .run(x, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for VigiaResize {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(f32::fact(&*self.output_shape)))
    }
}
