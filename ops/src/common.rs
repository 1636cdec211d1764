//! Launch helpers shared by the kernel files.

use cubecl::prelude::*;
use cubecl::server::Handle;

/// Units per cube for one-element-per-unit kernels.
pub const BLOCK: u32 = 256;

/// Units per row of the row kernels (reductions, softmax, norms, losses). A power of two, at
/// most the 1024 units a cube may have everywhere.
pub const ROW_BLOCK: u32 = 128;

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

/// Checks that a device can run every kernel here, or says which limit it misses. The kernels
/// do not depend on the plane (warp) size: reductions are shared-memory trees synchronised
/// over the whole cube, so lavapipe's 8-wide planes and CUDA's 32-wide ones give the same
/// results. What they need is at most [`BLOCK`] units per cube, a 16×16 cube for the tiled
/// matmul, and two 16×16 tiles of f64 (4 KiB) of shared memory; every Vulkan, Metal and
/// CUDA device has at least 256 units and 16 KiB.
pub fn check_device(props: &cubecl::ir::DeviceProperties) -> Result<(), String> {
    let hw = &props.hardware;
    let units = BLOCK.max(ROW_BLOCK);
    let shared = 2 * 16 * 16 * std::mem::size_of::<f64>();
    if hw.max_units_per_cube < units || hw.max_cube_dim.0 < units {
        return Err(format!(
            "the kernels need {units} units per cube; the device allows {} ({} along x)",
            hw.max_units_per_cube, hw.max_cube_dim.0
        ));
    }
    if hw.max_shared_memory_size < shared {
        return Err(format!(
            "the kernels need {shared} bytes of shared memory per cube; the device has {}",
            hw.max_shared_memory_size
        ));
    }
    Ok(())
}

/// Where element `i` of `shape` sits in two strided buffers: `i` unravelled over `shape` and
/// dotted with each one's strides (0 along a broadcast dim), plus its offset. The binary
/// kernels read their two operands there; the copy kernel reads one and writes the other.
#[cube]
pub fn pair_offsets(
    i: u32,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
) -> (u32, u32) {
    let mut rem = i;
    let mut ia = a_offset;
    let mut ib = b_offset;
    let mut d = rank;
    while d > 0 {
        d -= 1;
        let n = shape[d as usize];
        let idx = rem % n;
        rem /= n;
        ia += idx * a_strides[d as usize];
        ib += idx * b_strides[d as usize];
    }
    (ia, ib)
}
