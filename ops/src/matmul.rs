//! Batched matrix product with shared-memory tiles: the kernel the book teaches. Each cube
//! computes one 16×16 tile of `C = A B` for one batch; the `k` dimension is walked in
//! 16-wide steps, each loading a tile of `A` and of `B` into shared memory once and using
//! each loaded value 16 times. Operands are read through strides, so transposed and
//! broadcast (batch stride 0) views need no copy.

use cubecl::prelude::*;
use cubecl::server::Handle;

const TILE: u32 = 16;

/// Strides (in elements) of one operand: between rows, columns and batches, plus an offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    pub row: usize,
    pub col: usize,
    pub batch: usize,
    pub offset: usize,
}

// ANCHOR: matmul_kernel
#[cube(launch)]
// `div_ceil` is not among the functions a `#[cube]` body can call.
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
fn matmul_kernel<F: Float>(
    a: &Array<F>,
    b: &Array<F>,
    c: &mut Array<F>,
    m: u32,
    k: u32,
    n: u32,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
) {
    let mut sa = SharedMemory::<F>::new(256usize);
    let mut sb = SharedMemory::<F>::new(256usize);
    let (tx, ty) = (UNIT_POS_X, UNIT_POS_Y);
    let row = CUBE_POS_Y * TILE + ty;
    let col = CUBE_POS_X * TILE + tx;
    let batch = CUBE_POS_Z;
    // [row, col, batch, offset] for each operand.
    let a_base = a_strides[3] + batch * a_strides[2];
    let b_base = b_strides[3] + batch * b_strides[2];
    let mut acc = F::new(0.0);
    let steps = (k + TILE - 1) / TILE;
    for t in 0..steps {
        let s = (ty * TILE + tx) as usize;
        let ka = t * TILE + tx;
        let kb = t * TILE + ty;
        sa[s] = F::new(0.0);
        sb[s] = F::new(0.0);
        if row < m && ka < k {
            sa[s] = a[(a_base + row * a_strides[0] + ka * a_strides[1]) as usize];
        }
        if col < n && kb < k {
            sb[s] = b[(b_base + kb * b_strides[0] + col * b_strides[1]) as usize];
        }
        sync_cube();
        for i in 0..TILE {
            acc += sa[(ty * TILE + i) as usize] * sb[(i * TILE + tx) as usize];
        }
        sync_cube();
    }
    if row < m && col < n {
        c[(batch * m * n + row * n + col) as usize] = acc;
    }
}
// ANCHOR_END: matmul_kernel

/// `C[b] = A[b] @ B[b]` for `batch` products of `[m, k] @ [k, n]`; `a_len`, `b_len` are the
/// element counts of the operands' buffers. Returns contiguous `[batch, m, n]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    a: &Handle,
    a_len: usize,
    sa: Strides,
    b: &Handle,
    b_len: usize,
    sb: Strides,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
) -> Handle {
    let out = client.empty((batch * m * n).max(1) * std::mem::size_of::<F>());
    let pack = |s: Strides| {
        let v = [s.row as u32, s.col as u32, s.batch as u32, s.offset as u32];
        client.create_from_slice(u32::as_bytes(&v))
    };
    let count = CubeCount::Static(
        (n as u32).div_ceil(TILE).max(1),
        (m as u32).div_ceil(TILE).max(1),
        batch.max(1) as u32,
    );
    // SAFETY: the operands' lengths are passed with them, and the caller's strides keep every
    // read inside them; the output holds batch·m·n elements.
    unsafe {
        matmul_kernel::launch::<F, R>(
            client,
            count,
            CubeDim::new_2d(TILE, TILE),
            ArrayArg::from_raw_parts(a.clone(), a_len.max(1)),
            ArrayArg::from_raw_parts(b.clone(), b_len.max(1)),
            ArrayArg::from_raw_parts(out.clone(), (batch * m * n).max(1)),
            m as u32,
            k as u32,
            n as u32,
            ArrayArg::from_raw_parts(pack(sa), 4),
            ArrayArg::from_raw_parts(pack(sb), 4),
        );
    }
    out
}
