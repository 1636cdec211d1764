//! Tools for testing ops, public so that users test their own layers the same way:
//! named tolerances, a naive f64 reference implementation, and the op registry that drives
//! the forward, gradcheck, parity and property tests.

pub mod naive;
mod registry;
mod tolerance;

pub use registry::{registry, Domain, InputSpec, OpCase};
pub use tolerance::{assert_close, Tolerance};

use crate::tensor::Device;

/// The CubeCL devices this build can run tests on, in order: `wgpu:0` (feature `wgpu`),
/// `cuda:0` (feature `cuda`).
pub fn built_devices() -> Vec<Device> {
    let mut v = Vec::new();
    if cfg!(feature = "wgpu") {
        v.push(Device::Wgpu(0));
    }
    if cfg!(feature = "cuda") {
        v.push(Device::Cuda(0));
    }
    v
}

/// Sets CubeCL's `check_mode = validate` (once, before the first device opens), so that a
/// kernel's out-of-bounds access is reported instead of read as zero.
pub fn validate_kernel_bounds() {
    use cubegrad_ops::cubecl::config::{
        compilation::BoundsCheckMode, CubeClRuntimeConfig, RuntimeConfig,
    };
    static CONFIG: std::sync::Once = std::sync::Once::new();
    CONFIG.call_once(|| {
        let mut c = CubeClRuntimeConfig::default();
        c.compilation.check_mode = BoundsCheckMode::Validate;
        CubeClRuntimeConfig::set(c);
    });
}

/// `device` when it can be opened. Otherwise panics if `CUBEGRAD_REQUIRE_DEVICE` names its
/// kind (`wgpu`, `cuda`; comma-separated), so CI cannot skip silently, and returns `None`
/// after printing why. Tests also get CubeCL's bounds checks (`check_mode = validate`), so
/// an out-of-bounds access is reported instead of read as zero.
pub fn device_or_skip(test: &'static str, device: Device) -> Option<Device> {
    validate_kernel_bounds();
    let kind = device.kind();
    let required =
        std::env::var("CUBEGRAD_REQUIRE_DEVICE").is_ok_and(|v| v.split(',').any(|d| d == kind));
    match crate::backend::open(test, device) {
        Ok(()) => Some(device),
        Err(e) if required => panic!("CUBEGRAD_REQUIRE_DEVICE={kind}, but {e}"),
        Err(e) => {
            eprintln!("{test}: skipped: {e} (set CUBEGRAD_REQUIRE_DEVICE={kind} to fail instead)");
            None
        }
    }
}
