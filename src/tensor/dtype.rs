//! Element types. Float math runs in f32 (the default) or f64 (finite-difference checks);
//! i64 holds indices and class labels, bool holds masks.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
    Bool,
}

impl DType {
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::Bool => "bool",
        };
        f.write_str(s)
    }
}

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
    + super::FloatSlice
    + Sync
    + 'static
{
    const DTYPE: DType;
    fn from_f64(x: f64) -> Self;
    fn as_f64(self) -> f64;
    fn erf(self) -> Self;
    /// `exp` written so that loops over slices vectorise (see `backend::cpu::fastmath`).
    fn fast_exp(self) -> Self;
    fn fast_tanh(self) -> Self;
}

impl Float for f32 {
    const DTYPE: DType = DType::F32;
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        crate::backend::cpu::fastmath::exp_f32(self)
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        crate::backend::cpu::fastmath::tanh_f32(self)
    }
}

impl Float for f64 {
    const DTYPE: DType = DType::F64;
    fn from_f64(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn erf(self) -> Self {
        libm::erf(self)
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
