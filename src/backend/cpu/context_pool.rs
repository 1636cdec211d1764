//! ContextPool's forward and backward loops (spec: `shared/specs/contextpool.md`; the op that
//! calls them is `nn::context_pool`).
//!
//! Every output token `o` pools the input tokens `j` inside a window around its centre, with
//! weights `u_oj = w_j · exp(−dist²(o, j) / (2 s_o²))`. The window is enumerated directly, so
//! the cost is O(B · n · K · d) for a window of K tokens and the n×n matrix never exists.
//! One geometry type covers the three layouts of the spec: a sequence, an H×W grid, and a grid
//! pooled with a stride (the ConvNet variant); causal masking applies to sequences.

use super::pool;
use crate::tensor::Float;
use rayon::prelude::*;

/// Where the tokens sit, which output pools which inputs, and at what squared distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Geometry {
    /// `n` tokens in a row; output `o` is centred on token `stride · o`.
    Seq {
        n: usize,
        stride: usize,
        radius: usize,
        causal: bool,
    },
    /// `h × w` tokens stored row-major; output `(r, c)` is centred on `(stride·r, stride·c)`
    /// and pools the square window of `radius` around it.
    Grid {
        h: usize,
        w: usize,
        stride: usize,
        radius: usize,
    },
}

impl Geometry {
    pub fn n_in(&self) -> usize {
        match *self {
            Geometry::Seq { n, .. } => n,
            Geometry::Grid { h, w, .. } => h * w,
        }
    }
    /// Output count: like a pooling layer with kernel = stride = `stride` (`n / stride`,
    /// rounded down), so stride 1 keeps every token.
    pub fn n_out(&self) -> usize {
        match *self {
            Geometry::Seq { n, stride, .. } => n / stride,
            Geometry::Grid { h, w, stride, .. } => (h / stride) * (w / stride),
        }
    }
    /// The input token whose features predict output `o`'s pooling size.
    #[inline]
    pub fn centre(&self, o: usize) -> usize {
        match *self {
            Geometry::Seq { stride, .. } => stride * o,
            Geometry::Grid { w, stride, .. } => {
                let w_out = w / stride;
                let (r, c) = (o / w_out, o % w_out);
                stride * r * w + stride * c
            }
        }
    }
    /// Calls `f(j, dist²)` for every input `j` in output `o`'s window, in increasing `j`,
    /// with the window's radius lowered to `cap` (never raised).
    #[inline(always)]
    pub fn for_each_neighbour(&self, o: usize, cap: usize, mut f: impl FnMut(usize, usize)) {
        match *self {
            Geometry::Seq {
                n,
                stride,
                radius,
                causal,
            } => {
                let radius = radius.min(cap);
                let i = stride * o;
                let lo = i.saturating_sub(radius);
                let hi = if causal { i } else { (i + radius).min(n - 1) };
                for j in lo..=hi {
                    f(j, i.abs_diff(j).pow(2));
                }
            }
            Geometry::Grid {
                h,
                w,
                stride,
                radius,
            } => {
                let radius = radius.min(cap);
                let w_out = w / stride;
                let (r, c) = (stride * (o / w_out), stride * (o % w_out));
                let (r0, r1) = (r.saturating_sub(radius), (r + radius).min(h - 1));
                let (c0, c1) = (c.saturating_sub(radius), (c + radius).min(w - 1));
                for rj in r0..=r1 {
                    let dr = rj.abs_diff(r);
                    for cj in c0..=c1 {
                        let dc = cj.abs_diff(c);
                        f(rj * w + cj, dr * dr + dc * dc);
                    }
                }
            }
        }
    }
}

/// The numbers that shape the pooling: the size range and how the weights are normalised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub s_min: f64,
    pub s_max: f64,
    pub normalize: bool,
    pub eps: f64,
}

/// What the forward computes. Besides the output it keeps the per-token weights `w`
/// (`[B, n_in]`), sizes `s` and denominators `Z + eps` (both `[B, n_out]`): the backward
/// needs all three, and the layer shows `w` and `s` to the user.
pub struct PoolForward<T> {
    pub y: Vec<T>,
    pub w: Vec<T>,
    pub s: Vec<T>,
    pub denom: Vec<T>,
}

/// What the backward reads: the forward's input and output and the `PoolForward` extras.
pub struct Saved<'a, T> {
    pub x: &'a [T],
    pub y: &'a [T],
    pub w: &'a [T],
    pub s: &'a [T],
    pub denom: &'a [T],
}

pub struct PoolGrads<T> {
    pub dx: Vec<T>,
    pub da: Vec<T>,
    pub da0: T,
    pub db: Vec<T>,
    pub db0: T,
}

