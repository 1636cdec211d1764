//! `nn.BatchNorm2d` (Ioffe & Szegedy 2015): per-channel normalisation of `[N, C, H, W]` by the
//! batch's statistics in training and by running estimates in evaluation, with PyTorch's
//! names (`weight`, `bias`; buffers `running_mean`, `running_var`, `num_batches_tracked`),
//! defaults (`eps = 1e-5`, `momentum = 0.1`) and the unbiased variance in the running
//! estimate. One fused op; the loops are in `backend::cpu::batch_norm`; on a device it is
//! written with the device's element-wise and reduction kernels.

use super::{child_name, visit_named, visit_named_mut, Module};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::batch_norm as kernel;
use crate::error::{Error, OrPanic, Result};
use crate::ops::{from_float, same_kind, with_float, UnaryKind};
use crate::tensor::{Float, Tensor};

fn fslice<T: Float>(t: &Tensor) -> Result<std::borrow::Cow<'_, [T]>> {
    t.float_slice::<T>("batch_norm")
}

/// Inputs: `x` `[N, C, L]`, then `γ` and `β` when `affine`. `stats` are the per-channel mean
/// and variance used: the batch's (training; the layer computes them once, for this op and
/// for its running estimates) or the running ones (evaluation).
struct BatchNormOp {
    affine: bool,
    /// The statistics are the batch's, so they depend on `x` (the backward differs).
    batch_stats: bool,
    stats: (Tensor, Tensor),
    eps: f64,
}

impl Op for BatchNormOp {
    fn name(&self) -> &'static str {
        "batch_norm"
    }
    /// Saves `x`, `γ`, and the per-channel mean and rstd used.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0].try_contiguous()?;
        let (c, l) = (x.dims()[1], x.dims()[2]);
        if x.cube().is_some() {
            return self.forward_on_device(x, inputs.get(1).copied(), inputs.get(2).copied());
        }
        let (y, mean, rstd) = with_float!("batch_norm", x.dtype(), |T| {
            let xs = fslice::<T>(&x)?;
            let mean = fslice::<T>(&self.stats.0)?.into_owned();
            let rstd: Vec<T> = fslice::<T>(&self.stats.1)?
                .iter()
                .map(|&v| (v + T::from_f64(self.eps)).sqrt().recip())
                .collect();
            let (g, b) = if self.affine {
                (Some(fslice::<T>(inputs[1])?), Some(fslice::<T>(inputs[2])?))
            } else {
                (None, None)
            };
            let y = kernel::normalize(&xs, c, l, &mean, &rstd, g.as_deref(), b.as_deref());
            Ok((
                from_float(y, x.shape().clone()),
                from_float(mean, [c].into()),
                from_float(rstd, [c].into()),
            ))
        })?;
        let mut saved = vec![x, mean, rstd];
        if self.affine {
            saved.push(inputs[1].clone());
        }
        Ok(Forward::new(y, saved))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (x, mean, rstd) = (&saved[0], &saved[1], &saved[2]);
        let g = g.try_contiguous()?;
        if x.cube().is_some() {
            return self.backward_on_device(x, &g, mean, rstd, saved.get(3));
        }
        let (n, c, l) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        with_float!("batch_norm", x.dtype(), |T| {
            let gamma = saved.get(3).map(fslice::<T>).transpose()?;
            let (dx, dg, db) = kernel::backward(
                &fslice::<T>(x)?,
                &fslice::<T>(&g)?,
                n,
                c,
                l,
                &fslice::<T>(mean)?,
                &fslice::<T>(rstd)?,
                gamma.as_deref(),
                self.batch_stats,
            );
            let mut out = vec![Some(from_float(dx, x.shape().clone()))];
            if self.affine {
                out.push(Some(from_float(dg, [c].into())));
                out.push(Some(from_float(db, [c].into())));
            }
            Ok(out)
        })
    }
}

