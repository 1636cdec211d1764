//! ContextPool over a sequence (the spec's 1-D layer, stride 1, optionally causal), forward and
//! backward, as CubeCL kernels; the CPU twin is `cubegrad::backend::cpu::context_pool`.
//!
//! Forward: one unit per token predicts `w` and `s`; then one cube per output token walks
//! its window, every unit accumulating its own features. Backward, with no float atomics:
//! (1) one cube per output token computes `∂L/∂u` for its window (kept, `[B·n, K]`) and the
//! size gradient; (2) one cube per input token gathers, from the outputs whose windows hold
//! it, its direct gradient and its weight gradient; (3) column sums give the predictors'
//! gradients. Windows stop where the Gaussian falls below e^−80, as on the CPU.

use crate::reduce::{cube_reduce, row_grid};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// Units per cube of the token kernels (over features, or over window entries).
const UNITS: u32 = 64;
/// `√(2 · 80)`: a window's radius is at most `s · CUT`, where the Gaussian is e^−80.
const CUT: f32 = 12.649_111;

/// The options that shape the pooling (see the spec).
#[derive(Clone, Copy, Debug)]
pub struct PoolParams {
    pub s_min: f32,
    pub s_max: f32,
    pub radius: u32,
    pub causal: bool,
    pub normalize: bool,
    pub eps: f32,
}

/// Sizes: `batch` sequences of `n` tokens with `d` features.
#[derive(Clone, Copy, Debug)]
pub struct PoolDims {
    pub batch: usize,
    pub n: usize,
    pub d: usize,
}

#[cube]
fn sigmoid<F: Float>(z: F) -> F {
    F::new(1.0) / (F::new(1.0) + F::exp(-z))
}

/// The window `[lo, hi]` of token `i` with size `s`.
#[cube]
fn window<F: Float>(i: u32, n: u32, s: F, radius: u32, #[comptime] causal: bool) -> (u32, u32) {
    let cap = u32::cast_from(F::floor(s * F::new(CUT)));
    let r = u32::min(radius, cap);
    let mut lo = 0u32;
    if i > r {
        lo = i - r;
    }
    let mut hi = u32::min(i + r, n - 1);
    if comptime![causal] {
        hi = i;
    }
    (lo, hi)
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn predict_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    a: &Array<F>,
    b: &Array<F>,
    w: &mut Array<F>,
    s: &mut Array<F>,
    a0: &Array<F>,
    b0: &Array<F>,
    tokens: u32,
    d: u32,
    s_min: F,
    span: F,
) {
    let t = ABSOLUTE_POS as u32;
    if t < tokens {
        let mut za = a0[0];
        let mut zb = b0[0];
        for c in 0..d {
            let v = x[(t * d + c) as usize];
            za += a[c as usize] * v;
            zb += b[c as usize] * v;
        }
        w[t as usize] = sigmoid::<F>(za);
        s[t as usize] = s_min + span * sigmoid::<F>(zb);
    }
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    w: &Array<F>,
    s: &Array<F>,
    y: &mut Array<F>,
    denom: &mut Array<F>,
    tokens: u32,
    n: u32,
    d: u32,
    radius: u32,
    eps: F,
    #[comptime] causal: bool,
    #[comptime] normalize: bool,
) {
    let t = CUBE_POS as u32;
    if t < tokens {
        let (bt, i) = (t / n, t % n);
        let si = s[t as usize];
        let k = F::new(-0.5) / (si * si);
        let (lo, hi) = window::<F>(i, n, si, radius, causal);
        let mut z = F::new(0.0);
        for j in lo..hi + 1 {
            let dist = F::cast_from(i) - F::cast_from(j);
            z += w[(bt * n + j) as usize] * F::exp(dist * dist * k);
        }
        let mut den = F::new(1.0) + eps;
        if comptime![normalize] {
            den = z + eps;
        }
        let mut c = UNIT_POS;
        while c < d {
            let mut acc = F::new(0.0);
            for j in lo..hi + 1 {
                let dist = F::cast_from(i) - F::cast_from(j);
                let u = w[(bt * n + j) as usize] * F::exp(dist * dist * k);
                acc += u * x[((bt * n + j) * d + c) as usize];
            }
            y[(t * d + c) as usize] = acc / den;
            c += CUBE_DIM;
        }
        if UNIT_POS == 0 {
            denom[t as usize] = den;
        }
    }
}

