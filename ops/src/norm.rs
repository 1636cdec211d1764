//! Layer normalisation over the last axis of a contiguous `[rows, cols]` buffer, one cube per
//! row with shared-memory trees (as in `reduce`):
//!
//! - forward: `mean`, then `rstd = 1/sqrt(mean((x − mean)²) + eps)` (two passes, which loses
//!   less than `E[x²] − mean²`), and `y = x̂·γ + β` with `x̂ = (x − mean)·rstd`;
//! - backward: with `h = g·γ`, `dx = rstd·(h − mean(h) − x̂·mean(h·x̂))`. The parameters'
//!   gradients are column sums (`dγ = Σ_rows g·x̂`, `dβ = Σ_rows g`): the kernel writes `g·x̂`
//!   and the caller sums it with the reduction kernels.
//!
//! γ and β are optional (`has_gamma`, `has_beta`); a missing one is passed as any buffer and
//! never read.

use crate::reduce::{cube_reduce, row_grid, Sum, ROW_BLOCK};
use cubecl::prelude::*;
use cubecl::server::Handle;

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    gamma: &Array<F>,
    beta: &Array<F>,
    y: &mut Array<F>,
    mean: &mut Array<F>,
    rstd: &mut Array<F>,
    rows: u32,
    cols: u32,
    eps: F,
    has_gamma: u32,
    has_beta: u32,
    #[comptime] block: usize,
) {
    let row = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let base = row * cols;
    let n = F::cast_from(cols);
    let mut s = F::new(0.0);
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            s += x[(base + j) as usize];
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, s);
    let mu = smem[0] / n;
    sync_cube();
    let mut q = F::new(0.0);
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            let d = x[(base + j) as usize] - mu;
            q += d * d;
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, q);
    let r = F::new(1.0) / F::sqrt(smem[0] / n + eps);
    if row < rows {
        if UNIT_POS == 0 {
            mean[row as usize] = mu;
            rstd[row as usize] = r;
        }
        let mut j = UNIT_POS;
        while j < cols {
            let mut v = (x[(base + j) as usize] - mu) * r;
            if has_gamma == 1 {
                v *= gamma[j as usize];
            }
            if has_beta == 1 {
                v += beta[j as usize];
            }
            y[(base + j) as usize] = v;
            j += CUBE_DIM;
        }
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn layer_norm_backward_kernel<F: Float>(
    x: &Array<F>,
    g: &Array<F>,
    gamma: &Array<F>,
    mean: &Array<F>,
    rstd: &Array<F>,
    dx: &mut Array<F>,
    gxhat: &mut Array<F>,
    rows: u32,
    cols: u32,
    has_gamma: u32,
    #[comptime] block: usize,
) {
    let row = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let base = row * cols;
    let n = F::cast_from(cols);
    let mut mu = F::new(0.0);
    let mut r = F::new(0.0);
    if row < rows {
        mu = mean[row as usize];
        r = rstd[row as usize];
    }
    let mut sh = F::new(0.0);
    let mut shx = F::new(0.0);
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            let i = (base + j) as usize;
            let mut h = g[i];
            if has_gamma == 1 {
                h *= gamma[j as usize];
            }
            let xh = (x[i] - mu) * r;
            sh += h;
            shx += h * xh;
            gxhat[i] = g[i] * xh;
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, sh);
    let a = smem[0] / n;
    sync_cube();
    cube_reduce::<F, Sum>(&mut smem, shx);
    let b = smem[0] / n;
    if row < rows {
        let mut j = UNIT_POS;
        while j < cols {
            let i = (base + j) as usize;
            let mut h = g[i];
            if has_gamma == 1 {
                h *= gamma[j as usize];
            }
            let xh = (x[i] - mu) * r;
            dx[i] = r * (h - a - xh * b);
            j += CUBE_DIM;
        }
    }
}

/// What [`layer_norm`] returns: `y` `[rows, cols]`, and `mean`, `rstd` `[rows]`.
pub struct LayerNormOutputs {
    pub y: Handle,
    pub mean: Handle,
    pub rstd: Handle,
}

/// Normalises each row of the contiguous `x` `[rows, cols]` (cols ≥ 1); `gamma`, `beta` are
/// `[cols]` when given.
pub fn layer_norm<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    gamma: Option<&Handle>,
    beta: Option<&Handle>,
    rows: usize,
    cols: usize,
    eps: f64,
) -> LayerNormOutputs {
    assert!(cols > 0, "layer_norm: empty rows");
    let size = std::mem::size_of::<F>();
    let y = client.empty((rows * cols).max(1) * size);
    let mean = client.empty(rows.max(1) * size);
    let rstd = client.empty(rows.max(1) * size);
    // A missing parameter is bound to x and never read.
    let param = |p: Option<&Handle>| match p {
        Some(h) => (h.clone(), cols),
        None => (x.clone(), 1),
    };
    let ((hg, lg), (hb, lb)) = (param(gamma), param(beta));
    // SAFETY: x and y hold rows·cols elements, mean and rstd rows, γ and β cols (or are not
    // read); the kernel guards the row and reads columns below cols.
    unsafe {
        layer_norm_kernel::launch::<F, R>(
            client,
            row_grid(rows),
            CubeDim::new_1d(ROW_BLOCK),
            ArrayArg::from_raw_parts(x.clone(), (rows * cols).max(1)),
            ArrayArg::from_raw_parts(hg, lg),
            ArrayArg::from_raw_parts(hb, lb),
            ArrayArg::from_raw_parts(y.clone(), (rows * cols).max(1)),
            ArrayArg::from_raw_parts(mean.clone(), rows.max(1)),
            ArrayArg::from_raw_parts(rstd.clone(), rows.max(1)),
            rows as u32,
            cols as u32,
            crate::common::scalar::<F>(eps),
            gamma.is_some() as u32,
            beta.is_some() as u32,
            ROW_BLOCK as usize,
        );
    }
    LayerNormOutputs { y, mean, rstd }
}

/// The backward of [`layer_norm`]: returns `dx` and `g·x̂`, both `[rows, cols]`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    g: &Handle,
    gamma: Option<&Handle>,
    mean: &Handle,
    rstd: &Handle,
    rows: usize,
    cols: usize,
) -> (Handle, Handle) {
    assert!(cols > 0, "layer_norm: empty rows");
    let size = std::mem::size_of::<F>();
    let n = (rows * cols).max(1);
    let dx = client.empty(n * size);
    let gxhat = client.empty(n * size);
    let (hg, lg) = match gamma {
        Some(h) => (h.clone(), cols),
        None => (x.clone(), 1),
    };
    // SAFETY: as for the forward; dx and gxhat hold rows·cols elements.
    unsafe {
        layer_norm_backward_kernel::launch::<F, R>(
            client,
            row_grid(rows),
            CubeDim::new_1d(ROW_BLOCK),
            ArrayArg::from_raw_parts(x.clone(), n),
            ArrayArg::from_raw_parts(g.clone(), n),
            ArrayArg::from_raw_parts(hg, lg),
            ArrayArg::from_raw_parts(mean.clone(), rows.max(1)),
            ArrayArg::from_raw_parts(rstd.clone(), rows.max(1)),
            ArrayArg::from_raw_parts(dx.clone(), n),
            ArrayArg::from_raw_parts(gxhat.clone(), n),
            rows as u32,
            cols as u32,
            gamma.is_some() as u32,
            ROW_BLOCK as usize,
        );
    }
    (dx, gxhat)
}
