//! Matrix product with PyTorch's `matmul` semantics: `[..., m, k] @ [..., k, n]` with
//! broadcast batch dimensions; a 1-D operand is a vector (a row on the left, a column on the
//! right) and its dimension is dropped from the result.
//!
//! Backward: `dA = dC · Bᵀ`, `dB = Aᵀ · dC`, each summed over the batch dimensions it was
//! broadcast along. Saves both inputs. The transposes are views: `gemm` reads them by stride.

use super::{panicking, same_kind, sum_to_shape};
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

struct Matmul;

/// Output shape and the broadcast batch shape, or an error naming both shapes.
fn matmul_shapes(a: &Shape, b: &Shape) -> Result<(Shape, Shape)> {
    let (ra, rb) = (a.rank(), b.rank());
    let err = |detail: String| Error::ShapeMismatch {
        op: "matmul",
        lhs: a.clone(),
        sep: "@",
        rhs: b.clone(),
        detail,
    };
    if ra < 2 || rb < 2 {
        return Err(err("both operands need at least 2 dims here".into()));
    }
    let (m, k) = (a.dims()[ra - 2], a.dims()[ra - 1]);
    let (k2, n) = (b.dims()[rb - 2], b.dims()[rb - 1]);
    if k != k2 {
        let hint = if k == n {
            "; did you mean to transpose the right operand?"
        } else {
            ""
        };
        return Err(err(format!("inner dims {k} != {k2}{hint}")));
    }
    let batch = Shape::broadcast(
        "matmul",
        &Shape::new(&a.dims()[..ra - 2]),
        &Shape::new(&b.dims()[..rb - 2]),
    )
    .map_err(|_| err("batch dims do not broadcast".into()))?;
    let mut out = batch.0.clone();
    out.push(m);
    out.push(n);
    Ok((Shape(out), batch))
}

fn matmul_forward(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_kind("matmul", a, b)?;
    let (out_shape, batch) = matmul_shapes(a.shape(), b.shape())?;
    let (ra, rb) = (a.rank(), b.rank());
    let k = a.dims()[ra - 1];
    if rb == 2 && ra > 2 && a.is_contiguous() && k > 0 {
        // A batch of inputs times one matrix (a Linear layer on [B, L, in]) is one tall
        // product [B·L, in] @ [in, out]: gemm blocks and parallelises it far better than
        // B small ones.
        let flat = a.try_reshape(&[a.numel() / k, k])?;
        return matmul_forward(&flat, b)?.try_reshape(out_shape.dims());
    }
    backend::of(a).matmul(a, b, &batch, &out_shape)
}

/// `a @ b` for two matrices, unrecorded: for the backward passes of other ops.
pub(crate) fn matmul_2d(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    matmul_forward(a, b)
}

impl Op for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let out = matmul_forward(inputs[0], inputs[1])?;
        Ok(Forward::new(
            out,
            vec![inputs[0].clone(), inputs[1].clone()],
        ))
    }
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (a, b) = (&saved[0], &saved[1]);
        let ga = if needs[0] {
            Some(sum_to_shape(
                &matmul_forward(g, &b.try_transpose(-1, -2)?)?,
                a.shape(),
            )?)
        } else {
            None
        };
        let gb = if needs[1] && b.rank() == 2 && a.rank() > 2 {
            // dB = Σ_batches Aᵀ dC is one product [k, B·m] @ [B·m, n], not B products
            // and a sum.
            let (k, n) = (b.dims()[0], b.dims()[1]);
            let a2 = a.try_reshape(&[a.numel() / k.max(1), k])?;
            let g2 = g.try_reshape(&[g.numel() / n.max(1), n])?;
            Some(matmul_forward(&a2.try_transpose(0, 1)?, &g2)?)
        } else if needs[1] {
            Some(sum_to_shape(
                &matmul_forward(&a.try_transpose(-1, -2)?, g)?,
                b.shape(),
            )?)
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
}

impl Tensor {
    pub fn try_matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                sep: "@",
                rhs: rhs.shape().clone(),
                detail: "both operands need at least 1 dim".into(),
            });
        }
        // Vectors become a row (left) or a column (right), and that dimension is dropped after.
        let a = if self.rank() == 1 {
            self.try_unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rhs.rank() == 1 {
            rhs.try_unsqueeze(-1)?
        } else {
            rhs.clone()
        };
        let mut out = apply(Matmul, &[&a, &b]).map_err(|e| match e {
            Error::ShapeMismatch {
                op, detail, sep, ..
            } => Error::ShapeMismatch {
                op,
                lhs: self.shape().clone(),
                sep,
                rhs: rhs.shape().clone(),
                detail,
            },
            e => e,
        })?;
        if self.rank() == 1 {
            out = out.try_squeeze(-2)?;
        }
        if rhs.rank() == 1 {
            out = out.try_squeeze(-1)?;
        }
        Ok(out)
    }
    panicking!(
        /// Matrix product (`@`), batched and broadcast like `torch.matmul`.
        matmul => try_matmul(rhs: &Tensor) -> Tensor);
}
