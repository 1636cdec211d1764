//! Indexing on the CPU: index_select, gather, their scatter-add backward passes, and one-hot
//! rows. Indices reach these functions already checked and made non-negative
//! (`backend::index::place_indices`).

use super::{buffer_cache, data, i64s, tensor, with_float, wrap, Cpu};
use crate::backend::index::{AxisSplit, IndexKernels};
use crate::backend::storage::{contiguous_cow, CpuData};
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

/// Checked indices as positions (an index out of range is still an error here, so a caller
/// that skipped `place_indices` gets one rather than a panic).
fn positions(op: &'static str, idx: &Tensor, size: usize) -> Result<Vec<usize>> {
    i64s(op, idx)?
        .iter()
        .map(|&i| {
            if i < 0 || i >= size as i64 {
                Err(Error::IndexOutOfRange { op, index: i, size })
            } else {
                Ok(i as usize)
            }
        })
        .collect()
}

impl IndexKernels for Cpu {
    fn index_select(&self, x: &Tensor, idx: &Tensor, s: AxisSplit, out: &Shape) -> Result<Tensor> {
        let idx = positions("index_select", idx, s.len)?;
        let (l, (o, r, i)) = (x.layout(), (s.outer, s.len, s.inner));
        let picked = match data("index_select", x)? {
            CpuData::F32(v) => CpuData::F32(index_select(&contiguous_cow(v, l), o, r, i, &idx)),
            CpuData::F64(v) => CpuData::F64(index_select(&contiguous_cow(v, l), o, r, i, &idx)),
            CpuData::I64(v) => CpuData::I64(index_select(&contiguous_cow(v, l), o, r, i, &idx)),
            CpuData::Bool(v) => CpuData::Bool(index_select(&contiguous_cow(v, l), o, r, i, &idx)),
        };
        Ok(wrap(picked, out.clone()))
    }

    fn index_add(&self, g: &Tensor, idx: &Tensor, s: AxisSplit, from: &Shape) -> Result<Tensor> {
        let idx = positions("index_select", idx, s.len)?;
        with_float!("index_select", g.dtype(), |T| {
            let gs = super::slice::<T>("index_select", g)?;
            Ok(tensor(
                index_add(&gs, s.outer, s.len, s.inner, &idx),
                from.clone(),
            ))
        })
    }

    fn gather(
        &self,
        x: &Tensor,
        idx: &Tensor,
        s: AxisSplit,
        q: usize,
        out: &Shape,
    ) -> Result<Tensor> {
        let idx = positions("gather", idx, s.len)?;
        with_float!("gather", x.dtype(), |T| {
            let xs = super::slice::<T>("gather", x)?;
            Ok(tensor(
                gather(&xs, s.outer, s.len, s.inner, &idx, q),
                out.clone(),
            ))
        })
    }

    fn scatter_add(
        &self,
        g: &Tensor,
        idx: &Tensor,
        s: AxisSplit,
        q: usize,
        from: &Shape,
    ) -> Result<Tensor> {
        let idx = positions("gather", idx, s.len)?;
        with_float!("gather", g.dtype(), |T| {
            let gs = super::slice::<T>("gather", g)?;
            Ok(tensor(
                scatter_add(&gs, s.outer, s.len, s.inner, &idx, q),
                from.clone(),
            ))
        })
    }

    fn one_hot(&self, labels: &Tensor, classes: usize, out: &Shape) -> Result<Tensor> {
        let idx = positions("one_hot", labels, classes)?;
        let mut v = vec![0f32; idx.len() * classes];
        for (row, &c) in idx.iter().enumerate() {
            v[row * classes + c] = 1.0;
        }
        Ok(tensor(v, out.clone()))
    }
}

/// `out[o, i, :] = x[o, idx[i], :]` for `x` of shape `[outer, r, inner]`.
pub fn index_select<T: Copy + 'static>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = buffer_cache::take(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let s = (o * r + i) * inner;
            out.extend_from_slice(&x[s..s + inner]);
        }
    }
    out
}

/// Backward of `index_select`: `out[o, idx[i], :] += g[o, i, :]`.
pub fn index_add<T: Copy + std::ops::AddAssign + Default + 'static>(
    g: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = buffer_cache::filled(outer * r * inner, T::default());
    for o in 0..outer {
        for (i, &j) in idx.iter().enumerate() {
            let src = &g[(o * idx.len() + i) * inner..(o * idx.len() + i + 1) * inner];
            let dst = &mut out[(o * r + j) * inner..(o * r + j + 1) * inner];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        }
    }
    out
}

/// `out[o, i, j] = x[o, idx[o, i, j], j]`: PyTorch's `gather` with `x` seen as
/// `[outer, r, inner]` and `idx` as `[outer, q, inner]`.
pub fn gather<T: Copy + 'static>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
    q: usize,
) -> Vec<T> {
    let mut out = buffer_cache::take(outer * q * inner);
    for o in 0..outer {
        for i in 0..q {
            for j in 0..inner {
                out.push(x[(o * r + idx[(o * q + i) * inner + j]) * inner + j]);
            }
        }
    }
    out
}

/// Backward of `gather`: `out[o, idx[o, i, j], j] += g[o, i, j]`.
pub fn scatter_add<T: Copy + std::ops::AddAssign + Default + 'static>(
    g: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
    q: usize,
) -> Vec<T> {
    let mut out = buffer_cache::filled(outer * r * inner, T::default());
    for o in 0..outer {
        for i in 0..q {
            for j in 0..inner {
                let p = (o * q + i) * inner + j;
                out[(o * r + idx[p]) * inner + j] += g[p];
            }
        }
    }
    out
}
