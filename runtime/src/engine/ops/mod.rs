//! tract operators that run vigia's kernels ([`crate::kernels`]) inside a tract plan.

pub mod vigia_conv;
pub mod vigia_max_pool;
pub mod vigia_resize;
