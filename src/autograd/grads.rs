//! The gradient store that `backward` returns: one gradient per leaf (and per retained
//! intermediate), in the order backward produced them.
//!
//! A list, not a hash map: a model has tens to hundreds of parameter tensors, an optimizer
//! looks each one up once per step, and comparing a few hundred integer ids costs less than
//! hashing them, with nothing to sort and a deterministic order.

use crate::error::Result;
use crate::tensor::{Tensor, TensorId};

#[derive(Default, Clone, Debug)]
pub struct Gradients {
    entries: Vec<(TensorId, Tensor)>,
}

impl Gradients {
    fn position(&self, id: TensorId) -> Option<usize> {
        // Backward finds the first layers' parameters last: the optimizer, which visits the
        // model from its first layer, finds them soonest from the end.
        self.entries.iter().rposition(|(i, _)| *i == id)
    }
    /// The gradient of the loss with respect to `t`, if it received one.
    pub fn get(&self, t: &Tensor) -> Option<&Tensor> {
        self.get_by_id(t.id())
    }
    pub fn get_by_id(&self, id: TensorId) -> Option<&Tensor> {
        self.position(id).map(|i| &self.entries[i].1)
    }
    /// Mutable access, for clipping or scaling a gradient in place.
    pub fn get_mut(&mut self, t: &Tensor) -> Option<&mut Tensor> {
        self.position(t.id()).map(|i| &mut self.entries[i].1)
    }
    /// Sets `t`'s gradient, replacing any it had.
    pub fn insert(&mut self, t: &Tensor, grad: Tensor) {
        match self.position(t.id()) {
            Some(i) => self.entries[i].1 = grad,
            None => self.entries.push((t.id(), grad)),
        }
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = (&TensorId, &Tensor)> {
        self.entries.iter().map(|(i, g)| (i, g))
    }
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&TensorId, &mut Tensor)> {
        self.entries.iter_mut().map(|(i, g)| (&*i, g))
    }
    /// Adds `g` to the gradient already stored for `id` (a tensor used several times).
    pub(crate) fn accumulate(&mut self, id: TensorId, g: Tensor) -> Result<()> {
        match self.position(id) {
            Some(i) => {
                let sum = self.entries[i].1.try_add(&g)?;
                self.entries[i].1 = sum.detach();
            }
            None => self.entries.push((id, g.detach())),
        }
        Ok(())
    }
}
