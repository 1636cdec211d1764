//! ContextPool over a sequence (stride 1, causal or two-sided) as banded products: the fast
//! path of `context_pool.rs`, which keeps the general window loop for grids and strides.
//!
//! With the window of output `o` written as `K` taps `k` (input `j = o − before + k`), the
//! weights form an n×n band matrix `U` (`u_ok = w_j · g_ok`, zero outside the sequence), and
//! the layer is three band-times-dense products, each computed from a table of the weights
//! built once per token and reused for every feature:
//!
//! ```text
//! forward     y_o  = Σ_k u_ok x_j / D_o               rows of X gathered along the band
//! backward    dx_j = Σ_o (u_ok / D_o) g_o              the band transposed, rows of G
//!             a_ok = g_o · x_j                         one dot product per tap
//! ```
//!
//! The products run on blocks of `R` consecutive rows and `C` features with the partial sums
//! in registers: each input row loaded from cache feeds `R` fused multiply-adds, instead of
//! one multiply-add and a store of the output row per tap. Blocks that reach past either end
//! of the sequence take the plain loop.

use super::float::Float;
use super::lanes::{axpy, dot, dot4};
use super::simd::widest_fn;
use crate::backend::context_pool::Params;

/// Output rows per register block, and features per chunk: 4 × 64 f32 partial sums are 16
/// AVX-512 registers.
const R: usize = 4;
const C: usize = 64;

/// Beyond this exponent a Gaussian weight is below e^−80 of the centre's: it is treated as 0,
/// as the general loop skips it.
const CUTOFF: f64 = 80.0;

/// The band's shape: taps before and after the centre, and the sequence length.
#[derive(Clone, Copy)]
pub struct Band {
    pub n: usize,
    pub before: usize,
    pub after: usize,
}

impl Band {
    pub fn new(n: usize, radius: usize, causal: bool) -> Self {
        Band {
            n,
            before: radius,
            after: if causal { 0 } else { radius },
        }
    }
    /// Taps per window.
    fn taps(&self) -> usize {
        self.before + self.after + 1
    }
    /// The squared distance of each tap from the centre, shared by every output.
    fn squared_distances<T: Float>(&self) -> Vec<T> {
        (0..self.taps())
            .map(|k| T::from_f64((k as f64 - self.before as f64).powi(2)))
            .collect()
    }
    /// Input of tap `k` of output `o`, if it is inside the sequence.
    #[inline(always)]
    fn input(&self, o: usize, k: usize) -> Option<usize> {
        let j = (o + k).checked_sub(self.before)?;
        (j < self.n).then_some(j)
    }
}

widest_fn!(pub fn tables<T: Float>(
    band: Band,
    w: &[T],
    s: &[T],
    gauss: &mut Vec<T>,
    u: &mut Vec<T>,
) => tables_body);

/// Each output's Gaussians `g_ok` (`[n, K]`, zero outside the sequence and beyond the
/// cutoff) into `gauss`, and the weights `u_ok = w_j g_ok` into `u`.
#[inline(always)]
fn tables_body<T: Float>(band: Band, w: &[T], s: &[T], gauss: &mut Vec<T>, u: &mut Vec<T>) {
    let k_all = band.taps();
    gauss.clear();
    gauss.resize(band.n * k_all, T::zero());
    u.clear();
    u.resize(band.n * k_all, T::zero());
    let cutoff = T::from_f64(CUTOFF);
    let d2 = band.squared_distances::<T>();
    for o in 0..band.n {
        // Taps [lo, hi) are inside the sequence.
        let lo = band.before.saturating_sub(o);
        let hi = k_all.min(band.n + band.before - o);
        let k2s = T::one() / (T::from_f64(2.0) * s[o] * s[o]);
        let (go, uo) = (
            &mut gauss[o * k_all + lo..o * k_all + hi],
            &mut u[o * k_all + lo..o * k_all + hi],
        );
        let wj = &w[o + lo - band.before..o + hi - band.before];
        for (((g, uk), &dk), &wk) in go.iter_mut().zip(uk_iter(uo)).zip(&d2[lo..hi]).zip(wj) {
            let e = dk * k2s;
            let gk = if e <= cutoff {
                (-e).fast_exp()
            } else {
                T::zero()
            };
            *g = gk;
            *uk = wk * gk;
        }
    }
}

