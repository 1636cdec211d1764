//! Cross-entropy over class scores `[rows, classes]` with integer targets, one cube per row:
//! the row's log-sum-exp by two tree reductions, then `loss = lse − x[target]` and
//! `dx = (softmax(x) − onehot(target)) · scale`. A target of `IGNORE` contributes nothing.
//! Reducing the per-row losses to their mean is a row reduction (`reduce`).

use crate::reduce::{cube_reduce, row_grid, ROW_BLOCK};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// The target value that marks a row to skip (PyTorch's `ignore_index`).
pub const IGNORE: u32 = u32::MAX;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn cross_entropy_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    target: &Array<u32>,
    loss: &mut Array<F>,
    dx: &mut Array<F>,
    rows: u32,
    classes: u32,
    scale: F,
    #[comptime] block: usize,
) {
    let row = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let base = row * classes;
    let mut m = F::new(-3.0e38);
    if row < rows {
        let mut j = UNIT_POS;
        while j < classes {
            m = F::max(m, x[(base + j) as usize]);
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F>(&mut smem, m, 1u32);
    let m = smem[0];
    sync_cube();
    let mut s = F::new(0.0);
    if row < rows {
        let mut j = UNIT_POS;
        while j < classes {
            s += F::exp(x[(base + j) as usize] - m);
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F>(&mut smem, s, 0u32);
    let s = smem[0];
    if row < rows {
        let t = target[row as usize];
        let skip = t == IGNORE;
        if UNIT_POS == 0 {
            if skip {
                loss[row as usize] = F::new(0.0);
            } else {
                loss[row as usize] = m + F::ln(s) - x[(base + t) as usize];
            }
        }
        let mut j = UNIT_POS;
        while j < classes {
            let i = (base + j) as usize;
            let mut grad = F::exp(x[i] - m) / s;
            if j == t {
                grad -= F::new(1.0);
            }
            if skip {
                grad = F::new(0.0);
            }
            dx[i] = grad * scale;
            j += CUBE_DIM;
        }
    }
}

/// Per-row losses `[rows]` and the gradient of `scale · Σ losses` with respect to `x`
/// (`scale = 1 / counted rows` gives the mean's gradient). `targets` are class indices or
/// [`IGNORE`].
pub fn cross_entropy<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    targets: &[u32],
    classes: usize,
    scale: f32,
) -> (Handle, Handle) {
    let rows = targets.len();
    assert!(
        targets
            .iter()
            .all(|&t| t == IGNORE || (t as usize) < classes),
        "cross_entropy: target out of range"
    );
    let loss = client.empty(rows.max(1) * std::mem::size_of::<F>());
    let dx = client.empty((rows * classes).max(1) * std::mem::size_of::<F>());
    let t = client.create_from_slice(u32::as_bytes(targets));
    // SAFETY: x and dx hold rows·classes elements, loss and targets rows; targets are checked.
    unsafe {
        cross_entropy_kernel::launch::<F, R>(
            client,
            row_grid(rows),
            CubeDim::new_1d(ROW_BLOCK),
            ArrayArg::from_raw_parts(x.clone(), (rows * classes).max(1)),
            ArrayArg::from_raw_parts(t, rows.max(1)),
            ArrayArg::from_raw_parts(loss.clone(), rows.max(1)),
            ArrayArg::from_raw_parts(dx.clone(), (rows * classes).max(1)),
            rows as u32,
            classes as u32,
            F::new(scale),
            ROW_BLOCK as usize,
        );
    }
    (loss, dx)
}
