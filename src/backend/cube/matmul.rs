//! Batched matrix products on a CubeCL device: CubeCL's tuned matmul (cubek-matmul) where it
//! takes the problem, our tiled kernel otherwise. Strided operands are read in place when
//! their batch dims collapse into one stride.

use super::runtime::{with_cube_float, with_runtime};
use super::{buffer, contiguous, from_handle, Cube};
use crate::backend::elementwise::{Binary, ElementwiseKernels};
use crate::backend::matmul::MatmulKernels;
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use cubegrad_ops::matmul as mm;

/// How the matmul kernel walks one operand: its matrix strides, and one stride between
/// batches. An operand whose batch dims do not collapse into one stride is first copied
/// into `[batch, rows, cols]`.
fn operand(t: &Tensor, batch: &Shape) -> Result<(Tensor, mm::Strides)> {
    let r = t.rank();
    let own_batch = &t.dims()[..r - 2];
    let st = &t.layout().strides;
    let matrix = |t: &Tensor, batch_stride: usize| {
        let st = &t.layout().strides;
        let r = t.rank();
        mm::Strides {
            row: st[r - 2],
            col: st[r - 1],
            batch: batch_stride,
            offset: t.layout().offset,
        }
    };
    if own_batch.iter().product::<usize>() == 1 {
        return Ok((t.clone(), matrix(t, 0)));
    }
    let collapses =
        own_batch == batch.dims() && (0..r - 3).all(|d| st[d] == st[d + 1] * own_batch[d + 1]);
    if collapses {
        return Ok((t.clone(), matrix(t, st[r - 3])));
    }
    let mut full = batch.dims().to_vec();
    full.extend_from_slice(&t.dims()[r - 2..]);
    let c = contiguous(&t.broadcast_view(&Shape::new(&full)))?;
    let (m, k) = (t.dims()[r - 2], t.dims()[r - 1]);
    Ok((c.clone(), matrix(&c, m * k)))
}

impl MatmulKernels for Cube {
    /// `a @ b` over the broadcast `batch`, into a new `out`-shaped tensor: cubek-matmul where it
    /// takes the problem, our tiled kernel otherwise.
    fn matmul(&self, a: &Tensor, b: &Tensor, batch: &Shape, out: &Shape) -> Result<Tensor> {
        let (ra, rb) = (a.rank(), b.rank());
        let (m, k, n) = (a.dims()[ra - 2], a.dims()[ra - 1], b.dims()[rb - 1]);
        let (a, sa) = operand(a, batch)?;
        let (b, sb) = operand(b, batch)?;
        let (ca, cb) = (buffer("matmul", &a)?, buffer("matmul", &b)?);
        with_runtime!("matmul", a.device(), |R, client| {
            with_cube_float!("matmul", a.dtype(), |F| {
                let (batch, (ha, hb)) = (batch.numel(), (&ca.handle, &cb.handle));
                let tuned = cubegrad_ops::matmul_cubek::matmul::<R, F>(
                    &client, ha, sa, hb, sb, batch, m, k, n,
                );
                let h = tuned.unwrap_or_else(|| {
                    mm::matmul::<R, F>(
                        &client,
                        &ca.handle,
                        ca.len.max(1),
                        sa,
                        &cb.handle,
                        cb.len.max(1),
                        sb,
                        batch,
                        m,
                        k,
                        n,
                    )
                });
                Ok(from_handle(h, out.clone(), a.dtype(), a.device()))
            })
        })
    }

    /// The product, then the bias added by the element-wise kernel.
    fn linear(&self, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let out = Shape::new(&[x.dims()[0], w.dims()[0]]);
        let y = self.matmul(x, &w.transpose_view(), &Shape::scalar(), &out)?;
        match bias {
            Some(b) => self.binary(Binary::Add, &y, b, &out),
            None => Ok(y),
        }
    }
}
