//! Element-wise kernels: a unary map and a binary op under broadcasting. One unit per output
//! element. Shapes and strides arrive as runtime arrays, so each kernel compiles once per
//! operation and float type, whatever the shapes.

use crate::common::{grid, scalar, u32s};
use crate::layout::View;
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

/// The unary operations. Their scalar parameters (`Powf`'s exponent, `Affine`'s scale and
/// shift) are runtime arguments, so one compiled kernel serves every value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Tanh,
    Sigmoid,
    Relu,
    Abs,
    /// GELU with the tanh approximation.
    GeluTanh,
    /// Exact GELU, `x·Φ(x)`.
    GeluErf,
    Powf(f64),
    Affine {
        scale: f64,
        shift: f64,
    },
}

impl UnaryOp {
    fn code(self) -> u32 {
        match self {
            UnaryOp::Neg => 0,
            UnaryOp::Exp => 1,
            UnaryOp::Log => 2,
            UnaryOp::Sqrt => 3,
            UnaryOp::Tanh => 4,
            UnaryOp::Sigmoid => 5,
            UnaryOp::Relu => 6,
            UnaryOp::Abs => 7,
            UnaryOp::GeluTanh => 8,
            UnaryOp::GeluErf => 9,
            UnaryOp::Powf(_) => 10,
            UnaryOp::Affine { .. } => 11,
        }
    }
    /// The runtime scalars `(p, q)` the kernels read.
    fn params(self) -> (f64, f64) {
        match self {
            UnaryOp::Powf(p) => (p, 0.0),
            UnaryOp::Affine { scale, shift } => (scale, shift),
            _ => (0.0, 0.0),
        }
    }
    /// Whether the backward reads the forward's output (`true`) or its input; the same
    /// choice as the CPU backend: exp, sqrt, tanh and sigmoid write the derivative from `y`.
    pub fn backward_uses_output(self) -> bool {
        matches!(
            self,
            UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Tanh | UnaryOp::Sigmoid
        )
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// Where output element `i` reads its two operands: `i` unravelled over `shape` and dotted
/// with each operand's strides (0 along broadcast dims), plus its offset.
#[cube]
fn pair_offsets(
    i: u32,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
) -> (u32, u32) {
    let mut rem = i;
    let mut ia = a_offset;
    let mut ib = b_offset;
    let mut d = rank;
    while d > 0 {
        d -= 1;
        let n = shape[d as usize];
        let idx = rem % n;
        rem /= n;
        ia += idx * a_strides[d as usize];
        ib += idx * b_strides[d as usize];
    }
    (ia, ib)
}

// ANCHOR: binary_kernel
/// `out[i] = a[ia] ∘ b[ib]` at the offsets of [`pair_offsets`].
#[cube(launch)]
fn binary_kernel<F: Float>(
    a: &Array<F>,
    b: &Array<F>,
    out: &mut Array<F>,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
    #[comptime] op: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let (ia, ib) = pair_offsets(
            i as u32, shape, a_strides, b_strides, a_offset, b_offset, rank,
        );
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
// ANCHOR_END: binary_kernel

#[cube(launch)]
fn unary_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    out: &mut Array<F>,
    p: F,
    q: F,
    #[comptime] op: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let v = x[i];
        let one = F::new(1.0);
        let half = F::new(0.5);
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
            out[i] = one / (one + F::exp(-v));
        } else if comptime![op == 6] {
            // `v < 0 ? 0 : v` lets NaN through, as PyTorch and the CPU backend do.
            let mut r = v;
            if v < F::new(0.0) {
                r = F::new(0.0);
            }
            out[i] = r;
        } else if comptime![op == 7] {
            out[i] = F::abs(v);
        } else if comptime![op == 8] {
            let inner = F::new(SQRT_2_OVER_PI) * (v + F::new(GELU_C) * v * v * v);
            out[i] = half * v * (one + F::tanh(inner));
        } else if comptime![op == 9] {
            out[i] = half * v * (one + F::erf(v * F::new(FRAC_1_SQRT_2)));
        } else if comptime![op == 10] {
            out[i] = F::powf(v, p);
        } else {
            out[i] = v * p + q;
        }
    }
}

