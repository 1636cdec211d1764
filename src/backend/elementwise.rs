//! Element-wise primitives: a unary function from the table in [`super::unary`] and its
//! derivative, arithmetic and comparisons under NumPy broadcasting, and `where`.

use super::unary::Unary;
use crate::error::Result;
use crate::tensor::{Shape, Tensor};

/// Arithmetic between two tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
}

/// Comparisons; they produce bool tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

pub trait ElementwiseKernels {
    /// `op(x)`, element by element (float `x`, any layout).
    fn unary(&self, op: Unary, x: &Tensor) -> Result<Tensor>;
    /// `g · op'(·)`, written from `saved`: the input or the output of the forward, as
    /// `op.reads()` says, or nothing.
    fn unary_backward(&self, op: Unary, g: &Tensor, saved: Option<&Tensor>) -> Result<Tensor>;
    /// `a ∘ b`, both read through their layouts as if broadcast to `out`.
    fn binary(&self, op: Binary, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor>;
    /// `a ⋈ b` as a bool tensor of shape `out`; any dtype (the same for both).
    fn compare(&self, op: Compare, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor>;
    /// `cond ? a : b`, all three broadcast to `out` (`cond` bool, `a` and `b` float).
    fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor>;
}
