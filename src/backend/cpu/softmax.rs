//! Numerically stable softmax and log-softmax over the last axis, with an optional mask, and
//! their backward passes. One row is small enough to stay in cache across its three passes.

use super::float::Float;
use super::loops::{filled_vec, write_all};
use super::{bools, tensor, with_float, Cpu};
use crate::backend::softmax::SoftmaxKernels;
use crate::error::Result;
use crate::tensor::Tensor;
use std::mem::MaybeUninit;

impl SoftmaxKernels for Cpu {
    fn softmax(&self, x: &Tensor, mask: Option<&Tensor>, log: bool) -> Result<Tensor> {
        let r = x.dims().last().copied().unwrap_or(1);
        with_float!("softmax", x.dtype(), |T| {
            let xs = super::slice::<T>("softmax", x)?;
            let ms = mask.map(|m| bools("softmax", m)).transpose()?;
            Ok(tensor(
                softmax_rows(&xs, r, ms.as_deref(), log),
                x.shape().clone(),
            ))
        })
    }

    fn softmax_backward(&self, y: &Tensor, g: &Tensor, log: bool) -> Result<Tensor> {
        let r = y.dims().last().copied().unwrap_or(1);
        with_float!("softmax", y.dtype(), |T| {
            let (ys, gs) = (
                super::slice::<T>("softmax", y)?,
                super::slice::<T>("softmax", g)?,
            );
            let v = if log {
                log_softmax_backward_rows(&ys, &gs, r)
            } else {
                softmax_backward_rows(&ys, &gs, r)
            };
            Ok(tensor(v, y.shape().clone()))
        })
    }
}

/// A new array of length-`r` rows, each produced by `f(row_index, row)`, in parallel blocks of
/// rows big enough (≥ 8K elements) that scheduling a block costs far less than computing it.
/// `f` must write every element of its row.
fn rows_par<T: Float>(
    n: usize,
    r: usize,
    f: impl Fn(usize, &mut [MaybeUninit<T>]) + Sync,
) -> Vec<T> {
    let rows_per_block = (8192 / r).max(1);
    filled_vec(n, r * rows_per_block, |start, o| {
        for (k, row) in o.chunks_mut(r).enumerate() {
            f(start / r + k, row);
        }
    })
}

