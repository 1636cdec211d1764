//! Normalisation layers as fused primitives: layer norm over each row, and batch norm over
//! the channels of `[N, C, L]`.

use crate::error::Result;
use crate::tensor::Tensor;

/// What a layer norm's forward returns: the output, and each row's mean and `1/σ`, from which
/// the backward rebuilds `x̂` instead of keeping a second tensor of `x`'s size.
pub struct LayerNormOutputs {
    pub y: Tensor,
    pub mean: Tensor,
    pub rstd: Tensor,
}

/// The gradients of a normalisation: the input's, and the per-feature (layer norm) or
/// per-channel (batch norm) scale's and shift's.
pub struct NormGrads {
    pub dx: Tensor,
    pub dgamma: Tensor,
    pub dbeta: Tensor,
}

pub trait NormKernels {
    /// Normalises each `cols`-wide row of contiguous `x`, then scales by `gamma` and shifts
    /// by `beta` (`cols` elements each) when given; biased variance, `eps` inside the root.
    fn layer_norm(
        &self,
        x: &Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        cols: usize,
        eps: f64,
    ) -> Result<LayerNormOutputs>;
    /// The gradients (`dgamma` and `dbeta` flat, `cols` elements) from the output gradient `g`.
    fn layer_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        cols: usize,
    ) -> Result<NormGrads>;

    /// Per-channel mean and biased variance (`[C]` each) of contiguous `x` `[N, C, L]`.
    fn batch_stats(&self, x: &Tensor) -> Result<(Tensor, Tensor)>;
    /// `(x − mean) · rstd · γ + β` per channel of contiguous `x` `[N, C, L]`, with
    /// `rstd = 1/√(var + eps)`; returns the output and `rstd`.
    fn batch_norm(
        &self,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)>;
    /// The gradients from the output gradient `g`. With `batch_stats` the statistics were
    /// the batch's own, so they depend on `x` and the input's gradient has two more terms.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        gamma: Option<&Tensor>,
        batch_stats: bool,
    ) -> Result<NormGrads>;
}
