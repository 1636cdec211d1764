//! The CPU's element-wise loops over slices: map one slice, zip two (also strided inputs under
//! broadcasting), select. Large outputs are split across rayon's threads; chunks are long
//! enough that the split costs less than it saves. Outputs are written without being zeroed
//! first.

use super::buffer_cache;
use super::simd::widest;
use crate::tensor::{Dims, Layout, Shape};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// Below this many elements one thread is faster than waking the pool.
pub const PAR_MIN: usize = 1 << 15;
/// Elements per parallel chunk of the element-wise loops.
pub const CHUNK: usize = 1 << 13;

/// A new vector of `n` elements written by `fill(start, chunk)` over disjoint chunks (in
/// parallel when large), without zeroing it first: zeroing is a full extra pass over memory,
/// which costs as much as a cheap op itself. `fill` must write every element of its chunk.
pub(crate) fn filled_vec<U: Copy + Send + Sync + 'static>(
    n: usize,
    chunk: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<U>]) + Sync,
) -> Vec<U> {
    let mut v: Vec<U> = buffer_cache::take(n);
    let spare = &mut v.spare_capacity_mut()[..n];
    if n >= PAR_MIN && chunk < n {
        spare
            .par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| fill(i * chunk, c));
    } else {
        fill(0, spare);
    }
    // SAFETY: the first n slots were handed to `fill`, whose contract is to write all of them;
    // U is Copy, so there is no drop to worry about.
    unsafe { v.set_len(n) };
    v
}

/// Writes `values` into `o` (which must yield exactly `o.len()` items) and returns it as
/// initialised. Zipping iterators, rather than indexing, keeps the loop free of bounds checks
/// so that it vectorises.
pub fn write_all<U: Copy>(
    o: &mut [MaybeUninit<U>],
    values: impl ExactSizeIterator<Item = U>,
) -> &mut [U] {
    assert_eq!(
        values.len(),
        o.len(),
        "write_all: every slot must be written"
    );
    for (slot, v) in o.iter_mut().zip(values) {
        slot.write(v);
    }
    // SAFETY: the assert and the zip wrote every element; MaybeUninit<U> has U's layout.
    unsafe { &mut *(o as *mut [MaybeUninit<U>] as *mut [U]) }
}

pub fn map<T: Copy + Send + Sync, U: Copy + Send + Sync + 'static>(
    x: &[T],
    f: impl Fn(T) -> U + Sync,
) -> Vec<U> {
    filled_vec(x.len(), CHUNK, |start, o| {
        widest!(for (o, &i) in o.iter_mut().zip(&x[start..]) {
            o.write(f(i));
        })
    })
}

/// `f(a, b)` over two equally long contiguous slices.
pub fn zip_same<T: Copy + Send + Sync, U: Copy + Send + Sync + 'static>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> U + Sync,
) -> Vec<U> {
    filled_vec(a.len(), CHUNK, |start, o| {
        widest!(
            for ((o, &a), &b) in o.iter_mut().zip(&a[start..]).zip(&b[start..]) {
                o.write(f(a, b));
            }
        )
    })
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
pub fn zip_broadcast<T: Copy + Send + Sync, U: Copy + Send + Sync + 'static>(
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
    if n == 0 {
        return Vec::new();
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
    if inner == 0 {
        return Vec::new();
    }
    // Whole rows per chunk, so each chunk starts at a row boundary.
    let rows_per = (CHUNK / inner).max(1);
    filled_vec(n, rows_per * inner, |start, o| {
        for (k, o) in o.chunks_mut(inner).enumerate() {
            let row = start / inner + k;
            let oa = row_offset(row, &outer, &sa, la.offset);
            let ob = row_offset(row, &outer, &sb, lb.offset);
            match (ia, ib) {
                (1, 1) => {
                    for ((o, &x), &y) in
                        o.iter_mut().zip(&a[oa..oa + inner]).zip(&b[ob..ob + inner])
                    {
                        o.write(f(x, y));
                    }
                }
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in o.iter_mut().zip(&a[oa..oa + inner]) {
                        o.write(f(x, y));
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in o.iter_mut().zip(&b[ob..ob + inner]) {
                        o.write(f(x, y));
                    }
                }
                _ => {
                    for (j, o) in o.iter_mut().enumerate() {
                        o.write(f(a[oa + j * ia], b[ob + j * ib]));
                    }
                }
            }
        }
    })
}

/// `cond ? a : b` with all three broadcast to `out_shape` (already contiguous and expanded
/// by the caller when needed).
pub fn select<T: Copy + Send + Sync + Default + 'static>(
    cond: &[bool],
    a: &[T],
    b: &[T],
) -> Vec<T> {
    let mut out = buffer_cache::filled(cond.len(), T::default());
    for (((o, &c), &x), &y) in out.iter_mut().zip(cond).zip(a).zip(b) {
        *o = if c { x } else { y };
    }
    out
}
