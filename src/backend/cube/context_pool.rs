//! ContextPool on a CubeCL device, over sequences, grids and strides: the kernels of
//! `cubegrad_ops::context_pool` see a sequence as a one-row grid.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::context_pool::{ContextPoolKernels, Geometry, Params, PoolGrads, PoolOutputs};
use crate::error::Result;
use crate::tensor::{Layout, Shape, Tensor};
use cubegrad_ops::context_pool::{PoolDims, PoolParams};

/// `len` elements of the 1-D `t` from `start` (a view).
fn narrow(t: &Tensor, start: usize, len: usize) -> Tensor {
    t.view_with(Layout {
        shape: Shape::new(&[len]),
        strides: [1].into_iter().collect(),
        offset: t.layout().offset + start,
    })
}

fn pool_params(radius: usize, causal: bool, p: &Params) -> PoolParams {
    PoolParams {
        s_min: p.s_min as f32,
        s_max: p.s_max as f32,
        radius: radius as u32,
        causal,
        normalize: p.normalize,
        eps: p.eps as f32,
    }
}

/// The token layout of `x` `[B, n_in, d]` for the kernels.
fn pool_dims(x: &Tensor, geo: &Geometry) -> (PoolDims, usize, bool) {
    let (batch, d) = (x.dims()[0], x.dims()[2]);
    match *geo {
        Geometry::Seq {
            n,
            stride,
            radius,
            causal,
        } => (PoolDims::seq(batch, n, d, stride), radius, causal),
        Geometry::Grid {
            h,
            w,
            stride,
            radius,
        } => (PoolDims::grid(batch, h, w, d, stride), radius, false),
    }
}

impl ContextPoolKernels for Cube {
    fn context_pool(
        &self,
        x: &Tensor,
        predictors: [&Tensor; 4],
        geo: &Geometry,
        params: &Params,
    ) -> Result<PoolOutputs> {
        let x = dense(x)?;
        let [a, a0, b, b0] = predictors.map(dense);
        let (a, a0, b, b0) = (a?, a0?, b?, b0?);
        let (dims, radius, causal) = pool_dims(&x, geo);
        let (batch, d) = (dims.batch, dims.d);
        let p = pool_params(radius, causal, params);
        let (dtype, device) = (x.dtype(), x.device());
        with_runtime!("context_pool", device, |R, client| {
            with_cube_float!("context_pool", dtype, |F| {
                let o = cubegrad_ops::context_pool::forward::<R, F>(
                    &client,
                    handle(&x),
                    handle(&a),
                    handle(&a0),
                    handle(&b),
                    handle(&b0),
                    dims,
                    p,
                );
                let outputs = Shape::new(&[batch, dims.n_out()]);
                Ok(PoolOutputs {
                    y: from_handle(o.y, Shape::new(&[batch, dims.n_out(), d]), dtype, device),
                    w: from_handle(o.w, Shape::new(&[batch, dims.n_in()]), dtype, device),
                    s: from_handle(o.s, outputs.clone(), dtype, device),
                    denom: from_handle(o.denom, outputs, dtype, device),
                })
            })
        })
    }

    /// The kernels return each predictor's weight gradient with its bias's last (`d + 1`
    /// elements); the views below split them.
    fn context_pool_backward(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        fwd: &PoolOutputs,
        g: &Tensor,
        geo: &Geometry,
        params: &Params,
    ) -> Result<PoolGrads> {
        let (x, a, b, g) = (dense(x)?, dense(a)?, dense(b)?, dense(g)?);
        let (y, w, s, denom) = (
            dense(&fwd.y)?,
            dense(&fwd.w)?,
            dense(&fwd.s)?,
            dense(&fwd.denom)?,
        );
        let (dims, radius, causal) = pool_dims(&x, geo);
        let d = dims.d;
        let p = pool_params(radius, causal, params);
        let (dtype, device) = (x.dtype(), x.device());
        with_runtime!("context_pool backward", device, |R, client| {
            with_cube_float!("context_pool backward", dtype, |F| {
                let outs = cubegrad_ops::context_pool::PoolOutputs {
                    y: handle(&y).clone(),
                    w: handle(&w).clone(),
                    s: handle(&s).clone(),
                    denom: handle(&denom).clone(),
                };
                let (dx, da, db) = cubegrad_ops::context_pool::backward::<R, F>(
                    &client,
                    handle(&x),
                    handle(&a),
                    handle(&b),
                    &outs,
                    handle(&g),
                    dims,
                    p,
                );
                let bias_too = Shape::new(&[d + 1]);
                let (da, db) = (
                    from_handle(da, bias_too.clone(), dtype, device),
                    from_handle(db, bias_too, dtype, device),
                );
                Ok(PoolGrads {
                    dx: from_handle(dx, x.shape().clone(), dtype, device),
                    da: narrow(&da, 0, d),
                    da0: narrow(&da, d, 1),
                    db: narrow(&db, 0, d),
                    db0: narrow(&db, d, 1),
                })
            })
        })
    }
}
