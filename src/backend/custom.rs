//! Ops that bring their own kernels, one per device family, as candle's `CustomOp` does.
//!
//! A built-in op calls a family of primitives that every backend implements. A user's op
//! cannot add a primitive to every backend, so it implements [`CustomOp`] instead: a forward
//! and a backward for the CPU, and the same for CubeCL devices, each optional. The dispatch
//! below picks the one for the inputs' device, and a missing one is a clear
//! `Error::Unsupported` naming the op and the device. `autograd::apply_custom` records such an
//! op on the tape like any other.

use super::cube::runtime::with_runtime;
use super::storage::Storage;
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Shape, Tensor};
use cubegrad_ops::cubecl::prelude::*;
use cubegrad_ops::cubecl::server::Handle;

/// An op with its own kernels. Every hook receives tensors that are all on one device of its
/// family (CPU tensors for the `cpu_` hooks) and returns tensors on that device.
///
/// The forward returns the output; the backward receives the inputs, the output and the
/// output's gradient, and returns one gradient per input (`None` where `needs_grad` is
/// false). Check a backward with `cubegrad::gradcheck` on the CPU in f64, and a device
/// kernel against the CPU hooks.
pub trait CustomOp: 'static {
    fn name(&self) -> &'static str;

    /// The forward on the CPU.
    fn cpu_forward(&self, inputs: &[&Tensor]) -> Result<Tensor> {
        let _ = inputs;
        Err(Error::Unsupported {
            op: self.name(),
            device: Device::Cpu,
        })
    }
    /// The backward on the CPU.
    fn cpu_backward(
        &self,
        inputs: &[&Tensor],
        output: &Tensor,
        grad: &Tensor,
        needs_grad: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let _ = (inputs, output, grad, needs_grad);
        Err(Error::Unsupported {
            op: self.name(),
            device: Device::Cpu,
        })
    }
    /// The forward on a CubeCL device, through runtime `R` (wgpu or CUDA): launch your
    /// kernels with `ctx.client()` on the buffers `ctx.handle` gives.
    fn cube_forward<R: Runtime>(
        &self,
        ctx: &CubeContext<'_, R>,
        inputs: &[&Tensor],
    ) -> Result<Tensor> {
        let _ = inputs;
        Err(ctx.unsupported(self.name()))
    }
    /// The backward on a CubeCL device.
    fn cube_backward<R: Runtime>(
        &self,
        ctx: &CubeContext<'_, R>,
        inputs: &[&Tensor],
        output: &Tensor,
        grad: &Tensor,
        needs_grad: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let _ = (inputs, output, grad, needs_grad);
        Err(ctx.unsupported(self.name()))
    }
}

/// What a CubeCL hook works with: the runtime's client for the inputs' device, and the
/// conversions between tensors and device buffers.
pub struct CubeContext<'a, R: Runtime> {
    client: &'a ComputeClient<R>,
    device: Device,
}

impl<R: Runtime> CubeContext<'_, R> {
    pub fn client(&self) -> &ComputeClient<R> {
        self.client
    }
    pub fn device(&self) -> Device {
        self.device
    }
    /// `t` itself when its elements fill its buffer in row-major order, else a contiguous
    /// copy: what a kernel that indexes by element position reads.
    pub fn dense(&self, t: &Tensor) -> Result<Tensor> {
        super::cube::dense(t)
    }
    /// The buffer of a device tensor made dense by [`Self::dense`]; its length in elements is
    /// `t.numel()`.
    pub fn handle<'t>(&self, t: &'t Tensor) -> Result<&'t Handle> {
        if !t.is_dense() {
            return Err(Error::invalid(
                "CubeContext::handle",
                "the tensor is a strided view; pass it through dense() first",
            ));
        }
        Ok(&super::cube::buffer("CubeContext::handle", t)?.handle)
    }
    /// A new buffer for `n` elements of `dtype` (uninitialised: the kernel writes it).
    pub fn empty(&self, n: usize, dtype: DType) -> Handle {
        self.client.empty(n.max(1) * dtype.size_in_bytes().max(4))
    }
    /// A tensor of `shape` on this device over a buffer the kernel wrote.
    pub fn tensor(&self, handle: Handle, shape: impl Into<Shape>, dtype: DType) -> Tensor {
        super::cube::from_handle(handle, shape.into(), dtype, self.device)
    }
    /// The error of a hook this op does not provide.
    pub fn unsupported(&self, op: &'static str) -> Error {
        Error::Unsupported {
            op,
            device: self.device,
        }
    }
}

/// The device all `tensors` are on, or the error naming two that differ.
fn common_device(op: &'static str, tensors: &[&Tensor]) -> Result<Device> {
    let first = tensors
        .first()
        .ok_or_else(|| Error::invalid(op, "a custom op needs at least one input"))?;
    for t in tensors {
        if t.device() != first.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: first.device(),
                rhs: t.device(),
            });
        }
    }
    Ok(first.device())
}

/// Runs the forward hook for the inputs' device.
pub(crate) fn forward<C: CustomOp>(op: &C, inputs: &[&Tensor]) -> Result<Tensor> {
    let device = common_device(op.name(), inputs)?;
    match inputs[0].storage() {
        Storage::Cpu(_) => op.cpu_forward(inputs),
        Storage::Cube(_) => {
            super::cube::runtime::open(op.name(), device)?;
            with_runtime!(op.name(), device, |R, client| {
                op.cube_forward::<R>(
                    &CubeContext {
                        client: &client,
                        device,
                    },
                    inputs,
                )
            })
        }
    }
}

/// Runs the backward hook for the inputs' device.
pub(crate) fn backward<C: CustomOp>(
    op: &C,
    inputs: &[&Tensor],
    output: &Tensor,
    grad: &Tensor,
    needs_grad: &[bool],
) -> Result<Vec<Option<Tensor>>> {
    let all: Vec<&Tensor> = inputs.iter().copied().chain([output, grad]).collect();
    let device = common_device(op.name(), &all)?;
    match output.storage() {
        Storage::Cpu(_) => op.cpu_backward(inputs, output, grad, needs_grad),
        Storage::Cube(_) => with_runtime!(op.name(), device, |R, client| {
            let ctx = CubeContext {
                client: &client,
                device,
            };
            op.cube_backward::<R>(&ctx, inputs, output, grad, needs_grad)
        }),
    }
}
