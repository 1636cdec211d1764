//! The float element type of the CPU kernels: f32 and f64, with the math the loops need
//! (a vectorisable `exp`, `tanh` and normal CDF for f32) and access to their slices inside
//! [`CpuData`].

use super::fastmath;
use crate::backend::storage::CpuData;
use crate::tensor::dtype::DType;
use std::fmt;

/// A float element the kernels are generic over. Only f32 and f64 implement it.
pub trait Float:
    num_traits::Float
    + std::iter::Sum
    + std::ops::AddAssign
    + std::ops::MulAssign
    + Default
    + fmt::Debug
    + fmt::Display
    + Send
    + Sync
    + 'static
{
    const DTYPE: DType;
    /// The slice of this type inside `data`, if `data` holds this type.
    fn slice_of(data: &CpuData) -> Option<&[Self]>;
    fn slice_of_mut(data: &mut CpuData) -> Option<&mut [Self]>;
    fn wrap(v: Vec<Self>) -> CpuData;
    fn from_f64(x: f64) -> Self;
    fn as_f64(self) -> f64;
    /// The standard normal CDF `Φ(x)` (the exact GELU's gate), vectorisable for f32.
    fn normal_cdf(self) -> Self;
    /// `e^{−x²/2}`, vectorisable for f32.
    fn exp_neg_half_square(self) -> Self;
    /// `exp` written so that loops over slices vectorise (see `fastmath.rs`).
    fn fast_exp(self) -> Self;
    fn fast_tanh(self) -> Self;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn slice_of(data: &CpuData) -> Option<&[f32]> {
        match data {
            CpuData::F32(v) => Some(v),
            _ => None,
        }
    }
    fn slice_of_mut(data: &mut CpuData) -> Option<&mut [f32]> {
        match data {
            CpuData::F32(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f32>) -> CpuData {
        CpuData::F32(v)
    }
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn normal_cdf(self) -> Self {
        fastmath::normal_cdf_f32(self)
    }
    #[inline(always)]
    fn exp_neg_half_square(self) -> Self {
        fastmath::exp_neg_half_square_f32(self)
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        fastmath::exp_f32(self)
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        fastmath::tanh_f32(self)
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    fn slice_of(data: &CpuData) -> Option<&[f64]> {
        match data {
            CpuData::F64(v) => Some(v),
            _ => None,
        }
    }
    fn slice_of_mut(data: &mut CpuData) -> Option<&mut [f64]> {
        match data {
            CpuData::F64(v) => Some(v),
            _ => None,
        }
    }
    fn wrap(v: Vec<f64>) -> CpuData {
        CpuData::F64(v)
    }
    fn from_f64(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn normal_cdf(self) -> Self {
        // Through erfc, which keeps the left tail's relative accuracy (1 + erf would not).
        0.5 * libm::erfc(-self * std::f64::consts::FRAC_1_SQRT_2)
    }
    fn exp_neg_half_square(self) -> Self {
        (-0.5 * self * self).exp()
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        // f64 is the checking precision: keep the correctly rounded libm exp.
        self.exp()
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        self.tanh()
    }
}
