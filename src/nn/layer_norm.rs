//! Layer normalisation (Ba et al. 2016) over the trailing `normalized_shape` dims, with
//! PyTorch's semantics and names: `weight` (γ, ones) and `bias` (β, zeros), biased variance,
//! `eps = 1e-5`. One fused op; the loops are in `backend::cpu::layer_norm`, the device
//! kernels in `cubegrad_ops::norm`.

use super::{visit_named, visit_named_mut, Module};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::layer_norm as kernel;
use crate::backend::cube::ops as cube;
use crate::error::{Error, OrPanic, Result};
use crate::ops::{from_float, same_kind, with_float};
use crate::tensor::{Float, Shape, Tensor};

/// Inputs: `x`, then `weight` if `has_weight`, then `bias` if `has_bias`.
struct LayerNormOp {
    /// The normalised trailing dims (γ's and β's shape); `row` is their product.
    shape: Shape,
    row: usize,
    eps: f64,
    has_weight: bool,
    has_bias: bool,
}

impl Op for LayerNormOp {
    fn name(&self) -> &'static str {
        "layer_norm"
    }

    /// Saves `x`, `γ` and the per-row `mean` and `rstd` (two numbers a row): the backward
    /// rebuilds `x̂` from them rather than keeping a second tensor of `x`'s size.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0].try_contiguous()?;
        let gamma = self.has_weight.then(|| inputs[1]);
        let beta = self
            .has_bias
            .then(|| inputs[1 + usize::from(self.has_weight)]);
        let rows = x.numel() / self.row.max(1);
        if x.cube().is_some() {
            let (y, mean, rstd) = cube::layer_norm(&x, gamma, beta, self.row, self.eps)?;
            let mut saved = vec![x, mean, rstd];
            saved.extend(gamma.cloned());
            return Ok(Forward::new(y, saved));
        }
        let (y, mean, rstd) = with_float!("layer_norm", x.dtype(), |T| {
            let xs = x.float_slice::<T>("layer_norm")?;
            let gs = gamma
                .map(|t| t.float_slice::<T>("layer_norm"))
                .transpose()?;
            let bs = beta.map(|t| t.float_slice::<T>("layer_norm")).transpose()?;
            let (y, m, r) = kernel::forward(&xs, self.row, gs.as_deref(), bs.as_deref(), self.eps);
            Ok((
                from_float(y, x.shape().clone()),
                from_float(m, [rows].into()),
                from_float(r, [rows].into()),
            ))
        })?;
        let mut saved = vec![x, mean, rstd];
        saved.extend(gamma.cloned());
        Ok(Forward::new(y, saved))
    }

    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (x, mean, rstd) = (&saved[0], &saved[1], &saved[2]);
        let gamma = saved.get(3);
        let g = g.try_contiguous()?;
        if x.cube().is_some() {
            return self.backward_on_device(x, &g, gamma, mean, rstd);
        }
        let (dx, dgamma, dbeta) = with_float!("layer_norm", x.dtype(), |T| {
            // Read in place: the backward allocates only its outputs.
            fn f<T: Float>(t: &Tensor) -> Result<std::borrow::Cow<'_, [T]>> {
                t.float_slice::<T>("layer_norm")
            }
            let gs = gamma.map(f::<T>).transpose()?;
            let (dx, dg, db) = kernel::backward(
                &f::<T>(x)?,
                &f::<T>(&g)?,
                self.row,
                gs.as_deref(),
                &f::<T>(mean)?,
                &f::<T>(rstd)?,
            );
            Ok((
                from_float(dx, x.shape().clone()),
                from_float(dg, self.shape.clone()),
                from_float(db, self.shape.clone()),
            ))
        })?;
        let mut out = vec![Some(dx)];
        if self.has_weight {
            out.push(Some(dgamma));
        }
        if self.has_bias {
            out.push(Some(dbeta));
        }
        Ok(out)
    }
}

impl LayerNormOp {
    /// The same gradients from the device kernels: the kernel gives `dx` and `g·x̂`, and the
    /// parameters' gradients are their column sums.
    fn backward_on_device(
        &self,
        x: &Tensor,
        g: &Tensor,
        gamma: Option<&Tensor>,
        mean: &Tensor,
        rstd: &Tensor,
    ) -> Result<Vec<Option<Tensor>>> {
        let (dx, gxhat) = cube::layer_norm_backward(x, g, gamma, mean, rstd, self.row)?;
        let rows = x.numel() / self.row.max(1);
        let column_sum = |t: &Tensor| {
            t.try_reshape(&[rows, self.row])?
                .try_sum_axes(&[0], false)?
                .try_reshape(self.shape.dims())
        };
        let mut out = vec![Some(dx)];
        if self.has_weight {
            out.push(Some(column_sum(&gxhat)?));
        }
        if self.has_bias {
            out.push(Some(column_sum(g)?));
        }
        Ok(out)
    }
}

/// `layer_norm(x, normalized_shape, weight, bias, eps)` as in `torch.nn.functional`:
/// normalises over the trailing dims given by `normalized_shape`.
pub fn try_layer_norm(
    x: &Tensor,
    normalized_shape: &[usize],
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    const OP: &str = "layer_norm";
    let k = normalized_shape.len();
    if k == 0 || x.rank() < k || &x.dims()[x.rank() - k..] != normalized_shape {
        return Err(Error::bad_shape(
            OP,
            x.shape(),
            format!("the trailing dims must be normalized_shape = {normalized_shape:?}"),
        ));
    }
    for t in [weight, bias].into_iter().flatten() {
        same_kind(OP, x, t)?;
        if t.dims() != normalized_shape {
            return Err(Error::mismatch(
                OP,
                x.shape(),
                t.shape(),
                format!("weight and bias must have normalized_shape = {normalized_shape:?}"),
            ));
        }
    }
    let op = LayerNormOp {
        shape: Shape::new(normalized_shape),
        row: normalized_shape.iter().product(),
        eps,
        has_weight: weight.is_some(),
        has_bias: bias.is_some(),
    };
    let mut inputs = vec![x];
    inputs.extend(weight);
    inputs.extend(bias);
    apply(op, &inputs)
}

pub struct LayerNorm {
    pub normalized_shape: Vec<usize>,
    pub eps: f64,
    pub weight: Option<Tensor>,
    pub bias: Option<Tensor>,
}

impl LayerNorm {
    /// `nn.LayerNorm(normalized_shape)`: γ = 1, β = 0, eps = 1e-5.
    pub fn new(normalized_shape: &[usize]) -> Self {
        LayerNorm::with_options(normalized_shape, 1e-5, true, true)
    }
    /// `elementwise_affine = false` drops both parameters; `bias = false` only β.
    pub fn with_options(
        normalized_shape: &[usize],
        eps: f64,
        elementwise_affine: bool,
        bias: bool,
    ) -> Self {
        let shape = normalized_shape.to_vec();
        LayerNorm {
            weight: elementwise_affine.then(|| Tensor::ones(shape.as_slice()).with_grad()),
            bias: (elementwise_affine && bias).then(|| Tensor::zeros(shape.as_slice()).with_grad()),
            normalized_shape: shape,
            eps,
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        try_layer_norm(
            x,
            &self.normalized_shape,
            self.weight.as_ref(),
            self.bias.as_ref(),
            self.eps,
        )
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

impl Module for LayerNorm {
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
}
