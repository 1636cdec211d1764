//! Losses: cross-entropy (with ignore index and label smoothing), negative log-likelihood,
//! mean squared error. All return the mean over the counted elements, as PyTorch's defaults.
//!
//! Cross-entropy is one fused op: its forward computes log-softmax once, and its backward is
//! the closed form `(softmax(x) − q) / count`, where `q` is the (smoothed) target distribution.
//! It saves the log-probabilities, whose exponential is the softmax.

use super::{from_float, same_kind, with_float};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::pool;
use crate::backend::cpu::softmax::softmax_rows;
use crate::error::{Error, OrPanic, Result};
use crate::tensor::{DType, Float, Shape, Tensor};
use num_traits::Zero as _;

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

struct CrossEntropy {
    targets: Vec<i64>,
    opts: CrossEntropyOptions,
    /// Logits viewed as `[rows, classes]`.
    classes: usize,
    shape: Shape,
    count: usize,
}

impl CrossEntropy {
    fn ignored(&self, t: i64) -> bool {
        self.opts.ignore_index == Some(t)
    }
}

fn loss_value<T: Float>(ce: &CrossEntropy, logp: &[T]) -> T {
    let c = ce.classes;
    let eps = ce.opts.label_smoothing;
    let mut total = 0.0f64;
    for (row, &t) in ce.targets.iter().enumerate() {
        if ce.ignored(t) {
            continue;
        }
        let lp = &logp[row * c..(row + 1) * c];
        let nll = -lp[t as usize].as_f64();
        let smooth = if eps > 0.0 {
            -lp.iter().map(|v| v.as_f64()).sum::<f64>() / c as f64
        } else {
            0.0
        };
        total += (1.0 - eps) * nll + eps * smooth;
    }
    T::from_f64(total / ce.count.max(1) as f64)
}

impl Op for CrossEntropy {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let (loss, logp) = with_float!("cross_entropy", x.dtype(), |T| {
            let xs = x.float_slice::<T>("cross_entropy")?;
            let logp = softmax_rows(&xs, self.classes, None, true);
            let loss = loss_value(self, &logp);
            Ok((
                from_float(vec![loss], Shape::scalar()),
                from_float(logp, self.shape.clone()),
            ))
        })?;
        Ok(Forward::new(loss, vec![logp]))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let c = self.classes;
        let eps = self.opts.label_smoothing;
        let gx = with_float!("cross_entropy", g.dtype(), |T| {
            let scale = g.item() / self.count.max(1) as f64;
            let logp = saved[0].float_slice::<T>("cross_entropy")?;
            let mut out = pool::filled(logp.len(), T::zero());
            for (row, &t) in self.targets.iter().enumerate() {
                if self.ignored(t) {
                    continue;
                }
                for j in 0..c {
                    let q = eps / c as f64 + if j as i64 == t { 1.0 - eps } else { 0.0 };
                    out[row * c + j] = T::from_f64((logp[row * c + j].as_f64().exp() - q) * scale);
                }
            }
            Ok(from_float(out, self.shape.clone()))
        })?;
        Ok(vec![Some(gx)])
    }
}

/// Cross-entropy on a CubeCL device. The targets stay on the device, so the number of
/// counted rows is a device scalar too: the loss is `Σ loss_row / Σ counted_row`, and no
/// value crosses to the host. Out-of-range targets give a NaN loss instead of an error (the
/// kernel cannot raise one; PyTorch's CUDA kernel asserts). Saves the per-row gradient
/// `softmax(x) − q` and the count.
/// Cross-entropy (`nll: false`) or the negative log-likelihood of log-probabilities
/// (`nll: true`) on a device: the kernel writes each row's loss, whether it counts, and the
/// row's gradient; the mean and its scale are row sums on the device, so no value is read back.
struct CrossEntropyOnDevice {
    opts: CrossEntropyOptions,
    nll: bool,
}

impl Op for CrossEntropyOnDevice {
    fn name(&self) -> &'static str {
        "cross_entropy"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (x, t) = (inputs[0], inputs[1]);
        let o = crate::backend::cube::ops::cross_entropy(
            x,
            t,
            self.opts.ignore_index,
            (!self.nll).then_some(self.opts.label_smoothing),
        )?;
        let count = o.counted.try_sum_axes(&[0], false)?;
        let loss = o.loss.try_sum_axes(&[0], false)?.try_div(&count)?;
        let dx = o.dx.try_reshape(x.dims())?;
        Ok(Forward::new(loss, vec![dx, count]))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (dx, count) = (&saved[0], &saved[1]);
        Ok(vec![Some(dx.try_mul(&g.try_div(count)?)?), None])
    }
}

