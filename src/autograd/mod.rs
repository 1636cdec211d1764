//! Reverse-mode automatic differentiation: the tape, the op trait, the gradient store, and
//! the finite-difference gradient check.

mod gradcheck;
mod grads;
mod op;
mod tape;

pub use gradcheck::{gradcheck, GradcheckOptions, GradcheckReport};
pub use grads::Gradients;
pub use op::{apply, Forward, Op};
pub(crate) use tape::retain_output_grad;
pub use tape::{clear_tape, is_recording, no_grad, tape_len, NodeRef};

use crate::error::{OrPanic, Result};
use crate::tensor::Tensor;

impl Tensor {
    /// Gradients of this tensor with respect to every leaf that requires grad. A non-scalar
    /// tensor is treated as `self.sum()`, i.e. seeded with ones.
    #[track_caller]
    pub fn backward(&self) -> Gradients {
        self.try_backward().or_panic()
    }
    pub fn try_backward(&self) -> Result<Gradients> {
        tape::backward(self, Tensor::ones_like(self))
    }
    /// Backward with an explicit cotangent (vector–Jacobian product with `seed`).
    #[track_caller]
    pub fn backward_with(&self, seed: &Tensor) -> Gradients {
        self.try_backward_with(seed).or_panic()
    }
    pub fn try_backward_with(&self, seed: &Tensor) -> Result<Gradients> {
        tape::backward(self, seed.detach())
    }
}
