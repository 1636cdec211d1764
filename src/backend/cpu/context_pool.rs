//! ContextPool's forward and backward loops on the CPU (the geometry and the contract are in
//! `backend/context_pool.rs`).
//!
//! Every output token `o` pools the input tokens `j` inside a window around its centre, with
//! weights `u_oj = w_j · exp(−dist²(o, j) / (2 s_o²))`. The window is enumerated directly, so
//! the cost is O(B · n · K · d) for a window of K tokens and the n×n matrix never exists.
//! One geometry type covers the three layouts of the spec: a sequence, an H×W grid, and a grid
//! pooled with a stride (the ConvNet variant); causal masking applies to sequences.

use super::buffer_cache;
use super::context_pool_band as band;
use super::float::Float;
use super::lanes::{axpy, dot};
use super::{tensor, with_float, Cpu};
use crate::backend::context_pool::{self as cp, ContextPoolKernels, Geometry, Params};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

impl ContextPoolKernels for Cpu {
    fn context_pool(
        &self,
        x: &Tensor,
        predictors: [&Tensor; 4],
        geo: &Geometry,
        params: &Params,
    ) -> Result<cp::PoolOutputs> {
        const OP: &str = "context_pool";
        let [a, a0, b, b0] = predictors;
        let (batch, d) = (x.dims()[0], x.dims()[2]);
        let n_out = geo.n_out();
        with_float!(OP, x.dtype(), |T| {
            let f = |t| super::slice::<T>(OP, t);
            let (xs, av, bv) = (f(x)?, f(a)?, f(b)?);
            let (a0, b0) = (f(a0)?[0], f(b0)?[0]);
            let o = forward(&xs, batch, d, *geo, *params, &av, a0, &bv, b0);
            Ok(cp::PoolOutputs {
                y: tensor(o.y, [batch, n_out, d]),
                w: tensor(o.w, [batch, geo.n_in()]),
                s: tensor(o.s, [batch, n_out]),
                denom: tensor(o.denom, [batch, n_out]),
            })
        })
    }

    fn context_pool_backward(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        fwd: &cp::PoolOutputs,
        g: &Tensor,
        geo: &Geometry,
        params: &Params,
    ) -> Result<cp::PoolGrads> {
        const OP: &str = "context_pool";
        let (batch, d) = (x.dims()[0], x.dims()[2]);
        with_float!(OP, x.dtype(), |T| {
            let f = |t| super::slice::<T>(OP, t);
            let (xs, ys, ws, ss, ds) = (f(x)?, f(&fwd.y)?, f(&fwd.w)?, f(&fwd.s)?, f(&fwd.denom)?);
            let saved = Saved {
                x: &xs,
                y: &ys,
                w: &ws,
                s: &ss,
                denom: &ds,
            };
            let (av, bv, gs) = (f(a)?, f(b)?, f(g)?);
            let gr = backward(saved, batch, d, *geo, *params, &av, &bv, &gs);
            Ok(cp::PoolGrads {
                dx: tensor(gr.dx, x.shape().clone()),
                da: tensor(gr.da, [d]),
                da0: tensor(vec![gr.da0], [1]),
                db: tensor(gr.db, [d]),
                db0: tensor(vec![gr.db0], [1]),
            })
        })
    }
}

/// What the forward computes. Besides the output it keeps the per-token weights `w`
/// (`[B, n_in]`), sizes `s` and denominators `Z + eps` (both `[B, n_out]`): the backward
/// needs all three, and the layer shows `w` and `s` to the user.
pub struct Outputs<T> {
    pub y: Vec<T>,
    pub w: Vec<T>,
    pub s: Vec<T>,
    pub denom: Vec<T>,
}

/// What the backward reads: the forward's input and output and the other `Outputs`.
pub struct Saved<'a, T> {
    pub x: &'a [T],
    pub y: &'a [T],
    pub w: &'a [T],
    pub s: &'a [T],
    pub denom: &'a [T],
}

