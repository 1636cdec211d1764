//! Row reductions: sum, max or min over the last axis of a contiguous `[rows, cols]` buffer,
//! one cube per row with a shared-memory tree (no float atomics assumed). Reducing another
//! axis is a layout copy that moves it last, then this.

use cubecl::prelude::*;
use cubecl::server::Handle;

pub use crate::common::ROW_BLOCK;

/// How two partial results combine; a type per reduction, chosen at compile time.
#[cube]
pub trait ReduceKernel: 'static + Send + Sync {
    fn combine<F: Float>(a: F, b: F) -> F;
    /// Where a unit's partial result starts, given the row's first element: 0 for a sum, the
    /// element itself for max and min (so no infinity constant is needed; units past the end
    /// of a short row keep it, which changes neither).
    fn start<F: Float>(first: F) -> F;
}

pub struct Sum;
#[cube]
impl ReduceKernel for Sum {
    fn combine<F: Float>(a: F, b: F) -> F {
        a + b
    }
    fn start<F: Float>(_first: F) -> F {
        F::new(0.0)
    }
}
pub struct Max;
#[cube]
impl ReduceKernel for Max {
    fn combine<F: Float>(a: F, b: F) -> F {
        F::max(a, b)
    }
    fn start<F: Float>(first: F) -> F {
        first
    }
}
pub struct Min;
#[cube]
impl ReduceKernel for Min {
    fn combine<F: Float>(a: F, b: F) -> F {
        F::min(a, b)
    }
    fn start<F: Float>(first: F) -> F {
        first
    }
}

// ANCHOR: reduce_kernel
/// The tree reduction of one value per unit, result in `smem[0]`. Every unit must call it
/// (it synchronises the cube).
#[cube]
pub fn cube_reduce<F: Float, K: ReduceKernel>(smem: &mut SharedMemory<F>, value: F) {
    let tid = UNIT_POS as usize;
    smem[tid] = value;
    sync_cube();
    let mut stride = CUBE_DIM / 2;
    while stride > 0 {
        if UNIT_POS < stride {
            smem[tid] = K::combine::<F>(smem[tid], smem[tid + stride as usize]);
        }
        sync_cube();
        stride /= 2;
    }
}

#[cube(launch)]
fn reduce_rows_kernel<F: Float, K: ReduceKernel>(
    x: &Array<F>,
    out: &mut Array<F>,
    rows: u32,
    cols: u32,
    #[comptime] block: usize,
) {
    let row = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let mut acc = F::new(0.0);
    if row < rows {
        let base = row * cols;
        acc = K::start::<F>(x[base as usize]);
        let mut j = UNIT_POS;
        while j < cols {
            acc = K::combine::<F>(acc, x[(base + j) as usize]);
            j += CUBE_DIM;
        }
    }
    cube_reduce::<F, K>(&mut smem, acc);
    if UNIT_POS == 0 && row < rows {
        out[row as usize] = smem[0];
    }
}
// ANCHOR_END: reduce_kernel

/// One cube per row: `rows` cubes, spread over y past 65 535.
pub fn row_grid(rows: usize) -> CubeCount {
    let rows = rows.max(1) as u32;
    if rows <= 65_535 {
        CubeCount::Static(rows, 1, 1)
    } else {
        CubeCount::Static(65_535, rows.div_ceil(65_535), 1)
    }
}

/// Reduces each row of the contiguous `[rows, cols]` buffer `x` (cols ≥ 1) to one value.
pub fn reduce_rows<R: Runtime, F: Float + CubeElement, K: ReduceKernel>(
    client: &ComputeClient<R>,
    x: &Handle,
    rows: usize,
    cols: usize,
) -> Handle {
    assert!(cols > 0, "reduce_rows: empty rows");
    let out = client.empty(rows.max(1) * std::mem::size_of::<F>());
    // SAFETY: x holds rows·cols elements and out rows; the kernel guards both.
    unsafe {
        reduce_rows_kernel::launch::<F, K, R>(
            client,
            row_grid(rows),
            CubeDim::new_1d(ROW_BLOCK),
            ArrayArg::from_raw_parts(x.clone(), rows * cols),
            ArrayArg::from_raw_parts(out.clone(), rows.max(1)),
            rows as u32,
            cols as u32,
            ROW_BLOCK as usize,
        );
    }
    out
}

/// The index of each row's largest (or smallest) element, the first one on ties, written as
/// i64 (two little-endian u32 words per row) so that the result is an ordinary i64 tensor.
#[cube(launch)]
fn arg_rows_kernel<F: Float>(
    x: &Array<F>,
    out: &mut Array<u32>,
    rows: u32,
    cols: u32,
    #[comptime] largest: bool,
) {
    let row = ABSOLUTE_POS as u32;
    if row < rows {
        let base = row * cols;
        let mut best = x[base as usize];
        let mut at = 0u32;
        let mut j = 1u32;
        while j < cols {
            let v = x[(base + j) as usize];
            let mut better = v < best;
            if comptime![largest] {
                better = v > best;
            }
            if better {
                best = v;
                at = j;
            }
            j += 1;
        }
        out[(2 * row) as usize] = at;
        out[(2 * row + 1) as usize] = 0u32;
    }
}

/// Arg-max (`largest`) or arg-min of each row of the contiguous `[rows, cols]` buffer `x`,
/// as an i64 buffer of `rows` elements.
pub fn arg_rows<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    rows: usize,
    cols: usize,
    largest: bool,
) -> Handle {
    assert!(cols > 0, "arg_rows: empty rows");
    let out = client.empty(rows.max(1) * 8);
    let (count, dim) = crate::common::grid(rows);
    // SAFETY: x holds rows·cols elements and out 2·rows words; the kernel guards the row.
    unsafe {
        arg_rows_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), rows * cols),
            ArrayArg::from_raw_parts(out.clone(), 2 * rows.max(1)),
            rows as u32,
            cols as u32,
            largest,
        );
    }
    out
}

/// Running sums along the middle axis of a contiguous `[outer, r, inner]` buffer: one unit per
/// `(outer, inner)` column, walking its `r` elements forwards, or backwards with `reverse`.
#[cube(launch)]
fn cumsum_kernel<F: Float>(
    x: &Array<F>,
    y: &mut Array<F>,
    columns: u32,
    r: u32,
    inner: u32,
    #[comptime] reverse: bool,
) {
    let e = ABSOLUTE_POS as u32;
    if e < columns {
        let base = (e / inner) * r * inner + e % inner;
        let mut acc = F::new(0.0);
        let mut k = 0u32;
        while k < r {
            let mut row = k;
            if comptime![reverse] {
                row = r - 1 - k;
            }
            let at = (base + row * inner) as usize;
            acc += x[at];
            y[at] = acc;
            k += 1;
        }
    }
}

/// Running sums of the contiguous `[outer, r, inner]` buffer `x` along `r`.
pub fn cumsum<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    (outer, r, inner): (usize, usize, usize),
    reverse: bool,
) -> Handle {
    let len = outer * r * inner;
    let y = client.empty(len.max(1) * std::mem::size_of::<F>());
    let columns = outer * inner;
    if len == 0 {
        return y;
    }
    let (count, dim) = crate::common::grid(columns);
    // SAFETY: x and y hold len elements; every unit reads and writes its own column only.
    unsafe {
        cumsum_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), len),
            ArrayArg::from_raw_parts(y.clone(), len),
            columns as u32,
            r as u32,
            inner as u32,
            reverse,
        );
    }
    y
}
