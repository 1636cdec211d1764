//! Element-wise arithmetic and comparisons of two tensors under NumPy broadcasting, and
//! `where`: one unit per output element, each operand read through its own strides (0 along a
//! broadcast dim), so strided and broadcast views need no copy. Each operation is a type
//! implementing a `#[cube]` trait, and one launcher serves them all (Burn's pattern). Shapes
//! and strides arrive as runtime arrays, so a kernel compiles once per operation and float
//! type, whatever the shapes.

use crate::common::{grid, pair_offsets, u32s};
use crate::layout::View;
use cubecl::prelude::*;
use cubecl::server::Handle;

/// Arithmetic of two elements.
#[cube]
pub trait BinaryKernel: 'static + Send + Sync {
    fn apply<F: Float>(a: F, b: F) -> F;
}

pub struct Add;
#[cube]
impl BinaryKernel for Add {
    fn apply<F: Float>(a: F, b: F) -> F {
        a + b
    }
}
pub struct Sub;
#[cube]
impl BinaryKernel for Sub {
    fn apply<F: Float>(a: F, b: F) -> F {
        a - b
    }
}
pub struct Mul;
#[cube]
impl BinaryKernel for Mul {
    fn apply<F: Float>(a: F, b: F) -> F {
        a * b
    }
}
pub struct Div;
#[cube]
impl BinaryKernel for Div {
    fn apply<F: Float>(a: F, b: F) -> F {
        a / b
    }
}

/// A comparison: on floats directly (so that NaN compares false, as in IEEE and PyTorch), and
/// on integers from their order (`lt`, `eq`), which the word kernel works out.
#[cube]
pub trait CompareKernel: 'static + Send + Sync {
    fn floats<F: Float>(a: F, b: F) -> bool;
    fn order(lt: bool, eq: bool) -> bool;
}

pub struct Eq;
#[cube]
impl CompareKernel for Eq {
    fn floats<F: Float>(a: F, b: F) -> bool {
        a == b
    }
    fn order(_lt: bool, eq: bool) -> bool {
        eq
    }
}
pub struct Ne;
#[cube]
impl CompareKernel for Ne {
    fn floats<F: Float>(a: F, b: F) -> bool {
        a != b
    }
    fn order(_lt: bool, eq: bool) -> bool {
        !eq
    }
}
pub struct Lt;
#[cube]
impl CompareKernel for Lt {
    fn floats<F: Float>(a: F, b: F) -> bool {
        a < b
    }
    fn order(lt: bool, _eq: bool) -> bool {
        lt
    }
}
pub struct Le;
#[cube]
impl CompareKernel for Le {
    fn floats<F: Float>(a: F, b: F) -> bool {
        a <= b
    }
    fn order(lt: bool, eq: bool) -> bool {
        lt || eq
    }
}
pub struct Gt;
#[cube]
impl CompareKernel for Gt {
    fn floats<F: Float>(a: F, b: F) -> bool {
        a > b
    }
    fn order(lt: bool, eq: bool) -> bool {
        !(lt || eq)
    }
}
pub struct Ge;
#[cube]
impl CompareKernel for Ge {
    fn floats<F: Float>(a: F, b: F) -> bool {
        a >= b
    }
    fn order(lt: bool, _eq: bool) -> bool {
        !lt
    }
}

// ANCHOR: binary_kernel
/// `out[i] = a[ia] ∘ b[ib]` at the offsets of [`pair_offsets`].
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn zip_kernel<F: Float, K: BinaryKernel>(
    a: &Array<F>,
    b: &Array<F>,
    out: &mut Array<F>,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let (ia, ib) = pair_offsets(
            i as u32, shape, a_strides, b_strides, a_offset, b_offset, rank,
        );
        out[i] = K::apply::<F>(a[ia as usize], b[ib as usize]);
    }
}
// ANCHOR_END: binary_kernel

/// `out[i] = a[ia] ⋈ b[ib]` for floats, as a bool (u32 0 or 1).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn compare_floats_kernel<F: Float, K: CompareKernel>(
    a: &Array<F>,
    b: &Array<F>,
    out: &mut Array<u32>,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        let (ia, ib) = pair_offsets(
            i as u32, shape, a_strides, b_strides, a_offset, b_offset, rank,
        );
        let mut v = 0u32;
        if K::floats::<F>(a[ia as usize], b[ib as usize]) {
            v = 1u32;
        }
        out[i] = v;
    }
}

/// `out[i] = a[ia] ⋈ b[ib]` for integer elements: i64 (`wide`, two u32 words, low first) or
/// bool (one u32 word, 0 or 1). Flipping the high word's sign bit turns the signed 64-bit order
/// into the unsigned order of (high, low) pairs.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn compare_words_kernel<K: CompareKernel>(
    a: &Array<u32>,
    b: &Array<u32>,
    out: &mut Array<u32>,
    shape: &Array<u32>,
    a_strides: &Array<u32>,
    b_strides: &Array<u32>,
    a_offset: u32,
    b_offset: u32,
    rank: u32,
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
        let mut v = 0u32;
        if K::order(lt, eq) {
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

fn pad1(v: &[usize]) -> Vec<usize> {
    if v.is_empty() {
        vec![1]
    } else {
        v.to_vec()
    }
}

/// The shape and both operands' strides as device arrays (one entry for a rank-0 shape).
fn shape_args<R: Runtime>(
    client: &ComputeClient<R>,
    shape: &[usize],
    a: &View<'_>,
    b: &View<'_>,
) -> (Handle, Handle, Handle) {
    (
        u32s(client, &pad1(shape)),
        u32s(client, &pad1(a.strides)),
        u32s(client, &pad1(b.strides)),
    )
}

/// `a ∘ b` broadcast to `shape`: each operand is a [`View`] whose strides give its element
/// stride for every output dim (0 where broadcast). Returns a new contiguous buffer.
pub fn binary<R: Runtime, F: Float + CubeElement, K: BinaryKernel>(
    client: &ComputeClient<R>,
    a: &View<'_>,
    b: &View<'_>,
    shape: &[usize],
) -> Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    let (sh, sa, sb) = shape_args(client, shape, a, b);
    let rank = shape.len();
    // SAFETY: every handle is sized exactly for the length passed with it.
    unsafe {
        zip_kernel::launch::<F, K, R>(
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
        );
    }
    out
}

/// `a ⋈ b` broadcast to `shape`, as a bool buffer (u32 per element).
pub fn compare<R: Runtime, F: Float + CubeElement, K: CompareKernel>(
    client: &ComputeClient<R>,
    a: &View<'_>,
    b: &View<'_>,
    shape: &[usize],
) -> Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * 4);
    let (count, dim) = grid(n);
    let rank = shape.len();
    let (sh, sa, sb) = shape_args(client, shape, a, b);
    // SAFETY: every handle is sized exactly for the length passed with it.
    unsafe {
        compare_floats_kernel::launch::<F, K, R>(
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
        );
    }
    out
}

/// [`compare`] for i64 (`wide`) or bool operands; views count elements, not words.
pub fn compare_words<R: Runtime, K: CompareKernel>(
    client: &ComputeClient<R>,
    a: &View<'_>,
    b: &View<'_>,
    shape: &[usize],
    wide: bool,
) -> Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * 4);
    let (count, dim) = grid(n);
    let rank = shape.len();
    let w = if wide { 2 } else { 1 };
    let (sh, sa, sb) = shape_args(client, shape, a, b);
    // SAFETY: each operand buffer holds len elements of w words; out n words.
    unsafe {
        compare_words_kernel::launch::<K, R>(
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
            wide,
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
