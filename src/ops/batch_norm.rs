//! Batch normalisation (Ioffe & Szegedy 2015) as one fused op: per-channel normalisation of
//! `[N, C, L]` by the batch's statistics (training) or by running estimates (evaluation).
//! The module with its buffers is `nn::BatchNorm2d`.

use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::error::Result;
use crate::tensor::Tensor;

/// Inputs: `x` `[N, C, L]`, then `γ` and `β` when `affine`. `stats` are the per-channel mean
/// and variance used: the batch's (training; the layer computes them once, for this op and
/// for its running estimates) or the running ones (evaluation).
struct BatchNormOp {
    affine: bool,
    /// The statistics are the batch's, so they depend on `x` (the backward differs).
    batch_stats: bool,
    stats: (Tensor, Tensor),
    eps: f64,
}

impl Op for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch_norm"
    }
    /// Saves `x`, `γ`, and the per-channel mean and rstd used.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0].try_contiguous()?;
        let (gamma, beta) = (inputs.get(1).copied(), inputs.get(2).copied());
        let (mean, var) = (&self.stats.0, &self.stats.1);
        let (y, rstd) = backend::of(&x).batch_norm(&x, mean, var, self.eps, gamma, beta)?;
        let mut saved = vec![x, mean.clone(), rstd];
        saved.extend(gamma.cloned());
        Ok(Forward::new(y, saved))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (x, mean, rstd) = (&saved[0], &saved[1], &saved[2]);
        let g = g.try_contiguous()?;
        let gr = backend::of(x).batch_norm_backward(
            x,
            &g,
            mean,
            rstd,
            saved.get(3),
            self.batch_stats,
        )?;
        let mut out = vec![Some(gr.dx)];
        if self.affine {
            out.push(Some(gr.dgamma));
            out.push(Some(gr.dbeta));
        }
        Ok(out)
    }
}

/// Per-channel mean and biased variance (`[C]` each) of a contiguous `[N, C, L]` tensor,
/// without history (they feed the running estimates as well as the op).
pub(crate) fn batch_stats(flat: &Tensor) -> Result<(Tensor, Tensor)> {
    backend::of(flat).batch_stats(flat)
}

/// Normalises contiguous `flat` `[N, C, L]` per channel by `stats` (the batch's own when
/// `batch_stats`, so that the backward differentiates through them), then scales and shifts
/// by `weight` and `bias` when both are given.
pub(crate) fn try_batch_norm(
    flat: &Tensor,
    stats: (Tensor, Tensor),
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    batch_stats: bool,
    eps: f64,
) -> Result<Tensor> {
    let affine = weight.is_some() && bias.is_some();
    let op = BatchNormOp {
        affine,
        batch_stats,
        stats,
        eps,
    };
    let mut inputs = vec![flat];
    if affine {
        inputs.extend(weight);
        inputs.extend(bias);
    }
    apply(op, &inputs)
}
