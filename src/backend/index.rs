//! Indexing by i64 tensors: rows picked along an axis (`index_select`), elements picked
//! along an axis (`gather`), their backward passes (which add where an index repeats), and
//! one-hot rows.
//!
//! On the CPU an index out of range is an error naming it. A device cannot raise one
//! mid-kernel, and checking there would cost a trip to the host, so a device's kernels give NaN
//! for it instead. Indices that come from the host are checked there, once, by
//! [`place_indices`], before they travel.

use super::storage::Storage;
use crate::error::{Error, Result};
use crate::tensor::{DType, Shape, Tensor};

/// A tensor seen as `[outer, len, inner]` around the indexed axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AxisSplit {
    pub outer: usize,
    pub len: usize,
    pub inner: usize,
}

impl AxisSplit {
    pub fn of(dims: &[usize], axis: usize) -> Self {
        AxisSplit {
            outer: dims[..axis].iter().product(),
            len: dims[axis],
            inner: dims[axis + 1..].iter().product(),
        }
    }
}

pub trait IndexKernels {
    /// `x` `[outer, len, inner]` → `[outer, q, inner]` (shape `out`): row `i` of each outer
    /// block is row `idx[i]` of `x`; `idx` is 1-D, of `q` entries.
    fn index_select(
        &self,
        x: &Tensor,
        idx: &Tensor,
        split: AxisSplit,
        out: &Shape,
    ) -> Result<Tensor>;
    /// The backward of `index_select`: `g` `[outer, q, inner]` added into zeros of shape
    /// `from` (`[outer, len, inner]`) at the rows `idx` names.
    fn index_add(&self, g: &Tensor, idx: &Tensor, split: AxisSplit, from: &Shape)
        -> Result<Tensor>;
    /// `out[o, i, k] = x[o, idx[o, i, k], k]`, `idx` `[outer, q, inner]`.
    fn gather(
        &self,
        x: &Tensor,
        idx: &Tensor,
        split: AxisSplit,
        q: usize,
        out: &Shape,
    ) -> Result<Tensor>;
    /// The backward of `gather`: each `g[o, i, k]` added into `[o, idx[o, i, k], k]` of zeros
    /// of shape `from`.
    fn scatter_add(
        &self,
        g: &Tensor,
        idx: &Tensor,
        split: AxisSplit,
        q: usize,
        from: &Shape,
    ) -> Result<Tensor>;
    /// f32 one-hot rows `[..., classes]` (shape `out`) of i64 `labels`.
    fn one_hot(&self, labels: &Tensor, classes: usize, out: &Shape) -> Result<Tensor>;
}

/// Indices for an axis of `size` of a tensor on `x`'s device. Indices on the host are
/// checked (an index out of range is an error naming it), negative ones counted from the end
/// as in PyTorch, and moved to `x`'s device; indices already on that device are used as they
/// are (see the module comment).
pub fn place_indices(op: &'static str, x: &Tensor, idx: &Tensor, size: usize) -> Result<Tensor> {
    if idx.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            got: idx.dtype(),
            expected: "i64",
        });
    }
    match idx.storage() {
        Storage::Cpu(_) => {
            let checked = super::read::<i64>(idx)?
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + size as i64 } else { i };
                    if j < 0 || j >= size as i64 {
                        Err(Error::IndexOutOfRange { op, index: i, size })
                    } else {
                        Ok(j)
                    }
                })
                .collect::<Result<Vec<i64>>>()?;
            let host =
                super::host_tensor(super::storage::CpuData::I64(checked), idx.shape().clone());
            super::transfer(&host, x.device())
        }
        Storage::Cube(_) if idx.device() == x.device() => Ok(idx.clone()),
        Storage::Cube(_) => Err(Error::DeviceMismatch {
            op,
            lhs: x.device(),
            rhs: idx.device(),
        }),
    }
}
