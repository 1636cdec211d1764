//! Element-wise kernels: a unary map and a binary op under broadcasting. One unit per output
//! element. Shapes and strides arrive as runtime arrays, so each kernel compiles once per
//! operation and float type, whatever the shapes.

use crate::common::{grid, u32s};
use cubecl::prelude::*;

/// The binary operations, picked at compile time (one kernel each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinaryOp {
    fn code(self) -> u32 {
        self as u32
    }
}

/// The unary operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Tanh,
    Sigmoid,
    Relu,
}

impl UnaryOp {
    fn code(self) -> u32 {
        self as u32
    }
}

/// `out[i] = a[ia] ∘ b[ib]`, where `ia`, `ib` are output index `i` unravelled over `shape`
/// and dotted with each input's strides (0 along broadcast dims).
#[cube(launch)]
fn binary_kernel<F: Float>(
    a: &Array<F>,
    b: &Array<F>,
    out: &mut Array<F>,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    rank: u32,
    #[comptime] op: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let mut rem = i as u32;
        let mut ia = 0u32;
        let mut ib = 0u32;
        let mut d = rank;
        while d > 0 {
            d -= 1;
            let n = shape[d as usize];
            let idx = rem % n;
            rem /= n;
            ia += idx * a_strides[d as usize];
            ib += idx * b_strides[d as usize];
        }
        let x = a[ia as usize];
        let y = b[ib as usize];
        if comptime![op == 0] {
            out[i] = x + y;
        } else if comptime![op == 1] {
            out[i] = x - y;
        } else if comptime![op == 2] {
            out[i] = x * y;
        } else {
            out[i] = x / y;
        }
    }
}

#[cube(launch)]
fn unary_kernel<F: Float>(x: &Array<F>, out: &mut Array<F>, #[comptime] op: u32) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let v = x[i];
        if comptime![op == 0] {
            out[i] = -v;
        } else if comptime![op == 1] {
            out[i] = F::exp(v);
        } else if comptime![op == 2] {
            out[i] = F::ln(v);
        } else if comptime![op == 3] {
            out[i] = F::sqrt(v);
        } else if comptime![op == 4] {
            out[i] = F::tanh(v);
        } else if comptime![op == 5] {
            out[i] = F::new(1.0) / (F::new(1.0) + F::exp(-v));
        } else {
            out[i] = F::max(v, F::new(0.0));
        }
    }
}

/// `a ∘ b` broadcast to `shape`: `a_strides`/`b_strides` give each input's element strides
/// for every output dim (0 where broadcast). Returns a new contiguous buffer.
#[allow(clippy::too_many_arguments)]
pub fn binary<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    op: BinaryOp,
    a: &cubecl::server::Handle,
    a_len: usize,
    a_strides: &[usize],
    b: &cubecl::server::Handle,
    b_len: usize,
    b_strides: &[usize],
    shape: &[usize],
) -> cubecl::server::Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    let (sh, sa, sb) = (
        u32s(client, shape),
        u32s(client, a_strides),
        u32s(client, b_strides),
    );
    let rank = shape.len();
    // SAFETY: every handle is sized exactly for the length passed with it.
    unsafe {
        binary_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(a.clone(), a_len),
            ArrayArg::from_raw_parts(b.clone(), b_len),
            ArrayArg::from_raw_parts(out.clone(), n),
            ArrayArg::from_raw_parts(sh, rank.max(1)),
            ArrayArg::from_raw_parts(sa, rank.max(1)),
            ArrayArg::from_raw_parts(sb, rank.max(1)),
            rank as u32,
            op.code(),
        );
    }
    out
}

/// `op(x)` for `n` contiguous elements.
pub fn unary<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    op: UnaryOp,
    x: &cubecl::server::Handle,
    n: usize,
) -> cubecl::server::Handle {
    let out = client.empty(n * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    // SAFETY: both handles hold n elements of F.
    unsafe {
        unary_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), n),
            ArrayArg::from_raw_parts(out.clone(), n),
            op.code(),
        );
    }
    out
}