/// `g · f'(s)`, where `s` is the forward's output for exp, sqrt, tanh and sigmoid and its
/// input for the rest (see [`UnaryOp::backward_uses_output`]).
#[cube(launch)]
fn unary_backward_kernel<F: Float + CubeElement>(
    g: &Array<F>,
    s: &Array<F>,
    out: &mut Array<F>,
    p: F,
    #[comptime] op: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let gi = g[i];
        let v = s[i];
        let one = F::new(1.0);
        let half = F::new(0.5);
        let zero = F::new(0.0);
        if comptime![op == 0] {
            out[i] = -gi;
        } else if comptime![op == 1] {
            out[i] = gi * v;
        } else if comptime![op == 2] {
            out[i] = gi / v;
        } else if comptime![op == 3] {
            out[i] = gi * half / v;
        } else if comptime![op == 4] {
            out[i] = gi * (one - v * v);
        } else if comptime![op == 5] {
            out[i] = gi * v * (one - v);
        } else if comptime![op == 6] {
            let mut r = zero;
            if v > zero {
                r = gi;
            }
            out[i] = r;
        } else if comptime![op == 7] {
            // The subgradient at 0 is 0, as in PyTorch.
            let mut r = zero;
            if v > zero {
                r = gi;
            }
            if v < zero {
                r = -gi;
            }
            out[i] = r;
        } else if comptime![op == 8] {
            let k = F::new(SQRT_2_OVER_PI);
            let a = F::new(GELU_C);
            let t = F::tanh(k * (v + a * v * v * v));
            let dinner = k * (one + F::new(3.0) * a * v * v);
            out[i] = gi * (half * (one + t) + half * v * (one - t * t) * dinner);
        } else if comptime![op == 9] {
            let cdf = half * (one + F::erf(v * F::new(FRAC_1_SQRT_2)));
            let pdf = F::new(FRAC_1_SQRT_2PI) * F::exp(-half * v * v);
            out[i] = gi * (cdf + v * pdf);
        } else if comptime![op == 10] {
            out[i] = gi * p * F::powf(v, p - one);
        } else {
            out[i] = gi * p;
        }
    }
}

/// `a ∘ b` broadcast to `shape`: each operand is a [`View`] whose strides give its element
/// stride for every output dim (0 where broadcast). Returns a new contiguous buffer.
pub fn binary<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    op: BinaryOp,
    a: &View<'_>,
    b: &View<'_>,
    shape: &[usize],
) -> cubecl::server::Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    let (sh, sa, sb) = (
        u32s(client, shape),
        u32s(client, a.strides),
        u32s(client, b.strides),
    );
    let rank = shape.len();
    // SAFETY: every handle is sized exactly for the length passed with it.
    unsafe {
        binary_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(a.handle.clone(), a.len),
            ArrayArg::from_raw_parts(b.handle.clone(), b.len),
            ArrayArg::from_raw_parts(out.clone(), n),
            ArrayArg::from_raw_parts(sh, rank.max(1)),
            ArrayArg::from_raw_parts(sa, rank.max(1)),
            ArrayArg::from_raw_parts(sb, rank.max(1)),
            a.offset as u32,
            b.offset as u32,
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
            scalar::<F>(op.params().0),
            scalar::<F>(op.params().1),
            op.code(),
        );
    }
    out
}

/// The gradient of `op` for `n` contiguous elements: `g · f'(s)`, `s` as
/// [`UnaryOp::backward_uses_output`] says.
pub fn unary_backward<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    op: UnaryOp,
    g: &cubecl::server::Handle,
    s: &cubecl::server::Handle,
    n: usize,
) -> cubecl::server::Handle {
    let out = client.empty(n * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    // SAFETY: the three handles hold n elements of F.
    unsafe {
        unary_backward_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(g.clone(), n),
            ArrayArg::from_raw_parts(s.clone(), n),
            ArrayArg::from_raw_parts(out.clone(), n),
            scalar::<F>(op.params().0),
            op.code(),
        );
    }
    out
}

