//! Batched matrix products.

use crate::error::Result;
use crate::tensor::{Shape, Tensor};

pub trait MatmulKernels {
    /// `a @ b` for `a` `[..., m, k]` and `b` `[..., k, n]` (strided views read in place),
    /// batched over `batch`, the broadcast of their leading dims; the result has shape `out`
    /// (`batch + [m, n]`).
    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape, out: &Shape) -> Result<Tensor>;
}
