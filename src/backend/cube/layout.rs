//! Making and moving data on a CubeCL device: fill and cast kernels, strided copies, and
//! concatenation. Copies move 32-bit words (as f32 bit patterns, which loads and stores keep
//! exactly), so they serve every dtype: a 64-bit element is two words.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::cpu::Cpu;
use crate::backend::layout::LayoutKernels;
use crate::backend::transfer;
use crate::error::Result;
use crate::tensor::{DType, Device, Shape, Tensor};
use cubegrad_ops::cubecl::server::Handle;
use cubegrad_ops::layout::{self, View};

/// 32-bit words per element in a device buffer.
fn words(dtype: DType) -> usize {
    match dtype {
        DType::F32 | DType::Bool => 1,
        DType::F64 | DType::I64 => 2,
    }
}

impl LayoutKernels for Cube {
    fn full(&self, shape: &Shape, value: f64, dtype: DType, device: Device) -> Result<Tensor> {
        super::runtime::open("full", device)?;
        if !dtype.is_float() {
            // Written on the host and uploaded: integer and bool constants are rare and small.
            let host = Cpu.full(shape, value, dtype, Device::Cpu)?;
            return transfer(&host, device);
        }
        with_runtime!("full", device, |R, client| {
            with_cube_float!("full", dtype, |F| {
                let h = layout::fill::<R, F>(&client, shape.numel(), value);
                Ok(from_handle(h, shape.clone(), dtype, device))
            })
        })
    }

    fn cast(&self, x: &Tensor, to: DType) -> Result<Tensor> {
        let from = x.dtype();
        let kernel = matches!(to, DType::F32 | DType::F64)
            && matches!(from, DType::Bool | DType::F32 | DType::F64);
        if from == to {
            return Ok(x.clone());
        }
        if !kernel {
            // No kernel for conversions to or from i64: through the host.
            let host = Cpu.cast(&transfer(x, Device::Cpu)?, to)?;
            return transfer(&host, x.device());
        }
        let x = dense(x)?;
        let (n, device) = (x.numel(), x.device());
        with_runtime!("to_dtype", device, |R, client| {
            use cubegrad_ops::layout::{bool_to_float, float_cast};
            let h = match (from, to) {
                (DType::Bool, DType::F32) => bool_to_float::<R, f32>(&client, handle(&x), n),
                (DType::Bool, _) => bool_to_float::<R, f64>(&client, handle(&x), n),
                (DType::F32, _) => float_cast::<R, f32, f64>(&client, handle(&x), n),
                _ => float_cast::<R, f64, f32>(&client, handle(&x), n),
            };
            Ok(from_handle(h, x.shape().clone(), to, device))
        })
    }

    fn contiguous(&self, x: &Tensor) -> Result<Tensor> {
        super::contiguous(x)
    }

    /// Any dtype: each part is seen as 32-bit words with a trailing dim for the words of a
    /// 64-bit element, and the words are concatenated.
    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor> {
        let dense: Vec<Tensor> = parts.iter().map(|p| dense(p)).collect::<Result<_>>()?;
        let (dtype, device) = (dense[0].dtype(), dense[0].device());
        let w = words(dtype);
        let shapes: Vec<Vec<usize>> = dense
            .iter()
            .map(|t| {
                let mut s = t.dims().to_vec();
                s.push(w);
                s
            })
            .collect();
        with_runtime!("concat", device, |R, client| {
            let views: Vec<(&Handle, &[usize])> = dense
                .iter()
                .zip(&shapes)
                .map(|(t, s)| (handle(t), s.as_slice()))
                .collect();
            let (h, mut shape) = layout::concat::<R, f32>(&client, &views, axis);
            shape.pop();
            Ok(from_handle(h, Shape::new(&shape), dtype, device))
        })
    }

    fn pad_axis(&self, g: &Tensor, from: &Shape, axis: usize, start: usize) -> Result<Tensor> {
        let g = dense(g)?;
        let (dtype, device) = (g.dtype(), g.device());
        let strides = from.contiguous_strides();
        let n = from.numel();
        with_runtime!("narrow backward", device, |R, client| {
            with_cube_float!("narrow backward", dtype, |F| {
                let out = layout::fill::<R, F>(&client, n, 0.0);
                let src = View {
                    handle: handle(&g),
                    len: g.numel().max(1),
                    strides: &g.layout().strides,
                    offset: 0,
                };
                layout::copy_into::<R, F>(
                    &client,
                    g.dims(),
                    &src,
                    &out,
                    n.max(1),
                    &strides,
                    start * strides[axis],
                );
                Ok(from_handle(out, from.clone(), dtype, device))
            })
        })
    }
}
