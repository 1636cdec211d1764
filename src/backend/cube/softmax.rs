//! Softmax of rows on a CubeCL device: one cube per row, with an optional keep-mask.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::softmax::SoftmaxKernels;
use crate::error::Result;
use crate::tensor::Tensor;
use cubegrad_ops::softmax as kernels;

impl SoftmaxKernels for Cube {
    fn softmax(&self, x: &Tensor, mask: Option<&Tensor>, log: bool) -> Result<Tensor> {
        let x = dense(x)?;
        let mask = mask.map(dense).transpose()?;
        let cols = x.dims().last().copied().unwrap_or(1);
        let rows = x.numel() / cols.max(1);
        with_runtime!("softmax", x.device(), |R, client| {
            with_cube_float!("softmax", x.dtype(), |F| {
                let h = kernels::softmax_rows::<R, F>(
                    &client,
                    handle(&x),
                    mask.as_ref().map(handle),
                    rows,
                    cols,
                    log,
                );
                Ok(from_handle(h, x.shape().clone(), x.dtype(), x.device()))
            })
        })
    }

    fn softmax_backward(&self, y: &Tensor, g: &Tensor, log: bool) -> Result<Tensor> {
        let (y, g) = (dense(y)?, dense(g)?);
        let cols = y.dims().last().copied().unwrap_or(1);
        let rows = y.numel() / cols.max(1);
        with_runtime!("softmax backward", y.device(), |R, client| {
            with_cube_float!("softmax backward", y.dtype(), |F| {
                let h = kernels::softmax_rows_backward::<R, F>(
                    &client,
                    handle(&y),
                    handle(&g),
                    rows,
                    cols,
                    log,
                );
                Ok(from_handle(h, y.shape().clone(), y.dtype(), y.device()))
            })
        })
    }
}
