//! 2-D convolution on a CubeCL device: the patch kernel (im2col), then the device matmul of
//! the weights `[G, O/G, K]` with the patches `[N, G, K, L]`. The backward recomputes the
//! patches (as on the CPU, rather than keep kh·kw copies of the input), and `col2im` gathers
//! the patch gradients back into the input, with no atomics.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::conv::{ConvGeometry, ConvGrads, ConvKernels};
use crate::backend::elementwise::{Binary, ElementwiseKernels};
use crate::backend::matmul::MatmulKernels;
use crate::backend::reduce::{Reduce, ReduceKernels};
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use cubegrad_ops::conv::{self as kernels, ConvShape};

fn conv_shape(g: &ConvGeometry) -> ConvShape {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    ConvShape {
        n: g.n,
        c: g.c,
        h: g.h,
        w: g.w,
        groups: g.groups,
        kh: g.kh,
        kw: g.kw,
        stride: g.stride,
        padding: g.padding,
        dilation: g.dilation,
        ho,
        wo,
    }
}

/// The patch buffer `[N, G, K, L]` of `x` `[N, C, H, W]`.
fn im2col(x: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let x = dense(x)?;
    let (dtype, device) = (x.dtype(), x.device());
    let k = s.c / s.groups * s.kh * s.kw;
    let shape = Shape::new(&[s.n, s.groups, k, s.ho * s.wo]);
    with_runtime!("conv2d", device, |R, client| {
        with_cube_float!("conv2d", dtype, |F| {
            let h = kernels::im2col::<R, F>(&client, handle(&x), s);
            Ok(from_handle(h, shape, dtype, device))
        })
    })
}

/// The backward of [`im2col`]: patch gradients into `[N, C, H, W]`.
fn col2im(dcols: &Tensor, s: &ConvShape) -> Result<Tensor> {
    let dcols = dense(dcols)?;
    let (dtype, device) = (dcols.dtype(), dcols.device());
    let shape = Shape::new(&[s.n, s.c, s.h, s.w]);
    with_runtime!("conv2d", device, |R, client| {
        with_cube_float!("conv2d", dtype, |F| {
            let h = kernels::col2im::<R, F>(&client, handle(&dcols), s);
            Ok(from_handle(h, shape, dtype, device))
        })
    })
}

impl ConvKernels for Cube {
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        g: &ConvGeometry,
    ) -> Result<Tensor> {
        let s = conv_shape(g);
        let (l, og) = (s.ho * s.wo, g.og());
        let cols = im2col(x, &s)?;
        let wg = dense(w)?.reshape_view([g.groups, og, g.k()]);
        let batch = Shape::new(&[s.n, g.groups]);
        let y = self
            .matmul(&wg, &cols, &batch, &Shape::new(&[s.n, g.groups, og, l]))?
            .reshape_view([s.n, g.o, s.ho, s.wo]);
        match b {
            Some(b) => {
                let b = dense(b)?.reshape_view([1, g.o, 1, 1]);
                self.binary(Binary::Add, &y, &b, &y.shape().clone())
            }
            None => Ok(y),
        }
    }

    /// `dW = Σ_n gy·colsᵀ`, `db = Σ gy` over samples and positions, `dcols = Wᵀ·gy`.
    fn conv2d_backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        g: &ConvGeometry,
        need_x: bool,
    ) -> Result<ConvGrads> {
        let s = conv_shape(g);
        let (l, og, k) = (s.ho * s.wo, g.og(), g.k());
        let batch = Shape::new(&[s.n, g.groups]);
        let gy = dense(gy)?.reshape_view([s.n, g.groups, og, l]);
        let cols = im2col(x, &s)?;
        let per_sample = self.matmul(
            &gy,
            &cols.transpose_view(),
            &batch,
            &Shape::new(&[s.n, g.groups, og, k]),
        )?;
        let dw = self
            .reduce(
                Reduce::Sum,
                &per_sample,
                &[0],
                &Shape::new(&[g.groups, og, k]),
            )?
            .reshape_view(w.shape().clone());
        let dx = if need_x {
            let wt = dense(w)?.reshape_view([g.groups, og, k]).transpose_view();
            let dcols = self.matmul(&wt, &gy, &batch, &Shape::new(&[s.n, g.groups, k, l]))?;
            Some(col2im(&dcols, &s)?)
        } else {
            None
        };
        let db = self.reduce(
            Reduce::Sum,
            &gy.reshape_view([s.n, g.o, l]),
            &[0, 2],
            &Shape::new(&[g.o]),
        )?;
        Ok(ConvGrads { dx, dw, db })
    }
}
