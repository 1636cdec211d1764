//! Launch helpers shared by the kernel files.

use cubecl::prelude::*;
use cubecl::server::Handle;

/// Units per cube for one-element-per-unit kernels.
pub const BLOCK: u32 = 256;

/// Enough cubes of [`BLOCK`] units for `n` elements; past 65 535 cubes in x they spread over
/// y (the kernels index by `ABSOLUTE_POS`, which covers both).
pub fn grid(n: usize) -> (CubeCount, CubeDim) {
    let cubes = n.div_ceil(BLOCK as usize).max(1) as u32;
    let (x, y) = if cubes <= 65_535 {
        (cubes, 1)
    } else {
        (65_535, cubes.div_ceil(65_535))
    };
    (CubeCount::Static(x, y, 1), CubeDim::new_1d(BLOCK))
}

/// A small device buffer of `u32`s (shapes, strides).
pub fn u32s<R: Runtime>(client: &ComputeClient<R>, v: &[usize]) -> Handle {
    let v: Vec<u32> = v.iter().map(|&x| x as u32).collect();
    client.create_from_slice(u32::as_bytes(&v))
}

/// A host scalar as the kernel's float type, exactly for f64 kernels (`F::new` goes through
/// f32).
pub fn scalar<F: Float>(x: f64) -> F {
    <F as num_traits::NumCast>::from(x).expect("a float converts to any float type")
}
