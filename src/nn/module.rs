//! The `Module` trait: named parameters and buffers, train/eval mode, save/load.
//!
//! Names follow PyTorch's `state_dict`: a parameter `weight` of a child `fc1` is `fc1.weight`,
//! of the third layer in a list `layers.2.weight`. A module lists its tensors and children
//! once, with [`module_tensors!`](crate::module_tensors):
//!
//! ```
//! use cubegrad::nn::{Linear, Module};
//! use cubegrad::Tensor;
//!
//! struct Mlp {
//!     fc1: Linear,
//!     fc2: Linear,
//!     scale: Tensor,
//! }
//!
//! impl Module for Mlp {
//!     cubegrad::module_tensors! {
//!         child "fc1" fc1;
//!         child "fc2" fc2;
//!         param "scale" scale;
//!     }
//! }
//!
//! let mlp = Mlp { fc1: Linear::new(4, 8, true), fc2: Linear::new(8, 2, true), scale: Tensor::ones([1]).with_grad() };
//! let names: Vec<String> = mlp.parameters().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias", "scale"]);
//! ```
//!
//! The macro writes the two walks every module needs from that one list: [`Module::visit`]
//! reads the tensors (checkpoints, gradient clipping, counting), [`Module::visit_mut`] updates
//! them (optimizers, loading, moving to a device) and also reaches every child module
//! (switching train/eval mode). There is no derive to learn: the list is the definition.

use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Tensor};
use std::path::Path;

/// `prefix.name`, or just `name` at the top (and `prefix` itself for an empty `name`).
pub fn child_name(prefix: &str, name: &str) -> String {
    match (prefix.is_empty(), name.is_empty()) {
        (true, _) => name.to_string(),
        (false, true) => prefix.to_string(),
        (false, false) => format!("{prefix}.{name}"),
    }
}

/// What a tensor is to a module: a trainable parameter, or a buffer that is saved with the
/// weights but not trained (running statistics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Param,
    Buffer,
}

/// A tensor field, or an optional one (an absent bias is simply not visited).
pub trait TensorField {
    fn get(&self) -> Option<&Tensor>;
    fn get_mut(&mut self) -> Option<&mut Tensor>;
}
impl TensorField for Tensor {
    fn get(&self) -> Option<&Tensor> {
        Some(self)
    }
    fn get_mut(&mut self) -> Option<&mut Tensor> {
        Some(self)
    }
}
impl TensorField for Option<Tensor> {
    fn get(&self) -> Option<&Tensor> {
        self.as_ref()
    }
    fn get_mut(&mut self) -> Option<&mut Tensor> {
        self.as_mut()
    }
}

/// Names: the dotted path down to the current module, and a suffix added to its own tensors'
/// names (`_l0` for the first layer of a recurrent stack, as PyTorch names them).
#[derive(Clone, Default)]
struct Names {
    prefix: String,
    suffix: String,
}

impl Names {
    fn leaf(&self, name: &str) -> String {
        format!("{}{}", child_name(&self.prefix, name), self.suffix)
    }
    fn child(&self, name: &str) -> Names {
        Names {
            prefix: child_name(&self.prefix, name),
            suffix: String::new(),
        }
    }
}

/// Reads a module's tensors: each with its full name and its role.
pub struct Visit<'a> {
    path: Names,
    f: &'a mut dyn FnMut(&str, Role, &Tensor),
}

impl<'a> Visit<'a> {
    pub fn new(prefix: &str, f: &'a mut dyn FnMut(&str, Role, &Tensor)) -> Self {
        Visit {
            path: Names {
                prefix: prefix.to_string(),
                suffix: String::new(),
            },
            f,
        }
    }
    pub fn tensor(&mut self, name: &str, role: Role, t: &impl TensorField) {
        if let Some(t) = t.get() {
            (self.f)(&self.path.leaf(name), role, t);
        }
    }
    /// A child module's tensors, under `name` (an empty name keeps this module's prefix).
    pub fn child(&mut self, name: &str, m: &dyn Module) {
        self.nested(self.path.child(name), m);
    }
    /// A child module whose tensors' names end with `suffix`.
    pub fn suffixed(&mut self, suffix: &str, m: &dyn Module) {
        let mut path = self.path.clone();
        path.suffix = suffix.to_string();
        self.nested(path, m);
    }
    fn nested(&mut self, path: Names, m: &dyn Module) {
        let saved = std::mem::replace(&mut self.path, path);
        m.visit(self);
        self.path = saved;
    }
}

