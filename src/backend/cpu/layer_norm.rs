//! Layer normalisation over the last `row` elements, forward and backward, on the CPU (the op
//! is `ops::layer_norm`). Rows run in parallel; each is a few passes over `row` numbers.

use super::float::Float;
use rayon::prelude::*;

/// Rows per parallel task: enough work to pay for the split.
const ROWS_PER_TASK: usize = 16;

/// Returns `(y, mean, rstd)`: `y = (x − mean) · rstd · γ + β` per row, with the biased
/// variance (as PyTorch) and `rstd = 1 / sqrt(var + eps)`. `gamma`/`beta` are optional.
pub fn forward<T: Float>(
    x: &[T],
    row: usize,
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = x.len() / row;
    let mut y = super::buffer_cache::filled(x.len(), T::zero());
    let mut mean = vec![T::zero(); rows];
    let mut rstd = vec![T::zero(); rows];
    let n = T::from_f64(row as f64);
    y.par_chunks_mut(row)
        .zip(mean.par_iter_mut().zip(rstd.par_iter_mut()))
        .zip(x.par_chunks(row))
        .with_min_len(ROWS_PER_TASK)
        .for_each(|((yr, (m, r)), xr)| {
            // Two passes (mean, then squared deviations): stable even when |mean| ≫ std.
            let mu = xr.iter().copied().sum::<T>() / n;
            let var = xr.iter().map(|&v| (v - mu) * (v - mu)).sum::<T>() / n;
            let rs = T::one() / (var + T::from_f64(eps)).sqrt();
            for (k, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
                let h = (v - mu) * rs;
                let h = gamma.map_or(h, |g| h * g[k]);
                *o = beta.map_or(h, |b| h + b[k]);
            }
            *m = mu;
            *r = rs;
        });
    (y, mean, rstd)
}

/// Gradients `(dx, dγ, dβ)` given the output gradient `g` and the forward's `mean`, `rstd`.
/// With `x̂ = (x − mean) · rstd` and `ĝ = g · γ`:
/// `dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂))`, `dγ = Σ_rows g · x̂`, `dβ = Σ_rows g`.
pub fn backward<T: Float>(
    x: &[T],
    g: &[T],
    row: usize,
    gamma: Option<&[T]>,
    mean: &[T],
    rstd: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut dx = super::buffer_cache::filled(x.len(), T::zero());
    let n = T::from_f64(row as f64);
    let chunk = ROWS_PER_TASK * row;
    let partials: Vec<(Vec<T>, Vec<T>)> = dx
        .par_chunks_mut(chunk)
        .enumerate()
        .map(|(c, dxc)| {
            let (mut dgamma, mut dbeta) = (vec![T::zero(); row], vec![T::zero(); row]);
            for (i, dxr) in dxc.chunks_mut(row).enumerate() {
                let r = c * ROWS_PER_TASK + i;
                let (xr, gr) = (&x[r * row..(r + 1) * row], &g[r * row..(r + 1) * row]);
                let (mu, rs) = (mean[r], rstd[r]);
                let (mut sum_gh, mut sum_ghx) = (T::zero(), T::zero());
                for k in 0..row {
                    let xh = (xr[k] - mu) * rs;
                    let gh = gamma.map_or(gr[k], |gm| gr[k] * gm[k]);
                    sum_gh += gh;
                    sum_ghx += gh * xh;
                    dgamma[k] += gr[k] * xh;
                    dbeta[k] += gr[k];
                }
                let (a, b) = (sum_gh / n, sum_ghx / n);
                for k in 0..row {
                    let xh = (xr[k] - mu) * rs;
                    let gh = gamma.map_or(gr[k], |gm| gr[k] * gm[k]);
                    dxr[k] = rs * (gh - a - xh * b);
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![T::zero(); row], vec![T::zero(); row]);
    for (pg, pb) in partials {
        for k in 0..row {
            dgamma[k] += pg[k];
            dbeta[k] += pb[k];
        }
    }
    (dx, dgamma, dbeta)
}