/// On a CubeCL device the same formulas, written with the device's element-wise and
/// reduction kernels (per-channel sums are reductions over axes 0 and 2 of `[N, C, L]`).
impl BatchNormOp {
    fn forward_on_device(
        &self,
        x: Tensor,
        gamma: Option<&Tensor>,
        beta: Option<&Tensor>,
    ) -> Result<Forward> {
        let c = x.dims()[1];
        let per_channel = |t: &Tensor| t.try_reshape(&[1, c, 1]);
        let mean = self.stats.0.clone();
        let rstd = self
            .stats
            .1
            .try_unary(UnaryKind::Affine {
                scale: 1.0,
                shift: self.eps,
            })?
            .try_unary(UnaryKind::Powf(-0.5))?;
        let mut y = x
            .try_sub(&per_channel(&mean)?)?
            .try_mul(&per_channel(&rstd)?)?;
        if let (Some(g), Some(b)) = (gamma, beta) {
            y = y.try_mul(&per_channel(g)?)?.try_add(&per_channel(b)?)?;
        }
        let mut saved = vec![x, mean, rstd];
        saved.extend(gamma.cloned());
        Ok(Forward::new(y, saved))
    }

    fn backward_on_device(
        &self,
        x: &Tensor,
        g: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
        gamma: Option<&Tensor>,
    ) -> Result<Vec<Option<Tensor>>> {
        let (n, c, l) = (x.dims()[0], x.dims()[1], x.dims()[2]);
        let per_channel = |t: &Tensor| t.try_reshape(&[1, c, 1]);
        let xhat = x
            .try_sub(&per_channel(mean)?)?
            .try_mul(&per_channel(rstd)?)?;
        let sum_g = g.try_sum_axes(&[0, 2], false)?;
        let sum_gx = g.try_mul(&xhat)?.try_sum_axes(&[0, 2], false)?;
        let k = match gamma {
            Some(gm) => rstd.try_mul(gm)?,
            None => rstd.clone(),
        };
        let inner = if self.batch_stats {
            let m = 1.0 / (n * l) as f64;
            let scaled = |t: &Tensor| {
                per_channel(&t.try_unary(UnaryKind::Affine {
                    scale: m,
                    shift: 0.0,
                })?)
            };
            g.try_sub(&scaled(&sum_g)?)?
                .try_sub(&xhat.try_mul(&scaled(&sum_gx)?)?)?
        } else {
            g.clone()
        };
        let dx = inner.try_mul(&per_channel(&k)?)?;
        let mut out = vec![Some(dx)];
        if self.affine {
            out.push(Some(sum_gx));
            out.push(Some(sum_g));
        }
        Ok(out)
    }
}

/// Per-channel mean and biased variance (`[C]` each) of a contiguous `[N, C, L]` tensor.
fn batch_stats(flat: &Tensor) -> Result<(Tensor, Tensor)> {
    let (n, c, l) = (flat.dims()[0], flat.dims()[1], flat.dims()[2]);
    if flat.cube().is_some() {
        let m = 1.0 / (n * l) as f64;
        let mean_of = |t: &Tensor| {
            t.try_sum_axes(&[0, 2], false)?
                .try_unary(UnaryKind::Affine {
                    scale: m,
                    shift: 0.0,
                })
        };
        let mean = mean_of(flat)?;
        let centred = flat.try_sub(&mean.try_reshape(&[1, c, 1])?)?;
        let var = mean_of(&centred.try_mul(&centred)?)?;
        return Ok((mean, var));
    }
    with_float!("batch_norm", flat.dtype(), |T| {
        let (m, v) = kernel::channel_stats(&fslice::<T>(flat)?, n, c, l);
        Ok((from_float(m, [c].into()), from_float(v, [c].into())))
    })
}

pub struct BatchNorm2d {
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    pub num_batches_tracked: Tensor,
    pub eps: f64,
    pub momentum: f64,
    training: bool,
}

impl BatchNorm2d {
    /// `nn.BatchNorm2d(num_features)`: γ = 1, β = 0, running mean 0 and variance 1.
    pub fn new(num_features: usize) -> Self {
        BatchNorm2d {
            weight: Some(Tensor::ones([num_features]).with_grad()),
            bias: Some(Tensor::zeros([num_features]).with_grad()),
            running_mean: Tensor::zeros([num_features]),
            running_var: Tensor::ones([num_features]),
            num_batches_tracked: Tensor::scalar(0i64),
            eps: 1e-5,
            momentum: 0.1,
            training: true,
        }
    }
    pub fn num_features(&self) -> usize {
        self.running_mean.numel()
    }

