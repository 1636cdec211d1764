//! Element-wise functions of one tensor. The functions themselves (their formulas, their
//! kernels, and what each derivative is written from) are one table, `backend/unary.rs`; the
//! op here saves what the table says and asks the backend for `f` and `g·f'`.

use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::unary::{Reads, Unary};
use crate::error::{OrPanic, Result};
use crate::tensor::Tensor;

// ANCHOR: unary_op
/// Saves the input or the output, whichever the derivative is written from, or nothing
/// (neg, affine).
struct UnaryOp(Unary);

impl Op for UnaryOp {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let y = backend::of(x).unary(self.0, x)?;
        let saved = match self.0.reads() {
            Reads::Nothing => vec![],
            Reads::Input => vec![x.clone()],
            Reads::Output => vec![y.clone()],
        };
        Ok(Forward::new(y, saved))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let gx = backend::of(g).unary_backward(self.0, g, saved.first())?;
        Ok(vec![Some(gx)])
    }
}
// ANCHOR_END: unary_op

impl Tensor {
    /// Applies an element-wise function (the methods below are shorthands).
    pub fn try_unary(&self, f: Unary) -> Result<Tensor> {
        apply(UnaryOp(f), &[self])
    }
    #[track_caller]
    pub fn unary(&self, f: Unary) -> Tensor {
        self.try_unary(f).or_panic()
    }
    #[track_caller]
    pub fn neg(&self) -> Tensor {
        self.unary(Unary::Neg)
    }
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        self.unary(Unary::Exp)
    }
    /// Natural logarithm.
    #[track_caller]
    pub fn log(&self) -> Tensor {
        self.unary(Unary::Log)
    }
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        self.unary(Unary::Sqrt)
    }
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        self.unary(Unary::Abs)
    }
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        self.unary(Unary::Tanh)
    }
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor {
        self.unary(Unary::Sigmoid)
    }
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        self.unary(Unary::Relu)
    }
    /// Exact GELU, `x·Φ(x)` (PyTorch's default `approximate='none'`).
    #[track_caller]
    pub fn gelu(&self) -> Tensor {
        self.unary(Unary::GeluErf)
    }
    /// GELU with the tanh approximation (`approximate='tanh'`).
    #[track_caller]
    pub fn gelu_tanh(&self) -> Tensor {
        self.unary(Unary::GeluTanh)
    }
    /// `ln(1 + eˣ)` (PyTorch's `softplus` with β = 1), without overflow for large `x`.
    #[track_caller]
    pub fn softplus(&self) -> Tensor {
        self.unary(Unary::Softplus)
    }
    /// `x^p` for a real exponent.
    #[track_caller]
    pub fn powf(&self, p: f64) -> Tensor {
        self.unary(Unary::Powf(p))
    }
    #[track_caller]
    pub fn square(&self) -> Tensor {
        self.unary(Unary::Powf(2.0))
    }
    /// `scale·x + shift`.
    #[track_caller]
    pub fn affine(&self, scale: f64, shift: f64) -> Tensor {
        self.unary(Unary::Affine { scale, shift })
    }
    #[track_caller]
    pub fn mul_scalar(&self, s: f64) -> Tensor {
        self.affine(s, 0.0)
    }
    #[track_caller]
    pub fn add_scalar(&self, s: f64) -> Tensor {
        self.affine(1.0, s)
    }
}