struct Nll {
    targets: Vec<i64>,
    ignore_index: Option<i64>,
    classes: usize,
    shape: Shape,
    count: usize,
}

impl Op for Nll {
    fn name(&self) -> &'static str {
        "nll_loss"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let out = with_float!("nll_loss", x.dtype(), |T| {
            let xs = x.float_slice::<T>("nll_loss")?;
            let mut total = 0.0;
            for (row, &t) in self.targets.iter().enumerate() {
                if self.ignore_index != Some(t) {
                    total -= xs[row * self.classes + t as usize].as_f64();
                }
            }
            Ok(from_float(
                vec![T::from_f64(total / self.count.max(1) as f64)],
                Shape::scalar(),
            ))
        })?;
        Ok(Forward::new(out, vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let scale = -g.item() / self.count.max(1) as f64;
        let gx = with_float!("nll_loss", g.dtype(), |T| {
            let mut out = pool::filled(self.shape.numel(), T::zero());
            for (row, &t) in self.targets.iter().enumerate() {
                if self.ignore_index != Some(t) {
                    out[row * self.classes + t as usize] = T::from_f64(scale);
                }
            }
            Ok(from_float(out, self.shape.clone()))
        })?;
        Ok(vec![Some(gx)])
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

/// Checks `[..., C]` scores against `[...]` i64 targets; returns (targets, classes, count).
fn class_targets(
    op: &'static str,
    x: &Tensor,
    target: &Tensor,
    ignore: Option<i64>,
) -> Result<(Vec<i64>, usize, usize)> {
    let classes = class_count(op, x, target)?;
    let targets = target.i64_slice(op)?.into_owned();
    for &t in &targets {
        if ignore != Some(t) && (t < 0 || t as usize >= classes) {
            return Err(Error::IndexOutOfRange {
                op,
                index: t,
                size: classes,
            });
        }
    }
    let count = targets.iter().filter(|&&t| ignore != Some(t)).count();
    Ok((targets, classes, count))
}

/// Targets for scores on a device: on the scores' device already (a target out of range
/// gives a NaN loss there, as a device cannot raise an error mid-kernel), or checked on the
/// host and then uploaded.
fn device_targets(
    op: &'static str,
    x: &Tensor,
    target: &Tensor,
    ignore: Option<i64>,
) -> Result<Tensor> {
    class_count(op, x, target)?;
    if target.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            got: target.dtype(),
            expected: "i64",
        });
    }
    if target.device() == x.device() {
        return Ok(target.clone());
    }
    if target.cube().is_some() {
        return Err(Error::DeviceMismatch {
            op,
            lhs: x.device(),
            rhs: target.device(),
        });
    }
    class_targets(op, x, target, ignore)?;
    target.try_to_device(x.device())
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
        if self.cube().is_some() {
            let target = device_targets("cross_entropy", self, target, opts.ignore_index)?;
            let op = CrossEntropyOnDevice { opts, nll: false };
            return apply(op, &[self, &target]);
        }
        let (targets, classes, count) =
            class_targets("cross_entropy", self, target, opts.ignore_index)?;
        let x = self.try_contiguous()?;
        apply(
            CrossEntropy {
                targets,
                opts,
                classes,
                shape: self.shape().clone(),
                count,
            },
            &[&x],
        )
    }
    /// Mean negative log-likelihood of log-probabilities `[..., C]` at i64 targets `[...]`.
    pub fn try_nll_loss(&self, target: &Tensor, ignore_index: Option<i64>) -> Result<Tensor> {
        if self.cube().is_some() {
            let target = device_targets("nll_loss", self, target, ignore_index)?;
            let opts = CrossEntropyOptions {
                ignore_index,
                ..CrossEntropyOptions::default()
            };
            return apply(CrossEntropyOnDevice { opts, nll: true }, &[self, &target]);
        }
        let (targets, classes, count) = class_targets("nll_loss", self, target, ignore_index)?;
        apply(
            Nll {
                targets,
                ignore_index,
                classes,
                shape: self.shape().clone(),
                count,
            },
            &[self],
        )
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
