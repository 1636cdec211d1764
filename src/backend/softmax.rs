//! Softmax and log-softmax of rows (the last axis), with an optional keep-mask.

use crate::error::Result;
use crate::tensor::Tensor;

pub trait SoftmaxKernels {
    /// Softmax (or log-softmax with `log`) of each row of `x` along its last axis; where the
    /// bool `mask` (of `x`'s shape) is false the weight is 0, and a row with nothing kept is
    /// all zeros.
    fn softmax(&self, x: &Tensor, mask: Option<&Tensor>, log: bool) -> Result<Tensor>;
    /// The gradient of the rows from the output `y` and the output gradient `g`:
    /// `y · (g − Σ g·y)`, or `g − exp(y) · Σ g` for log-softmax.
    fn softmax_backward(&self, y: &Tensor, g: &Tensor, log: bool) -> Result<Tensor>;
}
