//! Index selection and its backward. `index_select` gathers rows: `out[o, i, :] =
//! x[o, idx[i], :]`. Its backward adds gradient rows back into the rows they came from; with
//! no float atomics assumed, the host first groups the positions by destination row (a
//! counting sort of the indices, which live on the host anyway), and each unit then sums
//! its own row's list, so no two units write the same element.

use crate::common::{grid, u32s};
use cubecl::prelude::*;
use cubecl::server::Handle;

#[cube(launch)]
fn index_select_kernel<F: Float>(
    x: &Array<F>,
    idx: &Array<u32>,
    out: &mut Array<F>,
    r: u32,
    n_idx: u32,
    inner: u32,
) {
    let e = ABSOLUTE_POS as u32;
    if e < out.len() as u32 {
        let c = e % inner;
        let i = (e / inner) % n_idx;
        let o = e / (inner * n_idx);
        out[e as usize] = x[((o * r + idx[i as usize]) * inner + c) as usize];
    }
}

/// `dx[o, j, c] = Σ_{i: idx[i] = j} g[o, i, c]`, with the positions of row `j` listed in
/// `order[start[j] .. start[j + 1]]`.
#[cube(launch)]
fn index_add_kernel<F: Float>(
    g: &Array<F>,
    order: &Array<u32>,
    start: &Array<u32>,
    dx: &mut Array<F>,
    r: u32,
    n_idx: u32,
    inner: u32,
) {
    let e = ABSOLUTE_POS as u32;
    if e < dx.len() as u32 {
        let c = e % inner;
        let j = (e / inner) % r;
        let o = e / (inner * r);
        let mut acc = F::new(0.0);
        let mut p = start[j as usize];
        while p < start[(j + 1) as usize] {
            acc += g[((o * n_idx + order[p as usize]) * inner + c) as usize];
            p += 1;
        }
        dx[e as usize] = acc;
    }
}

/// Rows `idx` of `x` seen as `[outer, r, inner]`: returns `[outer, idx.len(), inner]`.
pub fn index_select<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
) -> Handle {
    assert!(
        idx.iter().all(|&i| i < r),
        "index_select: index out of range"
    );
    let n = outer * idx.len() * inner;
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    if n == 0 {
        return out;
    }
    let (count, dim) = grid(n);
    // SAFETY: x holds outer·r·inner elements and every index is below r (asserted).
    unsafe {
        index_select_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), outer * r * inner),
            ArrayArg::from_raw_parts(u32s(client, idx), idx.len()),
            ArrayArg::from_raw_parts(out.clone(), n),
            r as u32,
            idx.len() as u32,
            inner as u32,
        );
    }
    out
}

/// The backward of [`index_select`]: `g` is `[outer, idx.len(), inner]`; returns `[outer, r,
/// inner]` with each gradient row added into row `idx[i]`.
pub fn index_add<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    g: &Handle,
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
) -> Handle {
    assert!(idx.iter().all(|&i| i < r), "index_add: index out of range");
    // Counting sort: start[j]..start[j+1] lists the positions whose index is j.
    let mut start = vec![0usize; r + 1];
    for &j in idx {
        start[j + 1] += 1;
    }
    for j in 0..r {
        start[j + 1] += start[j];
    }
    let mut fill = start.clone();
    // One spare entry keeps the buffer non-empty when idx is.
    let mut order = vec![0usize; idx.len().max(1)];
    for (i, &j) in idx.iter().enumerate() {
        order[fill[j]] = i;
        fill[j] += 1;
    }
    let n = outer * r * inner;
    let dx = client.empty(n.max(1) * std::mem::size_of::<F>());
    if n == 0 {
        return dx;
    }
    let (count, dim) = grid(n);
    // SAFETY: g holds outer·idx.len()·inner elements; order and start index inside it.
    unsafe {
        index_add_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(g.clone(), (outer * idx.len() * inner).max(1)),
            ArrayArg::from_raw_parts(u32s(client, &order), order.len().max(1)),
            ArrayArg::from_raw_parts(u32s(client, &start), r + 1),
            ArrayArg::from_raw_parts(dx.clone(), n),
            r as u32,
            idx.len() as u32,
            inner as u32,
        );
    }
    dx
}
