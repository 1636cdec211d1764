//! Reductions over chosen axes (all axes when none are given): sum, mean, max, min, argmax;
//! and running sums along one axis (`cumsum`), whose gradient is the running sum backwards.
//!
//! Sum's backward broadcasts the gradient back over the reduced axes and saves nothing. Max and
//! min save the input and the output: the gradient goes to the elements equal to the extreme,
//! shared equally among ties (like `torch.amax`).

use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::reduce::Reduce as ReduceKind;
use crate::error::{OrPanic, Result};
use crate::tensor::{Dims, Shape, Tensor};

struct Reduce {
    kind: ReduceKind,
    axes: Dims,
    keepdim: bool,
    from: Shape,
}

fn kept_shape(from: &Shape, axes: &[usize]) -> Shape {
    Shape(
        from.dims()
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect(),
    )
}
fn dropped_shape(from: &Shape, axes: &[usize]) -> Shape {
    Shape(
        from.dims()
            .iter()
            .enumerate()
            .filter(|(i, _)| !axes.contains(i))
            .map(|(_, &d)| d)
            .collect(),
    )
}

impl Reduce {
    fn out_shape(&self) -> Shape {
        if self.keepdim {
            kept_shape(&self.from, &self.axes)
        } else {
            dropped_shape(&self.from, &self.axes)
        }
    }
}

impl Op for Reduce {
    fn name(&self) -> &'static str {
        match self.kind {
            ReduceKind::Sum => "sum",
            ReduceKind::Max => "max",
            ReduceKind::Min => "min",
        }
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let out = backend::of(x).reduce(self.kind, x, &self.axes, &self.out_shape())?;
        let saved = match self.kind {
            ReduceKind::Sum => vec![],
            _ => vec![x.clone(), out.clone()],
        };
        Ok(Forward::new(out, saved))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let kept = kept_shape(&self.from, &self.axes);
        let g = g.try_reshape(kept.dims())?;
        let gx = match self.kind {
            ReduceKind::Sum => g.try_broadcast_to(&self.from)?.try_contiguous()?,
            _ => {
                let (x, out) = (&saved[0], saved[1].try_reshape(kept.dims())?);
                let hit = x.try_eq(&out)?.to_dtype(x.dtype());
                let ties = hit.try_sum_axes(
                    &self.axes.iter().map(|&a| a as isize).collect::<Vec<_>>(),
                    true,
                )?;
                hit.try_mul(&g.try_div(&ties)?)?
            }
        };
        Ok(vec![Some(gx)])
    }
}

fn reduce(x: &Tensor, kind: ReduceKind, axes: &[isize], keepdim: bool) -> Result<Tensor> {
    let op = match kind {
        ReduceKind::Sum => "sum",
        ReduceKind::Max => "max",
        ReduceKind::Min => "min",
    };
    let axes = x.shape().axes(op, axes)?;
    apply(
        Reduce {
            kind,
            axes,
            keepdim,
            from: x.shape().clone(),
        },
        &[x],
    )
}

/// Running sums along `axis`. `y_k = Σ_{j≤k} x_j`, so `∂L/∂x_j = Σ_{k≥j} g_k`: the backward
/// is the same scan run from the end. Saves nothing.
struct CumSum {
    axis: usize,
}

impl Op for CumSum {
    fn name(&self) -> &'static str {
        "cumsum"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        Ok(Forward::new(
            backend::of(x).cumsum(x, self.axis, false)?,
            vec![],
        ))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(backend::of(g).cumsum(g, self.axis, true)?)])
    }
}

impl Tensor {
    /// Running sums along `axis`, as `torch.cumsum` (float tensors).
    pub fn try_cumsum(&self, axis: isize) -> Result<Tensor> {
        let axis = self.shape().axis("cumsum", axis)?;
        if !self.dtype().is_float() {
            return Err(crate::error::Error::DType {
                op: "cumsum",
                got: self.dtype(),
                expected: "f32 or f64",
            });
        }
        apply(CumSum { axis }, &[self])
    }
    #[track_caller]
    pub fn cumsum(&self, axis: isize) -> Tensor {
        self.try_cumsum(axis).or_panic()
    }
    /// Sum over `axes` (every axis when empty).
    pub fn try_sum_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, ReduceKind::Sum, axes, keepdim)
    }
    pub fn try_mean_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        let ax = self.shape().axes("mean", axes)?;
        let count: usize = ax.iter().map(|&a| self.dims()[a]).product();
        Ok(self
            .try_sum_axes(axes, keepdim)?
            .affine(1.0 / count as f64, 0.0))
    }
    pub fn try_max_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, ReduceKind::Max, axes, keepdim)
    }
    pub fn try_min_axes(&self, axes: &[isize], keepdim: bool) -> Result<Tensor> {
        reduce(self, ReduceKind::Min, axes, keepdim)
    }
    /// Index of the largest element along `axis`, as i64 (first on ties). Not differentiable.
    pub fn try_argmax(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        arg(self, axis, keepdim, true)
    }
    pub fn try_argmin(&self, axis: isize, keepdim: bool) -> Result<Tensor> {
        arg(self, axis, keepdim, false)
    }

    #[track_caller]
    pub fn sum_axes(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.try_sum_axes(axes, keepdim).or_panic()
    }
    #[track_caller]
    pub fn mean_axes(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.try_mean_axes(axes, keepdim).or_panic()
    }
    #[track_caller]
    pub fn max_axes(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.try_max_axes(axes, keepdim).or_panic()
    }
    #[track_caller]
    pub fn min_axes(&self, axes: &[isize], keepdim: bool) -> Tensor {
        self.try_min_axes(axes, keepdim).or_panic()
    }
    #[track_caller]
    pub fn argmax(&self, axis: isize, keepdim: bool) -> Tensor {
        self.try_argmax(axis, keepdim).or_panic()
    }
    #[track_caller]
    pub fn argmin(&self, axis: isize, keepdim: bool) -> Tensor {
        self.try_argmin(axis, keepdim).or_panic()
    }
    /// Sum of every element, as a rank-0 tensor.
    #[track_caller]
    pub fn sum(&self) -> Tensor {
        self.sum_axes(&[], false)
    }
    /// Mean of every element, as a rank-0 tensor.
    #[track_caller]
    pub fn mean(&self) -> Tensor {
        self.mean_axes(&[], false)
    }
    #[track_caller]
    pub fn max(&self) -> Tensor {
        self.max_axes(&[], false)
    }
    #[track_caller]
    pub fn min(&self) -> Tensor {
        self.min_axes(&[], false)
    }
}

fn arg(x: &Tensor, axis: isize, keepdim: bool, largest: bool) -> Result<Tensor> {
    let op = if largest { "argmax" } else { "argmin" };
    let a = x.shape().axis(op, axis)?;
    let shape = if keepdim {
        kept_shape(x.shape(), &[a])
    } else {
        dropped_shape(x.shape(), &[a])
    };
    backend::of(x).arg_reduce(x, a, largest, &shape)
}
