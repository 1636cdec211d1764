//! Cross-entropy and negative log-likelihood on the CPU, blocks of rows in parallel: each
//! row's log-sum-exp, its loss, and the gradient of the loss with respect to its scores.

use super::float::Float;
use super::lanes::{max, sum_map};
use super::loops::write_all;
use super::simd::widest;
use super::{buffer_cache, i64s, tensor, with_float, Cpu};
use crate::backend::loss::{CrossEntropyRows, LossKernels};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use rayon::prelude::*;

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

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 64;

/// Each row's `(1 − ε)·(−log p_t) + ε·mean_j(−log p_j)`, whether it counts, and
/// `softmax(x) − q` with `q = (1 − ε)·onehot + ε/C`. With `lse` the row's log-sum-exp,
/// `−log p_j = lse − x_j`, so one pass finds `lse` and one writes the gradient; ignored rows
/// get zeros.
fn cross_entropy_rows<T: Float>(
    x: &[T],
    targets: &[i64],
    c: usize,
    ignore: Option<i64>,
    eps: f64,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let rows = targets.len();
    let mut loss = vec![T::zero(); rows];
    let mut counted = vec![T::zero(); rows];
    let mut dx: Vec<T> = buffer_cache::take(x.len());
    if c == 0 {
        return (loss, counted, dx);
    }
    let (off, on) = (T::from_f64(eps / c as f64), T::from_f64(1.0 - eps));
    let block = ROWS_PER_TASK * c;
    dx.spare_capacity_mut()[..x.len()]
        .par_chunks_mut(block)
        .zip(x.par_chunks(block))
        .zip(loss.par_chunks_mut(ROWS_PER_TASK))
        .zip(counted.par_chunks_mut(ROWS_PER_TASK))
        .zip(targets.par_chunks(ROWS_PER_TASK))
        .for_each(|((((db, xb), lb), cb), tb)| {
            widest!(for ((((dr, xr), l), n), &t) in db
                .chunks_mut(c)
                .zip(xb.chunks(c))
                .zip(lb.iter_mut())
                .zip(cb.iter_mut())
                .zip(tb)
            {
                if ignore == Some(t) {
                    write_all(dr, std::iter::repeat_n(T::zero(), c));
                    continue;
                }
                let m = max(xr);
                let lse = m + sum_map(xr, |v| (v - m).fast_exp()).ln();
                let nll = (lse - xr[t as usize]).as_f64();
                let smooth = if eps > 0.0 {
                    lse.as_f64() - sum_map(xr, |v| v).as_f64() / c as f64
                } else {
                    0.0
                };
                *l = T::from_f64((1.0 - eps) * nll + eps * smooth);
                *n = T::one();
                let dr = write_all(dr, xr.iter().map(|&v| (v - lse).fast_exp() - off));
                dr[t as usize] = dr[t as usize] - on;
            })
        });
    // SAFETY: the chunks cover the first x.len() slots and every row wrote all c of its own.
    unsafe { dx.set_len(x.len()) };
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
