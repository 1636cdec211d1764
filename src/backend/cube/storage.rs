//! A tensor's data on a CubeCL device: a buffer handle with its length, dtype and device.
//! Buffers hold f32 and f64 as themselves, i64 as its two little-endian u32 words, and bool
//! as one u32 per element (0 or 1), so that kernels read masks and indices without a
//! conversion pass. Dropping the last tensor on a buffer gives it back to CubeCL's memory
//! pool, which hands it to the next allocation of a fitting size: a training loop reaches a
//! steady state after its first steps.

use super::runtime::with_runtime;
use crate::error::Result;
use crate::tensor::{device::Device, dtype::DType, shape::Layout, shape::Shape};
use cubegrad_ops::cubecl::server::Handle;
use cubegrad_ops::layout::View;

/// A tensor's data on a CubeCL device.
pub struct CubeStorage {
    pub(crate) handle: Handle,
    /// Elements in the buffer.
    pub(crate) len: usize,
    pub(crate) dtype: DType,
    pub(crate) device: Device,
}

// A tensor stays usable after a caught panic, on a device as on the CPU: CubeCL's handle
// keeps its bookkeeping in cells, but a panic between two launches leaves nothing half
// updated that a later op could observe.
impl std::panic::RefUnwindSafe for CubeStorage {}
impl std::panic::UnwindSafe for CubeStorage {}

impl std::fmt::Debug for CubeStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CubeStorage({} {} on {})",
            self.len, self.dtype, self.device
        )
    }
}

impl Clone for CubeStorage {
    /// A copy in a new buffer on the same device (copy on write, see `Tensor::storage_mut`).
    fn clone(&self) -> Self {
        let layout = Layout::contiguous(Shape::new(&[self.len]));
        copy_words(self, &layout).expect("the device was opened when the buffer was made")
    }
}

/// 32-bit words per element in a device buffer.
pub(crate) fn words(dtype: DType) -> usize {
    match dtype {
        DType::F32 | DType::Bool => 1,
        DType::F64 | DType::I64 => 2,
    }
}

/// A contiguous copy of the view `layout` of `s`, for any dtype: the copy kernel moves 32-bit
/// words (as f32 bit patterns, which loads and stores keep exactly), one more trailing
/// dimension for the words of a 64-bit element.
pub(crate) fn copy_words(s: &CubeStorage, layout: &Layout) -> Result<CubeStorage> {
    let w = words(s.dtype);
    let mut shape: Vec<usize> = layout.shape.dims().to_vec();
    let mut strides: Vec<usize> = layout.strides.iter().map(|&x| x * w).collect();
    if w > 1 {
        shape.push(w);
        strides.push(1);
    }
    let n = layout.shape.numel();
    with_runtime!("contiguous", s.device, |R, client| {
        let view = View {
            handle: &s.handle,
            len: s.len.max(1) * w,
            strides: &strides,
            offset: layout.offset * w,
        };
        let handle = cubegrad_ops::layout::contiguous::<R, f32>(&client, &shape, &view);
        Ok(CubeStorage {
            handle,
            len: n,
            dtype: s.dtype,
            device: s.device,
        })
    })
}
