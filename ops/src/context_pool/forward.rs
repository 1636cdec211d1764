//! ContextPool's forward kernels: the per-token predictions (weights and sizes), then one cube
//! per output token walking its window.

use super::{dist2, floats, sigmoid, window, PoolDims, PoolOutputs, PoolParams, UNITS};
use crate::common::u32s;
use crate::reduce::row_grid;
use cubecl::prelude::*;
use cubecl::server::Handle;

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

// ANCHOR: cp_forward_kernel
/// One cube per output: `y_o = Σ_j u_oj x_j / D_o` over its window, `u_oj = w_j·exp(−dist²/2s²)`
/// with `s` predicted at the output's centre token. Writes `s_o` and `D_o` for the backward.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn forward_kernel<F: Float + CubeElement>(
    x: &Array<F>,
    w: &Array<F>,
    s_tok: &Array<F>,
    y: &mut Array<F>,
    s_out: &mut Array<F>,
    denom: &mut Array<F>,
    geo: &Array<u32>,
    outputs: u32,
    d: u32,
    radius: u32,
    eps: F,
    #[comptime] causal: bool,
    #[comptime] normalize: bool,
) {
    let t = CUBE_POS as u32;
    if t < outputs {
        let (width, n_in, n_out) = (geo[1], geo[5], geo[6]);
        let (bt, o) = (t / n_out, t % n_out);
        let base = bt * n_in;
        let w_out = geo[4];
        let centre = geo[2] * (o / w_out) * width + geo[3] * (o % w_out);
        let si = s_tok[(base + centre) as usize];
        let k = F::new(-0.5) / (si * si);
        let (r, c, r0, r1, c0, c1) = window::<F>(o, si, geo, radius, causal);
        let mut z = F::new(0.0);
        for rj in r0..r1 + 1 {
            for cj in c0..c1 + 1 {
                let j = base + rj * width + cj;
                z += w[j as usize] * F::exp(dist2::<F>(r, c, rj, cj) * k);
            }
        }
        let mut den = F::new(1.0) + eps;
        if comptime![normalize] {
            den = z + eps;
        }
        let mut f = UNIT_POS;
        while f < d {
            let mut acc = F::new(0.0);
            for rj in r0..r1 + 1 {
                for cj in c0..c1 + 1 {
                    let j = base + rj * width + cj;
                    let u = w[j as usize] * F::exp(dist2::<F>(r, c, rj, cj) * k);
                    acc += u * x[(j * d + f) as usize];
                }
            }
            y[(t * d + f) as usize] = acc / den;
            f += CUBE_DIM;
        }
        if UNIT_POS == 0 {
            denom[t as usize] = den;
            s_out[t as usize] = si;
        }
    }
}
// ANCHOR_END: cp_forward_kernel

/// Forward of ContextPool on `x` `[B, n_in, d]` with predictor weights `a`, `b` (`d` each)
/// and biases `a0`, `b0`.
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
    let d = dims.d;
    let tokens = dims.batch * dims.n_in();
    let outputs = dims.batch * dims.n_out();
    let (w, s_tok) = (
        client.empty(floats::<F>(tokens)),
        client.empty(floats::<F>(tokens)),
    );
    let y = client.empty(floats::<F>(outputs * d));
    let s = client.empty(floats::<F>(outputs));
    let denom = client.empty(floats::<F>(outputs));
    let geo = u32s(client, &dims.packed(p.radius));
    let (count, dim) = crate::common::grid(tokens);
    // SAFETY (all launches here): every buffer is sized for the lengths passed with it, and
    // the kernels guard their token and feature indices; windows stay inside the grid.
    unsafe {
        predict_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), (tokens * d).max(1)),
            ArrayArg::from_raw_parts(a.clone(), d),
            ArrayArg::from_raw_parts(b.clone(), d),
            ArrayArg::from_raw_parts(w.clone(), tokens.max(1)),
            ArrayArg::from_raw_parts(s_tok.clone(), tokens.max(1)),
            ArrayArg::from_raw_parts(a0.clone(), 1),
            ArrayArg::from_raw_parts(b0.clone(), 1),
            tokens as u32,
            d as u32,
            F::new(p.s_min),
            F::new(p.s_max - p.s_min),
        );
        forward_kernel::launch::<F, R>(
            client,
            row_grid(outputs),
            CubeDim::new_1d(UNITS),
            ArrayArg::from_raw_parts(x.clone(), (tokens * d).max(1)),
            ArrayArg::from_raw_parts(w.clone(), tokens.max(1)),
            ArrayArg::from_raw_parts(s_tok, tokens.max(1)),
            ArrayArg::from_raw_parts(y.clone(), (outputs * d).max(1)),
            ArrayArg::from_raw_parts(s.clone(), outputs.max(1)),
            ArrayArg::from_raw_parts(denom.clone(), outputs.max(1)),
            ArrayArg::from_raw_parts(geo, 8),
            outputs as u32,
            d as u32,
            p.radius,
            F::new(p.eps),
            p.causal,
            p.normalize,
        );
    }
    PoolOutputs { y, w, s, denom }
}
