//! Reductions over chosen axes (all axes when none are given): sum, mean, max, min, argmax.
//!
//! Sum's backward broadcasts the gradient back over the reduced axes and saves nothing. Max and
//! min save the input and the output: the gradient goes to the elements equal to the extreme,
//! shared equally among ties (like `torch.amax`).

use super::{from_float, with_float};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::reduce::{arg_reduce, reduce_axis, ReduceKind};
use crate::error::{OrPanic, Result};
use crate::tensor::{CpuData, Dims, Shape, Tensor};
use cubegrad_ops::reduce::ReduceOp;

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
        let out = if x.cube().is_some() {
            self.on_device(x)?
        } else {
            self.on_cpu(x)?
        };
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

impl Reduce {
    /// The reduced axes are moved last and made contiguous, so the kernel reduces rows.
    fn on_device(&self, x: &Tensor) -> Result<Tensor> {
        let r = x.rank();
        let mut perm: Vec<isize> = (0..r)
            .filter(|a| !self.axes.contains(a))
            .map(|a| a as isize)
            .collect();
        perm.extend(self.axes.iter().map(|&a| a as isize));
        let moved = x.try_permute(&perm)?;
        let cols: usize = self.axes.iter().map(|&a| x.dims()[a]).product();
        let op = match self.kind {
            ReduceKind::Sum => ReduceOp::Sum,
            ReduceKind::Max => ReduceOp::Max,
            ReduceKind::Min => ReduceOp::Min,
        };
        crate::backend::cube::ops::reduce_rows(op, &moved, cols, self.out_shape())
    }
    fn on_cpu(&self, x: &Tensor) -> Result<Tensor> {
        with_float!(self.name(), x.dtype(), |T| {
            let xs = x.float_slice::<T>(self.name())?;
            let mut dims: Vec<usize> = x.dims().to_vec();
            // Highest axis first, so the lower axes keep their positions. The first reduction
            // reads the input in place; later ones read the previous result.
            let mut data: Option<Vec<T>> = None;
            for &a in self.axes.iter().rev() {
                data = Some(reduce_axis(
                    data.as_deref().unwrap_or(&xs),
                    &dims,
                    a,
                    self.kind,
                ));
                dims[a] = 1;
            }
            let data = data.unwrap_or_else(|| xs.into_owned());
            Ok(from_float(data, self.out_shape()))
        })
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

impl Tensor {
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
    if x.cube().is_some() {
        let r = x.rank() as isize;
        let mut perm: Vec<isize> = (0..r).filter(|&d| d != a as isize).collect();
        perm.push(a as isize);
        return crate::backend::cube::ops::arg_rows(&x.try_permute(&perm)?, largest, shape);
    }
    let v = with_float!(op, x.dtype(), |T| {
        Ok(arg_reduce(&x.float_slice::<T>(op)?, x.dims(), a, largest))
    })?;
    Ok(Tensor::from_cpu(CpuData::I64(v), shape))
}