/// Backward pass 1, one cube per output token `i`: `du[i, k] = (G_i·x_j − G_i·y_i) / D_i`
/// for the `k`-th token `j` of its window, and the gradient of `s_i`'s pre-activation.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_outputs_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    y: &Array<F>,
    g: &Array<F>,
    w: &Array<F>,
    s: &Array<F>,
    denom: &Array<F>,
    du: &mut Array<F>,
    dzb: &mut Array<F>,
    tokens: u32,
    n: u32,
    d: u32,
    radius: u32,
    width: u32,
    s_min: F,
    s_max: F,
    #[comptime] causal: bool,
    #[comptime] normalize: bool,
    #[comptime] block: usize,
) {
    let t = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let mut part = F::new(0.0);
    if t < tokens && comptime![normalize] {
        let mut c = UNIT_POS;
        while c < d {
            part += g[(t * d + c) as usize] * y[(t * d + c) as usize];
            c += CUBE_DIM;
        }
    }
    cube_reduce::<F>(&mut smem, part, 0u32);
    let gy = smem[0];
    sync_cube();
    let mut ds = F::new(0.0);
    if t < tokens {
        let (bt, i) = (t / n, t % n);
        let si = s[t as usize];
        let k = F::new(-0.5) / (si * si);
        let inv_den = F::new(1.0) / denom[t as usize];
        let (lo, hi) = window::<F>(i, n, si, radius, causal);
        let mut q = UNIT_POS;
        while q < hi + 1 - lo {
            let j = lo + q;
            let mut dot = F::new(0.0);
            for c in 0..d {
                dot += g[(t * d + c) as usize] * x[((bt * n + j) * d + c) as usize];
            }
            let dist = F::cast_from(i) - F::cast_from(j);
            let u = w[(bt * n + j) as usize] * F::exp(dist * dist * k);
            let dui = (dot - gy) * inv_den;
            // Entries are indexed by offset from i − radius, so pass 2 finds them.
            du[(t * width + (j + radius - i)) as usize] = dui;
            ds += dui * u * dist * dist;
            q += CUBE_DIM;
        }
    }
    cube_reduce::<F>(&mut smem, ds, 0u32);
    if t < tokens && UNIT_POS == 0 {
        let si = s[t as usize];
        let span = s_max - s_min;
        let mut z = F::new(0.0);
        if span > F::new(0.0) {
            z = smem[0] / (si * si * si) * (si - s_min) * (s_max - si) / span;
        }
        dzb[t as usize] = z;
    }
}

/// Backward pass 2, one cube per input token `j`: gathers from every output `i` whose window
/// holds `j` the direct gradient `u_ij G_i / D_i` and `∂L/∂w_j = Σ_i du_ij g_ij`, then adds
/// both predictors' paths: `dx_j += dza_j a + dzb_j b`. Writes `dza`.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn backward_inputs_kernel<F: Float + CubeElement>(
    g: &Array<F>,
    w: &Array<F>,
    s: &Array<F>,
    denom: &Array<F>,
    du: &Array<F>,
    dzb: &Array<F>,
    a: &Array<F>,
    b: &Array<F>,
    dx: &mut Array<F>,
    dza: &mut Array<F>,
    tokens: u32,
    n: u32,
    d: u32,
    radius: u32,
    width: u32,
    #[comptime] causal: bool,
) {
    let t = CUBE_POS as u32;
    if t < tokens {
        let (bt, j) = (t / n, t % n);
        let wj = w[t as usize];
        // Outputs that may see j: within the radius, and not before j when causal.
        let mut first = 0u32;
        if j > radius {
            first = j - radius;
        }
        if comptime![causal] {
            first = j;
        }
        let last = u32::min(j + radius, n - 1);
        let mut dw = F::new(0.0);
        for i in first..last + 1 {
            let ti = bt * n + i;
            let si = s[ti as usize];
            let (lo, hi) = window::<F>(i, n, si, radius, causal);
            if j >= lo && j <= hi {
                let dist = F::cast_from(i) - F::cast_from(j);
                let gauss = F::exp(dist * dist * (F::new(-0.5) / (si * si)));
                dw += du[(ti * width + (j + radius - i)) as usize] * gauss;
            }
        }
        let dz = dw * wj * (F::new(1.0) - wj);
        let mut c = UNIT_POS;
        while c < d {
            let mut acc = F::new(0.0);
            for i in first..last + 1 {
                let ti = bt * n + i;
                let si = s[ti as usize];
                let (lo, hi) = window::<F>(i, n, si, radius, causal);
                if j >= lo && j <= hi {
                    let dist = F::cast_from(i) - F::cast_from(j);
                    let u = wj * F::exp(dist * dist * (F::new(-0.5) / (si * si)));
                    acc += u / denom[ti as usize] * g[(ti * d + c) as usize];
                }
            }
            dx[(t * d + c) as usize] = acc + dz * a[c as usize] + dzb[t as usize] * b[c as usize];
            c += CUBE_DIM;
        }
        if UNIT_POS == 0 {
            dza[t as usize] = dz;
        }
    }
}

