//! Element-wise primitives on a CubeCL device: the unary table's kernel types through one
//! shared launcher, and arithmetic, comparisons and `where` read through each operand's
//! strides under broadcasting.

use super::runtime::{with_cube_float, with_runtime};
use super::{broadcast_strides, dense, from_handle, handle, view, Cube};
use crate::backend::elementwise::{Binary, Compare, ElementwiseKernels};
use crate::backend::unary::{KernelVisitor, Unary};
use crate::error::Result;
use crate::tensor::{DType, Shape, Tensor};
use cubegrad_ops::binary::{self as kernels, CompareKernel};
use cubegrad_ops::cubecl::prelude::*;
use cubegrad_ops::cubecl::server::Handle;
use cubegrad_ops::layout::View;
use cubegrad_ops::unary::{self, UnaryKernel};
use std::marker::PhantomData;

/// Launches a unary function's forward (`g` is `None`) or backward kernel once the table
/// hands over its kernel type.
struct Launch<'a, R: Runtime, F> {
    client: &'a ComputeClient<R>,
    x: &'a Handle,
    g: Option<&'a Handle>,
    n: usize,
    float: PhantomData<F>,
}

impl<R: Runtime, F: Float + CubeElement> KernelVisitor for Launch<'_, R, F> {
    type Output = Handle;
    fn visit<K: UnaryKernel>(self, params: (f64, f64)) -> Handle {
        match self.g {
            None => unary::forward::<R, F, K>(self.client, self.x, self.n, params),
            Some(g) => unary::backward::<R, F, K>(self.client, g, self.x, self.n, params.0),
        }
    }
}

impl ElementwiseKernels for Cube {
    fn unary(&self, op: Unary, x: &Tensor) -> Result<Tensor> {
        let x = dense(x)?;
        with_runtime!(op.name(), x.device(), |R, client| {
            with_cube_float!(op.name(), x.dtype(), |F| {
                let launch = Launch::<R, F> {
                    client: &client,
                    x: handle(&x),
                    g: None,
                    n: x.numel(),
                    float: PhantomData,
                };
                let h = op.with_kernel(launch);
                Ok(from_handle(h, x.shape().clone(), x.dtype(), x.device()))
            })
        })
    }

    fn unary_backward(&self, op: Unary, g: &Tensor, saved: Option<&Tensor>) -> Result<Tensor> {
        let g = dense(g)?;
        // A function that reads nothing gets the gradient as its `s`, which it ignores.
        let s = match saved {
            Some(s) => dense(s)?,
            None => g.clone(),
        };
        with_runtime!(op.name(), g.device(), |R, client| {
            with_cube_float!(op.name(), g.dtype(), |F| {
                let launch = Launch::<R, F> {
                    client: &client,
                    x: handle(&s),
                    g: Some(handle(&g)),
                    n: g.numel(),
                    float: PhantomData,
                };
                let h = op.with_kernel(launch);
                Ok(from_handle(h, g.shape().clone(), g.dtype(), g.device()))
            })
        })
    }

    fn binary(&self, op: Binary, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
        let (sa, sb) = (broadcast_strides(a, out), broadcast_strides(b, out));
        let (va, vb) = (view("binary", a, &sa)?, view("binary", b, &sb)?);
        with_runtime!("binary", a.device(), |R, client| {
            with_cube_float!("binary", a.dtype(), |F| {
                let (c, d) = (&client, out.dims());
                let h = match op {
                    Binary::Add => kernels::binary::<R, F, kernels::Add>(c, &va, &vb, d),
                    Binary::Sub => kernels::binary::<R, F, kernels::Sub>(c, &va, &vb, d),
                    Binary::Mul => kernels::binary::<R, F, kernels::Mul>(c, &va, &vb, d),
                    Binary::Div => kernels::binary::<R, F, kernels::Div>(c, &va, &vb, d),
                };
                Ok(from_handle(h, out.clone(), a.dtype(), a.device()))
            })
        })
    }

    fn compare(&self, op: Compare, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
        let (sa, sb) = (broadcast_strides(a, out), broadcast_strides(b, out));
        let (va, vb) = (view("compare", a, &sa)?, view("compare", b, &sb)?);
        let h = match op {
            Compare::Eq => compare::<kernels::Eq>(a, &va, &vb, out)?,
            Compare::Ne => compare::<kernels::Ne>(a, &va, &vb, out)?,
            Compare::Lt => compare::<kernels::Lt>(a, &va, &vb, out)?,
            Compare::Le => compare::<kernels::Le>(a, &va, &vb, out)?,
            Compare::Gt => compare::<kernels::Gt>(a, &va, &vb, out)?,
            Compare::Ge => compare::<kernels::Ge>(a, &va, &vb, out)?,
        };
        Ok(from_handle(h, out.clone(), DType::Bool, a.device()))
    }

    fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
        let (sc, sa, sb) = (
            broadcast_strides(cond, out),
            broadcast_strides(a, out),
            broadcast_strides(b, out),
        );
        let vc = view("where", cond, &sc)?;
        let (va, vb) = (view("where", a, &sa)?, view("where", b, &sb)?);
        with_runtime!("where", a.device(), |R, client| {
            with_cube_float!("where", a.dtype(), |F| {
                let h = kernels::select::<R, F>(&client, &vc, &va, &vb, out.dims());
                Ok(from_handle(h, out.clone(), a.dtype(), a.device()))
            })
        })
    }
}

/// One comparison on `a`'s device: the float kernel, or the word kernel for i64 and bool.
fn compare<K: CompareKernel>(
    a: &Tensor,
    va: &View<'_>,
    vb: &View<'_>,
    out: &Shape,
) -> Result<Handle> {
    with_runtime!("compare", a.device(), |R, client| {
        if !a.dtype().is_float() {
            let wide = a.dtype() == DType::I64;
            return Ok(kernels::compare_words::<R, K>(
                &client,
                va,
                vb,
                out.dims(),
                wide,
            ));
        }
        with_cube_float!("compare", a.dtype(), |F| {
            Ok(kernels::compare::<R, F, K>(&client, va, vb, out.dims()))
        })
    })
}
