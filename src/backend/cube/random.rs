//! Dropout masks drawn on a CubeCL device by the Philox kernel: no host RNG, no upload.

use super::runtime::{open, with_cube_float, with_runtime};
use super::{from_handle, Cube};
use crate::backend::random::{keep_threshold, RandomKernels};
use crate::error::Result;
use crate::tensor::{DType, Device, Shape, Tensor};

impl RandomKernels for Cube {
    fn dropout_mask(
        &self,
        shape: &Shape,
        p: f64,
        seed: u64,
        dtype: DType,
        device: Device,
    ) -> Result<Tensor> {
        open("dropout", device)?;
        let (n, threshold) = (shape.numel(), keep_threshold(p));
        with_runtime!("dropout", device, |R, client| {
            with_cube_float!("dropout", dtype, |F| {
                let h = cubegrad_ops::random::dropout_mask::<R, F>(
                    &client,
                    n,
                    seed,
                    threshold,
                    1.0 / (1.0 - p),
                );
                Ok(from_handle(h, shape.clone(), dtype, device))
            })
        })
    }
}
