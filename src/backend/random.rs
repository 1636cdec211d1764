//! Random masks drawn where the tensor lives, from a counter-based generator.
//!
//! Philox 4×32-10 (Salmon et al. 2011, the generator behind PyTorch's CUDA dropout) turns a
//! 64-bit key and a 128-bit counter into four 32-bit words with ten rounds of multiplies and
//! xors: no state, so every element's word can be computed on its own, in any order, on any
//! device. Element `i` of a mask takes word `i mod 4` of the block at counter `i / 4`, and is
//! kept when its top 24 bits fall below `keep · 2²⁴`. The CPU (`cpu/random.rs`) and the
//! kernel (`cubegrad_ops::random`) compute the same words, so a CPU and a device run of one
//! seed draw the same masks.

use crate::error::Result;
use crate::tensor::Tensor;
use crate::tensor::{DType, Device, Shape};

/// Philox's round constants.
pub const PHILOX_M0: u32 = 0xD251_1F53;
pub const PHILOX_M1: u32 = 0xCD9E_8D57;
pub const PHILOX_W0: u32 = 0x9E37_79B9;
pub const PHILOX_W1: u32 = 0xBB67_AE85;

/// The integer threshold below which a 24-bit draw keeps its element.
pub fn keep_threshold(p: f64) -> u32 {
    ((1.0 - p) * (1u32 << 24) as f64).round() as u32
}

pub trait RandomKernels {
    /// The inverted-dropout mask of `shape` on `device`: `1/(1 − p)` where the Philox stream
    /// of `seed` keeps an element (probability `1 − p`), 0 elsewhere.
    fn dropout_mask(
        &self,
        shape: &Shape,
        p: f64,
        seed: u64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor>;
}
