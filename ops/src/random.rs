//! Dropout masks from Philox 4×32-10, a counter-based generator: each unit computes the four
//! words of one counter block on its own, so the mask needs no state and no upload. The CPU
//! twin (`cubegrad::backend::cpu::random`) computes the same words, bit for bit.

use crate::common::{grid, scalar};
use cubecl::prelude::*;
use cubecl::server::Handle;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// Philox 4×32 with ten rounds: the four words of counter `(c0, c1, 0, 0)` under key
/// `(k0, k1)`.
#[cube]
fn philox(c0: u32, c1: u32, k0: u32, k1: u32) -> (u32, u32, u32, u32) {
    let mut x0 = c0;
    let mut x1 = c1;
    let mut x2 = 0u32;
    let mut x3 = 0u32;
    let mut key0 = k0;
    let mut key1 = k1;
    for round in 0..10u32 {
        if round > 0 {
            key0 += W0;
            key1 += W1;
        }
        let hi0 = u32::mul_hi(M0, x0);
        let lo0 = M0 * x0;
        let hi1 = u32::mul_hi(M1, x2);
        let lo1 = M1 * x2;
        let y0 = hi1 ^ x1 ^ key0;
        let y2 = hi0 ^ x3 ^ key1;
        x0 = y0;
        x1 = lo1;
        x2 = y2;
        x3 = lo0;
    }
    (x0, x1, x2, x3)
}

/// `scale` where the word's top 24 bits fall below `threshold`, else 0.
#[cube]
fn keep_value<F: Float>(word: u32, threshold: u32, scale: F) -> F {
    let mut v = F::new(0.0);
    if (word >> 8) < threshold {
        v = scale;
    }
    v
}

/// One unit per block of four elements: element `i` takes word `i mod 4` of block `i / 4`.
#[cube(launch)]
fn dropout_kernel<F: Float + CubeElement>(
    out: &mut Array<F>,
    n: u32,
    key0: u32,
    key1: u32,
    threshold: u32,
    scale: F,
) {
    let block = ABSOLUTE_POS as u32;
    let first = block * 4;
    if first < n {
        let (w0, w1, w2, w3) = philox(block, 0u32, key0, key1);
        out[first as usize] = keep_value::<F>(w0, threshold, scale);
        if first + 1 < n {
            out[(first + 1) as usize] = keep_value::<F>(w1, threshold, scale);
        }
        if first + 2 < n {
            out[(first + 2) as usize] = keep_value::<F>(w2, threshold, scale);
        }
        if first + 3 < n {
            out[(first + 3) as usize] = keep_value::<F>(w3, threshold, scale);
        }
    }
}

/// An inverted-dropout mask of `n` elements: `scale` where Philox under `seed` keeps (its
/// 24-bit draw is below `threshold`), 0 elsewhere.
pub fn dropout_mask<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    n: usize,
    seed: u64,
    threshold: u32,
    scale: f64,
) -> Handle {
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let (count, dim) = grid(n.div_ceil(4));
    // SAFETY: out holds n elements (one when n is 0); the kernel writes only below n.
    unsafe {
        dropout_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
            n as u32,
            seed as u32,
            (seed >> 32) as u32,
            threshold,
            scalar::<F>(scale),
        );
    }
    out
}
