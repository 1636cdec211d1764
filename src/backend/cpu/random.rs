//! Dropout masks on the CPU from Philox 4×32-10 (see `backend/random.rs`): the same words as
//! the kernel `cubegrad_ops::random` computes, so a mask of one seed is the same everywhere.

use super::float::Float;
use super::loops::filled_vec;
use super::{with_float, wrap, Cpu};
use crate::backend::random::{
    keep_threshold, RandomKernels, PHILOX_M0, PHILOX_M1, PHILOX_W0, PHILOX_W1,
};
use crate::error::Result;
use crate::tensor::{DType, Device, Shape, Tensor};

/// Philox 4×32 with ten rounds: the four words of counter `(c0, c1, 0, 0)` under `key`.
pub fn philox(c0: u32, c1: u32, key: u64) -> [u32; 4] {
    let mut x = [c0, c1, 0, 0];
    let (mut k0, mut k1) = (key as u32, (key >> 32) as u32);
    for round in 0..10 {
        if round > 0 {
            k0 = k0.wrapping_add(PHILOX_W0);
            k1 = k1.wrapping_add(PHILOX_W1);
        }
        let p0 = PHILOX_M0 as u64 * x[0] as u64;
        let p1 = PHILOX_M1 as u64 * x[2] as u64;
        x = [
            (p1 >> 32) as u32 ^ x[1] ^ k0,
            p1 as u32,
            (p0 >> 32) as u32 ^ x[3] ^ k1,
            p0 as u32,
        ];
    }
    x
}

/// `n` elements: `scale` where the 24-bit draw of element `i` (word `i mod 4` of block
/// `i / 4`) is below `threshold`, 0 elsewhere.
fn mask<T: Float>(n: usize, seed: u64, threshold: u32, scale: T) -> Vec<T> {
    // Chunks of whole blocks (a multiple of 4 elements), so that each chunk starts a block.
    filled_vec(n, 1 << 12, |start, out| {
        for (b, quad) in out.chunks_mut(4).enumerate() {
            let words = philox((start / 4 + b) as u32, 0, seed);
            for (o, &w) in quad.iter_mut().zip(&words) {
                o.write(if (w >> 8) < threshold {
                    scale
                } else {
                    T::zero()
                });
            }
        }
    })
}

impl RandomKernels for Cpu {
    fn dropout_mask(
        &self,
        shape: &Shape,
        p: f64,
        seed: u64,
        dtype: DType,
        _device: Device,
    ) -> Result<Tensor> {
        let threshold = keep_threshold(p);
        with_float!("dropout", dtype, |T| {
            let v = mask::<T>(shape.numel(), seed, threshold, T::from_f64(1.0 / (1.0 - p)));
            Ok(wrap(T::wrap(v), shape.clone()))
        })
    }
}
