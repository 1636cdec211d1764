//! Reductions over one axis of a contiguous array seen as `[outer, r, inner]`. Reducing over
//! several axes reduces them one at a time.

use super::elementwise::PAR_MIN;
use crate::tensor::Float;
use rayon::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceKind {
    Sum,
    Max,
    Min,
}

impl ReduceKind {
    #[inline(always)]
    fn combine<T: Float>(self, a: T, b: T) -> T {
        match self {
            ReduceKind::Sum => a + b,
            // NaN propagates, as in PyTorch.
            ReduceKind::Max => {
                if a > b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            ReduceKind::Min => {
                if a < b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
        }
    }
}

/// Sum of a slice with eight independent accumulators, so the loop vectorises (a single
/// accumulator is a serial dependency chain the compiler may not reorder).
pub fn sum_slice<T: Float>(x: &[T]) -> T {
    let mut acc = [T::zero(); 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let mut s = T::zero();
    for a in acc {
        s += a;
    }
    for &v in rest {
        s += v;
    }
    s
}

fn reduce_slice<T: Float>(x: &[T], kind: ReduceKind) -> T {
    match kind {
        ReduceKind::Sum => sum_slice(x),
        _ => x[1..].iter().fold(x[0], |a, &b| kind.combine(a, b)),
    }
}

fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

/// Reduces contiguous `x` of shape `dims` over `axis`, keeping it as a size-1 dimension.
pub fn reduce_axis<T: Float>(x: &[T], dims: &[usize], axis: usize, kind: ReduceKind) -> Vec<T> {
    let (outer, r, inner) = split(dims, axis);
    if r == 0 {
        let fill = if kind == ReduceKind::Sum {
            T::zero()
        } else {
            T::nan()
        };
        return super::pool::filled(outer * inner, fill);
    }
    let big = x.len() >= PAR_MIN;
    if inner == 1 {
        let f = |o: usize| reduce_slice(&x[o * r..(o + 1) * r], kind);
        return if big && outer > 1 {
            (0..outer).into_par_iter().map(f).collect()
        } else {
            (0..outer).map(f).collect()
        };
    }
    let mut out = super::pool::filled(outer * inner, T::zero());
    // Reduce columns [j0, j0 + len) of one outer block into `o`.
    let block = |ob: usize, j0: usize, o: &mut [T]| {
        let base = ob * r * inner;
        o.copy_from_slice(&x[base + j0..base + j0 + o.len()]);
        for k in 1..r {
            let row = &x[base + k * inner + j0..base + k * inner + j0 + o.len()];
            match kind {
                ReduceKind::Sum => o.iter_mut().zip(row).for_each(|(a, &b)| *a += b),
                _ => o
                    .iter_mut()
                    .zip(row)
                    .for_each(|(a, &b)| *a = kind.combine(*a, b)),
            }
        }
    };
    if big && outer > 1 {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(ob, o)| block(ob, 0, o));
    } else if big {
        let cols = (inner / rayon::current_num_threads().max(1)).max(256);
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(c, o)| block(0, c * cols, o));
    } else {
        out.chunks_mut(inner)
            .enumerate()
            .for_each(|(ob, o)| block(ob, 0, o));
    }
    out
}

/// Index of the largest (or smallest) element along `axis`; the first one on ties, like
/// PyTorch. NaN counts as the largest.
pub fn arg_reduce<T: Float>(x: &[T], dims: &[usize], axis: usize, largest: bool) -> Vec<i64> {
    let (outer, r, inner) = split(dims, axis);
    let mut out = vec![0i64; outer * inner];
    for o in 0..outer {
        for j in 0..inner {
            let mut best = 0usize;
            let mut bv = x[o * r * inner + j];
            for k in 1..r {
                let v = x[(o * r + k) * inner + j];
                let better = if bv.is_nan() {
                    false
                } else if v.is_nan() {
                    true
                } else if largest {
                    v > bv
                } else {
                    v < bv
                };
                if better {
                    best = k;
                    bv = v;
                }
            }
            out[o * inner + j] = best as i64;
        }
    }
    out
}
