//! Tools for testing ops, public so that users test their own layers the same way:
//! named tolerances, a naive f64 reference implementation, and the op registry that drives
//! the forward, gradcheck, parity and property tests.

pub mod naive;
mod registry;
mod tolerance;

pub use registry::{registry, Domain, InputSpec, OpCase};
pub use tolerance::{assert_close, Tolerance};
