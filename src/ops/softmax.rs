//! softmax, log_softmax and masked softmax along one axis.
//!
//! Forward subtracts the row maximum before exponentiating (stable for any input). Both save
//! only their output: softmax's backward is `y · (g − Σ g·y)`, log-softmax's is
//! `g − exp(y) · Σ g`. A mask (true = keep) gives masked positions a weight of exactly 0, and
//! so no gradient; a row with nothing kept is all zeros (see `backend::cpu::softmax`).

use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::error::{Error, OrPanic, Result};
use crate::tensor::{DType, Shape, Tensor};

struct Softmax {
    axis: usize,
    log: bool,
    /// Bool mask already broadcast to the input's shape, contiguous, and moved like the input.
    mask: Option<Tensor>,
}

impl Softmax {
    fn name_(&self) -> &'static str {
        match (self.log, self.mask.is_some()) {
            (false, false) => "softmax",
            (true, false) => "log_softmax",
            (false, true) => "masked_softmax",
            (true, true) => "masked_log_softmax",
        }
    }
}

/// Moves `axis` to the end (contiguously) so the kernels see rows; returns how to move back.
fn to_last(x: &Tensor, axis: usize) -> Result<(Tensor, Option<Vec<isize>>)> {
    let r = x.rank();
    if axis + 1 == r {
        return Ok((x.try_contiguous()?, None));
    }
    let mut perm: Vec<isize> = (0..r as isize).filter(|&i| i != axis as isize).collect();
    perm.push(axis as isize);
    let mut back = vec![0isize; r];
    for (i, &p) in perm.iter().enumerate() {
        back[p as usize] = i as isize;
    }
    Ok((x.try_permute(&perm)?.try_contiguous()?, Some(back)))
}

fn from_last(y: Tensor, back: &Option<Vec<isize>>) -> Result<Tensor> {
    match back {
        None => Ok(y),
        Some(b) => y.try_permute(b)?.try_contiguous(),
    }
}

impl Op for Softmax {
    fn name(&self) -> &'static str {
        self.name_()
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (x, back) = to_last(inputs[0], self.axis)?;
        let mask = self
            .mask
            .as_ref()
            .map(|m| to_last(m, self.axis))
            .transpose()?
            .map(|m| m.0);
        let y = backend::of(&x).softmax(&x, mask.as_ref(), self.log)?;
        let y = from_last(y, &back)?;
        Ok(Forward::new(y.clone(), vec![y]))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (y, back) = to_last(&saved[0], self.axis)?;
        let (g, _) = to_last(g, self.axis)?;
        let gx = backend::of(&y).softmax_backward(&y, &g, self.log)?;
        Ok(vec![Some(from_last(gx, &back)?)])
    }
}

fn softmax(x: &Tensor, axis: isize, log: bool, mask: Option<&Tensor>) -> Result<Tensor> {
    let op = if log { "log_softmax" } else { "softmax" };
    let a = x.shape().axis(op, axis)?;
    let mask = match mask {
        None => None,
        Some(m) => {
            if m.dtype() != DType::Bool {
                return Err(Error::DType {
                    op: "masked_softmax",
                    got: m.dtype(),
                    expected: "bool",
                });
            }
            let b = Shape::broadcast("masked_softmax", x.shape(), m.shape())?;
            if &b != x.shape() {
                return Err(Error::mismatch(
                    "masked_softmax",
                    x.shape(),
                    m.shape(),
                    "the mask must broadcast to the scores' shape",
                ));
            }
            if m.device() != x.device() {
                return Err(Error::DeviceMismatch {
                    op: "masked_softmax",
                    lhs: x.device(),
                    rhs: m.device(),
                });
            }
            let view = m.broadcast_view(x.shape());
            Some(backend::of(&view).contiguous(&view)?)
        }
    };
    apply(Softmax { axis: a, log, mask }, &[x])
}

impl Tensor {
    pub fn try_softmax(&self, axis: isize) -> Result<Tensor> {
        softmax(self, axis, false, None)
    }
    pub fn try_log_softmax(&self, axis: isize) -> Result<Tensor> {
        softmax(self, axis, true, None)
    }
    /// Softmax over `axis` where `mask` (bool, broadcastable to `self`) is true; masked
    /// positions get weight 0. A fully masked row is all zeros.
    pub fn try_masked_softmax(&self, mask: &Tensor, axis: isize) -> Result<Tensor> {
        softmax(self, axis, false, Some(mask))
    }
    /// d2l's `masked_softmax(X, valid_lens)` over the last axis: scores `[..., q, k]` and
    /// `valid_lens` (i64) of shape `[batch]` (one length per batch element) or `[batch, q]`
    /// (one per query row); key positions `>= len` are masked.
    pub fn try_masked_softmax_lens(&self, valid_lens: &Tensor) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::bad_shape(
                "masked_softmax",
                self.shape(),
                "scores need at least 2 dims [..., q, k]",
            ));
        }
        let k = self.dims()[self.rank() - 1];
        let lens = valid_lens.to_vec::<i64>();
        let rows = self.numel() / k.max(1);
        let q = self.dims()[self.rank() - 2];
        let batch = rows / q.max(1);
        let per_row = if lens.len() == batch {
            false
        } else if lens.len() == rows {
            true
        } else {
            return Err(Error::mismatch(
                "masked_softmax",
                self.shape(),
                valid_lens.shape(),
                format!("valid_lens needs {batch} (one per batch element) or {rows} (one per query) entries"),
            ));
        };
        let mut mask = Vec::with_capacity(self.numel());
        for row in 0..rows {
            let len = if per_row {
                lens[row]
            } else {
                lens[row / q.max(1)]
            };
            mask.extend((0..k).map(|j| (j as i64) < len));
        }
        // On a device the lengths were read back and the mask goes up again: small, but a
        // synchronisation (there is no kernel that builds the mask from lengths yet).
        let mask =
            Tensor::try_from_vec(mask, self.shape().clone())?.try_to_device(self.device())?;
        softmax(self, -1, false, Some(&mask))
    }

    #[track_caller]
    pub fn softmax(&self, axis: isize) -> Tensor {
        self.try_softmax(axis).or_panic()
    }
    #[track_caller]
    pub fn log_softmax(&self, axis: isize) -> Tensor {
        self.try_log_softmax(axis).or_panic()
    }
    #[track_caller]
    pub fn masked_softmax(&self, mask: &Tensor, axis: isize) -> Tensor {
        self.try_masked_softmax(mask, axis).or_panic()
    }
    #[track_caller]
    pub fn masked_softmax_lens(&self, valid_lens: &Tensor) -> Tensor {
        self.try_masked_softmax_lens(valid_lens).or_panic()
    }
}
