//! Element-wise binary ops with NumPy broadcasting: add, sub, mul, div; and comparisons.
//!
//! The backward of broadcasting is a sum: an input that was stretched along an axis receives
//! the sum of the gradients along that axis (`sum_to_shape`).

use super::{panicking, same_kind, sum_to_shape};
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::elementwise::{Binary as BinaryKind, Compare};
use crate::error::Result;
use crate::tensor::{Shape, Tensor};

/// The op also keeps both input shapes: the backward needs them to undo broadcasting.
struct Binary {
    kind: BinaryKind,
    lhs: Shape,
    rhs: Shape,
}

impl Binary {
    fn new(kind: BinaryKind, a: &Tensor, b: &Tensor) -> Self {
        Binary {
            kind,
            lhs: a.shape().clone(),
            rhs: b.shape().clone(),
        }
    }
}

fn kind_name(kind: BinaryKind) -> &'static str {
    match kind {
        BinaryKind::Add => "add",
        BinaryKind::Sub => "sub",
        BinaryKind::Mul => "mul",
        BinaryKind::Div => "div",
    }
}

fn binary_forward(op: &'static str, kind: BinaryKind, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_kind(op, a, b)?;
    let shape = Shape::broadcast(op, a.shape(), b.shape())?;
    backend::of(a).binary(kind, a, b, &shape)
}

// ANCHOR: binary_op
impl Op for Binary {
    fn name(&self) -> &'static str {
        kind_name(self.kind)
    }
    /// Saves: nothing for add/sub (the shapes are in the op); both inputs for mul
    /// (each one's gradient is the other); the divisor and the output for div
    /// (∂/∂a = g/b, ∂/∂b = −g·out/b).
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (a, b) = (inputs[0], inputs[1]);
        let out = binary_forward(self.name(), self.kind, a, b)?;
        let saved = match self.kind {
            BinaryKind::Add | BinaryKind::Sub => vec![],
            BinaryKind::Mul => vec![a.clone(), b.clone()],
            BinaryKind::Div => vec![b.clone(), out.clone()],
        };
        Ok(Forward::new(out, saved))
    }
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (sa, sb) = (&self.lhs, &self.rhs);
        let (ga, gb) = match self.kind {
            BinaryKind::Add => (Some(g.clone()), Some(g.clone())),
            BinaryKind::Sub => (Some(g.clone()), needs[1].then(|| g.neg())),
            BinaryKind::Mul => (
                needs[0].then(|| g.try_mul(&saved[1])).transpose()?,
                needs[1].then(|| g.try_mul(&saved[0])).transpose()?,
            ),
            BinaryKind::Div => {
                let (b, out) = (&saved[0], &saved[1]);
                (
                    needs[0].then(|| g.try_div(b)).transpose()?,
                    needs[1]
                        .then(|| g.try_mul(out)?.try_div(b).map(|t| t.neg()))
                        .transpose()?,
                )
            }
        };
        let ga = if needs[0] {
            ga.map(|t| sum_to_shape(&t, sa)).transpose()?
        } else {
            None
        };
        let gb = if needs[1] {
            gb.map(|t| sum_to_shape(&t, sb)).transpose()?
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
}
// ANCHOR_END: binary_op

/// A comparison, as a bool mask (no gradient).
fn compare(op: &'static str, c: Compare, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_kind(op, a, b)?;
    let shape = Shape::broadcast(op, a.shape(), b.shape())?;
    backend::of(a).compare(c, a, b, &shape)
}

impl Tensor {
    pub fn try_add(&self, rhs: &Tensor) -> Result<Tensor> {
        apply(Binary::new(BinaryKind::Add, self, rhs), &[self, rhs])
    }
    pub fn try_sub(&self, rhs: &Tensor) -> Result<Tensor> {
        apply(Binary::new(BinaryKind::Sub, self, rhs), &[self, rhs])
    }
    pub fn try_mul(&self, rhs: &Tensor) -> Result<Tensor> {
        apply(Binary::new(BinaryKind::Mul, self, rhs), &[self, rhs])
    }
    pub fn try_div(&self, rhs: &Tensor) -> Result<Tensor> {
        apply(Binary::new(BinaryKind::Div, self, rhs), &[self, rhs])
    }
    panicking!(
        /// `self + rhs` with broadcasting.
        add => try_add(rhs: &Tensor) -> Tensor);
    panicking!(
        /// `self - rhs` with broadcasting.
        sub => try_sub(rhs: &Tensor) -> Tensor);
    panicking!(
        /// `self * rhs` (element-wise) with broadcasting.
        mul => try_mul(rhs: &Tensor) -> Tensor);
    panicking!(
        /// `self / rhs` with broadcasting.
        div => try_div(rhs: &Tensor) -> Tensor);

    pub fn try_eq(&self, rhs: &Tensor) -> Result<Tensor> {
        compare("eq", Compare::Eq, self, rhs)
    }
    pub fn try_ne(&self, rhs: &Tensor) -> Result<Tensor> {
        compare("ne", Compare::Ne, self, rhs)
    }
    pub fn try_lt(&self, rhs: &Tensor) -> Result<Tensor> {
        compare("lt", Compare::Lt, self, rhs)
    }
    pub fn try_le(&self, rhs: &Tensor) -> Result<Tensor> {
        compare("le", Compare::Le, self, rhs)
    }
    pub fn try_gt(&self, rhs: &Tensor) -> Result<Tensor> {
        compare("gt", Compare::Gt, self, rhs)
    }
    pub fn try_ge(&self, rhs: &Tensor) -> Result<Tensor> {
        compare("ge", Compare::Ge, self, rhs)
    }
    panicking!(
        /// Element-wise `==`, as a bool mask.
        eq => try_eq(rhs: &Tensor) -> Tensor);
    panicking!(ne => try_ne(rhs: &Tensor) -> Tensor);
    panicking!(lt => try_lt(rhs: &Tensor) -> Tensor);
    panicking!(le => try_le(rhs: &Tensor) -> Tensor);
    panicking!(gt => try_gt(rhs: &Tensor) -> Tensor);
    panicking!(ge => try_ge(rhs: &Tensor) -> Tensor);
}

macro_rules! std_op {
    ($trait:ident, $method:ident, $f:ident) => {
        impl std::ops::$trait<&Tensor> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: &Tensor) -> Tensor {
                Tensor::$f(self, rhs)
            }
        }
        impl std::ops::$trait<Tensor> for Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: Tensor) -> Tensor {
                Tensor::$f(&self, &rhs)
            }
        }
        impl std::ops::$trait<f64> for &Tensor {
            type Output = Tensor;
            #[track_caller]
            fn $method(self, rhs: f64) -> Tensor {
                Tensor::$f(
                    self,
                    &Tensor::full_on([1usize; 0], rhs, self.dtype(), self.device()),
                )
            }
        }
    };
}
std_op!(Add, add, add);
std_op!(Sub, sub, sub);
std_op!(Mul, mul, mul);
std_op!(Div, div, div);

impl std::ops::Neg for &Tensor {
    type Output = Tensor;
    fn neg(self) -> Tensor {
        Tensor::neg(self)
    }
}