/// What a mutable walk calls for each tensor.
type TensorFn<'a> = &'a mut dyn FnMut(&str, Role, &mut Tensor);
/// What a mutable walk calls for each module below the top.
type ModuleFn<'a> = &'a mut dyn FnMut(&mut dyn Module);

/// Updates a module's tensors, and reaches every module below it.
pub struct VisitMut<'a> {
    path: Names,
    tensors: Option<TensorFn<'a>>,
    modules: Option<ModuleFn<'a>>,
}

impl<'a> VisitMut<'a> {
    /// A walk over the tensors.
    pub fn new(prefix: &str, f: &'a mut dyn FnMut(&str, Role, &mut Tensor)) -> Self {
        VisitMut {
            path: Names {
                prefix: prefix.to_string(),
                suffix: String::new(),
            },
            tensors: Some(f),
            modules: None,
        }
    }
    /// A walk over the child modules, at every depth (the top one is not included).
    pub fn modules(f: &'a mut dyn FnMut(&mut dyn Module)) -> Self {
        VisitMut {
            path: Names::default(),
            tensors: None,
            modules: Some(f),
        }
    }
    pub fn tensor(&mut self, name: &str, role: Role, t: &mut impl TensorField) {
        if let (Some(f), Some(t)) = (self.tensors.as_mut(), t.get_mut()) {
            f(&self.path.leaf(name), role, t);
        }
    }
    pub fn child(&mut self, name: &str, m: &mut dyn Module) {
        self.nested(self.path.child(name), m);
    }
    pub fn suffixed(&mut self, suffix: &str, m: &mut dyn Module) {
        let mut path = self.path.clone();
        path.suffix = suffix.to_string();
        self.nested(path, m);
    }
    fn nested(&mut self, path: Names, m: &mut dyn Module) {
        if let Some(f) = self.modules.as_mut() {
            f(&mut *m);
        }
        let saved = std::mem::replace(&mut self.path, path);
        m.visit_mut(self);
        self.path = saved;
    }
}

/// Writes [`Module::visit`] and [`Module::visit_mut`] from one list of a module's tensors and
/// children, one line each, in `state_dict` order:
///
/// | line | field | names |
/// | --- | --- | --- |
/// | `param "weight" weight;` | `Tensor` or `Option<Tensor>` | `weight` |
/// | `buffer "running_mean" running_mean;` | the same, saved but not trained | `running_mean` |
/// | `child "fc1" fc1;` | a module | `fc1.*` |
/// | `optional "pool" pool;` | `Option` of a module | `pool.*` when present |
/// | `list "layers" layers;` | `Vec` of modules | `layers.0.*`, `layers.1.*`, … |
/// | `indexed "_l" layers;` | `Vec` of modules | their tensors' names + `_l0`, `_l1`, … (PyTorch's RNNs) |
/// | `flatten ffn;` | a module | its names, at this module's level |
#[macro_export]
macro_rules! module_tensors {
    ($($kind:ident $($name:literal)? $field:ident;)*) => {
        fn visit(&self, v: &mut $crate::nn::Visit<'_>) {
            let _ = &v;
            $($crate::module_tensors!(@read v, self, $kind $($name)? $field);)*
        }
        fn visit_mut(&mut self, v: &mut $crate::nn::VisitMut<'_>) {
            let _ = &v;
            $($crate::module_tensors!(@write v, self, $kind $($name)? $field);)*
        }
    };
    (@read $v:ident, $s:ident, param $name:literal $f:ident) => {
        $v.tensor($name, $crate::nn::Role::Param, &$s.$f)
    };
    (@write $v:ident, $s:ident, param $name:literal $f:ident) => {
        $v.tensor($name, $crate::nn::Role::Param, &mut $s.$f)
    };
    (@read $v:ident, $s:ident, buffer $name:literal $f:ident) => {
        $v.tensor($name, $crate::nn::Role::Buffer, &$s.$f)
    };
    (@write $v:ident, $s:ident, buffer $name:literal $f:ident) => {
        $v.tensor($name, $crate::nn::Role::Buffer, &mut $s.$f)
    };
    (@read $v:ident, $s:ident, child $name:literal $f:ident) => {
        $v.child($name, &$s.$f)
    };
    (@write $v:ident, $s:ident, child $name:literal $f:ident) => {
        $v.child($name, &mut $s.$f)
    };
    (@read $v:ident, $s:ident, optional $name:literal $f:ident) => {
        if let Some(m) = &$s.$f {
            $v.child($name, m)
        }
    };
    (@write $v:ident, $s:ident, optional $name:literal $f:ident) => {
        if let Some(m) = &mut $s.$f {
            $v.child($name, m)
        }
    };
    (@read $v:ident, $s:ident, list $name:literal $f:ident) => {
        for (i, m) in $s.$f.iter().enumerate() {
            $v.child(&format!("{}.{i}", $name), m)
        }
    };
    (@write $v:ident, $s:ident, list $name:literal $f:ident) => {
        for (i, m) in $s.$f.iter_mut().enumerate() {
            $v.child(&format!("{}.{i}", $name), m)
        }
    };
    (@read $v:ident, $s:ident, indexed $suffix:literal $f:ident) => {
        for (i, m) in $s.$f.iter().enumerate() {
            $v.suffixed(&format!("{}{i}", $suffix), m)
        }
    };
    (@write $v:ident, $s:ident, indexed $suffix:literal $f:ident) => {
        for (i, m) in $s.$f.iter_mut().enumerate() {
            $v.suffixed(&format!("{}{i}", $suffix), m)
        }
    };
    (@read $v:ident, $s:ident, flatten $f:ident) => {
        $v.child("", &$s.$f)
    };
    (@write $v:ident, $s:ident, flatten $f:ident) => {
        $v.child("", &mut $s.$f)
    };
}

