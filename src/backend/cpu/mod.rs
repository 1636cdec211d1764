//! The pure-Rust CPU backend: loops that vectorise, rayon across rows and batches, and the
//! `gemm` crate for matrix products. Every function works on plain slices; `crate::ops` turns
//! tensors into slices and back.

pub mod attention;
pub mod batch_norm;
pub mod context_pool;
pub mod conv;
pub mod elementwise;
pub mod fastmath;
pub mod layer_norm;
pub mod layout;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod pooling;
pub mod reduce;
pub mod simd;
pub mod softmax;
