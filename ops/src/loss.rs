//! Cross-entropy over class scores `[rows, classes]` with integer targets, one cube per row:
//! the row's log-sum-exp by two tree reductions, then `loss = lse − x[target]` and
//! `dx = softmax(x) − q`, `q` the (smoothed) one-hot target. A row whose target is the ignore
//! index contributes nothing. Reducing the per-row losses to their mean is a row reduction.

use crate::common::scalar;
use crate::reduce::{cube_reduce, row_grid, Max, Sum, ROW_BLOCK};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// Where the targets' i64 words hold something other than a class in range or the ignore
/// index, the row's loss is NaN (a device cannot raise an error mid-kernel; PyTorch's CUDA
/// kernels assert instead).
#[cube(launch)]
#[allow(clippy::too_many_arguments, clippy::eq_op)]
fn cross_entropy_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    target: &Array<u32>,
    loss: &mut Array<F>,
    counted: &mut Array<F>,
    dx: &mut Array<F>,
    rows: u32,
    classes: u32,
    ignore_lo: u32,
    ignore_hi: u32,
    has_ignore: u32,
    smoothing: F,
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
    cube_reduce::<F, Max>(&mut smem, m);
    let m = smem[0];
    sync_cube();
    let mut s = F::new(0.0);
    let mut xs = F::new(0.0);
    if row < rows {
        let mut j = UNIT_POS;
        while j < classes {
            let v = x[(base + j) as usize];
            s += F::exp(v - m);
            xs += v;
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, s);
    let s = smem[0];
    sync_cube();
    // Σ x_j, for the uniform part of a smoothed target.
    cube_reduce::<F, Sum>(&mut smem, xs);
    let xs = smem[0];
    if row < rows {
        let lo = target[(2 * row) as usize];
        let hi = target[(2 * row + 1) as usize];
        let skip = has_ignore == 1 && lo == ignore_lo && hi == ignore_hi;
        let valid = hi == 0 && lo < classes;
        let c = F::cast_from(classes);
        let uniform = smoothing / c;
        let lse = m + F::ln(s);
        if UNIT_POS == 0 {
            let mut l = F::new(0.0);
            let mut k = F::new(0.0);
            if !skip {
                k = F::new(1.0);
                if valid {
                    let xt = x[(base + lo) as usize];
                    l = lse - (F::new(1.0) - smoothing) * xt - uniform * xs;
                } else {
                    // 0/0 at run time: a NaN constant (`F::NAN`) makes the wgpu kernel
                    // fail to build, and a kernel that fails to build writes nothing.
                    let zero = s - s;
                    l = zero / zero;
                }
            }
            loss[row as usize] = l;
            counted[row as usize] = k;
        }
        let mut j = UNIT_POS;
        while j < classes {
            let i = (base + j) as usize;
            let mut grad = F::exp(x[i] - m) / s - uniform;
            if j == lo {
                grad -= F::new(1.0) - smoothing;
            }
            if skip {
                grad = F::new(0.0);
            }
            dx[i] = grad;
            j += CUBE_DIM;
        }
    }
}

/// What [`cross_entropy`] returns, each a device buffer of the logits' float type.
pub struct CrossEntropyOutputs {
    /// `[rows]`: each row's loss, 0 where ignored, NaN where the target is out of range.
    pub loss: Handle,
    /// `[rows]`: 1 where the row counts towards the mean, 0 where ignored.
    pub counted: Handle,
    /// `[rows, classes]`: `softmax(x) − q`, the gradient of each row's loss (0 where ignored).
    pub dx: Handle,
}

