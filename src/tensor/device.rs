//! Where a tensor lives. Chosen at run time and stored inside the tensor, so user code is
//! the same on every device (`backend::cube` holds the data of the GPU devices).

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// A Vulkan/Metal/DX12 adapter through wgpu, by index (lavapipe on CPU-only machines).
    Wgpu(usize),
    /// An NVIDIA GPU through CUDA, by index.
    Cuda(usize),
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Wgpu(i) => write!(f, "wgpu:{i}"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl std::str::FromStr for Device {
    type Err = crate::Error;
    /// Parses `cpu`, `wgpu`, `wgpu:1`, `cuda`, `cuda:0`.
    fn from_str(s: &str) -> crate::Result<Self> {
        let (kind, idx) = match s.split_once(':') {
            Some((k, i)) => (k, i.parse::<usize>().ok()),
            None => (s, Some(0)),
        };
        match (kind, idx) {
            ("cpu", _) => Ok(Device::Cpu),
            ("wgpu", Some(i)) => Ok(Device::Wgpu(i)),
            ("cuda", Some(i)) => Ok(Device::Cuda(i)),
            _ => Err(crate::Error::invalid(
                "Device::from_str",
                format!("unknown device {s:?}; expected cpu, wgpu[:N] or cuda[:N]"),
            )),
        }
    }
}
