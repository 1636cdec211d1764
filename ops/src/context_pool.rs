//! ContextPool as CubeCL kernels, forward and backward: over a sequence (the spec's 1-D
//! layer, optionally causal), over an `H × W` grid of tokens, and with a stride (the ConvNet
//! pooling variant). A sequence is a grid of one row. The CPU twin is
//! `cubegrad::backend::cpu::context_pool`.
//!
//! Forward: one unit per token predicts `w` and `s`; then one cube per output walks its window
//! (sized by `s` at the output's centre token), every unit accumulating its own features.
//! Backward, with no float atomics: (1) one cube per output computes `∂L/∂u` for its window (kept, `[B·n_out, K]`) and the
//! size gradient; (2) one cube per input token gathers, from the outputs whose windows hold
//! it, its direct gradient and its weight gradient; (3) column sums give the predictors'
//! gradients. Windows stop where the Gaussian falls below e^−80, as on the CPU.

use crate::common::u32s;
use crate::reduce::{cube_reduce, row_grid, Sum};
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

/// Sizes: `batch` samples of `h × w` tokens (row-major) with `d` features, pooled around
/// every `sh`-th row and `sw`-th column (output `(r, c)` is centred on `(sh·r, sw·c)`). A
/// sequence of `n` tokens is one row (`h = 1`, `w = n`); the ConvNet variant strides both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolDims {
    pub batch: usize,
    pub d: usize,
    pub h: usize,
    pub w: usize,
    pub sh: usize,
    pub sw: usize,
}

impl PoolDims {
    /// `n` tokens in a row, every `stride`-th one an output.
    pub fn seq(batch: usize, n: usize, d: usize, stride: usize) -> Self {
        PoolDims {
            batch,
            d,
            h: 1,
            w: n,
            sh: 1,
            sw: stride,
        }
    }
    /// An `h × w` grid with the same stride along both axes.
    pub fn grid(batch: usize, h: usize, w: usize, d: usize, stride: usize) -> Self {
        PoolDims {
            batch,
            d,
            h,
            w,
            sh: stride,
            sw: stride,
        }
    }
    pub fn n_in(&self) -> usize {
        self.h * self.w
    }
    pub fn n_out(&self) -> usize {
        (self.h / self.sh) * (self.w / self.sw)
    }
    /// How far a window reaches along rows: 0 for a sequence.
    fn row_radius(&self, radius: u32) -> usize {
        (radius as usize).min(self.h - 1)
    }
    /// Entries of `du` per output: every position a window of the full radius can hold.
    fn width(&self, radius: u32) -> usize {
        (2 * self.row_radius(radius) + 1) * (2 * radius as usize + 1)
    }
    /// `[h, w, sh, sw, w_out, n_in, n_out, row_radius]`, as the kernels read it.
    fn packed(&self, radius: u32) -> [usize; 8] {
        [
            self.h,
            self.w,
            self.sh,
            self.sw,
            self.w / self.sw,
            self.n_in(),
            self.n_out(),
            self.row_radius(radius),
        ]
    }
}

#[cube]
fn sigmoid<F: Float>(z: F) -> F {
    F::new(1.0) / (F::new(1.0) + F::exp(-z))
}

/// Output `o`'s window for size `s`: its centre `(r, c)` and the rows `r0..=r1` and columns
/// `c0..=c1` it pools, the radius lowered to where the Gaussian is e^−80 (never raised).
#[cube]
fn window<F: Float>(
    o: u32,
    s: F,
    geo: &Array<u32>,
    radius: u32,
    #[comptime] causal: bool,
) -> (u32, u32, u32, u32, u32, u32) {
    let (h, w, sh, sw, w_out) = (geo[0], geo[1], geo[2], geo[3], geo[4]);
    let r = sh * (o / w_out);
    let c = sw * (o % w_out);
    let cap = u32::cast_from(F::floor(s * F::new(CUT)));
    let rad = u32::min(radius, cap);
    let mut r0 = 0u32;
    if r > rad {
        r0 = r - rad;
    }
    let r1 = u32::min(r + rad, h - 1);
    let mut c0 = 0u32;
    if c > rad {
        c0 = c - rad;
    }
    let mut c1 = u32::min(c + rad, w - 1);
    if comptime![causal] {
        c1 = c;
    }
    (r, c, r0, r1, c0, c1)
}

/// Squared distance between `(r, c)` and `(rj, cj)`, as a float.
#[cube]
fn dist2<F: Float>(r: u32, c: u32, rj: u32, cj: u32) -> F {
    let dr = F::cast_from(r) - F::cast_from(rj);
    let dc = F::cast_from(c) - F::cast_from(cj);
    dr * dr + dc * dc
}

/// Where `du` keeps the entry of input `(rj, cj)` in the window centred on `(r, c)`.
#[cube]
fn du_slot(r: u32, c: u32, rj: u32, cj: u32, row_radius: u32, radius: u32) -> u32 {
    (rj + row_radius - r) * (2 * radius + 1) + (cj + radius - c)
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

fn floats<F: Float + CubeElement>(n: usize) -> usize {
    n.max(1) * std::mem::size_of::<F>()
}

/// What the forward returns and the backward needs: output `y` `[B, n_out, d]`, weights `w`
/// `[B, n_in]`, sizes `s` and denominators `[B, n_out]`.
pub struct PoolOutputs {
    pub y: Handle,
    pub w: Handle,
    pub s: Handle,
    pub denom: Handle,
}

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
