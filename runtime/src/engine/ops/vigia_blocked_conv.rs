//! A tract operator running vigia's [`BlockedConv`]: a dense convolution whose input, residual
//! and output are channel-blocked maps (`[1, C / 16, H, W, 16]`), with its biases and activation.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::blocked_conv::{BlockedConv, BLOCK};

/// A convolution on blocked maps. Its first input is the map it reads (from block
/// `input_block` on: a window of a wider map's channels); a second, when `residual_block` is
/// set, a blocked map shaped as the output (from that block on) added before the activation.
#[derive(Debug, Clone, PartialEq)]
pub struct VigiaBlockedConv {
    /// The convolution (geometry, packed filters, biases, activation).
    pub conv: Arc<BlockedConv>,
    /// Whether the output leads with a batch axis of 1.
    pub batch: bool,
    /// The first block of the input read.
    pub input_block: usize,
    /// The first block of the residual read, when there is one.
    pub residual_block: Option<usize>,
}

impl VigiaBlockedConv {
    /// The output shape: `[1, out_channels / 16, out_h, out_w, 16]` (or without the batch
    /// axis).
    pub fn output_shape(&self) -> TVec<usize> {
        let g = self.conv.geometry();
        let blocks = [self.conv.out_channels() / BLOCK, g.out_h, g.out_w, BLOCK];
        self.batch.then_some(1).into_iter().chain(blocks).collect()
    }
}

impl Eq for VigiaBlockedConv {}

impl Op for VigiaBlockedConv {
    fn name(&self) -> StaticName {
        "VigiaBlockedConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let g = self.conv.geometry();
        Ok(vec![format!(
            "{}x{} stride {}x{}, {} -> {} channels{}, {}, blocks of {BLOCK}",
            g.kernel_h,
            g.kernel_w,
            g.stride_h,
            g.stride_w,
            g.channels,
            self.conv.out_channels(),
            if self.residual_block.is_some() {
                " + residual"
            } else {
                ""
            },
            self.conv.activation().name(),
        )])
    }

    op_as_typed_op!();
}

impl EvalOp for VigiaBlockedConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let wires = 1 + self.residual_block.is_some() as usize;
        ensure!(
            inputs.len() == wires,
            "VigiaBlockedConv: {} inputs for {wires}",
            inputs.len()
        );
        let views = inputs
            .iter()
            .map(|i| i.try_as_plain_ram())
            .collect::<TractResult<Vec<_>>>()?;
        let values = views
            .iter()
            .map(|v| v.as_slice::<f32>())
            .collect::<TractResult<Vec<_>>>()?;
        let g = self.conv.geometry();
        let input = window(
            values[0],
            self.input_block * g.in_h * g.in_w * BLOCK,
            self.conv.input_len(),
            "input",
        )?;
        let residual = match self.residual_block {
            Some(block) => Some(window(
                values[1],
                block * g.out_h * g.out_w * BLOCK,
                self.conv.output_len(),
                "residual",
            )?),
            None => None,
        };
        // SAFETY: the kernel writes every output value.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.output_shape())? };
        self.conv.run(
            input,
            residual,
            out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

/// `len` values of `values` from `first`, or an error naming `what`.
fn window<'a>(values: &'a [f32], first: usize, len: usize, what: &str) -> TractResult<&'a [f32]> {
    values.get(first..first + len).with_context(|| {
        format!(
            "VigiaBlockedConv: {what} of {} values, {len} wanted from {first}",
            values.len()
        )
    })
}

impl TypedOp for VigiaBlockedConv {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1 + self.residual_block.is_some() as usize);
        ensure!(inputs.iter().all(|i| i.datum_type == f32::datum_type()));
        Ok(tvec!(f32::fact(&*self.output_shape())))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (self.conv.macs() as usize).into()
        )))
    }
}
