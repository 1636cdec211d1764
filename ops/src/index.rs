//! Indexing with i64 indices that live on the device (each read as a pair of u32 words, low
//! word first), so that an embedding lookup or a gather needs no trip to the host.
//!
//! - `index_select` gathers rows: `out[o, i, :] = x[o, idx[i], :]`. Its backward adds each
//!   gradient row back into the row it came from. With no float atomics assumed, the positions
//!   are first sorted by destination row on the device (a bitonic sort of (row, position)
//!   pairs, so the order, and hence every float sum, is deterministic), each row finds its
//!   run of positions by binary search, and one unit per output element sums its own run.
//!   Cost: O(n log² n) for the sort plus one read per gradient element.
//! - `gather` picks one row per element: `out[o, p, c] = x[o, idx[o, p, c], c]`. Its backward
//!   (`scatter_add`) lets each unit of `dx` scan the q indices of its column: O(numel(x)·q),
//!   fine for the small q gather is used with (a target's score, top-k).
//! - `one_hot` writes `[n, classes]` rows.
//!
//! A device cannot raise an error mid-kernel (PyTorch's CUDA kernels assert instead): an index
//! out of range gives NaN in the output row it feeds, and its gradient is dropped. Negative
//! indices count from the end, as in PyTorch. Indices that start on the host are checked there
//! with a proper error before they are uploaded.

use crate::common::grid;
use cubecl::prelude::*;
use cubecl::server::Handle;

/// The index held by the i64 words `lo, hi`, wrapped from the end when negative; `size` when
/// it is out of range.
#[cube]
fn wrap_index(lo: u32, hi: u32, size: u32) -> u32 {
    let mut j = size;
    if hi == 0 && lo < size {
        j = lo;
    }
    // -k with 1 <= k <= size has hi = 0xFFFF_FFFF and lo = 2^32 - k, so 0xFFFF_FFFF - lo = k - 1.
    let below = 4294967295u32 - lo;
    if hi == 4294967295u32 && below < size {
        j = size - below - 1;
    }
    j
}

/// NaN made at run time (a `F::NAN` constant makes the wgpu kernel fail to build silently).
#[cube]
#[allow(clippy::eq_op)]
fn nan<F: Float>(any: F) -> F {
    let zero = any - any;
    zero / zero
}

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
        let j = wrap_index(idx[(2 * i) as usize], idx[(2 * i + 1) as usize], r);
        if j < r {
            out[e as usize] = x[((o * r + j) * inner + c) as usize];
        } else {
            out[e as usize] = nan::<F>(x[0]);
        }
    }
}

/// Sort keys: each position's destination row (`r` when out of range, past every valid
/// row) and the position itself; the padding up to a power of two sorts last.
#[cube(launch)]
fn sort_init_kernel(
    idx: &Array<u32>,
    keys: &mut Array<u32>,
    vals: &mut Array<u32>,
    n: u32,
    r: u32,
) {
    let p = ABSOLUTE_POS as u32;
    if p < keys.len() as u32 {
        let mut k = 4294967295u32;
        if p < n {
            k = wrap_index(idx[(2 * p) as usize], idx[(2 * p + 1) as usize], r);
        }
        keys[p as usize] = k;
        vals[p as usize] = p;
    }
}

/// One compare-exchange pass of a bitonic sort over (key, value) pairs: `k` is the size of
/// the bitonic runs being merged, `j` the partner distance. Values are distinct, so the
/// order is total and the sort is deterministic.
#[cube(launch)]
fn bitonic_kernel(keys: &mut Array<u32>, vals: &mut Array<u32>, j: u32, k: u32) {
    let i = ABSOLUTE_POS as u32;
    if i < keys.len() as u32 {
        let l = i ^ j;
        if l > i {
            let (ki, kl) = (keys[i as usize], keys[l as usize]);
            let (vi, vl) = (vals[i as usize], vals[l as usize]);
            let greater = ki > kl || (ki == kl && vi > vl);
            let ascending = (i & k) == 0;
            if greater == ascending {
                keys[i as usize] = kl;
                keys[l as usize] = ki;
                vals[i as usize] = vl;
                vals[l as usize] = vi;
            }
        }
    }
}

