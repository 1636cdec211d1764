//! Normalisation on a CubeCL device: layer norm has kernels of its own (one cube per row);
//! batch norm is written with the device's element-wise and reduction primitives (the
//! per-channel sums of `[N, C, L]` are reductions over axes 0 and 2).

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::elementwise::{Binary, ElementwiseKernels};
use crate::backend::norm::{LayerNormOutputs, NormGrads, NormKernels};
use crate::backend::reduce::{Reduce, ReduceKernels};
use crate::backend::unary::Unary;
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use cubegrad_ops::norm as kernels;

impl Cube {
    fn scaled(&self, t: &Tensor, scale: f64) -> Result<Tensor> {
        self.unary(Unary::Affine { scale, shift: 0.0 }, t)
    }
    fn op(&self, op: Binary, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        let out = Shape::broadcast("batch_norm", a.shape(), b.shape())?;
        self.binary(op, a, b, &out)
    }
    /// Sums of `[N, C, L]` over samples and positions: `[C]`.
    fn channel_sums(&self, t: &Tensor) -> Result<Tensor> {
        self.reduce(Reduce::Sum, t, &[0, 2], &Shape::new(&[t.dims()[1]]))
    }
}

/// A per-channel `[C]` tensor seen as `[1, C, 1]`, to broadcast over `[N, C, L]`.
fn per_channel(t: &Tensor) -> Result<Tensor> {
    Ok(dense(t)?.reshape_view([1, t.numel(), 1]))
}

impl NormKernels for Cube {
    fn layer_norm(
        &self,
        x: &Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        cols: usize,
        eps: f64,
    ) -> Result<LayerNormOutputs> {
        let x = dense(x)?;
        let (gamma, beta) = (gamma.map(dense).transpose()?, beta.map(dense).transpose()?);
        let rows = x.numel() / cols.max(1);
        let (dtype, device) = (x.dtype(), x.device());
        with_runtime!("layer_norm", device, |R, client| {
            with_cube_float!("layer_norm", dtype, |F| {
                let o = kernels::layer_norm::<R, F>(
                    &client,
                    handle(&x),
                    gamma.as_ref().map(handle),
                    beta.as_ref().map(handle),
                    rows,
                    cols,
                    eps,
                );
                let per_row = Shape::new(&[rows]);
                Ok(LayerNormOutputs {
                    y: from_handle(o.y, x.shape().clone(), dtype, device),
                    mean: from_handle(o.mean, per_row.clone(), dtype, device),
                    rstd: from_handle(o.rstd, per_row, dtype, device),
                })
            })
        })
    }

    /// The kernel gives `dx` and `g·x̂`; the parameters' gradients are column sums.
    fn layer_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        cols: usize,
    ) -> Result<NormGrads> {
        let (x, g) = (dense(x)?, dense(g)?);
        let gamma = gamma.map(dense).transpose()?;
        let rows = x.numel() / cols.max(1);
        let (dtype, device) = (x.dtype(), x.device());
        let (dx, gxhat) = with_runtime!("layer_norm", device, |R, client| {
            with_cube_float!("layer_norm", dtype, |F| {
                let (dx, gxhat) = kernels::layer_norm_backward::<R, F>(
                    &client,
                    handle(&x),
                    handle(&g),
                    gamma.as_ref().map(handle),
                    handle(mean),
                    handle(rstd),
                    rows,
                    cols,
                );
                Ok((
                    from_handle(dx, x.shape().clone(), dtype, device),
                    from_handle(gxhat, Shape::new(&[rows, cols]), dtype, device),
                ))
            })
        })?;
        let column_sum = |t: &Tensor| self.reduce(Reduce::Sum, t, &[0], &Shape::new(&[cols]));
        Ok(NormGrads {
            dx,
            dgamma: column_sum(&gxhat)?,
            dbeta: column_sum(&g.reshape_view([rows, cols]))?,
        })
    }

    fn batch_stats(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (n, l) = (x.dims()[0], x.dims()[2]);
        let m = 1.0 / (n * l) as f64;
        let mean = self.scaled(&self.channel_sums(x)?, m)?;
        let centred = self.op(Binary::Sub, x, &per_channel(&mean)?)?;
        let var = self.scaled(
            &self.channel_sums(&self.op(Binary::Mul, &centred, &centred)?)?,
            m,
        )?;
        Ok((mean, var))
    }

    fn batch_norm(
        &self,
        x: &Tensor,
        mean: &Tensor,
        var: &Tensor,
        eps: f64,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        let shifted = self.unary(
            Unary::Affine {
                scale: 1.0,
                shift: eps,
            },
            var,
        )?;
        let rstd = self.unary(Unary::Powf(-0.5), &shifted)?;
        let centred = self.op(Binary::Sub, x, &per_channel(mean)?)?;
        let mut y = self.op(Binary::Mul, &centred, &per_channel(&rstd)?)?;
        if let (Some(g), Some(b)) = (gamma, beta) {
            y = self.op(Binary::Mul, &y, &per_channel(g)?)?;
            y = self.op(Binary::Add, &y, &per_channel(b)?)?;
        }
        Ok((y, rstd))
    }

    fn batch_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        gamma: Option<&Tensor>,
        batch_stats: bool,
    ) -> Result<NormGrads> {
        let (n, l) = (x.dims()[0], x.dims()[2]);
        let centred = self.op(Binary::Sub, x, &per_channel(mean)?)?;
        let xhat = self.op(Binary::Mul, &centred, &per_channel(rstd)?)?;
        let sum_g = self.channel_sums(g)?;
        let sum_gx = self.channel_sums(&self.op(Binary::Mul, g, &xhat)?)?;
        let k = match gamma {
            Some(gm) => self.op(Binary::Mul, rstd, gm)?,
            None => rstd.clone(),
        };
        let inner = if batch_stats {
            let m = 1.0 / (n * l) as f64;
            let mean_g = per_channel(&self.scaled(&sum_g, m)?)?;
            let mean_gx = per_channel(&self.scaled(&sum_gx, m)?)?;
            let less = self.op(Binary::Sub, g, &mean_g)?;
            self.op(Binary::Sub, &less, &self.op(Binary::Mul, &xhat, &mean_gx)?)?
        } else {
            g.clone()
        };
        Ok(NormGrads {
            dx: self.op(Binary::Mul, &inner, &per_channel(&k)?)?,
            dgamma: sum_gx,
            dbeta: sum_g,
        })
    }
}
