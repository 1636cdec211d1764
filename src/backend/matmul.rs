//! Batched matrix products.

use crate::error::Result;
use crate::tensor::{Shape, Tensor};

pub trait MatmulKernels {
    /// `a @ b` for `a` `[..., m, k]` and `b` `[..., k, n]` (strided views read in place),
    /// batched over `batch`, the broadcast of their leading dims; the result has shape `out`
    /// (`batch + [m, n]`).
    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape, out: &Shape) -> Result<Tensor>;

    /// `x Wᵀ + b` for `x` `[rows, in]` (contiguous), `w` `[out, in]` (any strides) and an
    /// optional `b` `[out]`: a `[rows, out]` result.
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor>;
}