/// `Σ a_k b_k` with 16 independent partial sums, so that the loop vectorises (a single
/// accumulator would be a strict chain of dependent adds).
#[inline(always)]
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&p, &q)| p * q)
        .sum();
    for (p, q) in ca.zip(cb) {
        let (p, q): (&[T; 16], &[T; 16]) = (p.try_into().unwrap(), q.try_into().unwrap());
        for k in 0..16 {
            acc[k] = p[k].mul_add(q[k], acc[k]);
        }
    }
    acc.iter().copied().sum::<T>() + tail
}

/// `y += alpha · x`.
#[inline(always)]
fn axpy<T: Float>(alpha: T, x: &[T], y: &mut [T]) {
    for (yk, &xk) in y.iter_mut().zip(x) {
        *yk = alpha.mul_add(xk, *yk);
    }
}

fn sigmoid<T: Float>(z: T) -> T {
    T::one() / (T::one() + (-z).exp())
}

/// The Gaussian's exponent factor `1 / (2 s²)`.
fn inv_two_s2<T: Float>(s: T) -> T {
    T::one() / (T::from_f64(2.0) * s * s)
}

/// Beyond this exponent a Gaussian weight is below e^−80 ≈ 2·10⁻³⁵ of the centre's: it
/// cannot change an f32 result, and in f64 it is far below every tolerance we check.
/// Skipping those neighbours makes small pooling sizes cheap, and keeps `exp` out of the
/// slow underflow path.
const CUTOFF: f64 = 80.0;

/// The window of output `o` with its Gaussian weights `exp(−dist² / (2 s²))`, written into
/// `js` and `gs` (reused between outputs). The exps run as one vectorised loop.
#[inline(always)]
fn window<T: Float>(
    geo: &Geometry,
    o: usize,
    s: T,
    js: &mut Vec<usize>,
    gs: &mut Vec<T>,
    d2s: &mut Vec<T>,
) {
    let s64 = s.as_f64();
    let cap = (s64 * (2.0 * CUTOFF).sqrt())
        .floor()
        .min(usize::MAX as f64 / 2.0) as usize;
    js.clear();
    d2s.clear();
    geo.for_each_neighbour(o, cap, |j, dist2| {
        js.push(j);
        d2s.push(T::from_f64(dist2 as f64));
    });
    let k = -inv_two_s2(s);
    gs.clear();
    gs.extend(d2s.iter().map(|&d2| (d2 * k).fast_exp()));
}

/// Forward over `x` (`[batch, n_in, d]`, contiguous). `a`, `b` are the predictors' weights
/// (`d` each) and `a0`, `b0` their biases.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(
    x: &[T],
    batch: usize,
    d: usize,
    geo: Geometry,
    p: Params,
    a: &[T],
    a0: T,
    b: &[T],
    b0: T,
) -> PoolForward<T> {
    let (n_in, n_out) = (geo.n_in(), geo.n_out());
    debug_assert_eq!(x.len(), batch * n_in * d);
    let (s_min, span) = (T::from_f64(p.s_min), T::from_f64(p.s_max - p.s_min));
    let eps = T::from_f64(p.eps);
    let mut w = vec![T::zero(); batch * n_in];
    w.par_chunks_mut(256).enumerate().for_each(|(c, ws)| {
        for (k, wj) in ws.iter_mut().enumerate() {
            let t = c * 256 + k;
            *wj = sigmoid(dot(a, &x[t * d..(t + 1) * d]) + a0);
        }
    });
    let mut s = vec![T::zero(); batch * n_out];
    s.par_chunks_mut(256).enumerate().for_each(|(c, ss)| {
        for (k, si) in ss.iter_mut().enumerate() {
            let t = c * 256 + k;
            let centre = (t / n_out) * n_in + geo.centre(t % n_out);
            *si = s_min + span * sigmoid(dot(b, &x[centre * d..(centre + 1) * d]) + b0);
        }
    });
    // ANCHOR: cp_forward_loop
    let mut y = pool::filled(batch * n_out * d, T::zero());
    let mut denom = vec![T::zero(); batch * n_out];
    y.par_chunks_mut(d)
        .zip(denom.par_iter_mut())
        .enumerate()
        .with_min_len(8)
        .for_each_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(js, gs, d2s), (t, (yo, den))| {
                let (bt, o) = (t / n_out, t % n_out);
                let xb = &x[bt * n_in * d..(bt + 1) * n_in * d];
                let wb = &w[bt * n_in..(bt + 1) * n_in];
                window(&geo, o, s[t], js, gs, d2s);
                let mut z = T::zero();
                for (&j, &gauss) in js.iter().zip(gs.iter()) {
                    let u = wb[j] * gauss;
                    z += u;
                    axpy(u, &xb[j * d..(j + 1) * d], yo);
                }
                *den = if p.normalize { z + eps } else { T::one() + eps };
                let inv = T::one() / *den;
                yo.iter_mut().for_each(|v| *v *= inv);
            },
        );
    // ANCHOR_END: cp_forward_loop
    PoolForward { y, w, s, denom }
}

