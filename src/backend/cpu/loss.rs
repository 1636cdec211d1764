//! Cross-entropy and negative log-likelihood on the CPU, one row at a time: the row's
//! log-softmax, its loss, and the gradient of the loss with respect to its scores.

use super::float::Float;
use super::softmax::softmax_rows;
use super::{buffer_cache, i64s, tensor, with_float, Cpu};
use crate::backend::loss::{CrossEntropyRows, LossKernels};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

impl LossKernels for Cpu {
    fn cross_entropy(
        &self,
        x: &Tensor,
        targets: &Tensor,
        ignore: Option<i64>,
        smoothing: Option<f64>,
    ) -> Result<CrossEntropyRows> {
        let op = if smoothing.is_some() {
            "cross_entropy"
        } else {
            "nll_loss"
        };
        let classes = x.dims().last().copied().unwrap_or(1);
        let targets = i64s(op, targets)?;
        let rows = targets.len();
        for &t in targets.iter() {
            if ignore != Some(t) && (t < 0 || t as usize >= classes) {
                return Err(Error::IndexOutOfRange {
                    op,
                    index: t,
                    size: classes,
                });
            }
        }
        with_float!(op, x.dtype(), |T| {
            let xs = super::slice::<T>(op, x)?;
            let (loss, counted, dx) = match smoothing {
                Some(eps) => cross_entropy_rows(&xs, &targets, classes, ignore, eps),
                None => nll_rows(&xs, &targets, classes, ignore),
            };
            Ok(CrossEntropyRows {
                loss: tensor(loss, [rows]),
                counted: tensor(counted, [rows]),
                dx: tensor(dx, x.shape().clone()),
            })
        })
    }
}

/// Each row's `(1 − ε)·(−log p_t) + ε·mean_j(−log p_j)` (computed in f64), whether it
/// counts, and `softmax(x) − q` with `q = (1 − ε)·onehot + ε/C`.
fn cross_entropy_rows<T: Float>(
    x: &[T],
    targets: &[i64],
    c: usize,
    ignore: Option<i64>,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let logp = softmax_rows(x, c, None, true);
    let mut loss = vec![T::zero(); targets.len()];
    let mut counted = vec![T::zero(); targets.len()];
    let mut dx = buffer_cache::filled(logp.len(), T::zero());
    for (row, &t) in targets.iter().enumerate() {
        if ignore == Some(t) {
            continue;
        }
        let lp = &logp[row * c..(row + 1) * c];
        let nll = -lp[t as usize].as_f64();
        let smooth = if eps > 0.0 {
            -lp.iter().map(|v| v.as_f64()).sum::<f64>() / c as f64
        } else {
            0.0
        };
        loss[row] = T::from_f64((1.0 - eps) * nll + eps * smooth);
        counted[row] = T::one();
        for (j, d) in dx[row * c..(row + 1) * c].iter_mut().enumerate() {
            let q = eps / c as f64 + if j as i64 == t { 1.0 - eps } else { 0.0 };
            *d = T::from_f64(lp[j].as_f64().exp() - q);
        }
    }
    (loss, counted, dx)
}

/// Each row's `−x_t` (the scores are log-probabilities), whether it counts, and `−onehot`.
fn nll_rows<T: Float>(
    x: &[T],
    targets: &[i64],
    c: usize,
    ignore: Option<i64>,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let mut loss = vec![T::zero(); targets.len()];
    let mut counted = vec![T::zero(); targets.len()];
    let mut dx = buffer_cache::filled(x.len(), T::zero());
    for (row, &t) in targets.iter().enumerate() {
        if ignore == Some(t) {
            continue;
        }
        loss[row] = -x[row * c + t as usize];
        counted[row] = T::one();
        dx[row * c + t as usize] = -T::one();
    }
    (loss, counted, dx)
}
