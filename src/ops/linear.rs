//! `F.linear(x, weight, bias)`: `y = x Wᵀ + b`, with PyTorch's layout (`weight` is
//! `[out_features, in_features]`), as one op instead of a matmul and an add: the CPU's gemm
//! starts from the bias rows and accumulates into them, so the output is written once, and
//! the bias's gradient is one column sum instead of a broadcast add's reduction.
//!
//! Every leading dim of `x` is a row: `x` `[..., in]` is one `[rows, in]` matrix.
//! Backward (with `G` the `[rows, out]` output gradient): `dx = G W`, `dW = Gᵀ x`,
//! `db = Σ_rows G`. Saves `x` and `W`.

use super::{matmul::matmul_2d, same_kind};
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::error::{Error, OrPanic, Result};
use crate::tensor::Tensor;

struct Linear {
    has_bias: bool,
}

impl Op for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (x, w) = (inputs[0], inputs[1]);
        let (rows, n) = (x.numel() / x.dim(-1).max(1), w.dims()[0]);
        let x2 = x.try_contiguous()?.try_reshape(&[rows, x.dim(-1)])?;
        let y = backend::of(x).linear(&x2, w, inputs.get(2).copied())?;
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("x has a feature dim") = n;
        Ok(Forward::new(y.try_reshape(&dims)?, vec![x2, w.clone()]))
    }

    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x2, w) = (&saved[0], &saved[1]);
        let n = w.dims()[0];
        let g2 = g.try_contiguous()?.try_reshape(&[x2.dims()[0], n])?;
        let dx = if needs[0] {
            let mut dims = g.dims().to_vec();
            *dims.last_mut().expect("g has a feature dim") = w.dims()[1];
            Some(matmul_2d(&g2, w)?.try_reshape(&dims)?)
        } else {
            None
        };
        let dw = if needs[1] {
            Some(matmul_2d(&g2.try_transpose(0, 1)?, x2)?)
        } else {
            None
        };
        let mut out = vec![dx, dw];
        if self.has_bias {
            out.push(if needs[2] {
                Some(g2.try_sum_axes(&[0], false)?)
            } else {
                None
            });
        }
        Ok(out)
    }
}

/// `x Wᵀ + b` for `x` `[..., in]`, `weight` `[out, in]` and `bias` `[out]`.
pub fn try_linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    const OP: &str = "linear";
    same_kind(OP, x, weight)?;
    if weight.rank() != 2 {
        return Err(Error::bad_shape(
            OP,
            weight.shape(),
            "the weight must be [out_features, in_features]",
        ));
    }
    if x.rank() == 0 || x.dim(-1) != weight.dims()[1] {
        return Err(Error::mismatch(
            OP,
            x.shape(),
            weight.shape(),
            format!(
                "the input's last dim must be in_features = {}",
                weight.dims()[1]
            ),
        ));
    }
    let mut inputs = vec![x, weight];
    if let Some(b) = bias {
        same_kind(OP, x, b)?;
        if b.dims() != [weight.dims()[0]] {
            return Err(Error::mismatch(
                OP,
                weight.shape(),
                b.shape(),
                "the bias must be [out_features]",
            ));
        }
        inputs.push(b);
    }
    apply(
        Linear {
            has_bias: bias.is_some(),
        },
        &inputs,
    )
}

/// [`try_linear`], panicking at the caller.
#[track_caller]
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Tensor {
    try_linear(x, weight, bias).or_panic()
}
