//! `y = x Wᵀ + b`, with PyTorch's layout (`weight` is `[out_features, in_features]`) and
//! initialisation (both uniform in ±1/√in_features).

use super::Module;
use crate::error::{Error, Result};
use crate::ops::linear::try_linear;
use crate::tensor::Tensor;

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(in_features: usize, out_features: usize, bias: bool) -> Self {
        let weight = Tensor::kaiming_uniform_linear([out_features, in_features]).with_grad();
        let bound = 1.0 / (in_features as f64).sqrt();
        let bias = bias.then(|| Tensor::rand_uniform([out_features], -bound, bound).with_grad());
        Linear { weight, bias }
    }
    pub fn in_features(&self) -> usize {
        self.weight.dims()[1]
    }
    pub fn out_features(&self) -> usize {
        self.weight.dims()[0]
    }
    /// `x`: `[..., in_features]` → `[..., out_features]`.
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() == 0 || x.dims()[x.rank() - 1] != self.in_features() {
            return Err(Error::mismatch(
                "Linear",
                x.shape(),
                self.weight.shape(),
                format!(
                    "input's last dim must be in_features = {}",
                    self.in_features()
                ),
            ));
        }
        try_linear(x, &self.weight, self.bias.as_ref())
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        use crate::error::OrPanic;
        self.try_forward(x).or_panic()
    }
}

impl Module for Linear {
    crate::module_tensors! {
        param "weight" weight;
        param "bias" bias;
    }
}
