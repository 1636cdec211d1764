//! Everything on a CubeCL device, against the CPU, in one binary (built with `--features wgpu`
//! or `cuda`): every kernel on odd shapes larger than one cube (`kernels`), the op registry
//! and the layers through the tensor API (`ops`), and training end to end (`training`).
//! Without the runtime's device the tests fail when `CUBEGRAD_REQUIRE_DEVICE` names it (CI)
//! and otherwise skip with a printed reason.
//!
//!     CUBEGRAD_REQUIRE_DEVICE=wgpu cargo test --features wgpu --test device
#![cfg(any(feature = "wgpu", feature = "cuda"))]
// Each example brings its own `mod common;`, as it does when built alone.
#![allow(clippy::duplicate_mod)]

mod kernels;
mod ops;
mod training;
