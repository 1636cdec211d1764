//! Concatenation along an existing axis and stacking along a new one. Each input's gradient
//! is its slice of the output's gradient; nothing is saved but the sizes.

use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::error::{Error, OrPanic, Result};
use crate::tensor::Tensor;

// ----- concat ---------------------------------------------------------------------------------

struct Concat {
    axis: usize,
    sizes: Vec<usize>,
}

impl Op for Concat {
    fn name(&self) -> &'static str {
        "concat"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let out = backend::of(inputs[0]).concat(inputs, self.axis)?;
        Ok(Forward::new(out, vec![]))
    }
    /// Each input's gradient is its slice of the output's gradient.
    fn backward(&self, _: &[Tensor], g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        let mut out = Vec::with_capacity(self.sizes.len());
        for (&len, &need) in self.sizes.iter().zip(needs) {
            out.push(if need {
                Some(
                    g.try_narrow(self.axis as isize, start, len)?
                        .try_contiguous()?,
                )
            } else {
                None
            });
            start += len;
        }
        Ok(out)
    }
}

impl Tensor {
    pub fn try_concat(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("concat", "no tensors given"))?;
        let a = first.shape().axis("concat", axis)?;
        for t in &tensors[1..] {
            let same_rank = t.rank() == first.rank();
            if !same_rank
                || t.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .any(|(i, (x, y))| i != a && x != y)
            {
                return Err(Error::mismatch(
                    "concat",
                    first.shape(),
                    t.shape(),
                    format!("all dims but {a} must match"),
                ));
            }
            super::same_kind("concat", first, t)?;
        }
        let sizes = tensors.iter().map(|t| t.dims()[a]).collect();
        apply(Concat { axis: a, sizes }, tensors)
    }
    /// Stacks equally shaped tensors along a new dimension `axis`.
    pub fn try_stack(tensors: &[&Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("stack", "no tensors given"))?;
        for t in &tensors[1..] {
            if t.shape() != first.shape() {
                return Err(Error::mismatch(
                    "stack",
                    first.shape(),
                    t.shape(),
                    "all tensors must have the same shape",
                ));
            }
        }
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.try_unsqueeze(axis))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = parts.iter().collect();
        let axis = if axis < 0 {
            axis + first.rank() as isize + 1
        } else {
            axis
        };
        Tensor::try_concat(&refs, axis)
    }
    #[track_caller]
    pub fn concat(tensors: &[&Tensor], axis: isize) -> Tensor {
        Tensor::try_concat(tensors, axis).or_panic()
    }
    #[track_caller]
    pub fn stack(tensors: &[&Tensor], axis: isize) -> Tensor {
        Tensor::try_stack(tensors, axis).or_panic()
    }
}
