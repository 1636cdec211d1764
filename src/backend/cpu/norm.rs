//! The normalisation primitives on the CPU: layer norm (loops in `layer_norm.rs`) and batch
//! norm (loops in `batch_norm.rs`).

use super::float::Float;
use super::{batch_norm, layer_norm, tensor, with_float, Cpu};
use crate::backend::norm::{LayerNormOutputs, NormGrads, NormKernels};
use crate::error::Result;
use crate::tensor::Tensor;

impl NormKernels for Cpu {
    fn layer_norm(
        &self,
        x: &Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
        cols: usize,
        eps: f64,
    ) -> Result<LayerNormOutputs> {
        let rows = x.numel() / cols.max(1);
        with_float!("layer_norm", x.dtype(), |T| {
            let f = |t| super::slice::<T>("layer_norm", t);
            let (gs, bs) = (gamma.map(f).transpose()?, beta.map(f).transpose()?);
            let (y, mean, rstd) =
                layer_norm::forward(&f(x)?, cols, gs.as_deref(), bs.as_deref(), eps);
            Ok(LayerNormOutputs {
                y: tensor(y, x.shape().clone()),
                mean: tensor(mean, [rows]),
                rstd: tensor(rstd, [rows]),
            })
        })
    }

    fn layer_norm_backward(
        &self,
        x: &Tensor,
        g: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
        cols: usize,
    ) -> Result<NormGrads> {
        with_float!("layer_norm", x.dtype(), |T| {
            // Read in place: the backward allocates only its outputs.
            let f = |t| super::slice::<T>("layer_norm", t);
            let gs = gamma.map(f).transpose()?;
            let (dx, dg, db) =
                layer_norm::backward(&f(x)?, &f(g)?, cols, gs.as_deref(), &f(mean)?, &f(rstd)?);
            Ok(NormGrads {
                dx: tensor(dx, x.shape().clone()),
                dgamma: tensor(dg, [cols]),
                dbeta: tensor(db, [cols]),
            })
        })
    }

    fn batch_stats(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let (n, c, l) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        with_float!("batch_norm", x.dtype(), |T| {
            let (m, v) = batch_norm::channel_stats(&super::slice::<T>("batch_norm", x)?, n, c, l);
            Ok((tensor(m, [c]), tensor(v, [c])))
        })
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
        let (c, l) = (x.dims()[1], x.dims()[2]);
        with_float!("batch_norm", x.dtype(), |T| {
            let f = |t| super::slice::<T>("batch_norm", t);
            let rstd: Vec<T> = f(var)?
                .iter()
                .map(|&v| (v + T::from_f64(eps)).sqrt().recip())
                .collect();
            let (g, b) = (gamma.map(f).transpose()?, beta.map(f).transpose()?);
            let y =
                batch_norm::normalize(&f(x)?, c, l, &f(mean)?, &rstd, g.as_deref(), b.as_deref());
            Ok((tensor(y, x.shape().clone()), tensor(rstd, [c])))
        })
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
        let (n, c, l) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        with_float!("batch_norm", x.dtype(), |T| {
            let f = |t| super::slice::<T>("batch_norm", t);
            let gs = gamma.map(f).transpose()?;
            let (dx, dg, db) = batch_norm::backward(
                &f(x)?,
                &f(g)?,
                n,
                c,
                l,
                &f(mean)?,
                &f(rstd)?,
                gs.as_deref(),
                batch_stats,
            );
            Ok(NormGrads {
                dx: tensor(dx, x.shape().clone()),
                dgamma: tensor(dg, [c]),
                dbeta: tensor(db, [c]),
            })
        })
    }
}
