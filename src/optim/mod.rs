//! Optimizers, gradient clipping and learning-rate schedules.
//!
//! An optimizer keeps its per-parameter state under the parameter's name, so the state can be
//! saved in a checkpoint beside the weights and restored exactly (`state` / `load_state`).

mod adam;
mod clip;
mod schedule;
mod sgd;

pub use adam::{Adam, AdamConfig};
pub use clip::{clip_grad_norm, first_nonfinite_grad};
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

/// Visits each parameter that has a gradient, with its position among them, checking that
/// the two agree, and stops at the first error.
pub(crate) fn for_each_param_with_grad(
    op: &'static str,
    model: &mut dyn Module,
    grads: &Gradients,
    mut f: impl FnMut(usize, &str, &mut Tensor, &Tensor) -> Result<()>,
) -> Result<()> {
    let mut result = Ok(());
    let mut i = 0;
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
        result = f(i, name, p, g);
        i += 1;
    });
    result
}

/// Per-parameter optimizer state, kept in the order the model visits its parameters: a step
/// finds each parameter's slot at its position (one name comparison), with no hashing. A slot
/// is looked up by name only when the position does not match: on the first step, after
/// `load_state`, or when another set of parameters has gradients.
pub(crate) struct Slots<S> {
    entries: Vec<(String, S)>,
}

impl<S> Default for Slots<S> {
    fn default() -> Self {
        Slots {
            entries: Vec::new(),
        }
    }
}

impl<S> Slots<S> {
    /// The slot of parameter `name`, visited `i`-th in this step, created by `make` if new.
    pub(crate) fn get_or_insert(
        &mut self,
        i: usize,
        name: &str,
        make: impl FnOnce() -> S,
    ) -> &mut S {
        let at = match self.entries.get(i) {
            Some((n, _)) if n == name => i,
            _ => match self.entries.iter().position(|(n, _)| n == name) {
                Some(j) => {
                    // Move it to where this step visits it, so the next step finds it there.
                    let k = i.min(self.entries.len() - 1);
                    self.entries.swap(j, k);
                    k
                }
                None => {
                    self.entries.push((name.to_string(), make()));
                    self.entries.len() - 1
                }
            },
        };
        &mut self.entries[at].1
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &S)> {
        self.entries.iter().map(|(n, s)| (n.as_str(), s))
    }
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }
    pub(crate) fn push(&mut self, name: String, slot: S) {
        self.entries.push((name, slot));
    }
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
