//! Fused optimizer updates on a CubeCL device: one kernel per parameter, in place.

use super::runtime::{with_cube_float, with_runtime};
use super::{contiguous, dense, handle, Cube};
use crate::backend::optim::{AdamHyper, OptimKernels, SgdHyper};
use crate::backend::storage::Storage;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use cubegrad_ops::cubecl::server::Handle;
use cubegrad_ops::optim;

/// The parameter's own buffer, for an in-place update: a dense tensor whose storage no other
/// tensor shares (copied first otherwise, as on the CPU). It keeps its identity.
fn exclusive(op: &'static str, t: &mut Tensor) -> Result<Handle> {
    if !t.is_dense() {
        let copy = contiguous(t)?;
        t.replace_data(copy);
    }
    match t.storage_mut() {
        Storage::Cube(c) => Ok(c.handle.clone()),
        Storage::Cpu(_) => Err(Error::invalid(op, "expected a tensor on a CubeCL device")),
    }
}

impl OptimKernels for Cube {
    /// One fused Adam/AdamW update of `p`, `m`, `v` in place on the device.
    fn adam_step(
        &self,
        p: &mut Tensor,
        g: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        t: u64,
        h: AdamHyper,
    ) -> Result<()> {
        let g = dense(g)?;
        let (hp, hm, hv) = (
            exclusive("adam", p)?,
            exclusive("adam", m)?,
            exclusive("adam", v)?,
        );
        let n = p.numel();
        with_runtime!("adam", p.device(), |R, client| {
            with_cube_float!("adam", p.dtype(), |F| {
                optim::adam_step::<R, F>(&client, &hp, handle(&g), &hm, &hv, n, t, h);
                Ok(())
            })
        })
    }

    /// One SGD update of `p` (and its momentum buffer) in place on the device.
    fn sgd_step(
        &self,
        p: &mut Tensor,
        g: &Tensor,
        buf: Option<&mut Tensor>,
        first: bool,
        h: SgdHyper,
    ) -> Result<()> {
        let g = dense(g)?;
        let hp = exclusive("sgd", p)?;
        let hb = buf.map(|b| exclusive("sgd", b)).transpose()?;
        let n = p.numel();
        with_runtime!("sgd", p.device(), |R, client| {
            with_cube_float!("sgd", p.dtype(), |F| {
                // Without momentum the kernel never touches the buffer; a placeholder of one
                // element stands in (binding the gradient twice would alias a writable binding).
                let hb = hb.unwrap_or_else(|| client.empty(std::mem::size_of::<F>()));
                optim::sgd_step::<R, F>(&client, &hp, handle(&g), &hb, n, first, h);
                Ok(())
            })
        })
    }
}
