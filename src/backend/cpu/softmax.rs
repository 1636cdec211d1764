//! Numerically stable softmax and log-softmax over the last axis, with an optional mask, and
//! their backward passes. One row is small enough to stay in cache across its three passes.

use super::elementwise::PAR_MIN;
use crate::tensor::Float;
use rayon::prelude::*;

/// Calls `f(row_index, row)` for every length-`r` row, in parallel blocks of rows big enough
/// (≥ 8K elements) that scheduling a block costs far less than computing it.
fn rows_par<T: Float>(out: &mut [T], r: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    let rows_per_block = (8192 / r).max(1);
    let block = |b: usize, o: &mut [T]| {
        for (k, row) in o.chunks_mut(r).enumerate() {
            f(b * rows_per_block + k, row);
        }
    };
    if out.len() >= PAR_MIN && out.len() / r > 1 {
        out.par_chunks_mut(r * rows_per_block)
            .enumerate()
            .for_each(|(b, o)| block(b, o));
    } else {
        block(0, out);
    }
}

/// Maximum of a row with eight independent lanes (a single running max is a serial chain).
/// NaN propagates; −∞ for an empty row.
fn max_slice<T: Float>(x: &[T]) -> T {
    let mut acc = [T::neg_infinity(); 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] = if c[i] > acc[i] || c[i].is_nan() {
                c[i]
            } else {
                acc[i]
            };
        }
    }
    let mut m = T::neg_infinity();
    for &v in acc.iter().chain(rest) {
        m = if v > m || v.is_nan() { v } else { m };
    }
    m
}

/// Softmax (or log-softmax) of each length-`r` row of `x`. Where `mask` is false the weight is
/// exactly 0 (log-softmax: −∞); a row with nothing kept is all zeros (log-softmax: all −∞).
pub fn softmax_rows<T: Float>(x: &[T], r: usize, mask: Option<&[bool]>, log: bool) -> Vec<T> {
    let mut out = vec![T::zero(); x.len()];
    if r == 0 {
        return out;
    }
    rows_par(&mut out, r, |i, o| {
        let row = &x[i * r..(i + 1) * r];
        let keep = mask.map(|m| &m[i * r..(i + 1) * r]);
        let ninf = T::neg_infinity();
        let m = match keep {
            None => max_slice(row),
            Some(k) => row.iter().zip(k).fold(
                ninf,
                |m, (&v, &k)| if k && (v > m || v.is_nan()) { v } else { m },
            ),
        };
        if m.is_nan() {
            o.iter_mut().for_each(|v| *v = m);
            return;
        }
        if m == ninf {
            // Nothing kept (or every score −∞).
            o.iter_mut()
                .for_each(|v| *v = if log { ninf } else { T::zero() });
            return;
        }
        for (o, &v) in o.iter_mut().zip(row) {
            *o = (v - m).fast_exp();
        }
        if let Some(k) = keep {
            o.iter_mut().zip(k).for_each(|(o, &k)| {
                if !k {
                    *o = T::zero()
                }
            });
        }
        let s = super::reduce::sum_slice(o);
        if log {
            let ls = s.ln();
            for (o, &v) in o.iter_mut().zip(row) {
                *o = v - m - ls;
            }
            if let Some(k) = keep {
                o.iter_mut().zip(k).for_each(|(o, &k)| {
                    if !k {
                        *o = ninf
                    }
                });
            }
        } else {
            let inv = T::one() / s;
            for v in o.iter_mut() {
                *v *= inv;
            }
        }
    });
    out
}

/// Backward of softmax from its output `y`: `dx = y · (g − Σ g·y)`.
/// Masked positions have y = 0 and so get no gradient, as they should.
pub fn softmax_backward_rows<T: Float>(y: &[T], g: &[T], r: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    if r == 0 {
        return out;
    }
    rows_par(&mut out, r, |i, o| {
        let (y, g) = (&y[i * r..(i + 1) * r], &g[i * r..(i + 1) * r]);
        let mut dot = T::zero();
        for (&a, &b) in y.iter().zip(g) {
            dot += a * b;
        }
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = y * (g - dot);
        }
    });
    out
}

/// Backward of log-softmax from its output `y`: `dx = g − exp(y) · Σ g`. Masked positions
/// (y = −∞) get no gradient.
pub fn log_softmax_backward_rows<T: Float>(y: &[T], g: &[T], r: usize) -> Vec<T> {
    let mut out = vec![T::zero(); y.len()];
    if r == 0 {
        return out;
    }
    rows_par(&mut out, r, |i, o| {
        let (y, g) = (&y[i * r..(i + 1) * r], &g[i * r..(i + 1) * r]);
        let mut s = T::zero();
        for (&y, &g) in y.iter().zip(g) {
            if y != T::neg_infinity() {
                s += g;
            }
        }
        for ((o, &y), &g) in o.iter_mut().zip(y).zip(g) {
            *o = if y == T::neg_infinity() {
                T::zero()
            } else {
                g - y.exp() * s
            };
        }
    });
    out
}
