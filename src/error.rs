//! One error type for the whole crate.
//!
//! The rule (see ARCHITECTURE.md): every fallible operation has a `try_` form that returns
//! [`Result`]; the plain form calls it and panics with the same message at the caller's line
//! (`#[track_caller]`). Errors always name the operation and the shapes, file or key involved.

use crate::tensor::{device::Device, dtype::DType, shape::Shape};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Two shapes that had to agree did not. `detail` says which dimensions and why.
    /// `sep` joins the shapes in the message: `@` for matmul, `and` elsewhere.
    #[error("{op}: {lhs} {sep} {rhs}: {detail}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        sep: &'static str,
        rhs: Shape,
        detail: String,
    },

    /// A shape was wrong on its own: rank, a size, an axis out of range.
    #[error("{op}: input of shape {shape}: {detail}")]
    BadShape {
        op: &'static str,
        shape: Shape,
        detail: String,
    },

    #[error("{op}: dtype {got} is not supported here (expected {expected})")]
    DType {
        op: &'static str,
        got: DType,
        expected: &'static str,
    },

    #[error("{op}: inputs are on different devices ({lhs} and {rhs})")]
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },

    #[error("{op}: device {device} is not available: {reason}")]
    DeviceUnavailable {
        op: &'static str,
        device: Device,
        reason: String,
    },

    /// The op has no kernel on this device yet. Nothing is copied behind the user's back:
    /// move the tensors to another device explicitly.
    #[error("{op}: not implemented on {device} yet; move its inputs with to_device(Device::Cpu)")]
    Unsupported { op: &'static str, device: Device },

    #[error("{op}: index {index} is out of range for a dimension of size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        size: usize,
    },

    #[error("{op}: {detail}")]
    Invalid { op: &'static str, detail: String },

    /// A collective operation across processes failed (`cubegrad::distributed`): the
    /// operation, and what went wrong (a missing library, ranks that disagree).
    #[error("distributed {op}: {detail}")]
    Distributed { op: &'static str, detail: String },

    /// The autograd tape could not produce a gradient.
    #[error("backward: {0}")]
    Autograd(String),

    /// A checkpoint or data file could not be read or written; `path` names it.
    #[error("{path}: {detail}")]
    File { path: String, detail: String },

    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn invalid(op: &'static str, detail: impl Into<String>) -> Self {
        Error::Invalid {
            op,
            detail: detail.into(),
        }
    }
    pub(crate) fn mismatch(
        op: &'static str,
        lhs: &Shape,
        rhs: &Shape,
        detail: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            sep: "and",
            rhs: rhs.clone(),
            detail: detail.into(),
        }
    }
    pub(crate) fn bad_shape(op: &'static str, shape: &Shape, detail: impl Into<String>) -> Self {
        Error::BadShape {
            op,
            shape: shape.clone(),
            detail: detail.into(),
        }
    }
    pub(crate) fn file(path: impl AsRef<std::path::Path>, detail: impl Into<String>) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            detail: detail.into(),
        }
    }
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// Unwraps a `Result` for the panicking forms of the API, reporting the caller's line.
pub(crate) trait OrPanic<T> {
    fn or_panic(self) -> T;
}

impl<T> OrPanic<T> for Result<T> {
    #[track_caller]
    fn or_panic(self) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }
}
