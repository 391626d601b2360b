//! vigia's own compute kernels for the operators that dominate edge CNNs, used in place of
//! tract's where they are faster (see [`crate::engine::passes::conv_kernels`]).
//!
//! - [`depthwise`]: depthwise convolution (any kernel up to 11x11, any stride, zero padding) on
//!   NCHW planes, with bias and activation fused;
//! - [`taps`]: the inner loop those share, a sum of shifted rows times scalar weights, written
//!   per instruction set (AVX-512, AVX2+FMA, NEON, portable) and picked at run time;
//! - [`activation`]: the activations fused into the epilogue;
//! - [`reference`]: naive implementations the kernels are tested against.

pub mod activation;
pub mod depthwise;
pub mod isa;
pub mod reference;
pub mod taps;

pub use activation::Activation;
pub use isa::Isa;
