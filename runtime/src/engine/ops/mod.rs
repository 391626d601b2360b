//! tract operators that run vigia's kernels ([`crate::kernels`]) inside a tract plan.

pub mod vigia_blocked_conv;
pub mod vigia_blocked_depthwise;
pub mod vigia_conv;
pub mod vigia_expand_depthwise;
pub mod vigia_max_pool;
pub mod vigia_reorder;
pub mod vigia_resize;
pub mod vigia_softmax;

use tract_onnx::prelude::*;

/// Runs a kernel from an f32 input of `input_len` values into a new f32 tensor of
/// `output_shape` which the kernel fills entirely: the evaluation every vigia operator shares.
/// `what` names the operator in the error when the input is not the size it was planned for.
pub(crate) fn eval_f32(
    what: &str,
    input: TValue,
    input_len: usize,
    output_shape: &[usize],
    kernel: impl FnOnce(&[f32], &mut [f32]),
) -> TractResult<TVec<TValue>> {
    let view = input.try_as_plain_ram()?;
    let x = view.as_slice::<f32>()?;
    anyhow::ensure!(
        x.len() == input_len,
        "{what}: input of {} values where {input_len} were planned",
        x.len()
    );
    // SAFETY: the kernel writes every output value (the caller's promise).
    let mut out = unsafe { Tensor::uninitialized::<f32>(output_shape)? };
    kernel(x, out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
    Ok(tvec!(out.into_tvalue()))
}
