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
