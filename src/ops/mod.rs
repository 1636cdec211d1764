//! Tensor operations. One file per family; in each, an op's forward and its backward sit side
//! by side, with a note of what the forward saves for the backward and why.
//!
//! Every op is a struct implementing the public [`Op`](crate::autograd::Op) trait and is run
//! through [`apply`](crate::autograd::apply), exactly as a user-defined op would be. An op
//! checks its inputs, says what to compute by calling a primitive on its input's backend
//! (`backend::of(x).unary(..)`), and never looks at where a tensor lives. The tensor methods
//! (`a.add(&b)`, `x.softmax(-1)`) are thin wrappers: the `try_` form returns a `Result`, the
//! plain form panics at the caller's line.
//!
//! The fused layers (attention, ContextPool, convolution, pooling, the norms, the GRU) are
//! ops here too, with hand-written backward passes; `crate::nn` wraps them in modules.

pub mod attention;
pub mod batch_norm;
mod binary;
mod concat;
pub mod context_pool;
pub mod conv;
mod convert;
mod create;
pub mod dropout;
pub mod gru;
mod index;
pub mod lara;
pub mod layer_norm;
pub mod linear;
pub mod linear_attention;
mod loss;
pub mod lsh_attention;
pub mod masks;
mod matmul;
pub mod mixed_chunk_attention;
pub mod mra_attention;
pub mod pooling;
mod reduce;
pub mod relative_attention;
pub mod reversible;
mod shape;
mod softmax;
mod unary;

pub use crate::backend::unary::{Reads, Unary};
pub use loss::{CrossEntropyOptions, Reduction};

use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

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
