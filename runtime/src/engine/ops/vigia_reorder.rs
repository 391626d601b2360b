//! A tract operator moving an f32 map between planes (`[1, C, H, W]`) and channel blocks
//! (`[1, C / 16, H, W, 16]`; both with or without the batch axis), at the ends of a chain of [`super::vigia_blocked_conv`]s.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::blocked_layout::{from_blocked, to_blocked, BLOCK};
use crate::kernels::Isa;

/// A layout change of a `channels x height x width` map (`channels` a multiple of 16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VigiaReorder {
    /// Planes to blocks (`true`) or blocks to planes.
    pub to_blocked: bool,
    /// Whether both shapes lead with a batch axis of 1.
    pub batch: bool,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// The instruction set the transposes use.
    pub isa: Isa,
}

impl VigiaReorder {
    /// The planar shape, `[1, C, H, W]` (or `[C, H, W]`).
    pub fn planes_shape(&self) -> TVec<usize> {
        self.with_batch(&[self.channels, self.height, self.width])
    }

    /// The blocked shape, `[1, C / 16, H, W, 16]` (or without the batch axis).
    pub fn blocked_shape(&self) -> TVec<usize> {
        self.with_batch(&[self.channels / BLOCK, self.height, self.width, BLOCK])
    }

    /// `dims` after the batch axis, when there is one.
    fn with_batch(&self, dims: &[usize]) -> TVec<usize> {
        let batch = self.batch.then_some(1);
        batch.into_iter().chain(dims.iter().copied()).collect()
    }
}

impl Op for VigiaReorder {
    fn name(&self) -> StaticName {
        if self.to_blocked {
            "VigiaToBlocked".into()
        } else {
            "VigiaToPlanes".into()
        }
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaReorder {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let len = self.channels * self.height * self.width;
        let pixels = self.height * self.width;
        if self.to_blocked {
            super::eval_f32(
                "VigiaToBlocked",
                input,
                len,
                &self.blocked_shape(),
                |x, y| to_blocked(self.isa, x, pixels, y),
            )
        } else {
            super::eval_f32("VigiaToPlanes", input, len, &self.planes_shape(), |x, y| {
                from_blocked(self.isa, x, pixels, y)
            })
        }
    }
}

impl TypedOp for VigiaReorder {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs[0].datum_type == f32::datum_type());
        Ok(tvec!(if self.to_blocked {
            f32::fact(&*self.blocked_shape())
        } else {
            f32::fact(&*self.planes_shape())
        }))
    }
}