/// Comparisons, picked at compile time; they write bool as u32 (0 or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// `out[i] = a[ia] ⋈ b[ib]` at the offsets of [`pair_offsets`].
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn compare_kernel<F: Float>(
    a: &Array<F>,
    b: &Array<F>,
    out: &mut Array<u32>,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
    #[comptime] op: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let (ia, ib) = pair_offsets(
            i as u32, shape, a_strides, b_strides, a_offset, b_offset, rank,
        );
        let x = a[ia as usize];
        let y = b[ib as usize];
        // Ge unless the op says otherwise (each test is resolved at compile time).
        let mut r = x >= y;
        if comptime![op == 0] {
            r = x == y;
        }
        if comptime![op == 1] {
            r = x != y;
        }
        if comptime![op == 2] {
            r = x < y;
        }
        if comptime![op == 3] {
            r = x <= y;
        }
        if comptime![op == 4] {
            r = x > y;
        }
        let mut v = 0u32;
        if r {
            v = 1u32;
        }
        out[i] = v;
    }
}

/// `out[i] = cond[ic] ? a[ia] : b[ib]` under broadcasting (`torch.where`).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn select_kernel<F: Float>(
    cond: &Array<u32>,
    a: &Array<F>,
    b: &Array<F>,
    out: &mut Array<F>,
    shape: &Array<u32>,
    c_strides: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    offsets: &Array<u32>,
    rank: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let mut rem = i as u32;
        let mut ic = offsets[0];
        let mut ia = offsets[1];
        let mut ib = offsets[2];
        let mut d = rank;
        while d > 0 {
            d -= 1;
            let n = shape[d as usize];
            let idx = rem % n;
            rem /= n;
            ic += idx * c_strides[d as usize];
            ia += idx * a_strides[d as usize];
            ib += idx * b_strides[d as usize];
        }
        let mut v = b[ib as usize];
        if cond[ic as usize] != 0 {
            v = a[ia as usize];
        }
        out[i] = v;
    }
}

#[cube(launch)]
fn bool_to_float_kernel<F: Float>(x: &Array<u32>, out: &mut Array<F>) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let mut v = F::new(0.0);
        if x[i] != 0 {
            v = F::new(1.0);
        }
        out[i] = v;
    }
}

#[cube(launch)]
fn float_cast_kernel<F: Float, G: Float>(x: &Array<F>, out: &mut Array<G>) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        out[i] = G::cast_from(x[i]);
    }
}

fn pad1(v: &[usize]) -> Vec<usize> {
    if v.is_empty() {
        vec![1]
    } else {
        v.to_vec()
    }
}

/// `a ⋈ b` broadcast to `shape`, as a bool buffer (u32 per element).
pub fn compare<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    op: CompareOp,
    a: &View<'_>,
    b: &View<'_>,
    shape: &[usize],
) -> cubecl::server::Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * 4);
    let (count, dim) = grid(n);
    let rank = shape.len();
    let (sh, sa, sb) = (
        u32s(client, &pad1(shape)),
        u32s(client, &pad1(a.strides)),
        u32s(client, &pad1(b.strides)),
    );
    // SAFETY: every handle is sized exactly for the length passed with it.
    unsafe {
        compare_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(a.handle.clone(), a.len),
            ArrayArg::from_raw_parts(b.handle.clone(), b.len),
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
            ArrayArg::from_raw_parts(sh, rank.max(1)),
            ArrayArg::from_raw_parts(sa, rank.max(1)),
            ArrayArg::from_raw_parts(sb, rank.max(1)),
            a.offset as u32,
            b.offset as u32,
            rank as u32,
            op as u32,
        );
    }
    out
}

/// `cond ? a : b` broadcast to `shape`; `cond` is a bool buffer (u32 per element).
pub fn select<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    cond: &View<'_>,
    a: &View<'_>,
    b: &View<'_>,
    shape: &[usize],
) -> cubecl::server::Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    let rank = shape.len();
    let (sh, sc, sa, sb) = (
        u32s(client, &pad1(shape)),
        u32s(client, &pad1(cond.strides)),
        u32s(client, &pad1(a.strides)),
        u32s(client, &pad1(b.strides)),
    );
    let offsets = u32s(client, &[cond.offset, a.offset, b.offset]);
    // SAFETY: every handle is sized exactly for the length passed with it.
    unsafe {
        select_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(cond.handle.clone(), cond.len),
            ArrayArg::from_raw_parts(a.handle.clone(), a.len),
            ArrayArg::from_raw_parts(b.handle.clone(), b.len),
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
            ArrayArg::from_raw_parts(sh, rank.max(1)),
            ArrayArg::from_raw_parts(sc, rank.max(1)),
            ArrayArg::from_raw_parts(sa, rank.max(1)),
            ArrayArg::from_raw_parts(sb, rank.max(1)),
            ArrayArg::from_raw_parts(offsets, 3),
            rank as u32,
        );
    }
    out
}

