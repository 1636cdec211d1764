//! ContextPool's backward kernels: first per output (the gradients of its size and
//! denominator), then per input (gathering from the outputs whose windows reach it, so no
//! atomics), then the predictors' weight gradients as column sums.

use super::{dist2, du_slot, floats, window, PoolDims, PoolOutputs, PoolParams, UNITS};
use crate::common::u32s;
use crate::reduce::{cube_reduce, row_grid, Sum};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// Backward pass 1, one cube per output `o`: `du[o, k] = (G_o·x_j − G_o·y_o) / D_o` for the
/// `k`-th input `j` of its window, and the gradient of `s_o`'s pre-activation.
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
    geo: &Array<u32>,
    outputs: u32,
    d: u32,
    radius: u32,
    slots: u32,
    s_min: F,
    s_max: F,
    #[comptime] causal: bool,
    #[comptime] normalize: bool,
    #[comptime] block: usize,
) {
    let t = CUBE_POS as u32;
    let mut smem = SharedMemory::<F>::new(block);
    let mut part = F::new(0.0);
    if t < outputs && comptime![normalize] {
        let mut f = UNIT_POS;
        while f < d {
            part += g[(t * d + f) as usize] * y[(t * d + f) as usize];
            f += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, part);
    let gy = smem[0];
    sync_cube();
    let mut ds = F::new(0.0);
    if t < outputs {
        let (width, n_in, n_out, row_radius) = (geo[1], geo[5], geo[6], geo[7]);
        let (bt, o) = (t / n_out, t % n_out);
        let base = bt * n_in;
        let si = s[t as usize];
        let k = F::new(-0.5) / (si * si);
        let inv_den = F::new(1.0) / denom[t as usize];
        let (r, c, r0, r1, c0, c1) = window::<F>(o, si, geo, radius, causal);
        let cw = c1 + 1 - c0;
        let mut q = UNIT_POS;
        while q < (r1 + 1 - r0) * cw {
            let rj = r0 + q / cw;
            let cj = c0 + q % cw;
            let j = base + rj * width + cj;
            let mut dot = F::new(0.0);
            for f in 0..d {
                dot += g[(t * d + f) as usize] * x[(j * d + f) as usize];
            }
            let dd = dist2::<F>(r, c, rj, cj);
            let u = w[j as usize] * F::exp(dd * k);
            let dui = (dot - gy) * inv_den;
            // Slots are fixed offsets from the centre, so pass 2 finds them.
            du[(t * slots + du_slot(r, c, rj, cj, row_radius, radius)) as usize] = dui;
            ds += dui * u * dd;
            q += CUBE_DIM;
        }
    }
    cube_reduce::<F, Sum>(&mut smem, ds);
    if t < outputs && UNIT_POS == 0 {
        let si = s[t as usize];
        let span = s_max - s_min;
        let mut z = F::new(0.0);
        if span > F::new(0.0) {
            z = smem[0] / (si * si * si) * (si - s_min) * (s_max - si) / span;
        }
        dzb[t as usize] = z;
    }
}

/// The first and one-past-last output index along one axis whose centre `stride·o` lies
/// within `radius` of position `p`, clipped to `n_out`.
#[cube]
// `div_ceil` is not among the functions a `#[cube]` body can call.
#[allow(clippy::manual_div_ceil)]
fn centres_near(p: u32, radius: u32, stride: u32, n_out: u32) -> (u32, u32) {
    let mut lo = 0u32;
    if p > radius {
        lo = (p - radius + stride - 1) / stride;
    }
    let hi = u32::min((p + radius) / stride + 1, n_out);
    (lo, hi)
}

/// Backward pass 2, one cube per input `j`: gathers, from every output whose window holds
/// `j`, the direct gradient `u_oj G_o / D_o` and `∂L/∂w_j = Σ_o du_oj g_oj`, then adds both
/// predictors' paths: `dx_j += dza_j a + dzb_j b` (`dzb_j` is its output's when `j` is a
/// centre, else 0). Writes `dza` and `dzb` per input token, for the column sums.
#[cube(launch)]
// `div_ceil` is not among the functions a `#[cube]` body can call.
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
fn backward_inputs_kernel<F: Float + CubeElement>(
    g: &Array<F>,
    w: &Array<F>,
    s: &Array<F>,
    denom: &Array<F>,
    du: &Array<F>,
    dzb_out: &Array<F>,
    a: &Array<F>,
    b: &Array<F>,
    dx: &mut Array<F>,
    dza: &mut Array<F>,
    dzb: &mut Array<F>,
    geo: &Array<u32>,
    tokens: u32,
    d: u32,
    radius: u32,
    slots: u32,
    #[comptime] causal: bool,
) {
    let t = CUBE_POS as u32;
    if t < tokens {
        let (h, width, sh, sw, w_out) = (geo[0], geo[1], geo[2], geo[3], geo[4]);
        let (n_in, n_out, row_radius) = (geo[5], geo[6], geo[7]);
        let h_out = h / sh;
        let (bt, jj) = (t / n_in, t % n_in);
        let (rj, cj) = (jj / width, jj % width);
        let wj = w[t as usize];
        let (ro0, ro1) = centres_near(rj, radius, sh, h_out);
        let (mut co0, co1) = centres_near(cj, radius, sw, w_out);
        if comptime![causal] {
            // Causal windows end at their centre: only centres at or after j see it.
            co0 = u32::max(co0, (cj + sw - 1) / sw);
        }
        let mut dw = F::new(0.0);
        for ro in ro0..ro1 {
            for co in co0..co1 {
                let o = ro * w_out + co;
                let to = bt * n_out + o;
                let si = s[to as usize];
                let (r, c, r0, r1, c0, c1) = window::<F>(o, si, geo, radius, causal);
                if rj >= r0 && rj <= r1 && cj >= c0 && cj <= c1 {
                    let gauss = F::exp(dist2::<F>(r, c, rj, cj) * (F::new(-0.5) / (si * si)));
                    let slot = du_slot(r, c, rj, cj, row_radius, radius);
                    dw += du[(to * slots + slot) as usize] * gauss;
                }
            }
        }
        let dz = dw * wj * (F::new(1.0) - wj);
        // The output centred on j, if any, passes its size gradient to j's features.
        let mut dzj = F::new(0.0);
        if rj % sh == 0 && cj % sw == 0 && rj / sh < h_out && cj / sw < w_out {
            dzj = dzb_out[(bt * n_out + (rj / sh) * w_out + cj / sw) as usize];
        }
        let mut f = UNIT_POS;
        while f < d {
            let mut acc = F::new(0.0);
            for ro in ro0..ro1 {
                for co in co0..co1 {
                    let o = ro * w_out + co;
                    let to = bt * n_out + o;
                    let si = s[to as usize];
                    let (r, c, r0, r1, c0, c1) = window::<F>(o, si, geo, radius, causal);
                    if rj >= r0 && rj <= r1 && cj >= c0 && cj <= c1 {
                        let gauss = F::exp(dist2::<F>(r, c, rj, cj) * (F::new(-0.5) / (si * si)));
                        acc += wj * gauss / denom[to as usize] * g[(to * d + f) as usize];
                    }
                }
            }
            dx[(t * d + f) as usize] = acc + dz * a[f as usize] + dzj * b[f as usize];
            f += CUBE_DIM;
        }
        if UNIT_POS == 0 {
            dza[t as usize] = dz;
            dzb[t as usize] = dzj;
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
    cube_reduce::<F, Sum>(&mut smem, acc);
    if c <= cols && UNIT_POS == 0 {
        out[c as usize] = smem[0];
    }
}

/// Gradients of ContextPool: `(dx [B, n_in, d], da [d + 1], db [d + 1])`, where the last
/// entry of `da`/`db` is the bias's gradient.
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
    let d = dims.d;
    let tokens = dims.batch * dims.n_in();
    let outputs = dims.batch * dims.n_out();
    let slots = dims.width(p.radius);
    let du = client.empty(floats::<F>(outputs * slots));
    let dzb_out = client.empty(floats::<F>(outputs));
    let (dza, dzb) = (
        client.empty(floats::<F>(tokens)),
        client.empty(floats::<F>(tokens)),
    );
    let dx = client.empty(floats::<F>(tokens * d));
    let (da, db) = (
        client.empty(floats::<F>(d + 1)),
        client.empty(floats::<F>(d + 1)),
    );
    let geo = u32s(client, &dims.packed(p.radius));
    let (xd, yd) = ((tokens * d).max(1), (outputs * d).max(1));
    let (tk, ok) = (tokens.max(1), outputs.max(1));
    // SAFETY: as in `forward`; `du` holds `slots` entries per output, and `du_slot` keeps
    // every window position inside them.
    unsafe {
        backward_outputs_kernel::launch::<F, R>(
            client,
            row_grid(outputs),
            CubeDim::new_1d(UNITS),
            ArrayArg::from_raw_parts(x.clone(), xd),
            ArrayArg::from_raw_parts(fwd.y.clone(), yd),
            ArrayArg::from_raw_parts(g.clone(), yd),
            ArrayArg::from_raw_parts(fwd.w.clone(), tk),
            ArrayArg::from_raw_parts(fwd.s.clone(), ok),
            ArrayArg::from_raw_parts(fwd.denom.clone(), ok),
            ArrayArg::from_raw_parts(du.clone(), (outputs * slots).max(1)),
            ArrayArg::from_raw_parts(dzb_out.clone(), ok),
            ArrayArg::from_raw_parts(geo.clone(), 8),
            outputs as u32,
            d as u32,
            p.radius,
            slots as u32,
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
            ArrayArg::from_raw_parts(g.clone(), yd),
            ArrayArg::from_raw_parts(fwd.w.clone(), tk),
            ArrayArg::from_raw_parts(fwd.s.clone(), ok),
            ArrayArg::from_raw_parts(fwd.denom.clone(), ok),
            ArrayArg::from_raw_parts(du.clone(), (outputs * slots).max(1)),
            ArrayArg::from_raw_parts(dzb_out.clone(), ok),
            ArrayArg::from_raw_parts(a.clone(), d),
            ArrayArg::from_raw_parts(b.clone(), d),
            ArrayArg::from_raw_parts(dx.clone(), xd),
            ArrayArg::from_raw_parts(dza.clone(), tk),
            ArrayArg::from_raw_parts(dzb.clone(), tk),
            ArrayArg::from_raw_parts(geo, 8),
            tokens as u32,
            d as u32,
            p.radius,
            slots as u32,
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
