//! Host copies of burn tensors.

use burn::tensor::Tensor;

/// The values of a float tensor, row-major, on the host.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data_as::<f32>()
        .as_slice::<f32>()
        .map(|s| s.to_vec())
        .unwrap_or_default()
}
