//! Stateless layer functions.

use crate::tensor::Tensor;

/// Inverted dropout: in training, zeroes each element with probability `p` and scales the rest
/// by `1/(1−p)`, so evaluation needs no rescaling; the identity when not training.
#[track_caller]
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Tensor {
    assert!(
        (0.0..1.0).contains(&p),
        "dropout: p = {p} must be in [0, 1)"
    );
    if !training || p == 0.0 {
        return x.clone();
    }
    let keep = Tensor::bernoulli(x.shape().clone(), 1.0 - p).to_dtype(x.dtype());
    x.mul(&keep.mul_scalar(1.0 / (1.0 - p)))
}

/// `nn.Dropout(p)`: [`dropout`] that follows the module's train/eval mode.
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
    pub fn forward(&self, x: &Tensor) -> Tensor {
        dropout(x, self.p, self.training)
    }
}

impl super::Module for Dropout {
    fn visit_params(&self, _: &str, _: &mut dyn FnMut(&str, &Tensor)) {}
    fn visit_params_mut(&mut self, _: &str, _: &mut dyn FnMut(&str, &mut Tensor)) {}
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
