//! The bytes behind a tensor, and the one enum that says where they live. A tensor holds a
//! [`Storage`] behind an `Arc`, shared with its views and copied on write only when someone
//! else still holds it (see `Tensor::storage_mut`). Only `src/backend/` looks inside it.

use super::cpu::buffer_cache;
use super::cube::storage::CubeStorage;
use crate::tensor::device::Device;
use crate::tensor::dtype::DType;
use crate::tensor::shape::Layout;
use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Where a tensor's elements are: host memory, or a buffer on a CubeCL device.
#[derive(Debug, Clone)]
pub enum Storage {
    Cpu(CpuStorage),
    Cube(CubeStorage),
}

impl Storage {
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.data().dtype(),
            Storage::Cube(c) => c.dtype,
        }
    }
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
            Storage::Cube(c) => c.device,
        }
    }
    /// Elements in the whole buffer (a view may see fewer).
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.data().len(),
            Storage::Cube(c) => c.len,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

static CPU_BYTES: AtomicUsize = AtomicUsize::new(0);
/// The most `CPU_BYTES` has been since the last [`reset_cpu_peak`].
static CPU_PEAK: AtomicUsize = AtomicUsize::new(0);

/// Bytes of tensor data currently alive on the CPU device. Tests use it to show that
/// `no_grad` inference and training loops do not grow memory. Freed buffers kept for reuse
/// are counted apart, by [`buffer_cache::cached_bytes`].
pub fn cpu_memory_in_use() -> usize {
    CPU_BYTES.load(Ordering::Relaxed)
}

/// The most bytes of tensor data alive on the CPU at once since the last [`reset_cpu_peak`]
/// (PyTorch's `max_memory_allocated`): what a training step's activations, saved tensors and
/// gradients really cost.
pub fn cpu_peak_memory() -> usize {
    CPU_PEAK.load(Ordering::Relaxed)
}

/// Starts a new peak from the bytes alive now.
pub fn reset_cpu_peak() {
    CPU_PEAK.store(CPU_BYTES.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Host data, one vector per element type.
#[derive(Debug)]
pub enum CpuData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

impl CpuData {
    pub fn dtype(&self) -> DType {
        match self {
            CpuData::F32(_) => DType::F32,
            CpuData::F64(_) => DType::F64,
            CpuData::I64(_) => DType::I64,
            CpuData::Bool(_) => DType::Bool,
        }
    }
    pub fn len(&self) -> usize {
        match self {
            CpuData::F32(v) => v.len(),
            CpuData::F64(v) => v.len(),
            CpuData::I64(v) => v.len(),
            CpuData::Bool(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn bytes(&self) -> usize {
        self.len() * self.dtype().size_in_bytes()
    }
}

/// CPU storage with a live-bytes counter; large float buffers go back to the buffer cache
/// when it drops.
#[derive(Debug)]
pub struct CpuStorage(CpuData);

impl CpuStorage {
    pub fn new(data: CpuData) -> Self {
        let now = CPU_BYTES.fetch_add(data.bytes(), Ordering::Relaxed) + data.bytes();
        CPU_PEAK.fetch_max(now, Ordering::Relaxed);
        CpuStorage(data)
    }
    pub fn data(&self) -> &CpuData {
        &self.0
    }
    pub fn data_mut(&mut self) -> &mut CpuData {
        &mut self.0
    }
}

impl Clone for CpuStorage {
    fn clone(&self) -> Self {
        let data = match &self.0 {
            CpuData::F32(v) => CpuData::F32(v.clone()),
            CpuData::F64(v) => CpuData::F64(v.clone()),
            CpuData::I64(v) => CpuData::I64(v.clone()),
            CpuData::Bool(v) => CpuData::Bool(v.clone()),
        };
        CpuStorage::new(data)
    }
}

impl Drop for CpuStorage {
    fn drop(&mut self) {
        CPU_BYTES.fetch_sub(self.0.bytes(), Ordering::Relaxed);
        match std::mem::replace(&mut self.0, CpuData::Bool(Vec::new())) {
            CpuData::F32(v) => buffer_cache::give(v),
            CpuData::F64(v) => buffer_cache::give(v),
            _ => {}
        }
    }
}

/// Borrow the elements when already in row-major order, otherwise gather them.
pub fn contiguous_cow<'a, T: Copy + 'static>(data: &'a [T], layout: &Layout) -> Cow<'a, [T]> {
    let n = layout.shape.numel();
    if layout.is_contiguous() {
        Cow::Borrowed(&data[layout.offset..layout.offset + n])
    } else {
        let mut out = buffer_cache::take(n);
        let inner = layout.shape.dims().last().copied().unwrap_or(1);
        if layout.strides.last().is_some_and(|&s| s == 1) {
            // Rows are contiguous runs (a permutation that keeps the last axis): copy them
            // whole, which is several times faster than element by element.
            layout.for_each_row(|base| out.extend_from_slice(&data[base..base + inner]));
        } else {
            layout.for_each_index(|i| out.push(data[i]));
        }
        Cow::Owned(out)
    }
}

/// Element types that can be copied out of a tensor (`to_vec`) or into one (`from_vec`).
pub trait HostElem: Copy + 'static {
    fn collect(data: &CpuData, layout: &Layout) -> Vec<Self>;
    fn into_data(v: Vec<Self>) -> CpuData;
}

macro_rules! host_elem {
    ($t:ty, $variant:ident, $conv:expr) => {
        impl HostElem for $t {
            fn collect(data: &CpuData, layout: &Layout) -> Vec<Self> {
                let conv = $conv;
                #[allow(unreachable_patterns)]
                match data {
                    CpuData::$variant(v) => contiguous_cow(v, layout).into_owned(),
                    CpuData::F32(v) => contiguous_cow(v, layout)
                        .iter()
                        .map(|&x| conv(x as f64))
                        .collect(),
                    CpuData::F64(v) => contiguous_cow(v, layout).iter().map(|&x| conv(x)).collect(),
                    CpuData::I64(v) => contiguous_cow(v, layout)
                        .iter()
                        .map(|&x| conv(x as f64))
                        .collect(),
                    CpuData::Bool(v) => contiguous_cow(v, layout)
                        .iter()
                        .map(|&x| conv(x as u8 as f64))
                        .collect(),
                }
            }
            fn into_data(v: Vec<Self>) -> CpuData {
                CpuData::$variant(v)
            }
        }
    };
}
host_elem!(f32, F32, |x: f64| x as f32);
host_elem!(f64, F64, |x: f64| x);
host_elem!(i64, I64, |x: f64| x as i64);
host_elem!(bool, Bool, |x: f64| x != 0.0);
