//! Max and average pooling on a CubeCL device: one kernel per direction; max pooling returns
//! its indices as an i64 tensor for the backward.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::pooling::{PoolGeometry, PoolKind, PoolingKernels};
use crate::error::Result;
use crate::tensor::{DType, Shape, Tensor};
use cubegrad_ops::pool::{self as kernels, PoolShape};

fn pool_shape(g: &PoolGeometry, planes: usize, kind: PoolKind) -> PoolShape {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    PoolShape {
        planes,
        h: g.h,
        w: g.w,
        kernel: g.kernel,
        stride: g.stride,
        padding: g.padding,
        ho,
        wo,
        divisor_override: match kind {
            PoolKind::Avg {
                divisor_override: Some(d),
                ..
            } => d,
            _ => 0,
        },
    }
}

impl PoolingKernels for Cube {
    fn pool2d(
        &self,
        x: &Tensor,
        geo: &PoolGeometry,
        planes: usize,
        kind: PoolKind,
        out: &Shape,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let x = dense(x)?;
        let s = pool_shape(geo, planes, kind);
        let (dtype, device) = (x.dtype(), x.device());
        with_runtime!("pool2d", device, |R, client| {
            with_cube_float!("pool2d", dtype, |F| {
                Ok(match kind {
                    PoolKind::Max => {
                        let (y, idx) = kernels::max_pool::<R, F>(&client, handle(&x), &s);
                        let idx = from_handle(idx, out.clone(), DType::I64, device);
                        (from_handle(y, out.clone(), dtype, device), Some(idx))
                    }
                    PoolKind::Avg {
                        count_include_pad, ..
                    } => {
                        let y =
                            kernels::avg_pool::<R, F>(&client, handle(&x), &s, count_include_pad);
                        (from_handle(y, out.clone(), dtype, device), None)
                    }
                })
            })
        })
    }

    fn pool2d_backward(
        &self,
        gy: &Tensor,
        argmax: Option<&Tensor>,
        geo: &PoolGeometry,
        planes: usize,
        kind: PoolKind,
        from: &Shape,
    ) -> Result<Tensor> {
        let gy = dense(gy)?;
        let idx = argmax.map(dense).transpose()?;
        let s = pool_shape(geo, planes, kind);
        let include_pad = matches!(
            kind,
            PoolKind::Avg {
                count_include_pad: true,
                ..
            }
        );
        let (dtype, device) = (gy.dtype(), gy.device());
        with_runtime!("pool2d backward", device, |R, client| {
            with_cube_float!("pool2d backward", dtype, |F| {
                let h = kernels::pool_backward::<R, F>(
                    &client,
                    handle(&gy),
                    idx.as_ref().map(handle),
                    &s,
                    include_pad,
                );
                Ok(from_handle(h, from.clone(), dtype, device))
            })
        })
    }
}
