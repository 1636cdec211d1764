//! `nn.BatchNorm2d` (Ioffe & Szegedy 2015): per-channel normalisation of `[N, C, H, W]` by the
//! batch's statistics in training and by running estimates in evaluation, with PyTorch's
//! names (`weight`, `bias`; buffers `running_mean`, `running_var`, `num_batches_tracked`),
//! defaults (`eps = 1e-5`, `momentum = 0.1`) and the unbiased variance in the running
//! estimate. The math is the fused op `ops::batch_norm`.

use super::Module;
use crate::error::{Error, OrPanic, Result};
use crate::ops::batch_norm::{batch_stats, try_batch_norm};
use crate::ops::{same_kind, Unary};
use crate::tensor::Tensor;

pub struct BatchNorm2d {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
    pub eps: f64,
    pub momentum: f64,
    training: bool,
}

impl BatchNorm2d {
    /// `nn.BatchNorm2d(num_features)`: γ = 1, β = 0, running mean 0 and variance 1.
    pub fn new(num_features: usize) -> Self {
        BatchNorm2d {
            weight: Some(Tensor::ones([num_features]).with_grad()),
            bias: Some(Tensor::zeros([num_features]).with_grad()),
            running_mean: Tensor::zeros([num_features]),
            running_var: Tensor::ones([num_features]),
            num_batches_tracked: Tensor::scalar(0i64),
            eps: 1e-5,
            momentum: 0.1,
            training: true,
        }
    }
    pub fn num_features(&self) -> usize {
        self.running_mean.numel()
    }

    /// `x` `[N, C, H, W]`. In training this also updates the running statistics, so it
    /// takes `&mut self`.
    pub fn try_forward(&mut self, x: &Tensor) -> Result<Tensor> {
        const OP: &str = "BatchNorm2d";
        let c = self.num_features();
        if x.rank() != 4 || x.dims()[1] != c {
            return Err(Error::bad_shape(
                OP,
                x.shape(),
                format!("expected [N, {c}, H, W]"),
            ));
        }
        same_kind(OP, x, &self.running_mean)?;
        let (n, h, w) = (x.dims()[0], x.dims()[2], x.dims()[3]);
        if self.training && n * h * w < 2 {
            return Err(Error::bad_shape(
                OP,
                x.shape(),
                "training needs more than one value per channel",
            ));
        }
        let flat = x.try_reshape(&[n, c, h * w])?.try_contiguous()?;
        let stats = if self.training {
            let (mean, var) = batch_stats(&flat)?;
            self.update_running(&mean, &var, n * h * w)?;
            (mean, var)
        } else {
            (self.running_mean.clone(), self.running_var.clone())
        };
        let (weight, bias) = (self.weight.as_ref(), self.bias.as_ref());
        try_batch_norm(&flat, stats, weight, bias, self.training, self.eps)?.try_reshape(x.dims())
    }
    #[track_caller]
    pub fn forward(&mut self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }

    /// `running = (1 − momentum) · running + momentum · batch`, with the unbiased batch
    /// variance (as PyTorch). The estimates stay where they live; the batch counter is read
    /// back and written again (an i64 add has no kernel yet: one small synchronisation a step
    /// on a device).
    fn update_running(&mut self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let m = count as f64;
        let mom = self.momentum;
        let blend = |running: &Tensor, batch: &Tensor, unbias: f64| -> Result<Tensor> {
            running
                .try_unary(Unary::Affine {
                    scale: 1.0 - mom,
                    shift: 0.0,
                })?
                .try_add(&batch.try_unary(Unary::Affine {
                    scale: mom * unbias,
                    shift: 0.0,
                })?)
        };
        self.running_mean = blend(&self.running_mean, mean, 1.0)?;
        self.running_var = blend(&self.running_var, var, m / (m - 1.0))?;
        let tracked = &self.num_batches_tracked;
        let nb = tracked.try_to_vec::<i64>()?[0] + 1;
        self.num_batches_tracked = Tensor::scalar(nb).try_to_device(tracked.device())?;
        Ok(())
    }
}

impl Module for BatchNorm2d {
    crate::module_tensors! {
        param "weight" weight;
        param "bias" bias;
        buffer "running_mean" running_mean;
        buffer "running_var" running_var;
        buffer "num_batches_tracked" num_batches_tracked;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
