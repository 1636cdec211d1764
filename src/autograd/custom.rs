//! Recording an op with its own kernels ([`CustomOp`], per-device hooks) on the tape: an
//! adapter that implements [`Op`] by calling the hook for the inputs' device.

use super::op::{apply, Forward, Op};
use crate::backend::custom::{self, CustomOp};
use crate::error::Result;
use crate::tensor::Tensor;

/// Saves the inputs and the output: the backward hooks receive both.
struct Custom<C>(C);

impl<C: CustomOp> Op for Custom<C> {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let y = custom::forward(&self.0, inputs)?;
        let mut saved: Vec<Tensor> = inputs.iter().map(|t| (*t).clone()).collect();
        saved.push(y.clone());
        Ok(Forward::new(y, saved))
    }
    fn backward(
        &self,
        saved: &[Tensor],
        grad: &Tensor,
        needs_grad: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (output, inputs) = saved.split_last().expect("the output is saved");
        let inputs: Vec<&Tensor> = inputs.iter().collect();
        custom::backward(&self.0, &inputs, output, grad, needs_grad)
    }
}

/// Runs `op` on `inputs` with the hooks for their device and, when recording, puts it on the
/// tape, exactly as [`apply`] does for an [`Op`].
pub fn apply_custom(op: impl CustomOp, inputs: &[&Tensor]) -> Result<Tensor> {
    apply(Custom(op), inputs)
}
