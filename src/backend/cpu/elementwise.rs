//! Element-wise loops: map one slice, or zip two strided inputs under broadcasting.
//! Large outputs are split across rayon's threads; chunks are long enough that the split
//! costs less than it saves.

use crate::tensor::{Dims, Layout, Shape};
use rayon::prelude::*;

/// Below this many elements one thread is faster than waking the pool.
pub const PAR_MIN: usize = 1 << 15;
const CHUNK: usize = 1 << 13;

pub fn map<T: Copy + Send + Sync, U: Copy + Send + Sync + Default>(
    x: &[T],
    f: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    let mut out = vec![U::default(); x.len()];
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, i)| {
                for (o, &i) in o.iter_mut().zip(i) {
                    *o = f(i);
                }
            });
    } else {
        for (o, &i) in out.iter_mut().zip(x) {
            *o = f(i);
        }
    }
    out
}

/// `f(a, b)` over two equally long contiguous slices.
pub fn zip_same<T: Copy + Send + Sync, U: Copy + Send + Sync + Default>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    let mut out = vec![U::default(); a.len()];
    if a.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(|(o, (a, b))| {
                for ((o, &a), &b) in o.iter_mut().zip(a).zip(b) {
                    *o = f(a, b);
                }
            });
    } else {
        for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
            *o = f(a, b);
        }
    }
    out
}

/// Storage offset of row `row` (all dims but the last) under `strides`.
fn row_offset(mut row: usize, outer: &[usize], strides: &[usize], base: usize) -> usize {
    let mut off = base;
    for d in (0..outer.len()).rev() {
        off += (row % outer[d]) * strides[d];
        row /= outer[d];
    }
    off
}

/// `f(a, b)` with NumPy broadcasting, reading both inputs through their layouts (so
/// transposed and broadcast views need no copy). `a` and `b` are the whole storages.
pub fn zip_broadcast<T: Copy + Send + Sync, U: Copy + Send + Sync + Default>(
    a: &[T],
    la: &Layout,
    b: &[T],
    lb: &Layout,
    out_shape: &Shape,
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    let n = out_shape.numel();
    if la.is_contiguous() && lb.is_contiguous() && &la.shape == out_shape && &lb.shape == out_shape
    {
        return zip_same(
            &a[la.offset..la.offset + n],
            &b[lb.offset..lb.offset + n],
            f,
        );
    }
    let mut out = vec![U::default(); n];
    if n == 0 {
        return out;
    }
    let sa = la.shape.broadcast_strides(&la.strides, out_shape);
    let sb = lb.shape.broadcast_strides(&lb.strides, out_shape);
    let rank = out_shape.rank();
    let (outer, inner, ia, ib): (Dims, usize, usize, usize) = if rank == 0 {
        (Dims::new(), 1, 0, 0)
    } else {
        (
            Dims::from_slice(&out_shape.dims()[..rank - 1]),
            out_shape.dims()[rank - 1],
            sa[rank - 1],
            sb[rank - 1],
        )
    };
    let fill = |rows: std::ops::Range<usize>, o: &mut [U]| {
        for (k, row) in rows.enumerate() {
            let oa = row_offset(row, &outer, &sa, la.offset);
            let ob = row_offset(row, &outer, &sb, lb.offset);
            let o = &mut o[k * inner..(k + 1) * inner];
            match (ia, ib) {
                (1, 1) => {
                    for ((o, &x), &y) in
                        o.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner])
                    {
                        *o = f(x, y);
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in o.iter_mut().zip(&a[oa..oa + inner]) {
                        *o = f(x, y);
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in o.iter_mut().zip(&b[ob..ob + inner]) {
                        *o = f(x, y);
                    }
                }
                _ => {
                    for (j, o) in o.iter_mut().enumerate() {
                        *o = f(a[oa + j * ia], b[ob + j * ib]);
                    }
                }
            }
        }
    };
    let rows = n / inner;
    if n >= PAR_MIN && rows > 1 {
        let rows_per = (CHUNK / inner).max(1);
        out.par_chunks_mut(rows_per * inner)
            .enumerate()
            .for_each(|(c, o)| {
                let start = c * rows_per;
                fill(start..start + o.len() / inner, o);
            });
    } else {
        fill(0..rows, &mut out);
    }
    out
}

/// `cond ? a : b` with all three broadcast to `out_shape` (already contiguous and expanded
/// by the caller when needed).
pub fn select<T: Copy + Send + Sync + Default>(cond: &[bool], a: &[T], b: &[T]) -> Vec<T> {
    let mut out = vec![T::default(); cond.len()];
    for (((o, &c), &x), &y) in out.iter_mut().zip(cond).zip(a).zip(b) {
        *o = if c { x } else { y };
    }
    out
}