/// A bool buffer (u32 per element) as 0.0 / 1.0.
pub fn bool_to_float<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &cubecl::server::Handle,
    n: usize,
) -> cubecl::server::Handle {
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    // SAFETY: x holds n u32 words and out n elements of F.
    unsafe {
        bool_to_float_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), n.max(1)),
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
        );
    }
    out
}

/// `n` elements of float type `F` converted to `G`.
pub fn float_cast<R: Runtime, F: Float + CubeElement, G: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &cubecl::server::Handle,
    n: usize,
) -> cubecl::server::Handle {
    let out = client.empty(n.max(1) * std::mem::size_of::<G>());
    let (count, dim) = grid(n);
    // SAFETY: x holds n elements of F and out n of G.
    unsafe {
        float_cast_kernel::launch::<F, G, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), n.max(1)),
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
        );
    }
    out
}

/// `out[i] = a[ia] ⋈ b[ib]` for integer elements: i64 (`wide`, two u32 words, low first) or
/// bool (one u32 word, 0 or 1). Flipping the high word's sign bit turns the signed 64-bit order
/// into the unsigned order of (high, low) pairs.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn compare_words_kernel(
    a: &Array<u32>,
    b: &Array<u32>,
    out: &mut Array<u32>,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
    #[comptime] op: u32,
    #[comptime] wide: bool,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let (ia, ib) = pair_offsets(
            i as u32, shape, a_strides, b_strides, a_offset, b_offset, rank,
        );
        let mut xl = a[ia as usize];
        let mut yl = b[ib as usize];
        let mut xh = 0u32;
        let mut yh = 0u32;
        if comptime![wide] {
            xl = a[(2 * ia) as usize];
            yl = b[(2 * ib) as usize];
            xh = a[(2 * ia + 1) as usize] ^ 2147483648u32;
            yh = b[(2 * ib + 1) as usize] ^ 2147483648u32;
        }
        let eq = xh == yh && xl == yl;
        let lt = xh < yh || (xh == yh && xl < yl);
        // Ge unless the op says otherwise (each test is resolved at compile time).
        let mut r = !lt;
        if comptime![op == 0] {
            r = eq;
        }
        if comptime![op == 1] {
            r = !eq;
        }
        if comptime![op == 2] {
            r = lt;
        }
        if comptime![op == 3] {
            r = lt || eq;
        }
        if comptime![op == 4] {
            r = !(lt || eq);
        }
        let mut v = 0u32;
        if r {
            v = 1u32;
        }
        out[i] = v;
    }
}

/// [`compare`] for i64 (`wide`) or bool operands; views count elements, not words.
pub fn compare_words<R: Runtime>(
    client: &ComputeClient<R>,
    op: CompareOp,
    a: &View<'_>,
    b: &View<'_>,
    shape: &[usize],
    wide: bool,
) -> cubecl::server::Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * 4);
    let (count, dim) = grid(n);
    let rank = shape.len();
    let w = if wide { 2 } else { 1 };
    let (sh, sa, sb) = (
        u32s(client, &pad1(shape)),
        u32s(client, &pad1(a.strides)),
        u32s(client, &pad1(b.strides)),
    );
    // SAFETY: each operand buffer holds len elements of w words; out n words.
    unsafe {
        compare_words_kernel::launch::<R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(a.handle.clone(), a.len * w),
            ArrayArg::from_raw_parts(b.handle.clone(), b.len * w),
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
            ArrayArg::from_raw_parts(sh, rank.max(1)),
            ArrayArg::from_raw_parts(sa, rank.max(1)),
            ArrayArg::from_raw_parts(sb, rank.max(1)),
            a.offset as u32,
            b.offset as u32,
            rank as u32,
            op as u32,
            wide,
        );
    }
    out
}
