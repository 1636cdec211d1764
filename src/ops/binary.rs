//! Element-wise binary ops with NumPy broadcasting: add, sub, mul, div; and comparisons.
//!
//! The backward of broadcasting is a sum: an input that was stretched along an axis receives
//! the sum of the gradients along that axis (`sum_to_shape`).

use super::{from_float, panicking, same_kind, sum_to_shape, with_float};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::elementwise::zip_broadcast;
use crate::error::{Error, Result};
use crate::tensor::{CpuData, Shape, Tensor};
use cubegrad_ops::elementwise::{BinaryOp, CompareOp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryKind {
    Add,
    Sub,
    Mul,
    Div,
}

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

impl BinaryKind {
    fn name(self) -> &'static str {
        match self {
            BinaryKind::Add => "add",
            BinaryKind::Sub => "sub",
            BinaryKind::Mul => "mul",
            BinaryKind::Div => "div",
        }
    }
}

fn binary_forward(op: &'static str, kind: BinaryKind, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_kind(op, a, b)?;
    let shape = Shape::broadcast(op, a.shape(), b.shape())?;
    if a.cube().is_some() {
        let k = match kind {
            BinaryKind::Add => BinaryOp::Add,
            BinaryKind::Sub => BinaryOp::Sub,
            BinaryKind::Mul => BinaryOp::Mul,
            BinaryKind::Div => BinaryOp::Div,
        };
        return crate::backend::cube::ops::binary(k, a, b, &shape);
    }
    with_float!(op, a.dtype(), |T| {
        let (x, y) = (a.raw::<T>(op)?, b.raw::<T>(op)?);
        let (la, lb) = (a.layout(), b.layout());
        let v = match kind {
            BinaryKind::Add => zip_broadcast(x, la, y, lb, &shape, |p: T, q: T| p + q),
            BinaryKind::Sub => zip_broadcast(x, la, y, lb, &shape, |p: T, q: T| p - q),
            BinaryKind::Mul => zip_broadcast(x, la, y, lb, &shape, |p: T, q: T| p * q),
            BinaryKind::Div => zip_broadcast(x, la, y, lb, &shape, |p: T, q: T| p / q),
        };
        Ok(from_float(v, shape))
    })
}

// ANCHOR: binary_op
impl Op for Binary {
    fn name(&self) -> &'static str {
        self.kind.name()
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

/// Comparison producing a bool mask (no gradient).
#[derive(Clone, Copy, Debug)]
pub enum Compare {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

fn compare(op: &'static str, c: Compare, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    same_kind(op, a, b)?;
    let shape = Shape::broadcast(op, a.shape(), b.shape())?;
    if a.cube().is_some() {
        let k = match c {
            Compare::Eq => CompareOp::Eq,
            Compare::Ne => CompareOp::Ne,
            Compare::Lt => CompareOp::Lt,
            Compare::Le => CompareOp::Le,
            Compare::Gt => CompareOp::Gt,
            Compare::Ge => CompareOp::Ge,
        };
        return crate::backend::cube::ops::compare(k, a, b, &shape);
    }
    fn run<T: Copy + PartialOrd + Send + Sync>(
        x: &[T],
        y: &[T],
        a: &Tensor,
        b: &Tensor,
        s: &Shape,
        c: Compare,
    ) -> Vec<bool> {
        let (la, lb) = (a.layout(), b.layout());
        match c {
            Compare::Eq => zip_broadcast(x, la, y, lb, s, |p, q| p == q),
            Compare::Ne => zip_broadcast(x, la, y, lb, s, |p, q| p != q),
            Compare::Lt => zip_broadcast(x, la, y, lb, s, |p, q| p < q),
            Compare::Le => zip_broadcast(x, la, y, lb, s, |p, q| p <= q),
            Compare::Gt => zip_broadcast(x, la, y, lb, s, |p, q| p > q),
            Compare::Ge => zip_broadcast(x, la, y, lb, s, |p, q| p >= q),
        }
    }
    let v = match (a.raw_data(op)?, b.raw_data(op)?) {
        (CpuData::F32(x), CpuData::F32(y)) => run(x, y, a, b, &shape, c),
        (CpuData::F64(x), CpuData::F64(y)) => run(x, y, a, b, &shape, c),
        (CpuData::I64(x), CpuData::I64(y)) => run(x, y, a, b, &shape, c),
        (CpuData::Bool(x), CpuData::Bool(y)) => run(x, y, a, b, &shape, c),
        _ => return Err(Error::invalid(op, "dtypes differ")),
    };
    Ok(Tensor::from_cpu(CpuData::Bool(v), shape))
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
