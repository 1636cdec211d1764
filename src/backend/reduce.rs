//! Reductions over chosen axes, the index of the extreme along one axis, and running sums.

use crate::error::Result;
use crate::tensor::{Shape, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    Sum,
    Max,
    Min,
}

pub trait ReduceKernels {
    /// Reduces `axes` (sorted, distinct) of float `x` into a new tensor of shape `out` (the
    /// input's shape with those axes dropped or kept as 1: the element order is the same).
    fn reduce(&self, op: Reduce, x: &Tensor, axes: &[usize], out: &Shape) -> Result<Tensor>;
    /// The index of the largest (or smallest) element along `axis`, the first on ties, as an
    /// i64 tensor of shape `out`.
    fn arg_reduce(&self, x: &Tensor, axis: usize, largest: bool, out: &Shape) -> Result<Tensor>;
    /// Running sums of float `x` along `axis` (from the last element backwards with
    /// `reverse`, which is the forward's gradient), in a contiguous tensor of `x`'s shape.
    fn cumsum(&self, x: &Tensor, axis: usize, reverse: bool) -> Result<Tensor>;
}
