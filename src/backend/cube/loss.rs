//! Cross-entropy and negative log-likelihood on a CubeCL device, one cube per row. The
//! targets stay on the device, so nothing is read back: the mean is a sum of rows divided by
//! a sum of counts, both on the device.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::loss::{CrossEntropyRows, LossKernels};
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use cubegrad_ops::loss as kernels;

impl LossKernels for Cube {
    fn cross_entropy(
        &self,
        x: &Tensor,
        targets: &Tensor,
        ignore: Option<i64>,
        smoothing: Option<f64>,
    ) -> Result<CrossEntropyRows> {
        let (x, t) = (dense(x)?, dense(targets)?);
        let classes = x.dims().last().copied().unwrap_or(1);
        let rows = x.numel() / classes.max(1);
        let (dtype, device) = (x.dtype(), x.device());
        with_runtime!("cross_entropy", device, |R, client| {
            with_cube_float!("cross_entropy", dtype, |F| {
                let (c, hx, ht) = (&client, handle(&x), handle(&t));
                let o = match smoothing {
                    Some(eps) => {
                        kernels::cross_entropy::<R, F>(c, hx, ht, rows, classes, ignore, eps)
                    }
                    None => kernels::nll::<R, F>(c, hx, ht, rows, classes, ignore),
                };
                let per_row = Shape::new(&[rows]);
                Ok(CrossEntropyRows {
                    loss: from_handle(o.loss, per_row.clone(), dtype, device),
                    counted: from_handle(o.counted, per_row, dtype, device),
                    dx: from_handle(o.dx, x.shape().clone(), dtype, device),
                })
            })
        })
    }
}
