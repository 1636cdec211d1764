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

mod backward;
mod forward;

pub use backward::backward;
pub use forward::forward;

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
