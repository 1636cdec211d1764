// Without a runtime feature the kernels are still compiled (CubeCL IR) but nothing launches
// them: every path returns `DeviceUnavailable` before reaching them.
#![cfg_attr(
    not(any(feature = "wgpu", feature = "cuda")),
    allow(unused, clippy::extra_unused_type_parameters)
)]

//! The CubeCL backend: a tensor on `Device::Wgpu(i)` or `Device::Cuda(i)` holds a device
//! buffer (`storage.rs`), and each family file implements its family's trait for [`Cube`] by
//! launching the kernels of `cubegrad-ops` on it. Data crosses to the host only when asked
//! (`to_vec`, `item`, `to_device(Device::Cpu)`, a checkpoint); an op without a kernel returns
//! `Error::Unsupported`, and nothing falls back to the host behind the user's back.
//!
//! The helpers below turn tensors into what the kernel launchers take: a dense buffer
//! ([`dense`], [`handle`]), or a strided view ([`view`]) with broadcast strides.

pub mod attention;
pub mod context_pool;
pub mod conv;
pub mod elementwise;
pub mod index;
pub mod layout;
pub mod loss;
pub mod matmul;
pub mod norm;
pub mod optim;
pub mod pooling;
pub mod random;
pub mod reduce;
pub mod runtime;
pub mod softmax;
pub mod storage;
pub mod transfer;

use super::storage::Storage;
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Layout, Shape, Tensor};
use cubegrad_ops::cubecl::server::Handle;
use cubegrad_ops::layout::View;
use storage::CubeStorage;

/// The CubeCL backend (every CubeCL device: the runtime is picked from the tensor's device).
pub struct Cube;

impl super::Backend for Cube {}

/// The device buffer of a tensor, or the error of an op handed a tensor from elsewhere.
pub(crate) fn buffer<'a>(op: &'static str, t: &'a Tensor) -> Result<&'a CubeStorage> {
    match t.storage() {
        Storage::Cube(c) => Ok(c),
        Storage::Cpu(_) => Err(Error::invalid(
            op,
            format!(
                "expected a tensor on a CubeCL device, got one on {}",
                t.device()
            ),
        )),
    }
}

/// A tensor on its device holding a fresh contiguous buffer of `shape`.
pub(crate) fn from_handle(handle: Handle, shape: Shape, dtype: DType, device: Device) -> Tensor {
    let len = shape.numel();
    Tensor::from_storage(
        Storage::Cube(CubeStorage {
            handle,
            len,
            dtype,
            device,
        }),
        Layout::contiguous(shape),
    )
}

/// A contiguous copy of any tensor on a device, whatever its dtype.
pub(crate) fn contiguous(t: &Tensor) -> Result<Tensor> {
    let c = storage::copy_words(buffer("contiguous", t)?, t.layout())?;
    Ok(Tensor::from_storage(
        Storage::Cube(c),
        Layout::contiguous(t.shape().clone()),
    ))
}

/// The tensor itself when it is dense (contiguous, no offset, the whole buffer), else a
/// contiguous copy: what the kernels that index by element position read.
pub(crate) fn dense(t: &Tensor) -> Result<Tensor> {
    buffer("contiguous", t)?;
    if t.is_dense() {
        Ok(t.clone())
    } else {
        contiguous(t)
    }
}

/// The buffer handle of a device tensor (made dense by the caller where it matters).
pub(crate) fn handle(t: &Tensor) -> &Handle {
    match t.storage() {
        Storage::Cube(c) => &c.handle,
        Storage::Cpu(_) => unreachable!("a device tensor: checked by `dense` or `buffer`"),
    }
}

/// `t`'s strides for each dim of `out` (right-aligned), 0 where it is broadcast.
pub(crate) fn broadcast_strides(t: &Tensor, out: &Shape) -> Vec<usize> {
    let (r, dims, strides) = (t.rank(), t.dims(), &t.layout().strides);
    let off = out.rank() - r;
    (0..out.rank())
        .map(|d| {
            if d < off || dims[d - off] == 1 {
                0
            } else {
                strides[d - off]
            }
        })
        .collect()
}

/// `t` as a kernel view: its buffer, the given strides and its offset.
pub(crate) fn view<'a>(op: &'static str, t: &'a Tensor, strides: &'a [usize]) -> Result<View<'a>> {
    let c = buffer(op, t)?;
    Ok(View {
        handle: &c.handle,
        len: c.len.max(1),
        strides,
        offset: t.layout().offset,
    })
}
