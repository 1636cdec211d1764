//! Tensor operations. One file per family; in each, an op's forward and its backward sit side by
//! side, with a note of what the forward saves for the backward and why.
//!
//! Every op is a struct implementing the public [`Op`](crate::autograd::Op) trait and is run
//! through [`apply`](crate::autograd::apply), exactly as a user-defined op would be. The tensor
//! methods (`a.add(&b)`, `x.softmax(-1)`) are thin wrappers: the `try_` form returns a
//! `Result`, the plain form panics at the caller's line.

mod binary;
mod concat;
mod index;
mod loss;
mod matmul;
mod reduce;
mod shape;
mod softmax;
mod unary;

pub use loss::CrossEntropyOptions;
pub use unary::UnaryKind;

use crate::error::{Error, Result};
use crate::tensor::{CpuData, DType, Float, Shape, Tensor};

/// Runs `$body` with the type alias `$T` bound to the float type of `$dtype` (f32 or f64).
macro_rules! with_float {
    ($op:expr, $dtype:expr, |$T:ident| $body:block) => {
        match $dtype {
            $crate::tensor::DType::F32 => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::tensor::DType::F64 => {
                #[allow(dead_code)]
                type $T = f64;
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
pub(crate) use with_float;

/// A new tensor from a kernel's output.
pub(crate) fn from_float<T: Float>(v: Vec<T>, shape: Shape) -> Tensor {
    Tensor::from_cpu(T::wrap(v), shape)
}

impl Tensor {
    /// The whole storage as a float slice (views index into it through their layout).
    pub(crate) fn raw<T: Float>(&self, op: &'static str) -> Result<&[T]> {
        T::slice_of(self.cpu_data(op)?).ok_or(Error::DType {
            op,
            got: self.dtype(),
            expected: if T::DTYPE == DType::F32 { "f32" } else { "f64" },
        })
    }
    pub(crate) fn raw_data(&self, op: &'static str) -> Result<&CpuData> {
        self.cpu_data(op)
    }
}

/// Checks that two inputs can meet in one kernel: same dtype and same device.
pub(crate) fn same_kind(op: &'static str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.device() != b.device() {
        return Err(Error::DeviceMismatch {
            op,
            lhs: a.device(),
            rhs: b.device(),
        });
    }
    if a.dtype() != b.dtype() {
        return Err(Error::invalid(
            op,
            format!(
                "dtypes differ: {} and {}; convert one with to_dtype",
                a.dtype(),
                b.dtype()
            ),
        ));
    }
    Ok(())
}

/// Sums a broadcast gradient back down to `target`'s shape: the backward of broadcasting.
pub(crate) fn sum_to_shape(g: &Tensor, target: &Shape) -> Result<Tensor> {
    if g.shape() == target {
        return Ok(g.clone());
    }
    let extra = g.rank() - target.rank();
    let mut axes: Vec<isize> = (0..extra as isize).collect();
    for (i, &d) in target.dims().iter().enumerate() {
        if d == 1 && g.dims()[i + extra] != 1 {
            axes.push((i + extra) as isize);
        }
    }
    let s = if axes.is_empty() {
        g.clone()
    } else {
        g.try_sum_axes(&axes, true)?
    };
    s.try_reshape(target.dims())
}

/// Declares the panicking wrapper of a `try_` method: same arguments, panics at the caller.
macro_rules! panicking {
    ($(#[$m:meta])* $name:ident => $try_name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty) => {
        $(#[$m])*
        #[track_caller]
        pub fn $name(&self, $($arg: $ty),*) -> $ret {
            use $crate::error::OrPanic;
            self.$try_name($($arg),*).or_panic()
        }
    };
}
pub(crate) use panicking;
