//! The one public op trait. Every built-in op implements it, and so can users: a custom layer
//! is a struct with a `forward` and a `backward`, recorded on the tape by [`apply`].

use super::tape;
use crate::error::Result;
use crate::profile::{self, Phase};
use crate::tensor::Tensor;

/// What a forward pass produces: the output, and the tensors its backward will need.
/// Save as little as the backward allows (an output instead of an input, a shape instead of
/// a tensor): saved tensors stay alive until backward.
pub struct Forward {
    pub output: Tensor,
    pub saved: Vec<Tensor>,
}

impl Forward {
    pub fn new(output: Tensor, saved: Vec<Tensor>) -> Self {
        Forward { output, saved }
    }
}

/// A differentiable operation.
///
/// `forward` computes the output with other tensor ops or kernels; nothing it does is recorded.
/// `backward` receives what forward saved and the gradient of the loss with respect to the
/// output, and returns one entry per input: `Some(gradient)` with the input's shape, or `None`
/// where the input needs no gradient (`needs_grad[i]` is false, or the input is not
/// differentiable, like an index). Backward also runs unrecorded: gradients are first-order.
pub trait Op: 'static {
    fn name(&self) -> &'static str;
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward>;
    fn backward(
        &self,
        saved: &[Tensor],
        grad_output: &Tensor,
        needs_grad: &[bool],
    ) -> Result<Vec<Option<Tensor>>>;
}

impl<O: Op> tape::Backward for O {
    fn name(&self) -> &'static str {
        Op::name(self)
    }
    fn backward(
        &self,
        saved: &[Tensor],
        grad_output: &Tensor,
        needs_grad: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Op::backward(self, saved, grad_output, needs_grad)
    }
}

/// Runs `op` on `inputs` and, when recording and some input requires grad, puts it on the tape.
pub fn apply(op: impl Op, inputs: &[&Tensor]) -> Result<Tensor> {
    let track = tape::is_recording() && inputs.iter().any(|t| t.requires_grad());
    let Forward { mut output, saved } = profile::timed(op.name(), Phase::Forward, || {
        tape::no_grad(|| op.forward(inputs))
    })?;
    if !track {
        return Ok(output);
    }
    // A forward may hand back an input as is (an identity op); the output still needs an
    // identity of its own, since gradients are stored by tensor id.
    if inputs.iter().any(|t| t.id() == output.id()) {
        output = output.view_with(output.layout().clone());
    }
    Ok(tape::record(Box::new(op), inputs, saved, output))
}
