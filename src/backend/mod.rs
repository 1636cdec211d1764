//! Backends: where the numbers are computed. `cpu` is the pure-Rust path; the CubeCL kernels
//! (crate `cubegrad-ops`) join through `Device::Wgpu` and `Device::Cuda`.

pub mod cpu;
pub mod cube;
