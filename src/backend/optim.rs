//! Fused optimizer updates: one pass over a parameter, its gradient and its state, in place.
//! The formulas are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`, single-tensor path). The
//! hyper-parameter types are the kernel crate's, which both backends read.

pub use cubegrad_ops::optim::{AdamHyper, SgdHyper};

use crate::error::Result;
use crate::tensor::Tensor;

pub trait OptimKernels {
    /// One SGD step on `p` and its momentum buffer `buf` (when momentum is on), in place;
    /// `first`: the buffer starts as the gradient.
    fn sgd_step(
        &self,
        p: &mut Tensor,
        g: &Tensor,
        buf: Option<&mut Tensor>,
        first: bool,
        h: SgdHyper,
    ) -> Result<()>;
    /// One Adam/AdamW step at step number `t` (1-based) on `p`, `m` and `v`, in place.
    fn adam_step(
        &self,
        p: &mut Tensor,
        g: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        t: u64,
        h: AdamHyper,
    ) -> Result<()>;
}