/// Backward: the gradients of the loss with respect to `x`, `a`, `a0`, `b`, `b0`, given the
/// output gradient `g` and what the forward kept. Batches run in parallel; inside one batch
/// the window sums scatter into `dx` and `dw`, which is race-free because one task owns the
/// batch.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    fwd: Saved<'_, T>,
    batch: usize,
    d: usize,
    geo: Geometry,
    p: Params,
    a: &[T],
    b: &[T],
    g: &[T],
) -> PoolGrads<T> {
    let x = fwd.x;
    let (n_in, n_out) = (geo.n_in(), geo.n_out());
    let (s_min, s_max) = (T::from_f64(p.s_min), T::from_f64(p.s_max));
    let span = s_max - s_min;
    let mut dx = pool::filled(batch * n_in * d, T::zero());
    // Per batch: (da, da0, db, db0), summed after the parallel loop.
    let partials: Vec<(Vec<T>, T, Vec<T>, T)> = dx
        .par_chunks_mut(n_in * d)
        .enumerate()
        .map(|(bt, dxb)| {
            let xb = &x[bt * n_in * d..(bt + 1) * n_in * d];
            let wb = &fwd.w[bt * n_in..(bt + 1) * n_in];
            let mut dw = vec![T::zero(); n_in];
            let (mut js, mut gs, mut d2s) = (Vec::new(), Vec::new(), Vec::new());
            let mut dz_size = vec![T::zero(); n_out];
            // ANCHOR: cp_backward_loop
            for (o, dz_o) in dz_size.iter_mut().enumerate() {
                let t = bt * n_out + o;
                let (s, den) = (fwd.s[t], fwd.denom[t]);
                let go = &g[t * d..(t + 1) * d];
                // ∂L/∂u_oj = (G_o·x_j − G_o·y_o) / D_o; the second term only when normalised.
                let gy = if p.normalize {
                    dot(go, &fwd.y[t * d..(t + 1) * d])
                } else {
                    T::zero()
                };
                let inv_den = T::one() / den;
                window(&geo, o, s, &mut js, &mut gs, &mut d2s);
                let mut ds = T::zero();
                for ((&j, &gauss), &dist2) in js.iter().zip(&gs).zip(&d2s) {
                    let u = wb[j] * gauss;
                    let xj = &xb[j * d..(j + 1) * d];
                    let dxj = &mut dxb[j * d..(j + 1) * d];
                    // Two simple loops: fusing the dot and the axpy into one pass looked
                    // cheaper but the compiler left it scalar (2.4× slower at n = 1024).
                    let du = (dot(go, xj) - gy) * inv_den;
                    axpy(u * inv_den, go, dxj);
                    ds += du * u * dist2;
                    dw[j] += du * gauss;
                }
                // ∂g/∂s = g · dist² / s³, and s = s_min + span · σ(z) with
                // span · σ(1 − σ) = (s − s_min)(s_max − s) / span.
                let ds = ds / (s * s * s);
                *dz_o = if span > T::zero() {
                    ds * (s - s_min) * (s_max - s) / span
                } else {
                    T::zero()
                };
            }
            // ANCHOR_END: cp_backward_loop
            let (mut da, mut da0) = (vec![T::zero(); d], T::zero());
            let (mut db, mut db0) = (vec![T::zero(); d], T::zero());
            for j in 0..n_in {
                let dz = dw[j] * wb[j] * (T::one() - wb[j]);
                let xj = &xb[j * d..(j + 1) * d];
                axpy(dz, xj, &mut da);
                da0 += dz;
                axpy(dz, a, &mut dxb[j * d..(j + 1) * d]);
            }
            for (o, &dz) in dz_size.iter().enumerate() {
                let c = geo.centre(o);
                axpy(dz, &xb[c * d..(c + 1) * d], &mut db);
                db0 += dz;
                axpy(dz, b, &mut dxb[c * d..(c + 1) * d]);
            }
            (da, da0, db, db0)
        })
        .collect();
    let mut out = PoolGrads {
        dx,
        da: vec![T::zero(); d],
        da0: T::zero(),
        db: vec![T::zero(); d],
        db0: T::zero(),
    };
    for (da, da0, db, db0) in partials {
        axpy(T::one(), &da, &mut out.da);
        axpy(T::one(), &db, &mut out.db);
        out.da0 += da0;
        out.db0 += db0;
    }
    out
}