#[inline(always)]
fn uk_iter<T>(u: &mut [T]) -> std::slice::IterMut<'_, T> {
    u.iter_mut()
}

/// `out[r] = Σ_t wt[r·taps + t] · src[first + t][f0 .. f0 + C]` for `r < R`: the register
/// block of the band products.
#[inline(always)]
fn block<T: Float>(
    src: &[T],
    d: usize,
    first: usize,
    taps: usize,
    wt: &[T],
    f0: usize,
) -> [[T; C]; R] {
    let mut acc = [[T::zero(); C]; R];
    for t in 0..taps {
        let row: &[T; C] = src[(first + t) * d + f0..][..C].try_into().unwrap();
        for (r, a) in acc.iter_mut().enumerate() {
            let u = wt[r * taps + t];
            for c in 0..C {
                a[c] = u.mul_add(row[c], a[c]);
            }
        }
    }
    acc
}

/// Rows `[r0, r0 + R)` of `out` (`[n, d]`) = Σ over the block's `taps` source rows from
/// `first`, with the weights `wt` (`[R, taps]`); features in chunks of `C`, the rest plainly.
#[inline(always)]
fn band_rows<T: Float>(
    out: &mut [T],
    src: &[T],
    d: usize,
    r0: usize,
    first: usize,
    taps: usize,
    wt: &[T],
) {
    let full = d / C * C;
    for f0 in (0..full).step_by(C) {
        let acc = block(src, d, first, taps, wt, f0);
        for (r, a) in acc.iter().enumerate() {
            out[(r0 + r) * d + f0..][..C].copy_from_slice(a);
        }
    }
    if full < d {
        for r in 0..R {
            let o = &mut out[(r0 + r) * d + full..(r0 + r + 1) * d];
            o.fill(T::zero());
            for t in 0..taps {
                let x = &src[(first + t) * d + full..(first + t + 1) * d];
                axpy(wt[r * taps + t], x, o);
            }
        }
    }
}

widest_fn!(pub fn forward<T: Float>(
    band: Band,
    d: usize,
    p: Params,
    x: &[T],
    u: &[T],
    y: &mut [T],
    denom: &mut [T],
) => forward_body);

/// One batch's output `y` (`[n, d]`) and denominators, from its inputs `x` and weights `u`.
#[inline(always)]
fn forward_body<T: Float>(
    band: Band,
    d: usize,
    p: Params,
    x: &[T],
    u: &[T],
    y: &mut [T],
    denom: &mut [T],
) {
    let (n, k_all) = (band.n, band.taps());
    let eps = T::from_f64(p.eps);
    for (o, den) in denom.iter_mut().enumerate() {
        let z = if p.normalize {
            u[o * k_all..(o + 1) * k_all].iter().copied().sum::<T>()
        } else {
            T::one()
        };
        *den = z + eps;
    }
    let taps = k_all + R - 1;
    let mut wt = vec![T::zero(); R * taps];
    let mut o0 = 0;
    while o0 < n {
        // A block whose windows stay inside the sequence runs the register kernel.
        if o0 >= band.before && o0 + R - 1 + band.after < n {
            for r in 0..R {
                let inv = T::one() / denom[o0 + r];
                let row = &mut wt[r * taps..(r + 1) * taps];
                row.fill(T::zero());
                for k in 0..k_all {
                    row[r + k] = u[(o0 + r) * k_all + k] * inv;
                }
            }
            band_rows(y, x, d, o0, o0 - band.before, taps, &wt);
            o0 += R;
            continue;
        }
        let yo = &mut y[o0 * d..(o0 + 1) * d];
        yo.fill(T::zero());
        for k in 0..k_all {
            if let Some(j) = band.input(o0, k) {
                axpy(u[o0 * k_all + k], &x[j * d..(j + 1) * d], yo);
            }
        }
        let inv = T::one() / denom[o0];
        yo.iter_mut().for_each(|v| *v *= inv);
        o0 += 1;
    }
}

/// What one batch's backward reads.
pub struct BackwardInputs<'a, T> {
    pub x: &'a [T],
    pub y: &'a [T],
    pub g: &'a [T],
    pub s: &'a [T],
    pub denom: &'a [T],
    pub gauss: &'a [T],
    pub u: &'a [T],
}

