//! The gradient store that `backward` returns: tensor id → gradient.

use crate::error::Result;
use crate::tensor::{Tensor, TensorId};
use std::collections::HashMap;

#[derive(Default, Clone, Debug)]
pub struct Gradients {
    map: HashMap<TensorId, Tensor>,
}

impl Gradients {
    /// The gradient of the loss with respect to `t`, if it received one.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.map.get(&t.id())
    }
    pub fn get_by_id(&self, id: TensorId) -> Option<&Tensor> {
        self.map.get(&id)
    }
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) {
        self.map.insert(t.id(), grad);
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&TensorId, &Tensor)> {
        self.map.iter()
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&TensorId, &mut Tensor)> {
        self.map.iter_mut()
    }
    pub(crate) fn remove(&mut self, id: TensorId) -> Option<Tensor> {
        self.map.remove(&id)
    }
    /// Adds `g` to the gradient already stored for `id` (a tensor used several times).
    pub(crate) fn accumulate(&mut self, id: TensorId, g: Tensor) -> Result<()> {
        let sum = match self.map.remove(&id) {
            Some(prev) => prev.try_add(&g)?,
            None => g,
        };
        self.map.insert(id, sum.detach());
        Ok(())
    }
}
