//! Backends: where the numbers are computed, and the only place that looks at where a tensor
//! lives.
//!
//! An op says *what* to compute: it calls a primitive on the backend of its input,
//! `backend::of(&x).unary(Unary::Exp, &x)`. [`of`] matches on the tensor's storage, once, and
//! hands back the CPU backend or the CubeCL one ([`on`] does the same for a device, for ops
//! that create a tensor from nothing). Both implement every family of primitives below, with
//! the same names and signatures:
//!
//! | family (the contract and the types both sides need) | CPU: loops over slices | CubeCL: kernel launches |
//! | --- | --- | --- |
//! | [`layout`]: fill, cast, copy, concat | `cpu/layout.rs` | `cube/layout.rs` |
//! | [`elementwise`] (and the table of unary functions, [`unary`]) | `cpu/elementwise.rs` | `cube/elementwise.rs` |
//! | [`reduce`], [`softmax`], [`matmul`] | `cpu/…` | `cube/…` |
//! | [`index`], [`loss`], [`random`] | `cpu/…` | `cube/…` |
//! | [`attention`], [`context_pool`], [`conv`], [`pooling`], [`norm`] (fused layers) | `cpu/…` | `cube/…` |
//! | [`optim`]: fused in-place updates | `cpu/optim.rs` | `cube/optim.rs` |
//!
//! A family's file declares its trait (what every backend provides) and the plain types both
//! sides need (a ContextPool's geometry, attention masks, a convolution's sizes), so neither
//! backend imports the other. Moving data between devices ([`transfer`]) and reading it back
//! ([`read`]) are the boundary itself and live here. [`custom`] lets a user's op bring its own
//! kernels, one per device family.

pub mod attention;
pub mod context_pool;
pub mod conv;
pub mod cpu;
pub mod cube;
pub mod custom;
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
pub mod softmax;
pub mod storage;
pub mod unary;

pub use attention::AttentionKernels;
pub use context_pool::ContextPoolKernels;
pub use conv::ConvKernels;
pub use elementwise::ElementwiseKernels;
pub use index::IndexKernels;
pub use layout::LayoutKernels;
pub use loss::LossKernels;
pub use matmul::MatmulKernels;
pub use norm::NormKernels;
pub use optim::OptimKernels;
pub use pooling::PoolingKernels;
pub use random::RandomKernels;
pub use reduce::ReduceKernels;
pub use softmax::SoftmaxKernels;

use crate::error::{Error, Result};
use crate::tensor::{Device, Layout, Shape, Tensor};
use storage::{CpuData, CpuStorage, HostElem, Storage};

/// Everything a backend provides: every family of primitives.
pub trait Backend:
    LayoutKernels
    + ElementwiseKernels
    + ReduceKernels
    + SoftmaxKernels
    + MatmulKernels
    + IndexKernels
    + LossKernels
    + RandomKernels
    + AttentionKernels
    + ContextPoolKernels
    + ConvKernels
    + PoolingKernels
    + NormKernels
    + OptimKernels
    + Sync
{
}

/// The backend that holds `t`'s data.
pub fn of(t: &Tensor) -> &'static dyn Backend {
    match t.storage() {
        Storage::Cpu(_) => &cpu::Cpu,
        Storage::Cube(_) => &cube::Cube,
    }
}

/// The backend of `device`, for ops that make a tensor there from nothing.
pub fn on(device: Device) -> &'static dyn Backend {
    match device {
        Device::Cpu => &cpu::Cpu,
        Device::Wgpu(_) | Device::Cuda(_) => &cube::Cube,
    }
}

/// A new CPU tensor holding `data` in row-major order.
pub fn host_tensor(data: CpuData, shape: Shape) -> Tensor {
    debug_assert_eq!(data.len(), shape.numel());
    Tensor::from_storage(
        Storage::Cpu(CpuStorage::new(data)),
        Layout::contiguous(shape),
    )
}

/// `t`'s elements in row-major order, converted to `T`. A tensor on a device is read back
/// (one synchronisation); on the CPU only the viewed elements are gathered.
pub fn read<T: HostElem>(t: &Tensor) -> Result<Vec<T>> {
    match t.storage() {
        Storage::Cpu(s) => Ok(T::collect(s.data(), t.layout())),
        Storage::Cube(c) => Ok(T::collect(&cube::transfer::download(c)?, t.layout())),
    }
}

