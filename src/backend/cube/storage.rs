//! A tensor's data on a CubeCL device: a buffer handle with its length, dtype and device.
//! Buffers hold f32 and f64 as themselves, i64 as its two little-endian u32 words, and bool
//! as one u32 per element (0 or 1), so that kernels read masks and indices without a
//! conversion pass. Dropping the last tensor on a buffer gives it back to CubeCL's memory
//! pool, which hands it to the next allocation of a fitting size: a training loop reaches a
//! steady state after its first steps.

use super::runtime::copy_words;
use crate::tensor::{DType, Device, Layout, Shape};
use cubegrad_ops::cubecl::server::Handle;

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
