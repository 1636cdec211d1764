//! Losses: cross-entropy (with ignore index and label smoothing), negative log-likelihood,
//! mean squared error. All return the mean over the counted elements, as PyTorch's defaults.
//!
//! Cross-entropy is one fused op: its forward computes log-softmax once, and its backward is
//! the closed form `(softmax(x) − q) / count`, where `q` is the (smoothed) target distribution.
//! The same op computes the negative log-likelihood, whose rows' gradient is `−onehot`.

use super::same_kind;
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::loss::place_targets;
use crate::error::{Error, OrPanic, Result};
use crate::tensor::Tensor;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropyOptions {
    /// Targets equal to this are skipped (PyTorch's default is -100).
    pub ignore_index: Option<i64>,
    /// Mixes the one-hot target with the uniform distribution: `q = (1−ε)·onehot + ε/C`.
    pub label_smoothing: f64,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            ignore_index: Some(-100),
            label_smoothing: 0.0,
        }
    }
}

/// Cross-entropy (`smoothing` given) or the negative log-likelihood of log-probabilities
/// (`smoothing` `None`), fused. The backend writes each row's loss, whether it counts, and
/// the gradient of the row's loss; the mean is `Σ loss / Σ counted`, two sums where the
/// tensor lives, so nothing is read back from a device. Saves the rows' gradient and the
/// count: the backward is `dx · g / count`.
struct CrossEntropy {
    ignore_index: Option<i64>,
    smoothing: Option<f64>,
}

impl Op for CrossEntropy {
    fn name(&self) -> &'static str {
        if self.smoothing.is_some() {
            "cross_entropy"
        } else {
            "nll_loss"
        }
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (x, targets) = (inputs[0], inputs[1]);
        let classes = x.dims().last().copied().unwrap_or(1);
        let rows_shape = [x.numel() / classes.max(1), classes];
        let x2 = x.try_contiguous()?.try_reshape(&rows_shape)?;
        let t1 = targets.try_reshape(&[rows_shape[0]])?;
        let rows = backend::of(&x2).cross_entropy(&x2, &t1, self.ignore_index, self.smoothing)?;
        let count = rows.counted.try_sum_axes(&[0], false)?;
        let loss = rows.loss.try_sum_axes(&[0], false)?.try_div(&count)?;
        let dx = rows.dx.try_reshape(x.dims())?;
        Ok(Forward::new(loss, vec![dx, count]))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (dx, count) = (&saved[0], &saved[1]);
        Ok(vec![Some(dx.try_mul(&g.try_div(count)?)?), None])
    }
}

/// Checks that scores `[..., C]` and targets `[...]` agree; returns C.
fn class_count(op: &'static str, x: &Tensor, target: &Tensor) -> Result<usize> {
    if x.rank() == 0 || target.rank() + 1 != x.rank() || target.dims() != &x.dims()[..x.rank() - 1]
    {
        return Err(Error::mismatch(
            op,
            x.shape(),
            target.shape(),
            "expected scores [..., C] and i64 targets [...]",
        ));
    }
    Ok(x.dims()[x.rank() - 1])
}

/// Runs the fused op on scores `x` and class targets (placed on `x`'s device, checked there
/// when they come from the host).
fn class_loss(
    op: &'static str,
    x: &Tensor,
    target: &Tensor,
    ignore_index: Option<i64>,
    smoothing: Option<f64>,
) -> Result<Tensor> {
    let classes = class_count(op, x, target)?;
    if !x.dtype().is_float() {
        return Err(Error::DType {
            op,
            got: x.dtype(),
            expected: "f32 or f64",
        });
    }
    let target = place_targets(op, x, target, ignore_index, classes)?;
    let loss = CrossEntropy {
        ignore_index,
        smoothing,
    };
    apply(loss, &[x, &target])
}

impl Tensor {
    /// Mean cross-entropy of logits `[..., C]` (the class axis last) against i64 class targets
    /// `[...]`. Rows whose target is the ignore index count neither in the sum nor the mean.
    pub fn try_cross_entropy(&self, target: &Tensor, opts: CrossEntropyOptions) -> Result<Tensor> {
        if !(0.0..=1.0).contains(&opts.label_smoothing) {
            return Err(Error::invalid(
                "cross_entropy",
                format!("label_smoothing {} is outside [0, 1]", opts.label_smoothing),
            ));
        }
        class_loss(
            "cross_entropy",
            self,
            target,
            opts.ignore_index,
            Some(opts.label_smoothing),
        )
    }
    /// Mean negative log-likelihood of log-probabilities `[..., C]` at i64 targets `[...]`.
    pub fn try_nll_loss(&self, target: &Tensor, ignore_index: Option<i64>) -> Result<Tensor> {
        class_loss("nll_loss", self, target, ignore_index, None)
    }
    /// Mean squared error between two tensors of the same shape.
    pub fn try_mse_loss(&self, target: &Tensor) -> Result<Tensor> {
        same_kind("mse_loss", self, target)?;
        if self.shape() != target.shape() {
            return Err(Error::mismatch(
                "mse_loss",
                self.shape(),
                target.shape(),
                "shapes must be equal",
            ));
        }
        Ok(self.try_sub(target)?.square().mean())
    }

    #[track_caller]
    pub fn cross_entropy(&self, target: &Tensor) -> Tensor {
        self.try_cross_entropy(target, CrossEntropyOptions::default())
            .or_panic()
    }
    #[track_caller]
    pub fn cross_entropy_with(&self, target: &Tensor, opts: CrossEntropyOptions) -> Tensor {
        self.try_cross_entropy(target, opts).or_panic()
    }
    #[track_caller]
    pub fn nll_loss(&self, target: &Tensor) -> Tensor {
        self.try_nll_loss(target, Some(-100)).or_panic()
    }
    #[track_caller]
    pub fn mse_loss(&self, target: &Tensor) -> Tensor {
        self.try_mse_loss(target).or_panic()
    }
}
