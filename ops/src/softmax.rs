//! Softmax and log-softmax over the last axis of `[rows, cols]`, forward and backward, one
//! cube per row. Stable: the row maximum is subtracted before `exp`. With a mask (1 = keep),
//! masked entries get weight 0 and a row with nothing kept is all zeros, as on the CPU.

use crate::reduce::{cube_reduce, row_grid, Max, Sum, ROW_BLOCK};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// A very negative stand-in for −∞ that every float type holds.
const LOWEST: f32 = -3.0e38;

#[cube(launch)]
fn softmax_kernel<F: Float>(
    x: &Array<F>,
    mask: &Array<u32>,
    y: &mut Array<F>,
    rows: u32,
    cols: u32,
    #[comptime] masked: bool,
    #[comptime] log: bool,
    #[comptime] block: usize,
) {
    let row = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let base = row * cols;
    let lowest = F::new(LOWEST);
    // 1. Row maximum over kept entries.
    let mut m = lowest;
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            let mut keep = true;
            if comptime![masked] {
                keep = mask[(base + j) as usize] != 0;
            }
            if keep {
                m = F::max(m, x[(base + j) as usize]);
            }
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, Max>(&mut smem, m);
    let m = smem[0];
    sync_cube();
    // 2. Σ exp(x − max).
    let mut s = F::new(0.0);
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            let mut keep = true;
            if comptime![masked] {
                keep = mask[(base + j) as usize] != 0;
            }
            if keep {
                s += F::exp(x[(base + j) as usize] - m);
            }
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, s);
    let s = smem[0];
    // 3. Write.
    if row < rows {
        let empty = m == lowest;
        let mut j = UNIT_POS;
        while j < cols {
            let i = (base + j) as usize;
            let mut keep = true;
            if comptime![masked] {
                keep = mask[i] != 0;
            }
            if comptime![log] {
                y[i] = if keep && !empty {
                    x[i] - m - F::ln(s)
                } else {
                    lowest
                };
            } else {
                y[i] = if keep && !empty {
                    F::exp(x[i] - m) / s
                } else {
                    F::new(0.0)
                };
            }
            j += CUBE_DIM;
        }
    }
}

/// Backward: softmax `dx = y (g − Σ g y)`; log-softmax `dx = g − exp(y) Σ g`.
#[cube(launch)]
fn softmax_backward_kernel<F: Float>(
    y: &Array<F>,
    g: &Array<F>,
    dx: &mut Array<F>,
    rows: u32,
    cols: u32,
    #[comptime] log: bool,
    #[comptime] block: usize,
) {
    let row = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let base = row * cols;
    let mut acc = F::new(0.0);
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            let i = (base + j) as usize;
            if comptime![log] {
                acc += g[i];
            } else {
                acc += g[i] * y[i];
            }
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, acc);
    let total = smem[0];
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            let i = (base + j) as usize;
            if comptime![log] {
                dx[i] = g[i] - F::exp(y[i]) * total;
            } else {
                dx[i] = y[i] * (g[i] - total);
            }
            j += CUBE_DIM;
        }
    }
}

/// Softmax (or log-softmax) of each row of contiguous `[rows, cols]`; `mask`, if given, is
/// a `u32` buffer of the same size (nonzero = keep).
pub fn softmax_rows<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    mask: Option<&Handle>,
    rows: usize,
    cols: usize,
    log: bool,
) -> Handle {
    let n = rows * cols;
    let y = client.empty(n.max(1) * std::mem::size_of::<F>());
    // Unmasked kernels never read it, but every argument needs a buffer.
    let mask_h = mask
        .cloned()
        .unwrap_or_else(|| client.create_from_slice(u32::as_bytes(&[1u32])));
    // SAFETY: x, y (and the mask, when given) hold rows·cols elements; the kernel guards.
    unsafe {
        softmax_kernel::launch::<F, R>(
            client,
            row_grid(rows),
            CubeDim::new_1d(ROW_BLOCK),
            ArrayArg::from_raw_parts(x.clone(), n.max(1)),
            ArrayArg::from_raw_parts(mask_h, if mask.is_some() { n.max(1) } else { 1 }),
            ArrayArg::from_raw_parts(y.clone(), n.max(1)),
            rows as u32,
            cols as u32,
            mask.is_some(),
            log,
            ROW_BLOCK as usize,
        );
    }
    y
}

/// The backward of [`softmax_rows`] from its output `y` and the output gradient `g`.
pub fn softmax_rows_backward<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    y: &Handle,
    g: &Handle,
    rows: usize,
    cols: usize,
    log: bool,
) -> Handle {
    let n = rows * cols;
    let dx = client.empty(n.max(1) * std::mem::size_of::<F>());
    // SAFETY: all three buffers hold rows·cols elements; the kernel guards.
    unsafe {
        softmax_backward_kernel::launch::<F, R>(
            client,
            row_grid(rows),
            CubeDim::new_1d(ROW_BLOCK),
            ArrayArg::from_raw_parts(y.clone(), n.max(1)),
            ArrayArg::from_raw_parts(g.clone(), n.max(1)),
            ArrayArg::from_raw_parts(dx.clone(), n.max(1)),
            rows as u32,
            cols as u32,
            log,
            ROW_BLOCK as usize,
        );
    }
    dx
}
