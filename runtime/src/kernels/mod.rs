//! vigia's own compute kernels for the operators that dominate edge CNNs, used in place of
//! tract's where they are faster (see [`crate::engine::passes::conv_kernels`]).
//!
//! - [`dense_conv`]: convolution with every input channel feeding every output (1x1 and KxK,
//!   any stride and zero padding) as a matrix product on [`gemm`], bias and activation fused;
//! - [`depthwise`]: depthwise convolution (any kernel up to 11x11, any stride, zero padding) on
//!   NCHW planes, with bias and activation fused;
//! - [`blocked_conv`]: dense convolution over channel-blocked maps (16 channels a vector,
//!   AVX-512), with [`blocked_layout`] converting planes to blocks and back;
//! - [`deinterleave`]: a row split into its even and odd values (stride-2 column phases);
//! - [`gemm`]: the packed matrix product and its micro-kernels per instruction set;
//! - [`pool`]: the spinning thread pool the kernels split their work over;
//! - [`planes`]: the spatial geometry both convolutions share and its phase-plane layout;
//! - [`taps`]: the depthwise inner loop, a sum of shifted rows times scalar weights, written
//!   per instruction set (AVX-512, AVX2+FMA, NEON, portable) and picked at run time;
//! - [`activation`]: the activations fused into the epilogue;
//! - [`aligned_buf`]: cache-line-aligned buffers for packed panels and vector blocks;
//! - [`fma_pipes`]: how many vector FMAs a cycle this core starts (measured);
//! - [`winograd`]: 3x3 stride-1 dense convolution by F(4x4, 3x3) on the same micro-kernel;
//! - [`max_pool`]: ONNX `MaxPool` over NCHW planes, separably ([`max_pool_rows`]: the
//!   common windows in one pass per output row);
//! - [`resize`]: ONNX `Resize` (linear, nearest, cubic) over the height and width of NCHW
//!   planes, separably;
//! - [`reference`]: naive implementations the kernels are tested against.

pub mod activation;
pub mod aligned_buf;
pub mod blocked_conv;
pub mod blocked_layout;
pub mod deinterleave;
pub mod dense_conv;
pub mod depthwise;
pub mod depthwise_blocked;
mod depthwise_rows;
pub mod expand_depthwise;
pub mod fma_pipes;
pub mod gemm;
pub mod isa;
pub mod max_pool;
mod max_pool_rows;
pub mod planes;
pub mod pool;
pub mod reference;
pub mod resize;
pub mod softmax;
pub mod taps;
#[cfg(test)]
pub(crate) mod test_support;
pub mod transpose;
pub mod winograd;

pub use activation::Activation;
pub use isa::Isa;
