//! CubeCL kernels for cubegrad. Each file holds its `#[cube]` kernels and their host-side
//! launchers; the launchers take device buffers (`Handle`s) and runtime shapes, so one
//! compiled kernel serves every shape. The same kernels run on CUDA and, through wgpu, on
//! Vulkan (Mesa's lavapipe runs them on a CPU for tests).

mod common;
pub use common::check_device;
pub mod binary;
pub mod context_pool;
pub mod conv;
pub mod index;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod matmul_cubek;
pub mod norm;
pub mod optim;
pub mod pool;
pub mod random;
pub mod reduce;
pub mod softmax;
pub mod unary;

pub use cubecl;
