//! Moving a tensor's values: to the host (`to_vec`, `item`), to another element type
//! (`to_dtype`), to another device (`to_device`, which is differentiable).

use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::storage::HostElem;
use crate::error::{OrPanic, Result};
use crate::tensor::{DType, Device, Tensor};

impl Tensor {
    /// The elements in row-major order, converted to `T`. For a tensor on a device this
    /// reads the data back (it waits for the device).
    #[track_caller]
    pub fn to_vec<T: HostElem>(&self) -> Vec<T> {
        self.try_to_vec().or_panic()
    }
    /// `to_vec`, with a device read failure as an error.
    pub fn try_to_vec<T: HostElem>(&self) -> Result<Vec<T>> {
        backend::read(self)
    }
    /// The single element of a one-element tensor, as f64.
    #[track_caller]
    pub fn item(&self) -> f64 {
        assert_eq!(
            self.numel(),
            1,
            "item: tensor of shape {} has more than one element",
            self.shape()
        );
        self.to_vec::<f64>()[0]
    }

    /// The same values in another element type (a new tensor without history).
    #[track_caller]
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        self.try_to_dtype(dtype).or_panic()
    }
    pub fn try_to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        backend::of(self).cast(self, dtype)
    }

    /// Moves the tensor to `device`; panics with the reason if that device is unavailable.
    #[track_caller]
    pub fn to_device(&self, device: Device) -> Tensor {
        self.try_to_device(device).or_panic()
    }
    /// The same values on `device`. Differentiable, like PyTorch's `.to(device)`: the
    /// gradient goes back to the source device. (`Module::to_device` moves parameters as
    /// new leaves instead.)
    pub fn try_to_device(&self, device: Device) -> Result<Tensor> {
        if device == self.device() {
            return Ok(self.clone());
        }
        apply(
            ToDevice {
                from: self.device(),
                to: device,
            },
            &[self],
        )
    }
}

/// `to_device` as an op: its backward moves the gradient back. Saves nothing.
struct ToDevice {
    from: Device,
    to: Device,
}

impl Op for ToDevice {
    fn name(&self) -> &'static str {
        "to_device"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Ok(Forward::new(backend::transfer(inputs[0], self.to)?, vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        debug_assert_eq!(g.device(), self.to);
        Ok(vec![Some(backend::transfer(g, self.from)?)])
    }
}
