//! Strided copies: read a view (any strides and offset, 0-strides for broadcast) into a
//! contiguous buffer, or write a contiguous buffer into a view of a larger one. Permute,
//! transpose, narrow, broadcast and concatenation are all one of the two.

use crate::common::{grid, pair_offsets, u32s};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// `dst[dst_offset + Σ idx_d · dst_strides_d] = src[src_offset + Σ idx_d · src_strides_d]` for
/// every multi-index `idx` of `shape`, one unit per element.
#[cube(launch)]
fn copy_kernel<F: Float>(
    src: &Array<F>,
    dst: &mut Array<F>,
    shape: &Array<u32>,
    src_strides: &Array<u32>,
    dst_strides: &Array<u32>,
    src_offset: u32,
    dst_offset: u32,
    rank: u32,
    numel: u32,
) {
    let i = ABSOLUTE_POS as u32;
    if i < numel {
        let (s, t) = pair_offsets(
            i,
            shape,
            src_strides,
            dst_strides,
            src_offset,
            dst_offset,
            rank,
        );
        dst[t as usize] = src[s as usize];
    }
}

/// A view of a buffer: element strides per dim and an offset.
#[derive(Clone, Debug)]
pub struct View<'a> {
    pub handle: &'a Handle,
    /// Elements in the whole buffer.
    pub len: usize,
    pub strides: &'a [usize],
    pub offset: usize,
}

fn row_major(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// Copies `view` (of `shape`) into `dst` (a buffer of `dst_len` elements) at `dst_strides`
/// and `dst_offset`.
pub fn copy_into<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    shape: &[usize],
    src: &View<'_>,
    dst: &Handle,
    dst_len: usize,
    dst_strides: &[usize],
    dst_offset: usize,
) {
    let n: usize = shape.iter().product();
    if n == 0 {
        return;
    }
    let (count, dim) = grid(n);
    let rank = shape.len().max(1);
    let pad = |v: &[usize]| if v.is_empty() { vec![1] } else { v.to_vec() };
    let (sh, ss, ds) = (
        u32s(client, &pad(shape)),
        u32s(client, &pad(src.strides)),
        u32s(client, &pad(dst_strides)),
    );
    // SAFETY: the shape/stride buffers hold `rank` entries; the views were checked by the
    // caller to stay inside their buffers, whose lengths are passed with them.
    unsafe {
        copy_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(src.handle.clone(), src.len),
            ArrayArg::from_raw_parts(dst.clone(), dst_len),
            ArrayArg::from_raw_parts(sh, rank),
            ArrayArg::from_raw_parts(ss, rank),
            ArrayArg::from_raw_parts(ds, rank),
            src.offset as u32,
            dst_offset as u32,
            shape.len() as u32,
            n as u32,
        );
    }
}

/// A new contiguous buffer holding `view` (of `shape`).
pub fn contiguous<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    shape: &[usize],
    view: &View<'_>,
) -> Handle {
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    copy_into::<R, F>(client, shape, view, &out, n.max(1), &row_major(shape), 0);
    out
}

/// Concatenates contiguous `parts` (each with its shape) along `axis`.
pub fn concat<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    parts: &[(&Handle, &[usize])],
    axis: usize,
) -> (Handle, Vec<usize>) {
    let mut shape = parts[0].1.to_vec();
    shape[axis] = parts.iter().map(|p| p.1[axis]).sum();
    let n: usize = shape.iter().product();
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let strides = row_major(&shape);
    let mut start = 0;
    for (h, s) in parts {
        let len: usize = s.iter().product();
        let src = View {
            handle: h,
            len: len.max(1),
            strides: &row_major(s),
            offset: 0,
        };
        copy_into::<R, F>(
            client,
            s,
            &src,
            &out,
            n.max(1),
            &strides,
            start * strides[axis],
        );
        start += s[axis];
    }
    (out, shape)
}

#[cube(launch)]
fn fill_kernel<F: Float + CubeElement>(out: &mut Array<F>, value: F) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        out[i] = value;
    }
}

/// A new buffer of `n` elements, all `value` (zeros for a gradient, ones for a seed),
/// written on the device rather than uploaded.
pub fn fill<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    n: usize,
    value: f64,
) -> Handle {
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let (count, dim) = grid(n.max(1));
    // SAFETY: out holds n.max(1) elements; the kernel guards the length.
    unsafe {
        fill_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
            crate::common::scalar::<F>(value),
        );
    }
    out
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
