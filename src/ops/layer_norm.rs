//! Layer normalisation (Ba et al. 2016) over the trailing `normalized_shape` dims as one
//! fused op, with PyTorch's semantics: biased variance, `eps` inside the root. The module
//! (`weight` γ, `bias` β) is `nn::LayerNorm`.

use super::same_kind;
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

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
        let o = backend::of(&x).layer_norm(&x, gamma, beta, self.row, self.eps)?;
        let mut saved = vec![x, o.mean, o.rstd];
        saved.extend(gamma.cloned());
        Ok(Forward::new(o.y, saved))
    }

    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (x, mean, rstd) = (&saved[0], &saved[1], &saved[2]);
        let gamma = saved.get(3);
        let g = g.try_contiguous()?;
        let gr = backend::of(x).layer_norm_backward(x, &g, gamma, mean, rstd, self.row)?;
        let mut out = vec![Some(gr.dx)];
        if self.has_weight {
            out.push(Some(gr.dgamma.try_reshape(self.shape.dims())?));
        }
        if self.has_bias {
            out.push(Some(gr.dbeta.try_reshape(self.shape.dims())?));
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
