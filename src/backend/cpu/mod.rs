//! The pure-Rust CPU backend: loops over slices that the compiler vectorises (built for
//! x86-64-v3, see `.cargo/config.toml`; the hottest also have an AVX-512 copy chosen at run
//! time, `simd.rs`), rayon across rows and batches, and the `gemm` crate for matrix products.
//!
//! Each family file implements its family's trait (`backend/<family>.rs`) for [`Cpu`]: it
//! reads its input tensors as slices, runs its loops, and wraps the results in new tensors.
//! The helpers below do the reading and wrapping. Kernels write fresh outputs without
//! zero-filling them first (`loops::filled_vec`), and large freed buffers are kept by size
//! and reused (`buffer_cache.rs`): training repeats the same shapes, and faulting fresh pages
//! in every step cost more than the ops.

pub mod attention;
pub mod batch_norm;
pub mod buffer_cache;
pub mod context_pool;
pub mod context_pool_band;
pub mod conv;
pub mod elementwise;
pub mod fastmath;
pub mod float;
pub mod index;
pub mod lanes;
pub mod layer_norm;
pub mod layout;
pub mod loops;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pooling;
pub mod random;
pub mod reduce;
pub mod simd;
pub mod softmax;

use super::storage::{contiguous_cow, CpuData, Storage};
use crate::error::{Error, Result};
use crate::tensor::{DType, Shape, Tensor};
use float::Float;
use std::borrow::Cow;

/// The CPU backend.
pub struct Cpu;

impl super::Backend for Cpu {}

/// Runs `$body` with the type alias `$T` bound to the float type of `$dtype` (f32 or f64).
macro_rules! with_float {
    ($op:expr, $dtype:expr, |$T:ident| $body:block) => {
        match $dtype {
            $crate::tensor::DType::F32 => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::tensor::DType::F64 => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
            other => Err($crate::error::Error::DType {
                op: $op,
                got: other,
                expected: "f32 or f64",
            }),
        }
    };
}
pub(crate) use with_float;

/// The host data of a CPU tensor (the whole buffer; the tensor's layout says which part of
/// it is seen), or the error of an op handed a tensor from another device.
pub(crate) fn data<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a CpuData> {
    match t.storage() {
        Storage::Cpu(s) => Ok(s.data()),
        Storage::Cube(_) => Err(super::unsupported(op, t)),
    }
}

/// The whole buffer as a float slice (views index into it through their layout).
pub(crate) fn raw<'a, T: Float>(op: &'static str, t: &'a Tensor) -> Result<&'a [T]> {
    T::slice_of(data(op, t)?).ok_or(Error::DType {
        op,
        got: t.dtype(),
        expected: if T::DTYPE == DType::F32 { "f32" } else { "f64" },
    })
}

/// The elements in row-major order as a float slice, copying only when the layout is
/// strided.
pub(crate) fn slice<'a, T: Float>(op: &'static str, t: &'a Tensor) -> Result<Cow<'a, [T]>> {
    Ok(contiguous_cow(raw::<T>(op, t)?, t.layout()))
}

/// The elements of an i64 tensor in row-major order.
pub(crate) fn i64s<'a>(op: &'static str, t: &'a Tensor) -> Result<Cow<'a, [i64]>> {
    match data(op, t)? {
        CpuData::I64(v) => Ok(contiguous_cow(v, t.layout())),
        d => Err(Error::DType {
            op,
            got: d.dtype(),
            expected: "i64",
        }),
    }
}

/// The elements of a bool tensor in row-major order.
pub(crate) fn bools<'a>(op: &'static str, t: &'a Tensor) -> Result<Cow<'a, [bool]>> {
    match data(op, t)? {
        CpuData::Bool(v) => Ok(contiguous_cow(v, t.layout())),
        d => Err(Error::DType {
            op,
            got: d.dtype(),
            expected: "bool",
        }),
    }
}

/// A new CPU tensor from a kernel's float output.
pub(crate) fn tensor<T: Float>(v: Vec<T>, shape: impl Into<Shape>) -> Tensor {
    super::host_tensor(T::wrap(v), shape.into())
}

/// A new CPU tensor from any host data.
pub(crate) fn wrap(data: CpuData, shape: impl Into<Shape>) -> Tensor {
    super::host_tensor(data, shape.into())
}

/// The host data of a CPU tensor made the only owner of a dense buffer, for an in-place
/// update (optimizers). The tensor keeps its identity; it is copied first when it is a view
/// or another tensor shares its buffer.
pub(crate) fn exclusive<'a>(op: &'static str, t: &'a mut Tensor) -> Result<&'a mut CpuData> {
    if !t.is_dense() {
        let copy = Cpu.contiguous_copy(op, t)?;
        t.replace_data(copy);
    }
    match t.storage_mut() {
        Storage::Cpu(s) => Ok(s.data_mut()),
        Storage::Cube(c) => Err(Error::Unsupported {
            op,
            device: c.device,
        }),
    }
}

impl Cpu {
    /// A row-major copy of any CPU tensor, whatever its dtype.
    pub(crate) fn contiguous_copy(&self, op: &'static str, t: &Tensor) -> Result<Tensor> {
        let l = t.layout();
        let data = match data(op, t)? {
            CpuData::F32(v) => CpuData::F32(contiguous_cow(v, l).into_owned()),
            CpuData::F64(v) => CpuData::F64(contiguous_cow(v, l).into_owned()),
            CpuData::I64(v) => CpuData::I64(contiguous_cow(v, l).into_owned()),
            CpuData::Bool(v) => CpuData::Bool(contiguous_cow(v, l).into_owned()),
        };
        Ok(wrap(data, t.shape().clone()))
    }
}
