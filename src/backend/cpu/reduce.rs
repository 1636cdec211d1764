//! Reductions on the CPU: over one axis of a contiguous array seen as `[outer, r, inner]`;
//! reducing over several axes reduces them one at a time, highest first.

use super::float::Float;
use super::loops::PAR_MIN;
use super::{tensor, with_float, wrap, Cpu};
use crate::backend::reduce::{Reduce, ReduceKernels};
use crate::backend::storage::CpuData;
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use rayon::prelude::*;

impl ReduceKernels for Cpu {
    fn reduce(&self, op: Reduce, x: &Tensor, axes: &[usize], out: &Shape) -> Result<Tensor> {
        let name = match op {
            Reduce::Sum => "sum",
            Reduce::Max => "max",
            Reduce::Min => "min",
        };
        with_float!(name, x.dtype(), |T| {
            let xs = super::slice::<T>(name, x)?;
            let mut dims: Vec<usize> = x.dims().to_vec();
            // Highest axis first, so the lower axes keep their positions. The first reduction
            // reads the input in place; later ones read the previous result.
            let mut data: Option<Vec<T>> = None;
            for &a in axes.iter().rev() {
                data = Some(reduce_axis(data.as_deref().unwrap_or(&xs), &dims, a, op));
                dims[a] = 1;
            }
            let data = data.unwrap_or_else(|| xs.into_owned());
            Ok(tensor(data, out.clone()))
        })
    }

    fn cumsum(&self, x: &Tensor, axis: usize, reverse: bool) -> Result<Tensor> {
        with_float!("cumsum", x.dtype(), |T| {
            let xs = super::slice::<T>("cumsum", x)?;
            Ok(tensor(
                cumsum_axis(&xs, x.dims(), axis, reverse),
                x.shape().clone(),
            ))
        })
    }

    fn arg_reduce(&self, x: &Tensor, axis: usize, largest: bool, out: &Shape) -> Result<Tensor> {
        let op = if largest { "argmax" } else { "argmin" };
        let v = with_float!(op, x.dtype(), |T| {
            Ok(arg_reduce(
                &super::slice::<T>(op, x)?,
                x.dims(),
                axis,
                largest,
            ))
        })?;
        Ok(wrap(CpuData::I64(v), out.clone()))
    }
}

trait Combine {
    fn combine<T: Float>(self, a: T, b: T) -> T;
}

impl Combine for Reduce {
    #[inline(always)]
    fn combine<T: Float>(self, a: T, b: T) -> T {
        match self {
            Reduce::Sum => a + b,
            // NaN propagates, as in PyTorch.
            Reduce::Max => {
                if a > b || a.is_nan() {
                    a
                } else {
                    b
                }
            }
            Reduce::Min => {
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

fn reduce_slice<T: Float>(x: &[T], kind: Reduce) -> T {
    match kind {
        Reduce::Sum => sum_slice(x),
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
pub fn reduce_axis<T: Float>(x: &[T], dims: &[usize], axis: usize, kind: Reduce) -> Vec<T> {
    let (outer, r, inner) = split(dims, axis);
    if r == 0 {
        let fill = if kind == Reduce::Sum {
            T::zero()
        } else {
            T::nan()
        };
        return super::buffer_cache::filled(outer * inner, fill);
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
    let mut out = super::buffer_cache::filled(outer * inner, T::zero());
    let fold = |o: &mut [T], row: &[T]| match kind {
        Reduce::Sum => o.iter_mut().zip(row).for_each(|(a, &b)| *a += b),
        _ => o
            .iter_mut()
            .zip(row)
            .for_each(|(a, &b)| *a = kind.combine(*a, b)),
    };
    // Reduce rows [k0, k1) of columns [j0, j0 + len) of one outer block into `o`.
    let rows = |ob: usize, (k0, k1): (usize, usize), j0: usize, o: &mut [T]| {
        let at = |k: usize| ob * r * inner + k * inner + j0;
        o.copy_from_slice(&x[at(k0)..at(k0) + o.len()]);
        for k in k0 + 1..k1 {
            fold(o, &x[at(k)..at(k) + o.len()]);
        }
    };
    let block = |ob: usize, j0: usize, o: &mut [T]| rows(ob, (0, r), j0, o);
    let threads = rayon::current_num_threads().max(1);
    if big && outer > 1 {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(ob, o)| block(ob, 0, o));
    } else if big && inner < 256 * threads && r >= 2 * threads {
        // Too few columns to share out (a bias's gradient, `[tokens, features]` summed over
        // the tokens): each thread reduces a band of rows, then the bands are combined.
        let band = r.div_ceil(threads);
        let parts: Vec<Vec<T>> = (0..r.div_ceil(band))
            .into_par_iter()
            .map(|b| {
                let mut o = vec![T::zero(); inner];
                rows(0, (b * band, ((b + 1) * band).min(r)), 0, &mut o);
                o
            })
            .collect();
        out.copy_from_slice(&parts[0]);
        for p in &parts[1..] {
            fold(&mut out, p);
        }
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

/// Running sums of contiguous `x` (shape `dims`) along `axis`, backwards with `reverse`:
/// each outer block adds its rows one after another, a whole row of the inner axes at a time.
pub fn cumsum_axis<T: Float>(x: &[T], dims: &[usize], axis: usize, reverse: bool) -> Vec<T> {
    let (outer, r, inner) = split(dims, axis);
    let mut out = super::buffer_cache::filled(x.len(), T::zero());
    if x.is_empty() {
        return out;
    }
    let block = |ob: usize, o: &mut [T]| {
        let xb = &x[ob * r * inner..(ob + 1) * r * inner];
        let mut prev: Option<usize> = None;
        for step in 0..r {
            let k = if reverse { r - 1 - step } else { step };
            let (row, src) = (k * inner, &xb[k * inner..(k + 1) * inner]);
            match prev {
                None => o[row..row + inner].copy_from_slice(src),
                Some(p) => {
                    // Row k = row p (already summed) + x's row k.
                    let (a, b) = if p < k {
                        let (lo, hi) = o.split_at_mut(row);
                        (&lo[p * inner..(p + 1) * inner], &mut hi[..inner])
                    } else {
                        let (lo, hi) = o.split_at_mut(p * inner);
                        (&hi[..inner], &mut lo[row..row + inner])
                    };
                    b.iter_mut()
                        .zip(a.iter().zip(src))
                        .for_each(|(y, (&s, &v))| *y = s + v);
                }
            }
            prev = Some(k);
        }
    };
    if x.len() >= PAR_MIN && outer > 1 {
        out.par_chunks_mut(r * inner)
            .enumerate()
            .for_each(|(ob, o)| block(ob, o));
    } else {
        out.chunks_mut(r * inner)
            .enumerate()
            .for_each(|(ob, o)| block(ob, o));
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
