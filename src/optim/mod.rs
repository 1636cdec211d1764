//! Optimizers, gradient clipping and learning-rate schedules.
//!
//! An optimizer keeps its per-parameter state under the parameter's name, so the state can be
//! saved in a checkpoint beside the weights and restored exactly (`state` / `load_state`).

mod adam;
mod clip;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use clip::clip_grad_norm;
pub use schedule::{ConstantLr, LrSchedule, NoamSchedule, WarmupCosine};
pub use sgd::{Sgd, SgdConfig};

use crate::autograd::Gradients;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// Everything an optimizer needs to continue exactly where it stopped.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    pub kind: String,
    pub hyper: BTreeMap<String, f64>,
    /// Per-parameter tensors named `"{param}.{slot}"` (for example `fc1.weight.exp_avg`).
    pub tensors: Vec<(String, Tensor)>,
}

impl OptimizerState {
    /// A saved hyper-parameter, or an error naming the optimizer and the missing key.
    pub fn hyper_value(&self, key: &str) -> Result<f64> {
        self.hyper.get(key).copied().ok_or_else(|| {
            Error::invalid("load_state", format!("{} state lacks {key:?}", self.kind))
        })
    }
}

pub trait Optimizer {
    /// Updates every parameter of `model` that has a gradient in `grads`, in place.
    fn step(&mut self, model: &mut dyn Module, grads: &Gradients) -> Result<()>;
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    fn state(&self) -> OptimizerState;
    fn load_state(&mut self, state: &OptimizerState) -> Result<()>;
}

/// Visits each parameter that has a gradient, checking that the two agree, and stops at the
/// first error.
pub(crate) fn for_each_param_with_grad(
    op: &'static str,
    model: &mut dyn Module,
    grads: &Gradients,
    mut f: impl FnMut(&str, &mut Tensor, &Tensor) -> Result<()>,
) -> Result<()> {
    let mut result = Ok(());
    model.visit_params_mut("", &mut |name, p| {
        if result.is_err() {
            return;
        }
        let Some(g) = grads.get(p) else { return };
        if g.shape() != p.shape() || g.dtype() != p.dtype() {
            result = Err(Error::invalid(
                op,
                format!(
                    "gradient of {name:?} is {} {} but the parameter is {} {}",
                    g.shape(),
                    g.dtype(),
                    p.shape(),
                    p.dtype()
                ),
            ));
            return;
        }
        if g.device() != p.device() {
            result = Err(Error::DeviceMismatch {
                op,
                lhs: p.device(),
                rhs: g.device(),
            });
            return;
        }
        result = f(name, p, g);
    });
    result
}

pub(crate) fn expect_kind(state: &OptimizerState, kind: &str) -> Result<()> {
    if state.kind != kind {
        return Err(Error::invalid(
            "load_state",
            format!("the saved state is for {:?}, not {kind:?}", state.kind),
        ));
    }
    Ok(())
}
