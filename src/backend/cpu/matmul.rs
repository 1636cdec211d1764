//! Matrix multiplication through the `gemm` crate, which picks AVX2/AVX-512 kernels at run
//! time and blocks for the caches. Strided operands (a transposed view) are passed as strides,
//! not copied.

use super::float::Float;
use super::{raw, tensor, with_float, Cpu};
use crate::backend::matmul::MatmulKernels;
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;
use std::any::TypeId;

impl MatmulKernels for Cpu {
    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape, out: &Shape) -> Result<Tensor> {
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k, n) = (a.dims()[ra - 2], a.dims()[ra - 1], b.dims()[rb - 1]);
        let (la, lb) = (a.layout(), b.layout());
        with_float!("matmul", a.dtype(), |T| {
            let (xa, xb) = (raw::<T>("matmul", a)?, raw::<T>("matmul", b)?);
            let v = batched_matmul::<T>(
                batch.numel(),
                m,
                k,
                n,
                |bi| MatRef {
                    data: xa,
                    offset: batch_offset(bi, batch, la.shape.dims(), &la.strides, la.offset),
                    row_stride: la.strides[ra - 2],
                    col_stride: la.strides[ra - 1],
                },
                |bi| MatRef {
                    data: xb,
                    offset: batch_offset(bi, batch, lb.shape.dims(), &lb.strides, lb.offset),
                    row_stride: lb.strides[rb - 2],
                    col_stride: lb.strides[rb - 1],
                },
            );
            Ok(tensor(v, out.clone()))
        })
    }

    /// The bias is added to each block of rows right after gemm writes it, while the block
    /// is in cache: a matmul and then an add would read and write the whole output again.
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (m, k, n) = (x.dims()[0], x.dims()[1], w.dims()[0]);
        let lw = w.layout();
        with_float!("linear", x.dtype(), |T| {
            let xs = super::slice::<T>("linear", x)?;
            let wt = MatRef {
                data: raw::<T>("linear", w)?,
                offset: lw.offset,
                // Wᵀ, read in place: row r of Wᵀ is column r of W.
                row_stride: lw.strides[1],
                col_stride: lw.strides[0],
            };
            let xr = MatRef {
                data: &xs,
                offset: 0,
                row_stride: k,
                col_stride: 1,
            };
            let b = bias.map(|b| super::slice::<T>("linear", b)).transpose()?;
            let v = linear_rows(m, k, n, xr, wt, b.as_deref());
            Ok(tensor(v, Shape::new(&[m, n])))
        })
    }
}

/// Storage offset of batch `bi` (row-major over `batch`) for an operand with `strides`.
fn batch_offset(
    bi: usize,
    batch: &Shape,
    shape: &[usize],
    strides: &[usize],
    base: usize,
) -> usize {
    let nb = batch.rank();
    let extra = nb - (shape.len() - 2);
    let mut off = base;
    let mut rest = bi;
    for d in (0..nb).rev() {
        let i = rest % batch.dims()[d];
        rest /= batch.dims()[d];
        if d >= extra {
            let od = d - extra;
            if shape[od] != 1 {
                off += i * strides[od];
            }
        }
    }
    off
}

/// One `[m, k] @ [k, n]` operand: the whole storage, an offset, and row/column strides.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub offset: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

/// Enough work to make the thread pool worth waking (in multiply-adds).
const PAR_FLOPS: usize = 1 << 18;

/// `out[b] = a[b] @ rhs[b]` for every batch `b`; `out` is contiguous `[batch, m, n]` and the
/// closures give each operand's view for a batch index (broadcast batches reuse a view).
#[allow(clippy::too_many_arguments)]
pub fn batched_matmul<'a, T: Float>(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    lhs: impl Fn(usize) -> MatRef<'a, T> + Sync,
    rhs: impl Fn(usize) -> MatRef<'a, T> + Sync,
) -> Vec<T> {
    if m * n == 0 || k == 0 {
        return super::buffer_cache::filled(batch * m * n, T::zero());
    }
    let mut out = super::buffer_cache::take(batch * m * n);
    // gemm writes every element without reading it (read_dst = false below), so the buffer
    // needs no zero-filling pass first.
    // SAFETY: T is a plain float; the elements are written by gemm before anyone reads them.
    unsafe { out.set_len(batch * m * n) };
    let per = m * n * k;
    let threads = rayon::current_num_threads();
    let one = |b: usize, o: &mut [T], par: Parallelism| {
        let (l, r) = (lhs(b), rhs(b));
        if k == 0 {
            return;
        }
        // SAFETY: the views stay inside their slices (checked by the caller's shape logic) and
        // `o` is exactly m·n long with row stride n.
        unsafe {
            gemm_raw::<T>(m, n, k, o.as_mut_ptr(), n, false, l, r, T::one(), par);
        }
    };
    if batch > 1 && per < PAR_FLOPS * 4 {
        // Many small products: one per thread beats splitting each one.
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(b, o)| one(b, o, Parallelism::None));
    } else if batch == 1 && threads > 1 && per >= PAR_FLOPS && k >= 4 * m.max(n) {
        // A long inner dimension (a weight gradient, `xᵀ · dy` over every token) leaves gemm
        // few output blocks to share between threads, so each thread takes a slice of k
        // instead, and the partial products are summed.
        split_k(&mut out, m, n, k, threads, &lhs(0), &rhs(0));
    } else {
        let par = if per >= PAR_FLOPS && threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        out.chunks_mut(m * n)
            .enumerate()
            .for_each(|(b, o)| one(b, o, par));
    }
    out
}

