// Without a runtime feature the kernels are still compiled (CubeCL IR) but nothing launches
// them: every path below returns `DeviceUnavailable` before reaching them.
#![cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(unused))]

//! The CubeCL runtimes: which exist is decided at build time (features `wgpu`, `cuda`); which
//! device a tensor is on, at run time. [`with_runtime!`] turns the second into the first: it
//! binds the runtime type and its client for a device, or returns `DeviceUnavailable`. Also
//! here: opening a device and waiting for it.

use crate::error::{Error, Result};
use crate::tensor::device::Device;
use std::collections::HashMap;
use std::sync::Mutex;

/// Runs `$body` with `$R` bound to the CubeCL runtime of `$device` and `$client` to its
/// client, or returns `DeviceUnavailable` for a device whose runtime this build lacks.
macro_rules! with_runtime {
    ($op:expr, $device:expr, |$R:ident, $client:ident| $body:expr) => {{
        #[allow(unused_imports)]
        use cubegrad_ops::cubecl::Runtime as _;
        match $device {
            #[cfg(feature = "wgpu")]
            $crate::tensor::Device::Wgpu(i) => {
                #[allow(dead_code)]
                type $R = cubegrad_ops::cubecl::wgpu::WgpuRuntime;
                let $client = $R::client(&$crate::backend::cube::runtime::wgpu_device(i));
                $body
            }
            #[cfg(feature = "cuda")]
            $crate::tensor::Device::Cuda(i) => {
                #[allow(dead_code)]
                type $R = cubegrad_ops::cubecl::cuda::CudaRuntime;
                let $client = $R::client(&cubegrad_ops::cubecl::cuda::CudaDevice::new(i));
                $body
            }
            #[allow(unreachable_patterns)]
            other => Err($crate::backend::cube::runtime::not_built($op, other)),
        }
    }};
}
pub(crate) use with_runtime;

/// Runs `$body` with `$F` bound to the kernel float type of `$dtype`.
macro_rules! with_cube_float {
    ($op:expr, $dtype:expr, |$F:ident| $body:expr) => {
        match $dtype {
            $crate::tensor::DType::F32 => {
                #[allow(dead_code)]
                type $F = f32;
                $body
            }
            $crate::tensor::DType::F64 => {
                #[allow(dead_code)]
                type $F = f64;
                $body
            }
            other => Err($crate::error::Error::DType {
                op: $op,
                got: other,
                expected: "f32 or f64",
            }),
        }
    };
}
pub(crate) use with_cube_float;

/// `wgpu:0` is wgpu's default adapter (the most powerful one; `CUBECL_WGPU_DEFAULT_DEVICE`
/// overrides it, e.g. `Cpu` for lavapipe); `wgpu:N` for N ≥ 1 is the N-th discrete GPU.
#[cfg(feature = "wgpu")]
pub(crate) fn wgpu_device(i: usize) -> cubegrad_ops::cubecl::wgpu::WgpuDevice {
    use cubegrad_ops::cubecl::wgpu::WgpuDevice;
    if i == 0 {
        WgpuDevice::DefaultDevice
    } else {
        WgpuDevice::DiscreteGpu(i)
    }
}

/// Whether this build has the runtime of `device`.
fn built(device: Device) -> bool {
    match device {
        Device::Cpu => true,
        Device::Wgpu(_) => cfg!(feature = "wgpu"),
        Device::Cuda(_) => cfg!(feature = "cuda"),
    }
}

pub(crate) fn not_built(op: &'static str, device: Device) -> Error {
    let feature = match device {
        Device::Wgpu(_) => "wgpu",
        Device::Cuda(_) => "cuda",
        Device::Cpu => "cpu",
    };
    Error::DeviceUnavailable {
        op,
        device,
        reason: format!("cubegrad was built without the `{feature}` feature"),
    }
}

/// Opens `device` once and remembers the outcome: CubeCL panics when no adapter exists, and
/// that must reach the user as an error naming the device.
pub(crate) fn open(op: &'static str, device: Device) -> Result<()> {
    static OPENED: Mutex<Option<HashMap<Device, std::result::Result<(), String>>>> =
        Mutex::new(None);
    let mut guard = OPENED.lock().unwrap_or_else(|e| e.into_inner());
    let known = guard.get_or_insert_with(HashMap::new);
    let outcome = match known.get(&device) {
        Some(r) => r.clone(),
        None => {
            if !built(device) {
                return Err(not_built(op, device));
            }
            // A device too small for the kernels is refused here, by name, rather than
            // failing inside the first launch.
            let opened = std::panic::catch_unwind(|| {
                with_runtime!(op, device, |R, client| {
                    Ok(cubegrad_ops::check_device(client.properties()))
                })
            });
            let r = match opened {
                Ok(Ok(fits)) => fits,
                Ok(Err(e)) => Err(e.to_string()),
                Err(p) => Err(panic_text(p)),
            };
            known.insert(device, r.clone());
            r
        }
    };
    outcome.map_err(|reason| Error::DeviceUnavailable { op, device, reason })
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "the runtime could not open it".into()
    }
}

/// Waits until every kernel queued on `device` has finished.
pub(crate) fn synchronize(device: Device) -> Result<()> {
    open("synchronize", device)?;
    with_runtime!("synchronize", device, |R, client| {
        cubegrad_ops::cubecl::future::block_on(client.sync())
            .map_err(|e| Error::invalid("synchronize", format!("{device}: {e:?}")))
    })
}

/// Bytes in use and reserved in `device`'s memory pool.
pub(crate) fn device_memory(device: Device) -> Result<(u64, u64)> {
    open("device_memory", device)?;
    with_runtime!("device_memory", device, |R, client| {
        let u = client
            .memory_usage()
            .map_err(|e| Error::invalid("device_memory", format!("{e:?}")))?;
        Ok((u.bytes_in_use, u.bytes_reserved))
    })
}
