//! `nn.LayerNorm` with PyTorch's names and defaults: `weight` (γ, ones) and `bias` (β,
//! zeros), `eps = 1e-5`. The math is the fused op `ops::layer_norm`.

use super::Module;
use crate::error::{OrPanic, Result};
use crate::ops::layer_norm::try_layer_norm;
use crate::tensor::Tensor;

pub struct LayerNorm {
    pub normalized_shape: Vec<usize>,
    pub eps: f64,
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
}

impl LayerNorm {
    /// `nn.LayerNorm(normalized_shape)`: γ = 1, β = 0, eps = 1e-5.
    pub fn new(normalized_shape: &[usize]) -> Self {
        LayerNorm::with_options(normalized_shape, 1e-5, true, true)
    }
    /// `elementwise_affine = false` drops both parameters; `bias = false` only β.
    pub fn with_options(
        normalized_shape: &[usize],
        eps: f64,
        elementwise_affine: bool,
        bias: bool,
    ) -> Self {
        let shape = normalized_shape.to_vec();
        LayerNorm {
            weight: elementwise_affine.then(|| Tensor::ones(shape.as_slice()).with_grad()),
            bias: (elementwise_affine && bias).then(|| Tensor::zeros(shape.as_slice()).with_grad()),
            normalized_shape: shape,
            eps,
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        try_layer_norm(
            x,
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

impl Module for LayerNorm {
    crate::module_tensors! {
        param "weight" weight;
        param "bias" bias;
    }
}