pub struct Grads<T> {
    pub dx: Vec<T>,
    pub da: Vec<T>,
    pub da0: T,
    pub db: Vec<T>,
    pub db0: T,
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
) -> Outputs<T> {
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
    if let Some(band) = seq_band(&geo) {
        // A sequence at stride 1: the banded products of `context_pool_band.rs`.
        let mut y: Vec<T> = buffer_cache::take(batch * n_out * d);
        // SAFETY: a plain float buffer, every element of which `band::forward` writes.
        unsafe { y.set_len(batch * n_out * d) };
        let mut denom = vec![T::zero(); batch * n_out];
        y.par_chunks_mut(n_out * d.max(1))
            .zip(denom.par_chunks_mut(n_out))
            .enumerate()
            .for_each(|(bt, (yb, db))| {
                let xb = &x[bt * n_in * d..(bt + 1) * n_in * d];
                let (sb, wb) = (
                    &s[bt * n_out..(bt + 1) * n_out],
                    &w[bt * n_in..(bt + 1) * n_in],
                );
                let (mut gauss, mut u) = (Vec::new(), Vec::new());
                band::tables(band, wb, sb, &mut gauss, &mut u);
                band::forward(band, d, p, xb, &u, yb, db);
            });
        return Outputs { y, w, s, denom };
    }
    // ANCHOR: cp_forward_loop
    let mut y = buffer_cache::filled(batch * n_out * d, T::zero());
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
    Outputs { y, w, s, denom }
}

/// Backward: the gradients of the loss with respect to `x`, `a`, `a0`, `b`, `b0`, given the
/// output gradient `g` and what the forward kept. Batches run in parallel; a sequence at
/// stride 1 runs the banded products, anything else the window loop, whose sums scatter into
/// `dx` and `dw` (race-free: one task owns the batch).
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
) -> Grads<T> {
    let x = fwd.x;
    let (n_in, n_out) = (geo.n_in(), geo.n_out());
    let mut dx = buffer_cache::filled(batch * n_in * d, T::zero());
    // Per batch: (da, da0, db, db0), summed after the parallel loop.
    let partials: Vec<(Vec<T>, T, Vec<T>, T)> = dx
        .par_chunks_mut(n_in * d)
        .enumerate()
        .map(|(bt, dxb)| {
            let xb = &x[bt * n_in * d..(bt + 1) * n_in * d];
            let wb = &fwd.w[bt * n_in..(bt + 1) * n_in];
            let mut dw = vec![T::zero(); n_in];
            let mut dz_size = vec![T::zero(); n_out];
            if let Some(band) = seq_band(&geo) {
                let (sb, ts) = (&fwd.s[bt * n_out..(bt + 1) * n_out], bt * n_out * d);
                let (mut gauss, mut u) = (Vec::new(), Vec::new());
                band::tables(band, wb, sb, &mut gauss, &mut u);
                let inputs = band::BackwardInputs {
                    x: xb,
                    y: &fwd.y[ts..ts + n_out * d],
                    g: &g[ts..ts + n_out * d],
                    s: sb,
                    denom: &fwd.denom[bt * n_out..(bt + 1) * n_out],
                    gauss: &gauss,
                    u: &u,
                };
                band::backward(band, d, p, &inputs, dxb, &mut dw, &mut dz_size);
            } else {
                window_backward(
                    bt,
                    &fwd,
                    (xb, wb),
                    g,
                    d,
                    &geo,
                    p,
                    dxb,
                    &mut dw,
                    &mut dz_size,
                );
            }
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
    let mut out = Grads {
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

/// The general window loop of the backward (grids, strides): one batch's `dx` window terms
/// (`dxb` starts at zero), the weights' gradients `dw` and the size logits' `dz_size`.
#[allow(clippy::too_many_arguments)]
fn window_backward<T: Float>(
    bt: usize,
    fwd: &Saved<'_, T>,
    (xb, wb): (&[T], &[T]),
    g: &[T],
    d: usize,
    geo: &Geometry,
    p: Params,
    dxb: &mut [T],
    dw: &mut [T],
    dz_size: &mut [T],
) {
    let n_out = geo.n_out();
    let (s_min, s_max) = (T::from_f64(p.s_min), T::from_f64(p.s_max));
    let span = s_max - s_min;
    let (mut js, mut gs, mut d2s) = (Vec::new(), Vec::new(), Vec::new());
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
        window(geo, o, s, &mut js, &mut gs, &mut d2s);
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
}

/// The band of a sequence pooled at stride 1, which `context_pool_band.rs` runs.
fn seq_band(geo: &Geometry) -> Option<band::Band> {
    match *geo {
        Geometry::Seq {
            n,
            stride: 1,
            radius,
            causal,
        } => Some(band::Band::new(n, radius, causal)),
        _ => None,
    }
}