/// `out[c] = Σ_r coef[r] · x[r, c]` for `c < cols`, and `out[cols] = Σ_r coef[r]`: one cube
/// per output entry, a tree over the rows. Gives the predictors' weight and bias gradients.
#[cube(launch)]
fn weighted_column_sum_kernel<F: Float>(
    x: &Array<F>,
    coef: &Array<F>,
    out: &mut Array<F>,
    rows: u32,
    cols: u32,
    #[comptime] block: usize,
) {
    let c = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let mut acc = F::new(0.0);
    if c <= cols {
        let mut r = UNIT_POS;
        while r < rows {
            if c < cols {
                acc += coef[r as usize] * x[(r * cols + c) as usize];
            } else {
                acc += coef[r as usize];
            }
            r += CUBE_DIM;
        }
    }
    cube_reduce::<F>(&mut smem, acc, 0u32);
    if c <= cols && UNIT_POS == 0 {
        out[c as usize] = smem[0];
    }
}

fn floats<F: Float + CubeElement>(n: usize) -> usize {
    n.max(1) * std::mem::size_of::<F>()
}

/// What the forward returns and the backward needs: output `y` `[B, n, d]`, weights `w`,
/// sizes `s` and denominators (`[B, n]` each).
pub struct PoolOutputs {
    pub y: Handle,
    pub w: Handle,
    pub s: Handle,
    pub denom: Handle,
}

/// Forward of ContextPool on `x` `[B, n, d]` with predictor weights `a`, `b` (`d` each) and
/// biases `a0`, `b0`.
#[allow(clippy::too_many_arguments)]
pub fn forward<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    a: &Handle,
    a0: &Handle,
    b: &Handle,
    b0: &Handle,
    dims: PoolDims,
    p: PoolParams,
) -> PoolOutputs {
    let PoolDims { batch, n, d } = dims;
    let tokens = batch * n;
    let (w, s) = (
        client.empty(floats::<F>(tokens)),
        client.empty(floats::<F>(tokens)),
    );
    let y = client.empty(floats::<F>(tokens * d));
    let denom = client.empty(floats::<F>(tokens));
    let (count, dim) = crate::common::grid(tokens);
    // SAFETY (all launches here): every buffer is sized for the lengths passed with it, and
    // the kernels guard their token and feature indices.
    unsafe {
        predict_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), (tokens * d).max(1)),
            ArrayArg::from_raw_parts(a.clone(), d),
            ArrayArg::from_raw_parts(b.clone(), d),
            ArrayArg::from_raw_parts(w.clone(), tokens.max(1)),
            ArrayArg::from_raw_parts(s.clone(), tokens.max(1)),
            ArrayArg::from_raw_parts(a0.clone(), 1),
            ArrayArg::from_raw_parts(b0.clone(), 1),
            tokens as u32,
            d as u32,
            F::new(p.s_min),
            F::new(p.s_max - p.s_min),
        );
        forward_kernel::launch::<F, R>(
            client,
            row_grid(tokens),
            CubeDim::new_1d(UNITS),
            ArrayArg::from_raw_parts(x.clone(), (tokens * d).max(1)),
            ArrayArg::from_raw_parts(w.clone(), tokens.max(1)),
            ArrayArg::from_raw_parts(s.clone(), tokens.max(1)),
            ArrayArg::from_raw_parts(y.clone(), (tokens * d).max(1)),
            ArrayArg::from_raw_parts(denom.clone(), tokens.max(1)),
            tokens as u32,
            n as u32,
            d as u32,
            p.radius,
            F::new(p.eps),
            p.causal,
            p.normalize,
        );
    }
    PoolOutputs { y, w, s, denom }
}