/// Maximum of a row with eight independent lanes (a single running max is a serial chain).
/// NaNs are skipped here (`max` ignores them, which keeps the loop branch-free); a NaN in the
/// row still poisons the result through the sum of exponentials.
fn max_slice<T: Float>(x: &[T]) -> T {
    let mut acc = [T::neg_infinity(); 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter()
        .chain(rest)
        .fold(T::neg_infinity(), |m, &v| m.max(v))
}

/// Softmax (or log-softmax) of each length-`r` row of `x`. Where `mask` is false the weight is
/// exactly 0 (log-softmax: −∞); a row with nothing kept is all zeros (log-softmax: all −∞).
pub fn softmax_rows<T: Float>(x: &[T], r: usize, mask: Option<&[bool]>, log: bool) -> Vec<T> {
    if r == 0 {
        return Vec::new();
    }
    rows_par(x.len(), r, |i, o| {
        #[cfg(target_arch = "x86_64")]
        if super::simd::has_avx512() {
            // SAFETY: the CPU supports the features softmax_row_avx512 is compiled for.
            return unsafe { softmax_row_avx512(x, r, mask, log, i, o) };
        }
        softmax_row(x, r, mask, log, i, o)
    })
}

/// `softmax_row` compiled for AVX-512 (16 f32 lanes); chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq")]
fn softmax_row_avx512<T: Float>(
    x: &[T],
    r: usize,
    mask: Option<&[bool]>,
    log: bool,
    i: usize,
    o: &mut [MaybeUninit<T>],
) {
    softmax_row(x, r, mask, log, i, o)
}

// ANCHOR: softmax_row
/// One row of `softmax_rows`.
#[inline(always)]
fn softmax_row<T: Float>(
    x: &[T],
    r: usize,
    mask: Option<&[bool]>,
    log: bool,
    i: usize,
    o: &mut [MaybeUninit<T>],
) {
    let row = &x[i * r..(i + 1) * r];
    let keep = mask.map(|m| &m[i * r..(i + 1) * r]);
    let ninf = T::neg_infinity();
    let m = match keep {
        None => max_slice(row),
        Some(k) => row
            .iter()
            .zip(k)
            .fold(ninf, |m, (&v, &k)| if k { m.max(v) } else { m }),
    };
    // Rare path: every kept score is −∞, or NaN (which `max` skips); only then look for a NaN.
    let kept_nan = || match keep {
        None => row.iter().any(|v| v.is_nan()),
        Some(k) => row.iter().zip(k).any(|(v, &k)| k && v.is_nan()),
    };
    let m = if m == ninf && kept_nan() { T::nan() } else { m };
    if m.is_nan() || m == ninf {
        // A NaN poisons the row, as in PyTorch; a row with nothing kept (or all −∞) is all
        // zeros for softmax and all −∞ for log-softmax.
        let fill = if m.is_nan() {
            m
        } else if log {
            ninf
        } else {
            T::zero()
        };
        write_all(o, std::iter::repeat_n(fill, r));
        return;
    }
    let o = match keep {
        None => write_all(o, row.iter().map(move |&v| (v - m).fast_exp())),
        Some(k) => write_all(
            o,
            row.iter()
                .zip(k)
                .map(move |(&v, &k)| if k { (v - m).fast_exp() } else { T::zero() }),
        ),
    };
    let s = super::reduce::sum_slice(o);
    if log {
        let ls = s.ln();
        for (o, &v) in o.iter_mut().zip(row) {
            *o = v - m - ls;
        }
        if let Some(k) = keep {
            for (o, &k) in o.iter_mut().zip(k) {
                if !k {
                    *o = ninf;
                }
            }
        }
    } else {
        let inv = T::one() / s;
        for v in o.iter_mut() {
            *v *= inv;
        }
    }
}
// ANCHOR_END: softmax_row

// ANCHOR: softmax_backward
/// Backward of softmax from its output `y`: `dx = y · (g − Σ g·y)`.
/// Masked positions have y = 0 and so get no gradient, as they should.
pub fn softmax_backward_rows<T: Float>(y: &[T], g: &[T], r: usize) -> Vec<T> {
    if r == 0 {
        return Vec::new();
    }
    rows_par(y.len(), r, |i, o| {
        let (y, g) = (&y[i * r..(i + 1) * r], &g[i * r..(i + 1) * r]);
        let mut lanes = [T::zero(); 8];
        for (cy, cg) in y.chunks(8).zip(g.chunks(8)) {
            for k in 0..cy.len() {
                lanes[k] += cy[k] * cg[k];
            }
        }
        let dot: T = lanes.iter().copied().sum();
        write_all(o, y.iter().zip(g).map(move |(&y, &g)| y * (g - dot)));
    })
}
// ANCHOR_END: softmax_backward

/// Backward of log-softmax from its output `y`: `dx = g − exp(y) · Σ g`. Masked positions
/// (y = −∞) get no gradient.
pub fn log_softmax_backward_rows<T: Float>(y: &[T], g: &[T], r: usize) -> Vec<T> {
    if r == 0 {
        return Vec::new();
    }
    rows_par(y.len(), r, |i, o| {
        let (y, g) = (&y[i * r..(i + 1) * r], &g[i * r..(i + 1) * r]);
        let mut s = T::zero();
        for (&y, &g) in y.iter().zip(g) {
            if y != T::neg_infinity() {
                s += g;
            }
        }
        write_all(
            o,
            y.iter().zip(g).map(move |(&y, &g)| {
                if y == T::neg_infinity() {
                    T::zero()
                } else {
                    g - y.fast_exp() * s
                }
            }),
        );
    })
}