    /// `x` `[N, C, H, W]`. In training this also updates the running statistics, so it
    /// takes `&mut self`.
    pub fn try_forward(&mut self, x: &Tensor) -> Result<Tensor> {
        const OP: &str = "BatchNorm2d";
        let c = self.num_features();
        if x.rank() != 4 || x.dims()[1] != c {
            return Err(Error::bad_shape(
                OP,
                x.shape(),
                format!("expected [N, {c}, H, W]"),
            ));
        }
        same_kind(OP, x, &self.running_mean)?;
        let (n, h, w) = (x.dims()[0], x.dims()[2], x.dims()[3]);
        if self.training && n * h * w < 2 {
            return Err(Error::bad_shape(
                OP,
                x.shape(),
                "training needs more than one value per channel",
            ));
        }
        let flat = x.try_reshape(&[n, c, h * w])?.try_contiguous()?;
        let affine = self.weight.is_some() && self.bias.is_some();
        let stats = if self.training {
            let (mean, var) = batch_stats(&flat)?;
            self.update_running(&mean, &var, n * h * w)?;
            (mean, var)
        } else {
            (self.running_mean.clone(), self.running_var.clone())
        };
        let op = BatchNormOp {
            affine,
            batch_stats: self.training,
            stats,
            eps: self.eps,
        };
        let mut inputs = vec![&flat];
        if affine {
            inputs.extend(self.weight.as_ref());
            inputs.extend(self.bias.as_ref());
        }
        apply(op, &inputs)?.try_reshape(x.dims())
    }
    #[track_caller]
    pub fn forward(&mut self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }

    /// `running = (1 − momentum) · running + momentum · batch`, with the unbiased batch
    /// variance (as PyTorch).
    fn update_running(&mut self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let m = count as f64;
        let mom = self.momentum;
        if mean.cube().is_some() {
            // On a device the estimates stay there; only the batch counter is read back,
            // because i64 arithmetic has no kernel yet (one small synchronisation a step).
            let blend = |running: &Tensor, batch: &Tensor, unbias: f64| -> Result<Tensor> {
                let keep = running.try_unary(UnaryKind::Affine {
                    scale: 1.0 - mom,
                    shift: 0.0,
                })?;
                keep.try_add(&batch.try_unary(UnaryKind::Affine {
                    scale: mom * unbias,
                    shift: 0.0,
                })?)
            };
            let (rm, rv) = (
                blend(&self.running_mean, mean, 1.0)?,
                blend(&self.running_var, var, m / (m - 1.0))?,
            );
            self.running_mean = rm;
            self.running_var = rv;
            let tracked = &self.num_batches_tracked;
            let nb = tracked.try_to_vec::<i64>()?[0] + 1;
            self.num_batches_tracked = Tensor::scalar(nb).try_to_device(tracked.device())?;
            return Ok(());
        }
        let rm: Vec<f64> = self
            .running_mean
            .to_vec::<f64>()
            .iter()
            .zip(mean.to_vec::<f64>())
            .map(|(r, b)| (1.0 - mom) * r + mom * b)
            .collect();
        let rv: Vec<f64> = self
            .running_var
            .to_vec::<f64>()
            .iter()
            .zip(var.to_vec::<f64>())
            .map(|(r, v)| (1.0 - mom) * r + mom * v * m / (m - 1.0))
            .collect();
        let c = rm.len();
        let dtype = self.running_mean.dtype();
        self.running_mean = Tensor::from_vec(rm, [c]).to_dtype(dtype);
        self.running_var = Tensor::from_vec(rv, [c]).to_dtype(dtype);
        let nb = self.num_batches_tracked.to_vec::<i64>()[0] + 1;
        self.num_batches_tracked = Tensor::scalar(nb);
        Ok(())
    }
}

impl Module for BatchNorm2d {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_named(
            prefix,
            &[
                ("weight", self.weight.as_ref()),
                ("bias", self.bias.as_ref()),
            ],
            f,
        );
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_named_mut(
            prefix,
            [
                ("weight", self.weight.as_mut()),
                ("bias", self.bias.as_mut()),
            ],
            f,
        );
    }
    fn visit_buffers(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        f(&child_name(prefix, "running_mean"), &self.running_mean);
        f(&child_name(prefix, "running_var"), &self.running_var);
        f(
            &child_name(prefix, "num_batches_tracked"),
            &self.num_batches_tracked,
        );
    }
    fn visit_buffers_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        f(&child_name(prefix, "running_mean"), &mut self.running_mean);
        f(&child_name(prefix, "running_var"), &mut self.running_var);
        f(
            &child_name(prefix, "num_batches_tracked"),
            &mut self.num_batches_tracked,
        );
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
