//! Batch normalisation over `[N, C, L]` (L = H·W for images): per channel, statistics over
//! the N·L values (the op is `ops::batch_norm`). Channels' statistics run in parallel; the
//! element-wise passes run over (sample, channel) planes in parallel.

use super::float::Float;
use rayon::prelude::*;

/// Per-channel `(mean, biased variance)` of `x` `[n, c, l]`.
pub fn channel_stats<T: Float>(x: &[T], n: usize, c: usize, l: usize) -> (Vec<T>, Vec<T>) {
    let m = T::from_f64((n * l) as f64);
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let planes = (0..n).map(|s| &x[(s * c + ch) * l..(s * c + ch + 1) * l]);
            let mean = planes
                .clone()
                .map(|p| p.iter().copied().sum::<T>())
                .sum::<T>()
                / m;
            let var = planes
                .map(|p| p.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>())
                .sum::<T>()
                / m;
            (mean, var)
        })
        .unzip()
}

/// `y = γ (x − mean) · rstd + β` with per-channel `mean`, `rstd` (γ, β optional).
pub fn normalize<T: Float>(
    x: &[T],
    c: usize,
    l: usize,
    mean: &[T],
    rstd: &[T],
    gamma: Option<&[T]>,
    beta: Option<&[T]>,
) -> Vec<T> {
    let mut y = super::buffer_cache::filled(x.len(), T::zero());
    y.par_chunks_mut(l.max(1))
        .zip(x.par_chunks(l.max(1)))
        .enumerate()
        .for_each(|(p, (yp, xp))| {
            let ch = p % c;
            let scale = rstd[ch] * gamma.map_or(T::one(), |g| g[ch]);
            let shift = beta.map_or(T::zero(), |b| b[ch]) - mean[ch] * scale;
            yp.iter_mut()
                .zip(xp)
                .for_each(|(o, &v)| *o = v * scale + shift);
        });
    y
}

/// Gradients `(dx, dγ, dβ)`. With `batch_stats` the mean and variance depended on `x`
/// (training): `dx = γ·rstd·(g − mean(g) − x̂·mean(g·x̂))` per channel; otherwise they were
/// constants (evaluation): `dx = γ·rstd·g`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    x: &[T],
    g: &[T],
    n: usize,
    c: usize,
    l: usize,
    mean: &[T],
    rstd: &[T],
    gamma: Option<&[T]>,
    batch_stats: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let m = T::from_f64((n * l) as f64);
    // Per channel: Σ g and Σ g·x̂, which give dβ and dγ too.
    let (sum_g, sum_gx): (Vec<T>, Vec<T>) = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (mut sg, mut sgx) = (T::zero(), T::zero());
            for s in 0..n {
                let range = (s * c + ch) * l..(s * c + ch + 1) * l;
                for (&gv, &xv) in g[range.clone()].iter().zip(&x[range]) {
                    sg += gv;
                    sgx += gv * (xv - mean[ch]) * rstd[ch];
                }
            }
            (sg, sgx)
        })
        .unzip();
    let mut dx = super::buffer_cache::filled(x.len(), T::zero());
    dx.par_chunks_mut(l.max(1)).enumerate().for_each(|(p, dp)| {
        let ch = p % c;
        let k = rstd[ch] * gamma.map_or(T::one(), |gm| gm[ch]);
        let (xp, gp) = (&x[p * l..(p + 1) * l], &g[p * l..(p + 1) * l]);
        if batch_stats {
            let (a, b) = (sum_g[ch] / m, sum_gx[ch] / m);
            for ((d, &gv), &xv) in dp.iter_mut().zip(gp).zip(xp) {
                let xh = (xv - mean[ch]) * rstd[ch];
                *d = k * (gv - a - xh * b);
            }
        } else {
            dp.iter_mut().zip(gp).for_each(|(d, &gv)| *d = k * gv);
        }
    });
    (dx, sum_gx, sum_g)
}
