//! The bytes behind a tensor. Storage is shared (`Arc`) between a tensor and its views, and
//! copied on write only when someone else still holds it (see `Tensor::update_`).

use super::DType;
use std::sync::atomic::{AtomicUsize, Ordering};

static CPU_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Bytes of tensor data currently alive on the CPU device. Tests use it to show that
/// `no_grad` inference and training loops do not grow memory. Freed buffers kept for reuse
/// are counted apart, by `backend::cpu::pool::cached_bytes`.
pub fn cpu_memory_in_use() -> usize {
    CPU_BYTES.load(Ordering::Relaxed)
}

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

/// CPU storage with a live-bytes counter.
#[derive(Debug)]
pub struct CpuStorage(CpuData);

impl CpuStorage {
    pub fn new(data: CpuData) -> Self {
        CPU_BYTES.fetch_add(data.bytes(), Ordering::Relaxed);
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
        let data = std::mem::replace(&mut self.0, CpuData::Bool(Vec::new()));
        crate::backend::cpu::pool::give(data);
    }
}

/// Where a tensor's elements are: host memory, or a buffer on a CubeCL device.
#[derive(Debug, Clone)]
pub enum Storage {
    Cpu(CpuStorage),
    Cube(crate::backend::cube::CubeStorage),
}
