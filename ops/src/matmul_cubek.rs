//! The tuned matmul: CubeCL's own `cubek-matmul` (register-tiled, vectorised loads), which the
//! backend uses where it accepts the problem; [`crate::matmul`] is the fallback and the
//! kernel the book teaches.
//!
//! We launch one routine, `SimpleUnit`, directly rather than through `Strategy`, whose
//! dispatch compiles every routine of the crate for each runtime. It computes in full f32 (or
//! f64): the tensor-core routines would stage f32 operands as tf32 on CUDA (about 1e-3
//! relative error), which PyTorch also leaves off for matmuls unless asked.

use crate::matmul::Strides;
use cubecl::frontend::CubePrimitive;
use cubecl::prelude::*;
use cubecl::server::Handle;
use cubecl::zspace;
use cubek_matmul::definition::MatmulElems;
use cubek_matmul::launch::launch_tiling;
use cubek_matmul::routines::simple_unit::SimpleUnitAlgorithm;
use cubek_matmul::routines::BlueprintStrategy;
use cubek_std::InputBinding;

/// `C[b] = A[b] @ B[b]` into a new contiguous `[batch, m, n]` buffer, or `None` where
/// cubek-matmul declines the problem (an operand at an offset, a layout it cannot read, a type
/// the device lacks), and nothing was launched.
#[allow(clippy::too_many_arguments)]
pub fn matmul<R: Runtime, F: Float + CubeElement + CubePrimitive>(
    client: &ComputeClient<R>,
    a: &Handle,
    sa: Strides,
    b: &Handle,
    sb: Strides,
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
) -> Option<Handle> {
    let size = std::mem::size_of::<F>();
    // An operand that starts inside its buffer would need a binding at that offset, which
    // wgpu allows only at multiples of the device's storage-offset alignment (32 bytes on
    // lavapipe, 256 on many GPUs); our kernel takes the offset as an argument instead. An
    // empty product is ours to handle too.
    if batch * m * n * k == 0 || sa.offset != 0 || sb.offset != 0 {
        return None;
    }
    let ty = F::as_type_native_unchecked();
    let out = client.empty(batch * m * n * size);
    let bind = |h: &Handle, s: Strides, rows: usize, cols: usize| {
        // SAFETY: the caller's strides keep every element of the [batch, rows, cols] view
        // inside the buffer, as for `crate::matmul::matmul`.
        unsafe {
            TensorBinding::<R>::from_raw_parts(
                h.clone(),
                zspace::Strides::new(&[s.batch, s.row, s.col]),
                zspace::Shape::new([batch, rows, cols]),
            )
        }
    };
    let lhs = InputBinding::new(bind(a, sa, m, k), ty.storage_type());
    let rhs = InputBinding::new(bind(b, sb, k, n), ty.storage_type());
    let c = Strides {
        row: n,
        col: 1,
        batch: m * n,
        offset: 0,
    };
    let mut dtypes = MatmulElems::from_single_dtype(ty);
    launch_tiling::launch_ref::<R, SimpleUnitAlgorithm>(
        client,
        lhs,
        rhs,
        bind(&out, c, m, n),
        &BlueprintStrategy::default(),
        &mut dtypes,
    )
    .ok()
    .map(|()| out)
}
