//! cubegrad: a small reverse-mode autograd with a fast CPU path, built to teach how autodiff,
//! attention and GPU kernels work, and to study ContextPool.
//!
//! Start with `ARCHITECTURE.md` at the top of the repository: it shows how a [`Tensor`], an
//! [`Op`](autograd::Op), the tape and a backend meet.

pub mod autograd;
pub mod backend;
pub mod data;
pub mod error;
pub mod io;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod tensor;
pub mod testing;

pub use autograd::{gradcheck, no_grad, Gradients};
pub use error::{Error, Result};
pub use tensor::{manual_seed, DType, Device, Shape, Tensor};
