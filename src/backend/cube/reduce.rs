//! Reductions on a CubeCL device: the reduced axes are moved last and made contiguous (one
//! strided copy), so that the kernel reduces rows, one cube per row.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::reduce::{Reduce, ReduceKernels};
use crate::error::Result;
use crate::tensor::{DType, Shape, Tensor};
use cubegrad_ops::reduce as kernels;

/// `x` with `last` moved to the end (a view; the order of the other axes is kept).
fn moved_last(x: &Tensor, last: &[usize]) -> Tensor {
    let perm: Vec<usize> = (0..x.rank())
        .filter(|a| !last.contains(a))
        .chain(last.iter().copied())
        .collect();
    x.permute_view(&perm)
}

impl ReduceKernels for Cube {
    fn reduce(&self, op: Reduce, x: &Tensor, axes: &[usize], out: &Shape) -> Result<Tensor> {
        let cols: usize = axes.iter().map(|&a| x.dims()[a]).product();
        let x = dense(&moved_last(x, axes))?;
        let rows = x.numel() / cols.max(1);
        with_runtime!("reduce", x.device(), |R, client| {
            with_cube_float!("reduce", x.dtype(), |F| {
                let (c, h) = (&client, handle(&x));
                let out_h = match op {
                    Reduce::Sum => kernels::reduce_rows::<R, F, kernels::Sum>(c, h, rows, cols),
                    Reduce::Max => kernels::reduce_rows::<R, F, kernels::Max>(c, h, rows, cols),
                    Reduce::Min => kernels::reduce_rows::<R, F, kernels::Min>(c, h, rows, cols),
                };
                Ok(from_handle(out_h, out.clone(), x.dtype(), x.device()))
            })
        })
    }

    fn cumsum(&self, x: &Tensor, axis: usize, reverse: bool) -> Result<Tensor> {
        let x = dense(x)?;
        let d = x.dims();
        let split: (usize, usize, usize) = (
            d[..axis].iter().product(),
            d[axis],
            d[axis + 1..].iter().product(),
        );
        with_runtime!("cumsum", x.device(), |R, client| {
            with_cube_float!("cumsum", x.dtype(), |F| {
                let h = kernels::cumsum::<R, F>(&client, handle(&x), split, reverse);
                Ok(from_handle(h, x.shape().clone(), x.dtype(), x.device()))
            })
        })
    }

    fn arg_reduce(&self, x: &Tensor, axis: usize, largest: bool, out: &Shape) -> Result<Tensor> {
        let x = dense(&moved_last(x, &[axis]))?;
        let cols = x.dims().last().copied().unwrap_or(1);
        let rows = x.numel() / cols.max(1);
        with_runtime!("argmax", x.device(), |R, client| {
            with_cube_float!("argmax", x.dtype(), |F| {
                let h = kernels::arg_rows::<R, F>(&client, handle(&x), rows, cols, largest);
                Ok(from_handle(h, out.clone(), DType::I64, x.device()))
            })
        })
    }
}