/// `[m, n] = x @ wt (+ bias on every row)`. Threads take blocks of rows; each block's
/// product is written and gets its bias while it is still in cache.
fn linear_rows<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    x: MatRef<'_, T>,
    wt: MatRef<'_, T>,
    bias: Option<&[T]>,
) -> Vec<T> {
    let Some(bias) = bias else {
        return batched_matmul(1, m, k, n, |_| x, |_| wt);
    };
    if m * n == 0 || k == 0 {
        let mut out: Vec<T> = super::buffer_cache::take(m * n);
        (0..m).for_each(|_| out.extend_from_slice(bias));
        return out;
    }
    let mut out: Vec<T> = super::buffer_cache::take(m * n);
    // SAFETY: every row block below is written by gemm (no accumulation) before it is read.
    unsafe { out.set_len(m * n) };
    // Four blocks per thread balance the load; at least 64 rows keep each gemm efficient.
    let threads = rayon::current_num_threads();
    let block = m.div_ceil(4 * threads).max(64);
    let one = |bi: usize, o: &mut [T]| {
        let rows = o.len() / n;
        let xb = MatRef {
            offset: x.offset + bi * block * x.row_stride,
            ..x
        };
        gemm_into(rows, n, k, o, n, false, xb, wt, T::one());
        for row in o.chunks_mut(n) {
            for (v, &b) in row.iter_mut().zip(bias) {
                *v += b;
            }
        }
    };
    if m * n * k >= PAR_FLOPS && threads > 1 {
        out.par_chunks_mut(block * n)
            .enumerate()
            .for_each(|(bi, o)| one(bi, o));
    } else {
        out.chunks_mut(block * n)
            .enumerate()
            .for_each(|(bi, o)| one(bi, o));
    }
    out
}

/// `out = l @ r` with k cut into one slice per thread: thread 0 writes `out`, the others
/// their own buffers, added in at the end.
fn split_k<T: Float>(
    out: &mut [T],
    m: usize,
    n: usize,
    k: usize,
    parts: usize,
    l: &MatRef<'_, T>,
    r: &MatRef<'_, T>,
) {
    let step = k.div_ceil(parts);
    let slice = |p: usize| {
        let k0 = p * step;
        let len = step.min(k - k0);
        let lp = MatRef {
            offset: l.offset + k0 * l.col_stride,
            ..*l
        };
        let rp = MatRef {
            offset: r.offset + k0 * r.row_stride,
            ..*r
        };
        (len, lp, rp)
    };
    let parts = k.div_ceil(step);
    let mut partials: Vec<Vec<T>> = (1..parts).map(|_| vec![T::zero(); m * n]).collect();
    rayon::scope(|s| {
        for (p, buf) in partials.iter_mut().enumerate() {
            let (len, lp, rp) = slice(p + 1);
            s.spawn(move |_| gemm_into(m, n, len, buf, n, false, lp, rp, T::one()));
        }
        let (len, lp, rp) = slice(0);
        gemm_into(m, n, len, out, n, false, lp, rp, T::one());
    });
    for buf in &partials {
        for (o, &v) in out.iter_mut().zip(buf) {
            *o += v;
        }
    }
}

/// One gemm call: `dst = scale · l @ r`, or `dst += …` with `accumulate`; `dst` has rows
/// `dst_rs` apart.
///
/// # Safety
/// Both views must stay inside their slices and `dst` must hold `m` rows of `n` elements,
/// `dst_rs` apart.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    dst_rs: usize,
    accumulate: bool,
    l: MatRef<T>,
    r: MatRef<T>,
    scale: T,
    par: Parallelism,
) {
    assert!(TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>());
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        l.data.as_ptr().add(l.offset),
        l.col_stride as isize,
        l.row_stride as isize,
        r.data.as_ptr().add(r.offset),
        r.col_stride as isize,
        r.row_stride as isize,
        T::one(),
        scale,
        false,
        false,
        false,
        par,
    );
}

/// `dst = scale · lhs @ rhs` (or `dst += …` with `accumulate`) for one `[m, k] @ [k, n]`
/// product on the calling thread; `dst` holds the `[m, n]` result in rows `dst_rs` apart.
/// For kernels that run many small products in parallel themselves (attention heads).
#[allow(clippy::too_many_arguments)]
pub fn gemm_into<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    scale: T,
) {
    assert!(n <= dst_rs || m <= 1, "gemm_into: destination rows overlap");
    let last = |v: &MatRef<'_, T>, rows: usize, cols: usize| {
        v.offset + rows.saturating_sub(1) * v.row_stride + cols.saturating_sub(1) * v.col_stride
    };
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.iter_mut().for_each(|x| *x = T::zero());
        }
        return;
    }
    assert!(
        last(&lhs, m, k) < lhs.data.len(),
        "gemm_into: lhs view out of range"
    );
    assert!(
        last(&rhs, k, n) < rhs.data.len(),
        "gemm_into: rhs view out of range"
    );
    // SAFETY: both views and the destination's m rows of n (dst_rs apart) were just checked
    // to stay inside their slices.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_rs,
            accumulate,
            lhs,
            rhs,
            scale,
            Parallelism::None,
        );
    }
}
