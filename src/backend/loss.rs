//! Cross-entropy and negative log-likelihood, one row at a time.

use super::storage::Storage;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};

/// What the loss kernels return for `[rows, classes]` scores.
pub struct CrossEntropyRows {
    /// `[rows]`: each row's loss; 0 where the target is the ignore index (and NaN on a
    /// device where it is out of range).
    pub loss: Tensor,
    /// `[rows]`: 1 where the row counts towards the mean, 0 where ignored.
    pub counted: Tensor,
    /// `[rows, classes]`: the gradient of each row's loss with respect to its scores, 0 for
    /// ignored rows: `softmax(x) − q` for cross-entropy (`q` the smoothed one-hot target),
    /// `−onehot` for the negative log-likelihood.
    pub dx: Tensor,
}

pub trait LossKernels {
    /// Per-row cross-entropy of contiguous logits `x` `[rows, classes]` against i64
    /// `targets` `[rows]`, with label `smoothing`; with `smoothing` `None`, the negative
    /// log-likelihood of log-probabilities `x` instead. Rows whose target is `ignore` count
    /// for nothing.
    fn cross_entropy(
        &self,
        x: &Tensor,
        targets: &Tensor,
        ignore: Option<i64>,
        smoothing: Option<f64>,
    ) -> Result<CrossEntropyRows>;
}

/// Class targets for scores `x` with `classes` classes, on `x`'s device: targets on the host
/// are checked there (a class out of range is an error naming it) and moved; targets already
/// on the device are used as they are (out of range gives a NaN loss there).
pub fn place_targets(
    op: &'static str,
    x: &Tensor,
    targets: &Tensor,
    ignore: Option<i64>,
    classes: usize,
) -> Result<Tensor> {
    if targets.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            got: targets.dtype(),
            expected: "i64",
        });
    }
    match targets.storage() {
        Storage::Cpu(_) => {
            for t in super::read::<i64>(targets)? {
                if ignore != Some(t) && (t < 0 || t as usize >= classes) {
                    return Err(Error::IndexOutOfRange {
                        op,
                        index: t,
                        size: classes,
                    });
                }
            }
            super::transfer(targets, x.device())
        }
        Storage::Cube(_) if targets.device() == x.device() => Ok(targets.clone()),
        Storage::Cube(_) => Err(Error::DeviceMismatch {
            op,
            lhs: x.device(),
            rhs: targets.device(),
        }),
    }
}
