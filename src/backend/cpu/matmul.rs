//! Matrix multiplication through the `gemm` crate, which picks AVX2/AVX-512 kernels at run
//! time and blocks for the caches. Strided operands (a transposed view) are passed as strides,
//! not copied.

use crate::tensor::Float;
use gemm::Parallelism;
use rayon::prelude::*;
use std::any::TypeId;

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
    let mut out = super::pool::take(batch * m * n);
    out.resize(batch * m * n, T::zero());
    if m * n == 0 {
        return out;
    }
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
            gemm_dispatch::<T>(m, n, k, o.as_mut_ptr(), l, r, par);
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

unsafe fn gemm_dispatch<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    l: MatRef<T>,
    r: MatRef<T>,
    par: Parallelism,
) {
    assert!(TypeId::of::<T>() == TypeId::of::<f32>() || TypeId::of::<T>() == TypeId::of::<f64>());
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        n as isize,
        false,
        l.data.as_ptr().add(l.offset),
        l.col_stride as isize,
        l.row_stride as isize,
        r.data.as_ptr().add(r.offset),
        r.col_stride as isize,
        r.row_stride as isize,
        T::zero(),
        T::one(),
        false,
        false,
        false,
        par,
    );
}
