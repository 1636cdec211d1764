//! `nn.Dropout(p)`: the dropout op (`ops::dropout`) following the module's train/eval mode.

use crate::ops::dropout::dropout;
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug)]
pub struct Dropout {
    pub p: f64,
    training: bool,
}

impl Dropout {
    #[track_caller]
    pub fn new(p: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout: p = {p} must be in [0, 1)"
        );
        Dropout { p, training: true }
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        dropout(x, self.p, self.training)
    }
}

impl super::Module for Dropout {
    crate::module_tensors! {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
