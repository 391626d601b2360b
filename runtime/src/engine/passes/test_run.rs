//! Running a small graph in the passes' tests.

use tract_onnx::prelude::*;

/// The first output of `m` run on `input`, as plain values.
pub(crate) fn run(m: TypedModel, input: &Tensor) -> Vec<f32> {
    let out = m
        .into_runnable()
        .unwrap()
        .run(tvec![input.clone().into_tvalue()])
        .unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}
