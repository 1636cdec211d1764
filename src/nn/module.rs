//! The `Module` trait: named parameters, buffers, train/eval mode, save/load.
//!
//! Names follow PyTorch's `state_dict`: a parameter `weight` of a child `fc1` is `fc1.weight`,
//! of the third layer in a list `layers.2.weight`. A module lists its own tensors and calls
//! its children with `child_name(prefix, "fc1")`; there is no derive macro to learn.

use crate::error::Result;
use crate::tensor::{Device, Tensor};
use std::path::Path;

/// `prefix.name`, or just `name` at the top.
pub fn child_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Calls `f` with each tensor that is present, named under `prefix`: the usual body of
/// `visit_params` for a layer with a weight and an optional bias.
pub fn visit_named(
    prefix: &str,
    named: &[(&str, Option<&Tensor>)],
    f: &mut dyn FnMut(&str, &Tensor),
) {
    for (name, t) in named {
        if let Some(t) = t {
            f(&child_name(prefix, name), t);
        }
    }
}

/// [`visit_named`] with mutable access, for `visit_params_mut`.
pub fn visit_named_mut<const N: usize>(
    prefix: &str,
    named: [(&str, Option<&mut Tensor>); N],
    f: &mut dyn FnMut(&str, &mut Tensor),
) {
    for (name, t) in named {
        if let Some(t) = t {
            f(&child_name(prefix, name), t);
        }
    }
}

pub trait Module {
    /// Calls `f` with every trainable parameter and its dotted name under `prefix`.
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor));
    /// The same walk with mutable access (optimizers update parameters through it).
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor));
    /// Non-trainable state that is saved with the weights (running statistics). None by default.
    fn visit_buffers(&self, _prefix: &str, _f: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_buffers_mut(&mut self, _prefix: &str, _f: &mut dyn FnMut(&str, &mut Tensor)) {}
    /// Switches training behaviour (dropout, batch statistics). Modules with children pass it on.
    fn set_training(&mut self, _training: bool) {}

    /// `(name, tensor)` for every parameter, in visiting order.
    fn parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit_params("", &mut |n, t| out.push((n.to_string(), t.clone())));
        out
    }
    /// Parameters and buffers: what a checkpoint holds (PyTorch's `state_dict()`).
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = self.parameters();
        self.visit_buffers("", &mut |n, t| out.push((n.to_string(), t.clone())));
        out
    }
    fn visit_state_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.visit_params_mut(prefix, f);
        self.visit_buffers_mut(prefix, f);
    }
    /// Moves every parameter and buffer to `device` (PyTorch's `module.to(device)`);
    /// parameters stay leaves that require grad. Move the model before creating its
    /// optimizer's state, or let the optimizer move that state on its next step.
    fn try_to_device(&mut self, device: Device) -> Result<()> {
        let mut result = Ok(());
        self.visit_state_mut("", &mut |_, t| {
            if result.is_ok() {
                // Detached: a moved parameter is a new leaf, not a node of the old one.
                match t.detach().try_to_device(device) {
                    Ok(moved) => *t = moved.set_requires_grad(t.requires_grad()),
                    Err(e) => result = Err(e),
                }
            }
        });
        result
    }
    /// `try_to_device`, panicking at the caller with the reason.
    #[track_caller]
    fn to_device(&mut self, device: Device)
    where
        Self: Sized,
    {
        use crate::error::OrPanic;
        self.try_to_device(device).or_panic()
    }
    /// Number of trainable scalars.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |_, t| n += t.numel());
        n
    }
    fn train(&mut self) {
        self.set_training(true)
    }
    fn eval(&mut self) {
        self.set_training(false)
    }
    /// Writes the state dict to a safetensors file (atomically).
    fn save(&self, path: impl AsRef<Path>) -> Result<()>
    where
        Self: Sized,
    {
        crate::io::save_module(self, path)
    }
    /// Loads a state dict saved by `save` or by PyTorch; strict about names and shapes.
    fn load(&mut self, path: impl AsRef<Path>) -> Result<()>
    where
        Self: Sized,
    {
        crate::io::load_module(self, path)
    }
}
