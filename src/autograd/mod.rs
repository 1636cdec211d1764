//! Reverse-mode automatic differentiation: the tape, the op trait, the gradient store, and
//! the finite-difference gradient check.

mod custom;
mod gradcheck;
mod grads;
pub(crate) mod node_ref;
mod op;
mod tape;

pub use custom::apply_custom;
pub use gradcheck::{gradcheck, GradcheckOptions, GradcheckReport};
pub use grads::Gradients;
pub use node_ref::NodeRef;
pub use op::{apply, Forward, Op};
pub use tape::{clear_tape, enable_grad, is_recording, no_grad, tape_len};

/// The per-device hooks of an op with kernels of its own, and what they receive.
pub use crate::backend::custom::{CubeContext, CustomOp};

use crate::error::{OrPanic, Result};
use crate::tensor::{GradMeta, Tensor};

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
    /// Keep this intermediate tensor's gradient in the store that `backward` returns (leaves
    /// that require grad always get one).
    pub fn retain_grad(self) -> Tensor {
        if let GradMeta::Node(r) = self.grad_meta() {
            tape::retain_output_grad(*r);
        }
        self
    }
}