/// A copy of `t` on `device`, without history. Only the viewed elements travel.
pub fn transfer(t: &Tensor, device: Device) -> Result<Tensor> {
    match (t.storage(), device) {
        (_, d) if d == t.device() => Ok(t.clone()),
        (Storage::Cube(c), Device::Cpu) => {
            let data = cube::transfer::download(c)?;
            Ok(Tensor::from_storage(
                Storage::Cpu(CpuStorage::new(data)),
                t.layout().clone(),
            ))
        }
        (Storage::Cpu(_), _) => {
            let dense = if t.is_dense() {
                t.clone()
            } else {
                cpu::Cpu.contiguous(t)?
            };
            let Storage::Cpu(s) = dense.storage() else {
                unreachable!("a CPU copy is on the CPU")
            };
            let up = cube::transfer::upload(s.data(), device)?;
            Ok(Tensor::from_storage(
                Storage::Cube(up),
                Layout::contiguous(t.shape().clone()),
            ))
        }
        // Between two devices: through the host.
        (Storage::Cube(_), _) => transfer(&transfer(t, Device::Cpu)?, device),
    }
}

/// The error of an op that has no kernel for `t`'s device.
pub fn unsupported(op: &'static str, t: &Tensor) -> Error {
    Error::Unsupported {
        op,
        device: t.device(),
    }
}

/// Whether `device` can be opened: what tests ask before they decide to skip.
pub fn is_available(device: Device) -> bool {
    open("is_available", device).is_ok()
}

/// Opens `device` once (the CPU is always open), or says why it cannot be.
pub fn open(op: &'static str, device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        _ => cube::runtime::open(op, device),
    }
}

/// Waits until every kernel queued on `device` has finished (CubeCL launches return before
/// the work is done). Benchmarks call it to time the work rather than its queuing; the CPU
/// has nothing to wait for.
pub fn synchronize(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        _ => cube::runtime::synchronize(device),
    }
}

/// Bytes of tensor data a device's memory pool has handed out right now, and bytes it holds
/// reserved from the device (in use or free for reuse). Tests read it to show that a
/// training loop on a device reaches a steady state.
pub fn device_memory(device: Device) -> Result<(u64, u64)> {
    match device {
        Device::Cpu => Ok((
            storage::cpu_memory_in_use() as u64,
            (storage::cpu_memory_in_use() + cpu::buffer_cache::cached_bytes()) as u64,
        )),
        _ => cube::runtime::device_memory(device),
    }
}

/// The most bytes of tensor data alive at once on `device` since the last
/// [`reset_peak_memory`] (PyTorch's `torch.cuda.max_memory_allocated`). Tracked for the CPU;
/// CubeCL's memory pools report what they hold now, not a peak, so a device gets an error.
pub fn peak_memory(device: Device) -> Result<u64> {
    match device {
        Device::Cpu => Ok(storage::cpu_peak_memory() as u64),
        _ => Err(Error::invalid(
            "peak_memory",
            format!("{device:?} keeps no peak; device_memory() gives what is in use now"),
        )),
    }
}

/// Starts a new peak on `device` from what is alive now (PyTorch's
/// `reset_peak_memory_stats`); nothing to do where no peak is kept.
pub fn reset_peak_memory(device: Device) {
    if device == Device::Cpu {
        storage::reset_cpu_peak();
    }
}

impl std::str::FromStr for Device {
    type Err = Error;
    /// Parses `cpu`, `wgpu`, `wgpu:1`, `cuda`, `cuda:0`.
    fn from_str(s: &str) -> Result<Self> {
        let (kind, idx) = match s.split_once(':') {
            Some((k, i)) => (k, i.parse::<usize>().ok()),
            None => (s, Some(0)),
        };
        match (kind, idx) {
            ("cpu", _) => Ok(Device::Cpu),
            ("wgpu", Some(i)) => Ok(Device::Wgpu(i)),
            ("cuda", Some(i)) => Ok(Device::Cuda(i)),
            _ => Err(Error::invalid(
                "Device::from_str",
                format!("unknown device {s:?}; expected cpu, wgpu[:N] or cuda[:N]"),
            )),
        }
    }
}
