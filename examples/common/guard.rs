//! What a training loop does when its numbers stop being numbers: a loss or a gradient norm
//! that is NaN or infinite (a learning rate far too high, an overflow). The loop checks each
//! step before the optimizer applies it; by default the run stops there, before anything is
//! saved, so the last checkpoint (written at the last evaluation, when everything was finite)
//! is kept and `--resume` continues from it. With `--skip-nonfinite` the step is skipped
//! instead (no update), and the skipped steps are counted in the metrics.

use super::output::AnyResult;
use super::resume::TrainState;
use cubegrad::autograd::Gradients;
use cubegrad::nn::Module;
use cubegrad::optim::first_nonfinite_grad;

/// What the loop does with the step it just checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Finite: let the optimizer apply it.
    Step,
    /// Not finite, and the run skips such steps: no update.
    Skip,
}

pub struct NonFiniteGuard {
    /// `--skip-nonfinite`: skip a non-finite step instead of stopping.
    pub skip: bool,
}

impl NonFiniteGuard {
    pub fn new(skip: bool) -> Self {
        NonFiniteGuard { skip }
    }

    /// Checks a step (`at` names it: `step 12`, `epoch 2, batch 17`) from its `loss` and
    /// gradient norm (both already read by the loop) before the optimizer applies it. A non-finite step is counted in
    /// `state.skipped` and skipped with `--skip-nonfinite`; otherwise it ends the run with one
    /// line naming the step, the first parameter whose gradient is not finite, and the
    /// checkpoint that is kept.
    pub fn check(
        &self,
        at: &str,
        loss: f64,
        grad_norm: f64,
        model: &dyn Module,
        grads: &Gradients,
        state: &mut TrainState,
    ) -> AnyResult<Verdict> {
        if loss.is_finite() && grad_norm.is_finite() {
            return Ok(Verdict::Step);
        }
        if self.skip {
            state.skipped += 1;
            return Ok(Verdict::Skip);
        }
        let culprit = if grad_norm.is_finite() {
            String::new()
        } else {
            match first_nonfinite_grad(model, grads) {
                Some(name) => format!(", first in the gradient of {name}"),
                None => String::new(),
            }
        };
        let next = match state.saved {
            Some(s) => format!(
                "{} ({} {s}) is kept: lower --lr and continue with --resume",
                state.path().display(),
                state.counter()
            ),
            None => "no checkpoint was written yet: lower --lr and start again".to_string(),
        };
        Err(format!(
            "{at}: the loss is {loss} and the gradient norm {grad_norm}{culprit}; \
             training stopped without saving; {next}, or pass --skip-nonfinite to skip such steps"
        )
        .into())
    }
}