/// Gradients of ContextPool: `(dx [B, n, d], da [d + 1], db [d + 1])`, where the last entry
/// of `da`/`db` is the bias's gradient.
#[allow(clippy::too_many_arguments)]
pub fn backward<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    a: &Handle,
    b: &Handle,
    fwd: &PoolOutputs,
    g: &Handle,
    dims: PoolDims,
    p: PoolParams,
) -> (Handle, Handle, Handle) {
    let PoolDims { batch, n, d } = dims;
    let tokens = batch * n;
    let width = 2 * p.radius as usize + 1;
    let du = client.empty(floats::<F>(tokens * width));
    let dzb = client.empty(floats::<F>(tokens));
    let dza = client.empty(floats::<F>(tokens));
    let dx = client.empty(floats::<F>(tokens * d));
    let (da, db) = (
        client.empty(floats::<F>(d + 1)),
        client.empty(floats::<F>(d + 1)),
    );
    let xd = (tokens * d).max(1);
    let tk = tokens.max(1);
    // SAFETY: as in `forward`; `du` holds `width` entries per token and the kernels index it
    // by `j + radius − i`, which the window keeps in `0..width`.
    unsafe {
        backward_outputs_kernel::launch::<F, R>(
            client,
            row_grid(tokens),
            CubeDim::new_1d(UNITS),
            ArrayArg::from_raw_parts(x.clone(), xd),
            ArrayArg::from_raw_parts(fwd.y.clone(), xd),
            ArrayArg::from_raw_parts(g.clone(), xd),
            ArrayArg::from_raw_parts(fwd.w.clone(), tk),
            ArrayArg::from_raw_parts(fwd.s.clone(), tk),
            ArrayArg::from_raw_parts(fwd.denom.clone(), tk),
            ArrayArg::from_raw_parts(du.clone(), (tokens * width).max(1)),
            ArrayArg::from_raw_parts(dzb.clone(), tk),
            tokens as u32,
            n as u32,
            d as u32,
            p.radius,
            width as u32,
            F::new(p.s_min),
            F::new(p.s_max),
            p.causal,
            p.normalize,
            UNITS as usize,
        );
        backward_inputs_kernel::launch::<F, R>(
            client,
            row_grid(tokens),
            CubeDim::new_1d(UNITS),
            ArrayArg::from_raw_parts(g.clone(), xd),
            ArrayArg::from_raw_parts(fwd.w.clone(), tk),
            ArrayArg::from_raw_parts(fwd.s.clone(), tk),
            ArrayArg::from_raw_parts(fwd.denom.clone(), tk),
            ArrayArg::from_raw_parts(du.clone(), (tokens * width).max(1)),
            ArrayArg::from_raw_parts(dzb.clone(), tk),
            ArrayArg::from_raw_parts(a.clone(), d),
            ArrayArg::from_raw_parts(b.clone(), d),
            ArrayArg::from_raw_parts(dx.clone(), xd),
            ArrayArg::from_raw_parts(dza.clone(), tk),
            tokens as u32,
            n as u32,
            d as u32,
            p.radius,
            width as u32,
            p.causal,
        );
        for (coef, out) in [(&dza, &da), (&dzb, &db)] {
            weighted_column_sum_kernel::launch::<F, R>(
                client,
                row_grid(d + 1),
                CubeDim::new_1d(UNITS),
                ArrayArg::from_raw_parts(x.clone(), xd),
                ArrayArg::from_raw_parts(coef.clone(), tk),
                ArrayArg::from_raw_parts(out.clone(), d + 1),
                tokens as u32,
                d as u32,
                UNITS as usize,
            );
        }
    }
    (dx, da, db)
}
