//! Element-wise primitives on the CPU: the unary table's host formulas, and arithmetic,
//! comparisons and `where` read through each operand's layout under broadcasting.

use super::loops::{select, zip_broadcast};
use super::{data, raw, tensor, with_float, wrap, Cpu};
use crate::backend::elementwise::{Binary, Compare, ElementwiseKernels};
use crate::backend::storage::CpuData;
use crate::backend::unary::Unary;
use crate::error::{Error, Result};
use crate::tensor::{Layout, Shape, Tensor};

impl ElementwiseKernels for Cpu {
    fn unary(&self, op: Unary, x: &Tensor) -> Result<Tensor> {
        with_float!(op.name(), x.dtype(), |T| {
            let xs = super::slice::<T>(op.name(), x)?;
            Ok(tensor(op.host_forward(&xs), x.shape().clone()))
        })
    }

    fn unary_backward(&self, op: Unary, g: &Tensor, saved: Option<&Tensor>) -> Result<Tensor> {
        with_float!(op.name(), g.dtype(), |T| {
            let gs = super::slice::<T>(op.name(), g)?;
            let v = match saved {
                Some(s) => op.host_backward(&gs, &super::slice::<T>(op.name(), s)?),
                None => op.host_backward(&gs, &[]),
            };
            Ok(tensor(v, g.shape().clone()))
        })
    }

    fn binary(&self, op: Binary, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
        let name = match op {
            Binary::Add => "add",
            Binary::Sub => "sub",
            Binary::Mul => "mul",
            Binary::Div => "div",
        };
        with_float!(name, a.dtype(), |T| {
            let (x, y) = (raw::<T>(name, a)?, raw::<T>(name, b)?);
            let (la, lb) = (a.layout(), b.layout());
            let v = match op {
                Binary::Add => zip_broadcast(x, la, y, lb, out, |p: T, q: T| p + q),
                Binary::Sub => zip_broadcast(x, la, y, lb, out, |p: T, q: T| p - q),
                Binary::Mul => zip_broadcast(x, la, y, lb, out, |p: T, q: T| p * q),
                Binary::Div => zip_broadcast(x, la, y, lb, out, |p: T, q: T| p / q),
            };
            Ok(tensor(v, out.clone()))
        })
    }

    fn compare(&self, op: Compare, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
        fn run<T: Copy + PartialOrd + Send + Sync>(
            x: &[T],
            la: &Layout,
            y: &[T],
            lb: &Layout,
            s: &Shape,
            c: Compare,
        ) -> Vec<bool> {
            match c {
                Compare::Eq => zip_broadcast(x, la, y, lb, s, |p, q| p == q),
                Compare::Ne => zip_broadcast(x, la, y, lb, s, |p, q| p != q),
                Compare::Lt => zip_broadcast(x, la, y, lb, s, |p, q| p < q),
                Compare::Le => zip_broadcast(x, la, y, lb, s, |p, q| p <= q),
                Compare::Gt => zip_broadcast(x, la, y, lb, s, |p, q| p > q),
                Compare::Ge => zip_broadcast(x, la, y, lb, s, |p, q| p >= q),
            }
        }
        let (la, lb) = (a.layout(), b.layout());
        let v = match (data("compare", a)?, data("compare", b)?) {
            (CpuData::F32(x), CpuData::F32(y)) => run(x, la, y, lb, out, op),
            (CpuData::F64(x), CpuData::F64(y)) => run(x, la, y, lb, out, op),
            (CpuData::I64(x), CpuData::I64(y)) => run(x, la, y, lb, out, op),
            (CpuData::Bool(x), CpuData::Bool(y)) => run(x, la, y, lb, out, op),
            _ => return Err(Error::invalid("compare", "dtypes differ")),
        };
        Ok(wrap(CpuData::Bool(v), out.clone()))
    }

    fn select(&self, cond: &Tensor, a: &Tensor, b: &Tensor, out: &Shape) -> Result<Tensor> {
        let cv = cond.broadcast_view(out);
        let c = super::bools("where", &cv)?;
        with_float!("where", a.dtype(), |T| {
            // Inputs already of the output's shape are read in place; broadcast ones are
            // gathered.
            let (va, vb) = (a.broadcast_view(out), b.broadcast_view(out));
            let av = super::slice::<T>("where", &va)?;
            let bv = super::slice::<T>("where", &vb)?;
            Ok(tensor(select(&c, &av, &bv), out.clone()))
        })
    }
}