/// `start[j]`: the first sorted position whose key is at least `j`, for `j` in `0..=r`.
#[cube(launch)]
fn run_starts_kernel(keys: &Array<u32>, start: &mut Array<u32>, r: u32) {
    let j = ABSOLUTE_POS as u32;
    if j <= r {
        let mut lo = 0u32;
        let mut hi = keys.len() as u32;
        while lo < hi {
            let mid = (lo + hi) / 2;
            if keys[mid as usize] < j {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        start[j as usize] = lo;
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

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn gather_kernel<F: Float>(
    x: &Array<F>,
    idx: &Array<u32>,
    out: &mut Array<F>,
    r: u32,
    q: u32,
    inner: u32,
) {
    let e = ABSOLUTE_POS as u32;
    if e < out.len() as u32 {
        let c = e % inner;
        let o = e / (inner * q);
        let j = wrap_index(idx[(2 * e) as usize], idx[(2 * e + 1) as usize], r);
        if j < r {
            out[e as usize] = x[((o * r + j) * inner + c) as usize];
        } else {
            out[e as usize] = nan::<F>(x[0]);
        }
    }
}

/// `dx[o, j, c] = Σ_{p: idx[o, p, c] = j} g[o, p, c]`: each unit scans its column's q indices.
#[cube(launch)]
fn scatter_add_kernel<F: Float>(
    g: &Array<F>,
    idx: &Array<u32>,
    dx: &mut Array<F>,
    r: u32,
    q: u32,
    inner: u32,
) {
    let e = ABSOLUTE_POS as u32;
    if e < dx.len() as u32 {
        let c = e % inner;
        let j = (e / inner) % r;
        let o = e / (inner * r);
        let mut acc = F::new(0.0);
        let mut p = 0u32;
        while p < q {
            let s = (o * q + p) * inner + c;
            if wrap_index(idx[(2 * s) as usize], idx[(2 * s + 1) as usize], r) == j {
                acc += g[s as usize];
            }
            p += 1;
        }
        dx[e as usize] = acc;
    }
}

#[cube(launch)]
fn one_hot_kernel<F: Float>(labels: &Array<u32>, out: &mut Array<F>, classes: u32) {
    let e = ABSOLUTE_POS as u32;
    if e < out.len() as u32 {
        let row = e / classes;
        let j = wrap_index(
            labels[(2 * row) as usize],
            labels[(2 * row + 1) as usize],
            classes,
        );
        let mut v = F::new(0.0);
        if j == e % classes {
            v = F::new(1.0);
        }
        if j == classes {
            v = nan::<F>(v);
        }
        out[e as usize] = v;
    }
}

fn empty<R: Runtime, F: CubeElement>(client: &ComputeClient<R>, n: usize) -> Handle {
    client.empty(n.max(1) * std::mem::size_of::<F>())
}

/// Rows `idx` (a device buffer of `n_idx` i64) of `x` seen as `[outer, r, inner]`: returns
/// `[outer, n_idx, inner]`.
pub fn index_select<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    idx: &Handle,
    outer: usize,
    r: usize,
    inner: usize,
    n_idx: usize,
) -> Handle {
    let n = outer * n_idx * inner;
    let out = empty::<R, F>(client, n);
    if n == 0 {
        return out;
    }
    let (count, dim) = grid(n);
    // SAFETY: x holds outer·r·inner elements (r ≥ 1 since n > 0 needs a valid row to read,
    // and out-of-range rows read nothing), idx 2·n_idx words.
    unsafe {
        index_select_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), (outer * r * inner).max(1)),
            ArrayArg::from_raw_parts(idx.clone(), 2 * n_idx),
            ArrayArg::from_raw_parts(out.clone(), n),
            r as u32,
            n_idx as u32,
            inner as u32,
        );
    }
    out
}

/// Positions `0..n` sorted by the row their index names (device buffers `order`, and `start`
/// of `r + 1` run starts): row `j`'s positions are `order[start[j] .. start[j + 1]]`.
fn sort_by_row<R: Runtime>(
    client: &ComputeClient<R>,
    idx: &Handle,
    n: usize,
    r: usize,
) -> (Handle, Handle) {
    let p = n.next_power_of_two();
    let keys = client.empty(p * 4);
    let vals = client.empty(p * 4);
    let (count, dim) = grid(p);
    // SAFETY: keys and vals hold p words, idx 2·n; every kernel guards its range.
    unsafe {
        sort_init_kernel::launch::<R>(
            client,
            count.clone(),
            dim,
            ArrayArg::from_raw_parts(idx.clone(), 2 * n),
            ArrayArg::from_raw_parts(keys.clone(), p),
            ArrayArg::from_raw_parts(vals.clone(), p),
            n as u32,
            r as u32,
        );
        let mut k = 2;
        while k <= p {
            let mut j = k / 2;
            while j > 0 {
                bitonic_kernel::launch::<R>(
                    client,
                    count.clone(),
                    dim,
                    ArrayArg::from_raw_parts(keys.clone(), p),
                    ArrayArg::from_raw_parts(vals.clone(), p),
                    j as u32,
                    k as u32,
                );
                j /= 2;
            }
            k *= 2;
        }
    }
    let start = client.empty((r + 1) * 4);
    let (count, dim) = grid(r + 1);
    // SAFETY: start holds r + 1 words, keys p.
    unsafe {
        run_starts_kernel::launch::<R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(keys.clone(), p),
            ArrayArg::from_raw_parts(start.clone(), r + 1),
            r as u32,
        );
    }
    (vals, start)
}