/// Cross-entropy of the contiguous logits `[rows, classes]` against i64 targets (a device
/// buffer of `rows` i64, read as pairs of u32 words). `ignore` is the ignore index;
/// `smoothing` mixes the one-hot target with the uniform distribution, as PyTorch's
/// `label_smoothing`. The mean and its gradient's scale stay on the device: they are
/// `Σ loss / Σ counted`, two row reductions.
pub fn cross_entropy<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    targets: &Handle,
    rows: usize,
    classes: usize,
    ignore: Option<i64>,
    smoothing: f64,
) -> CrossEntropyOutputs {
    let size = std::mem::size_of::<F>();
    let loss = client.empty(rows.max(1) * size);
    let counted = client.empty(rows.max(1) * size);
    let dx = client.empty((rows * classes).max(1) * size);
    let ig = ignore.unwrap_or(0) as u64;
    // SAFETY: x and dx hold rows·classes elements, loss and counted rows, targets 2·rows
    // words; the kernel guards the row and reads classes only in range.
    unsafe {
        cross_entropy_kernel::launch::<F, R>(
            client,
            row_grid(rows),
            CubeDim::new_1d(ROW_BLOCK),
            ArrayArg::from_raw_parts(x.clone(), (rows * classes).max(1)),
            ArrayArg::from_raw_parts(targets.clone(), 2 * rows.max(1)),
            ArrayArg::from_raw_parts(loss.clone(), rows.max(1)),
            ArrayArg::from_raw_parts(counted.clone(), rows.max(1)),
            ArrayArg::from_raw_parts(dx.clone(), (rows * classes).max(1)),
            rows as u32,
            classes as u32,
            ig as u32,
            (ig >> 32) as u32,
            ignore.is_some() as u32,
            scalar::<F>(smoothing),
            ROW_BLOCK as usize,
        );
    }
    CrossEntropyOutputs { loss, counted, dx }
}

/// Negative log-likelihood of log-probabilities: one unit per element of `dx`; the unit of
/// column 0 also writes its row's loss and count.
#[cube(launch)]
#[allow(clippy::too_many_arguments, clippy::eq_op)]
fn nll_kernel<F: Float>(
    x: &Array<F>,
    target: &Array<u32>,
    loss: &mut Array<F>,
    counted: &mut Array<F>,
    dx: &mut Array<F>,
    classes: u32,
    ignore_lo: u32,
    ignore_hi: u32,
    has_ignore: u32,
) {
    let e = ABSOLUTE_POS as u32;
    if e < dx.len() as u32 {
        let row = e / classes;
        let j = e % classes;
        let lo = target[(2 * row) as usize];
        let hi = target[(2 * row + 1) as usize];
        let skip = has_ignore == 1 && lo == ignore_lo && hi == ignore_hi;
        let valid = hi == 0 && lo < classes;
        let mut g = F::new(0.0);
        if !skip && valid && j == lo {
            g = F::new(-1.0);
        }
        dx[e as usize] = g;
        if j == 0 {
            let mut l = F::new(0.0);
            let mut k = F::new(0.0);
            if !skip {
                k = F::new(1.0);
                if valid {
                    l = -x[(row * classes + lo) as usize];
                } else {
                    // NaN made at run time; see cross_entropy_kernel.
                    let zero = k - k;
                    l = zero / zero;
                }
            }
            loss[row as usize] = l;
            counted[row as usize] = k;
        }
    }
}

/// Negative log-likelihood of the contiguous log-probabilities `[rows, classes]` at i64
/// targets, with the same outputs as [`cross_entropy`] (`dx` is −1 at each counted target).
pub fn nll<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    targets: &Handle,
    rows: usize,
    classes: usize,
    ignore: Option<i64>,
) -> CrossEntropyOutputs {
    let size = std::mem::size_of::<F>();
    let loss = client.empty(rows.max(1) * size);
    let counted = client.empty(rows.max(1) * size);
    let n = rows * classes;
    let dx = client.empty(n.max(1) * size);
    if n == 0 {
        return CrossEntropyOutputs { loss, counted, dx };
    }
    let ig = ignore.unwrap_or(0) as u64;
    let (count, dim) = crate::common::grid(n);
    // SAFETY: x and dx hold rows·classes elements, loss and counted rows, targets 2·rows
    // words; x is read only at a target in range.
    unsafe {
        nll_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), n),
            ArrayArg::from_raw_parts(targets.clone(), 2 * rows),
            ArrayArg::from_raw_parts(loss.clone(), rows),
            ArrayArg::from_raw_parts(counted.clone(), rows),
            ArrayArg::from_raw_parts(dx.clone(), n),
            classes as u32,
            ig as u32,
            (ig >> 32) as u32,
            ignore.is_some() as u32,
        );
    }
    CrossEntropyOutputs { loss, counted, dx }
}