widest_fn!(pub fn backward<T: Float>(
    band: Band,
    d: usize,
    p: Params,
    inp: &BackwardInputs<'_, T>,
    dx: &mut [T],
    dw: &mut [T],
    dz_size: &mut [T],
) => backward_body);

/// One batch's window terms of the backward: `dx` (`[n, d]`, written whole), and the
/// gradients of the weights `dw` (`[n]`) and of the size logits `dz_size` (`[n]`); the
/// predictors' terms are added by the caller.
#[inline(always)]
fn backward_body<T: Float>(
    band: Band,
    d: usize,
    p: Params,
    inp: &BackwardInputs<'_, T>,
    dx: &mut [T],
    dw: &mut [T],
    dz_size: &mut [T],
) {
    let (n, k_all) = (band.n, band.taps());
    let (s_min, s_max) = (T::from_f64(p.s_min), T::from_f64(p.s_max));
    let span = s_max - s_min;
    // dx_j = Σ_o (u_ok / D_o) g_o over the outputs whose window holds j: the transposed
    // band, whose tap t of input block j0 is output o = j0 − after + t.
    let taps = k_all + R - 1;
    let mut wt = vec![T::zero(); R * taps];
    let mut j0 = 0;
    while j0 < n {
        if j0 >= band.after && j0 + R - 1 + band.before < n {
            let first = j0 - band.after;
            for r in 0..R {
                for t in 0..taps {
                    // Output first + t sees input j0 + r at tap k = r − t + K − 1.
                    let k = (r + k_all - 1).checked_sub(t).filter(|&k| k < k_all);
                    wt[r * taps + t] = k.map_or(T::zero(), |k| {
                        inp.u[(first + t) * k_all + k] / inp.denom[first + t]
                    });
                }
            }
            band_rows(dx, inp.g, d, j0, first, taps, &wt);
            j0 += R;
            continue;
        }
        let dxj = &mut dx[j0 * d..(j0 + 1) * d];
        dxj.fill(T::zero());
        for o in j0.saturating_sub(band.after)..(j0 + band.before + 1).min(n) {
            let k = j0 + band.before - o;
            axpy(
                inp.u[o * k_all + k] / inp.denom[o],
                &inp.g[o * d..(o + 1) * d],
                dxj,
            );
        }
        j0 += 1;
    }
    // ∂L/∂u_ok = (g_o · x_j − g_o · y_o) / D_o (the second term only when normalised); from
    // it the weights' and the sizes' gradients.
    dw.fill(T::zero());
    let mut gx = vec![T::zero(); k_all];
    let d2 = band.squared_distances::<T>();
    for o in 0..n {
        let go = &inp.g[o * d..(o + 1) * d];
        let gy = if p.normalize {
            dot(go, &inp.y[o * d..(o + 1) * d])
        } else {
            T::zero()
        };
        let inv_den = T::one() / inp.denom[o];
        let s = inp.s[o];
        // g_o · x_j for the taps inside the sequence, four at a time.
        let lo = band.before.saturating_sub(o);
        let hi = k_all.min(n + band.before - o);
        let row = |k: usize| {
            let j = o + k - band.before;
            &inp.x[j * d..(j + 1) * d]
        };
        let mut k = lo;
        while k + 4 <= hi {
            let four = dot4(go, [row(k), row(k + 1), row(k + 2), row(k + 3)]);
            gx[k..k + 4].copy_from_slice(&four);
            k += 4;
        }
        for (k, out) in gx.iter_mut().enumerate().take(hi).skip(k) {
            *out = dot(go, row(k));
        }
        let mut ds = T::zero();
        for k in lo..hi {
            let gk = inp.gauss[o * k_all + k];
            let du = (gx[k] - gy) * inv_den;
            ds += du * inp.u[o * k_all + k] * d2[k];
            dw[o + k - band.before] += du * gk;
        }
        // ∂g/∂s = g · dist² / s³, and s = s_min + span · σ(z) with
        // span · σ(1 − σ) = (s − s_min)(s_max − s) / span.
        let ds = ds / (s * s * s);
        dz_size[o] = if span > T::zero() {
            ds * (s - s_min) * (s_max - s) / span
        } else {
            T::zero()
        };
    }
}
