//! Where a tensor lives. Chosen at run time and stored inside the tensor, so user code is
//! the same on every device. Parsing a name (`"wgpu:1"`) and opening a device are the
//! backend's business (`backend/mod.rs`).

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

impl Device {
    /// The device family's name, as the `--device` flags and `CUBEGRAD_REQUIRE_DEVICE` spell it.
    pub fn kind(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Wgpu(_) => "wgpu",
            Device::Cuda(_) => "cuda",
        }
    }
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
