//! Indexing on a CubeCL device. The indices stay an i64 tensor on the device, read by the
//! kernels; an index out of range gives NaN there. The backward passes sort positions by row
//! on the device, so no float atomics are needed.

use super::runtime::{with_cube_float, with_runtime};
use super::{dense, from_handle, handle, Cube};
use crate::backend::index::{AxisSplit, IndexKernels};
use crate::error::Result;
use crate::tensor::{DType, Shape, Tensor};
use cubegrad_ops::index as kernels;

/// The four kernels, by op and direction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pick {
    Select,
    SelectBackward,
    Gather,
    GatherBackward,
}

/// `t` seen as `[outer, len, inner]` (forward) or `[outer, q, inner]` (backward, the output
/// gradient) and i64 `idx` on its device, into a new tensor of shape `out`.
fn pick(
    t: &Tensor,
    idx: &Tensor,
    s: AxisSplit,
    q: usize,
    kind: Pick,
    out: &Shape,
) -> Result<Tensor> {
    let (t, idx) = (dense(t)?, dense(idx)?);
    let (outer, r, inner) = (s.outer, s.len, s.inner);
    let (dtype, device) = (t.dtype(), t.device());
    let op = match kind {
        Pick::Select | Pick::SelectBackward => "index_select",
        Pick::Gather | Pick::GatherBackward => "gather",
    };
    with_runtime!(op, device, |R, client| {
        with_cube_float!(op, dtype, |F| {
            let (t, i, c) = (handle(&t), handle(&idx), &client);
            let h = match kind {
                Pick::Select => kernels::index_select::<R, F>(c, t, i, outer, r, inner, q),
                Pick::SelectBackward => kernels::index_add::<R, F>(c, t, i, outer, r, inner, q),
                Pick::Gather => kernels::gather::<R, F>(c, t, i, outer, r, inner, q),
                Pick::GatherBackward => kernels::scatter_add::<R, F>(c, t, i, outer, r, inner, q),
            };
            Ok(from_handle(h, out.clone(), dtype, device))
        })
    })
}

impl IndexKernels for Cube {
    fn index_select(&self, x: &Tensor, idx: &Tensor, s: AxisSplit, out: &Shape) -> Result<Tensor> {
        pick(x, idx, s, idx.numel(), Pick::Select, out)
    }
    fn index_add(&self, g: &Tensor, idx: &Tensor, s: AxisSplit, from: &Shape) -> Result<Tensor> {
        pick(g, idx, s, idx.numel(), Pick::SelectBackward, from)
    }
    fn gather(
        &self,
        x: &Tensor,
        idx: &Tensor,
        s: AxisSplit,
        q: usize,
        out: &Shape,
    ) -> Result<Tensor> {
        pick(x, idx, s, q, Pick::Gather, out)
    }
    fn scatter_add(
        &self,
        g: &Tensor,
        idx: &Tensor,
        s: AxisSplit,
        q: usize,
        from: &Shape,
    ) -> Result<Tensor> {
        pick(g, idx, s, q, Pick::GatherBackward, from)
    }
    fn one_hot(&self, labels: &Tensor, classes: usize, out: &Shape) -> Result<Tensor> {
        let labels = dense(labels)?;
        let device = labels.device();
        with_runtime!("one_hot", device, |R, client| {
            let h = kernels::one_hot::<R, f32>(&client, handle(&labels), labels.numel(), classes);
            Ok(from_handle(h, out.clone(), DType::F32, device))
        })
    }
}