pub trait Module {
    /// Calls the visitor with every tensor of the module and of its children, in
    /// `state_dict` order. Written by [`module_tensors!`](crate::module_tensors).
    fn visit(&self, v: &mut Visit<'_>);
    /// The same walk with mutable access; it also reaches every child module.
    fn visit_mut(&mut self, v: &mut VisitMut<'_>);
    /// Switches this module's own training behaviour (dropout, batch statistics);
    /// [`Module::train`] and [`Module::eval`] call it on every module of the tree.
    fn set_training(&mut self, _training: bool) {}

    /// Calls `f` with every trainable parameter and its dotted name under `prefix`.
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit(&mut Visit::new(prefix, &mut |n, role, t| {
            if role == Role::Param {
                f(n, t)
            }
        }));
    }
    /// The same walk with mutable access (optimizers update parameters through it).
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.visit_mut(&mut VisitMut::new(prefix, &mut |n, role, t| {
            if role == Role::Param {
                f(n, t)
            }
        }));
    }
    /// Calls `f` with every buffer (saved with the weights, not trained).
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.visit(&mut Visit::new(prefix, &mut |n, role, t| {
            if role == Role::Buffer {
                f(n, t)
            }
        }));
    }
    /// The buffers, with mutable access.
    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.visit_mut(&mut VisitMut::new(prefix, &mut |n, role, t| {
            if role == Role::Buffer {
                f(n, t)
            }
        }));
    }
    /// Every parameter and buffer, with mutable access (loading, moving to a device).
    fn visit_state_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.visit_mut(&mut VisitMut::new(prefix, &mut |n, _, t| f(n, t)));
    }

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
    /// Converts every floating-point parameter and buffer to `dtype` (PyTorch's
    /// `module.to(torch.float64)` or `module.double()`); integer buffers, such as batch
    /// norm's step counter, keep theirs, and parameters stay leaves that require grad. As
    /// with a device, convert before creating the optimizer's state.
    fn try_to_dtype(&mut self, dtype: DType) -> Result<()> {
        if !dtype.is_float() {
            return Err(Error::invalid(
                "Module::to_dtype",
                format!("{dtype:?} is not a floating-point dtype"),
            ));
        }
        let mut result = Ok(());
        self.visit_state_mut("", &mut |_, t| {
            if result.is_ok() && t.dtype().is_float() && t.dtype() != dtype {
                match t.detach().try_to_dtype(dtype) {
                    Ok(converted) => *t = converted.set_requires_grad(t.requires_grad()),
                    Err(e) => result = Err(e),
                }
            }
        });
        result
    }
    /// `try_to_dtype`, panicking at the caller with the reason.
    #[track_caller]
    fn to_dtype(&mut self, dtype: DType)
    where
        Self: Sized,
    {
        use crate::error::OrPanic;
        self.try_to_dtype(dtype).or_panic()
    }
    /// Number of trainable scalars.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |_, t| n += t.numel());
        n
    }
    /// Training mode for this module and every module below it.
    fn train(&mut self) {
        set_mode(self, true)
    }
    /// Evaluation mode for this module and every module below it.
    fn eval(&mut self) {
        set_mode(self, false)
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

/// Sets the mode of `m` and of every module below it.
fn set_mode<M: Module + ?Sized>(m: &mut M, training: bool) {
    m.set_training(training);
    m.visit_mut(&mut VisitMut::modules(&mut |child| {
        child.set_training(training)
    }));
}