/// The backward of [`index_select`]: `g` is `[outer, n_idx, inner]`; returns `[outer, r,
/// inner]` with each gradient row added into row `idx[i]`.
pub fn index_add<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    g: &Handle,
    idx: &Handle,
    outer: usize,
    r: usize,
    inner: usize,
    n_idx: usize,
) -> Handle {
    let n = outer * r * inner;
    if n_idx == 0 {
        return crate::layout::fill::<R, F>(client, n, 0.0);
    }
    let dx = empty::<R, F>(client, n);
    if n == 0 {
        return dx;
    }
    let (order, start) = sort_by_row(client, idx, n_idx, r);
    let (count, dim) = grid(n);
    // SAFETY: g holds outer·n_idx·inner elements; order lists positions below n_idx and
    // start holds r + 1 run starts into it.
    unsafe {
        index_add_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(g.clone(), (outer * n_idx * inner).max(1)),
            ArrayArg::from_raw_parts(order, n_idx.next_power_of_two()),
            ArrayArg::from_raw_parts(start, r + 1),
            ArrayArg::from_raw_parts(dx.clone(), n),
            r as u32,
            n_idx as u32,
            inner as u32,
        );
    }
    dx
}

/// `x` seen as `[outer, r, inner]`, `idx` as `[outer, q, inner]` i64: returns `[outer, q,
/// inner]` with `out[o, p, c] = x[o, idx[o, p, c], c]`.
pub fn gather<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    idx: &Handle,
    outer: usize,
    r: usize,
    inner: usize,
    q: usize,
) -> Handle {
    let n = outer * q * inner;
    let out = empty::<R, F>(client, n);
    if n == 0 {
        return out;
    }
    let (count, dim) = grid(n);
    // SAFETY: x holds outer·r·inner elements, idx 2·n words; rows are checked against r.
    unsafe {
        gather_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), (outer * r * inner).max(1)),
            ArrayArg::from_raw_parts(idx.clone(), 2 * n),
            ArrayArg::from_raw_parts(out.clone(), n),
            r as u32,
            q as u32,
            inner as u32,
        );
    }
    out
}

/// The backward of [`gather`]: `g` `[outer, q, inner]` added into `[outer, r, inner]`.
pub fn scatter_add<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    g: &Handle,
    idx: &Handle,
    outer: usize,
    r: usize,
    inner: usize,
    q: usize,
) -> Handle {
    let n = outer * r * inner;
    let dx = empty::<R, F>(client, n);
    if n == 0 {
        return dx;
    }
    let (count, dim) = grid(n);
    // SAFETY: g holds outer·q·inner elements, idx twice as many words; dx n.
    unsafe {
        scatter_add_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(g.clone(), (outer * q * inner).max(1)),
            ArrayArg::from_raw_parts(idx.clone(), (2 * outer * q * inner).max(2)),
            ArrayArg::from_raw_parts(dx.clone(), n),
            r as u32,
            q as u32,
            inner as u32,
        );
    }
    dx
}

/// `[n, classes]` one-hot rows of the `n` i64 labels; a row is NaN where its label is out of
/// range.
pub fn one_hot<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    labels: &Handle,
    n: usize,
    classes: usize,
) -> Handle {
    let len = n * classes;
    let out = empty::<R, F>(client, len);
    if len == 0 {
        return out;
    }
    let (count, dim) = grid(len);
    // SAFETY: labels hold 2·n words, out n·classes elements.
    unsafe {
        one_hot_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(labels.clone(), 2 * n),
            ArrayArg::from_raw_parts(out.clone(), len),
            classes as u32,
        );
    }
    out
}
