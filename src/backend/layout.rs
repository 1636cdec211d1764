//! Making and moving data on one device: fill, cast, contiguous copies, concatenation, and
//! the backward of `narrow` (a gradient written into zeros).

use crate::error::Result;
use crate::tensor::{DType, Device, Shape, Tensor};

pub trait LayoutKernels {
    /// A tensor of `shape` filled with `value` on `device` (this backend's).
    fn full(&self, shape: &Shape, value: f64, dtype: DType, device: Device) -> Result<Tensor>;
    /// The same values in another element type.
    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor>;
    /// A row-major copy with fresh storage, whatever the dtype and strides of `x`.
    fn contiguous(&self, x: &Tensor) -> Result<Tensor>;
    /// `parts` (one dtype, all dims equal but `axis`) joined along `axis`.
    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor>;
    /// `g` written into zeros of shape `from`, at `start` along `axis`.
    fn pad_axis(&self, g: &Tensor, from: &Shape, axis: usize, start: usize) -> Result<Tensor>;
}
