//! Layer normalisation over the last `row` elements, forward and backward, on the CPU (the op
//! is `ops::layer_norm`). Blocks of rows run in parallel; within a row every pass is a
//! vectorised loop (`lanes.rs`), compiled for the widest vectors the CPU has.

use super::float::Float;
use super::lanes::{dot, sum_map};
use super::loops::write_all;
use super::simd::widest;
use rayon::prelude::*;

/// Rows per parallel task: enough work to pay for the split.
const ROWS_PER_TASK: usize = 16;

/// `γ` and `β` as slices: ones and zeros when the layer has none, so that the row loops have
/// no branch inside.
fn affine<T: Float>(row: usize, gamma: Option<&[T]>, beta: Option<&[T]>) -> (Vec<T>, Vec<T>) {
    (
        gamma.map_or_else(|| vec![T::one(); row], <[T]>::to_vec),
        beta.map_or_else(|| vec![T::zero(); row], <[T]>::to_vec),
    )
}

/// Returns `(y, mean, rstd)`: `y = (x − mean) · rstd · γ + β` per row, with the biased
/// variance (as PyTorch) and `rstd = 1 / sqrt(var + eps)`. `gamma`/`beta` are optional.
pub fn forward<T: Float>(
    x: &[T],
    row: usize,
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = x.len() / row.max(1);
    let (g, b) = affine(row, gamma, beta);
    // Every element of y is written below: no zero-fill first.
    let mut y: Vec<T> = super::buffer_cache::take(x.len());
    let mut mean = vec![T::zero(); rows];
    let mut rstd = vec![T::zero(); rows];
    let n = T::from_f64(row as f64);
    let eps = T::from_f64(eps);
    let block = ROWS_PER_TASK * row.max(1);
    y.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(block)
        .zip(mean.par_chunks_mut(ROWS_PER_TASK))
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .zip(x.par_chunks(block))
        .for_each(|(((yb, mb), rb), xb)| {
            widest!({
                for (((yr, m), r), xr) in yb
                    .chunks_mut(row)
                    .zip(mb.iter_mut())
                    .zip(rb.iter_mut())
                    .zip(xb.chunks(row))
                {
                    // Two passes (mean, then squared deviations): stable even when
                    // |mean| ≫ std.
                    let mu = sum_map(xr, |v| v) / n;
                    let var = sum_map(xr, |v| (v - mu) * (v - mu)) / n;
                    let rs = T::one() / (var + eps).sqrt();
                    write_all(
                        yr,
                        xr.iter()
                            .zip(&g)
                            .zip(&b)
                            .map(|((&v, &gk), &bk)| ((v - mu) * rs).mul_add(gk, bk)),
                    );
                    *m = mu;
                    *r = rs;
                }
            })
        });
    // SAFETY: the chunks above cover the first x.len() slots and write_all wrote every one.
    unsafe { y.set_len(x.len()) };
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
    let (gm, _) = affine::<T>(row, gamma, None);
    let mut dx: Vec<T> = super::buffer_cache::take(x.len());
    let n = T::from_f64(row as f64);
    let block = ROWS_PER_TASK * row.max(1);
    let partials: Vec<(Vec<T>, Vec<T>)> = dx.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(g.par_chunks(block)))
        .zip(
            mean.par_chunks(ROWS_PER_TASK)
                .zip(rstd.par_chunks(ROWS_PER_TASK)),
        )
        .map(|((dxb, (xb, gb)), (mb, rb))| {
            let (mut dgamma, mut dbeta) = (vec![T::zero(); row], vec![T::zero(); row]);
            // Scratch rows: x̂ and ĝ = g · γ.
            let (mut xh, mut gh) = (vec![T::zero(); row], vec![T::zero(); row]);
            widest!({
                for ((((dxr, xr), gr), &mu), &rs) in dxb
                    .chunks_mut(row)
                    .zip(xb.chunks(row))
                    .zip(gb.chunks(row))
                    .zip(mb)
                    .zip(rb)
                {
                    for (((h, e), &v), (&gk, &w)) in xh
                        .iter_mut()
                        .zip(gh.iter_mut())
                        .zip(xr)
                        .zip(gr.iter().zip(&gm))
                    {
                        *h = (v - mu) * rs;
                        *e = gk * w;
                    }
                    let a = sum_map(&gh, |v| v) / n;
                    let b = dot(&gh, &xh) / n;
                    for (((dg, db), &gk), &h) in
                        dgamma.iter_mut().zip(dbeta.iter_mut()).zip(gr).zip(&xh)
                    {
                        *dg = gk.mul_add(h, *dg);
                        *db += gk;
                    }
                    write_all(dxr, gh.iter().zip(&xh).map(|(&e, &h)| rs * (e - a - h * b)));
                }
            });
            (dgamma, dbeta)
        })
        .collect();
    // SAFETY: the chunks above cover the first x.len() slots and write_all wrote every one.
    unsafe { dx.set_len(x.len()) };
    let (mut dgamma, mut dbeta) = (vec![T::zero(); row], vec![T::zero(); row]);
    for (pg, pb) in partials {
        for k in 0..row {
            dgamma[k] += pg[k];
            dbeta[k] += pb[k];
        }
    }
    (dx, dgamma, dbeta)
}
