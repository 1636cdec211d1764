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

/// How a loss over many elements is reduced, as PyTorch's `reduction` argument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reduction {
    /// One loss per element, in the targets' shape.
    None,
    /// The sum of the elements' losses.
    Sum,
    /// The mean: the sum divided by the number of counted elements, or by the sum of their
    /// class weights when `weight` is given (PyTorch's definition).
    #[default]
    Mean,
}

/// PyTorch's `F.cross_entropy` arguments. The default is cubegrad's fused path: classes on
/// the last axis, no weights, the mean.
#[derive(Clone, Debug)]
pub struct CrossEntropyOptions {
    /// Targets equal to this are skipped (PyTorch's default is -100).
    pub ignore_index: Option<i64>,
    /// Mixes the one-hot target with the uniform distribution: `q = (1−ε)·onehot + ε/C`.
    pub label_smoothing: f64,
    /// A weight per class (`[C]`): each element's loss is scaled by its target's weight, and
    /// the smoothing term by each class's weight.
    pub weight: Option<Tensor>,
    pub reduction: Reduction,
    /// The axis of the classes: -1 (the last, cubegrad's default: logits `[..., C]`, targets
    /// `[...]`), or 1 for PyTorch's layout of N-d inputs (`[N, C, d1, ...]`, targets
    /// `[N, d1, ...]`).
    pub class_dim: isize,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        CrossEntropyOptions {
            ignore_index: Some(-100),
            label_smoothing: 0.0,
            weight: None,
            reduction: Reduction::Mean,
            class_dim: -1,
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
        let rule = if op == "cross_entropy" {
            "expected scores [..., C] and i64 targets [...] (for PyTorch's [N, C, ...] layout, \
             set CrossEntropyOptions::class_dim to 1)"
        } else {
            "expected scores [..., C] and i64 targets [...]"
        };
        return Err(Error::mismatch(op, x.shape(), target.shape(), rule));
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

/// Cross-entropy with class weights or another reduction, composed from `log_softmax`,
/// `gather` and sums (autograd differentiates it): `x` `[R, C]`, targets `[R]` already
/// checked and placed. Each row's loss is `−(1−ε)·w[y]·log p_y − (ε/C)·Σ_c w_c·log p_c`
/// (`w` = 1 without weights), 0 for ignored rows; the mean divides by `Σ w[y]` over the
/// counted rows.
fn composed_cross_entropy(
    x: &Tensor,
    target: &Tensor,
    opts: &CrossEntropyOptions,
    target_shape: &[usize],
) -> Result<Tensor> {
    let (rows, classes) = (x.dims()[0], x.dims()[1]);
    let eps = opts.label_smoothing;
    let logp = x.try_log_softmax(-1)?;
    let keep = match opts.ignore_index {
        Some(i) => target.try_ne(&Tensor::scalar(i).try_to_device(target.device())?)?,
        None => Tensor::full([rows], 1.0)
            .to_dtype(crate::DType::Bool)
            .try_to_device(target.device())?,
    };
    // Ignored rows point at class 0, so that gathering stays in range; their loss is zeroed.
    // (Through the logits' float type, where `where` runs on every backend; class numbers
    // are exact in it.)
    let as_float = target.try_to_dtype(x.dtype())?;
    let safe = Tensor::try_where(&keep, &as_float, &Tensor::zeros_like(&as_float))?
        .try_to_dtype(crate::DType::I64)?;
    let picked = logp
        .try_gather(1, &safe.try_unsqueeze(1)?)?
        .try_squeeze(1)?;
    let w_y = match &opts.weight {
        Some(w) => w.try_index_select(0, &safe)?,
        None => Tensor::full([rows], 1.0)
            .to_dtype(x.dtype())
            .try_to_device(x.device())?,
    };
    let mut loss = picked.try_mul(&w_y)?.affine(-(1.0 - eps), 0.0);
    if eps > 0.0 {
        let weighted = match &opts.weight {
            Some(w) => logp.try_mul(&w.try_unsqueeze(0)?)?,
            None => logp.clone(),
        };
        let smooth = weighted.try_sum_axes(&[-1], false)?;
        loss = loss.try_add(&smooth.affine(-eps / classes as f64, 0.0))?;
    }
    let zeros = Tensor::zeros_like(&loss);
    let loss = Tensor::try_where(&keep, &loss, &zeros)?;
    match opts.reduction {
        Reduction::None => loss.try_reshape(target_shape),
        Reduction::Sum => loss.try_sum_axes(&[], false),
        Reduction::Mean => {
            let counted = Tensor::try_where(&keep, &w_y, &Tensor::zeros_like(&w_y))?;
            loss.try_sum_axes(&[], false)?
                .try_div(&counted.try_sum_axes(&[], false)?)
        }
    }
}

impl Tensor {
    /// Cross-entropy of logits against i64 class targets, as `F.cross_entropy`: classes on the
    /// last axis (`[..., C]` against `[...]`) or, with `class_dim: 1`, PyTorch's `[N, C, ...]`
    /// against `[N, ...]`; optional class weights, label smoothing, ignore index and reduction.
    /// Ignored elements count neither in the sum nor the mean. The default options run one
    /// fused op; weights or another reduction compose it from differentiable ops.
    pub fn try_cross_entropy(&self, target: &Tensor, opts: CrossEntropyOptions) -> Result<Tensor> {
        const OP: &str = "cross_entropy";
        if !(0.0..=1.0).contains(&opts.label_smoothing) {
            return Err(Error::invalid(
                OP,
                format!("label_smoothing {} is outside [0, 1]", opts.label_smoothing),
            ));
        }
        // Classes moved to the last axis, where the kernels expect them.
        let class_axis = self.shape().axis(OP, opts.class_dim)?;
        let moved;
        let x = if class_axis + 1 == self.rank() {
            self
        } else {
            let mut order: Vec<isize> = (0..self.rank() as isize)
                .filter(|&a| a != class_axis as isize)
                .collect();
            order.push(class_axis as isize);
            moved = self.try_permute(&order)?;
            &moved
        };
        if opts.weight.is_none() && opts.reduction == Reduction::Mean {
            return class_loss(OP, x, target, opts.ignore_index, Some(opts.label_smoothing));
        }
        let classes = class_count(OP, x, target)?;
        if let Some(w) = &opts.weight {
            same_kind(OP, x, w)?;
            if w.dims() != [classes] {
                return Err(Error::mismatch(
                    OP,
                    x.shape(),
                    w.shape(),
                    "weight must have one value per class, [C]",
                ));
            }
        }
        if !x.dtype().is_float() {
            return Err(Error::DType {
                op: OP,
                got: x.dtype(),
                expected: "f32 or f64",
            });
        }
        let placed = place_targets(OP, x, target, opts.ignore_index, classes)?;
        let rows = x.numel() / classes.max(1);
        let x2 = x.try_reshape(&[rows, classes])?;
        let t1 = placed.try_reshape(&[rows])?;
        composed_cross_entropy(&x2, &t1, &opts, target.dims())
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
