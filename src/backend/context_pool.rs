//! ContextPool (spec: `docs/specs/contextpool.md`)
//! as one fused primitive. Every output token `o` pools the input tokens `j` inside a window
//! around its centre, with weights `u_oj = w_j · exp(−dist²(o, j) / (2 s_o²))`; the window is
//! enumerated directly, so the n×n matrix never exists. One geometry type covers the three
//! layouts of the spec: a sequence, an H×W grid, and a grid pooled with a stride (the ConvNet
//! variant); causal masking applies to sequences.

use crate::error::Result;
use crate::tensor::Tensor;

/// Where the tokens sit, which output pools which inputs, and at what squared distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Geometry {
    /// `n` tokens in a row; output `o` is centred on token `stride · o`.
    Seq {
        n: usize,
        stride: usize,
        radius: usize,
        causal: bool,
    },
    /// `h × w` tokens stored row-major; output `(r, c)` is centred on `(stride·r, stride·c)`
    /// and pools the square window of `radius` around it.
    Grid {
        h: usize,
        w: usize,
        stride: usize,
        radius: usize,
    },
}

impl Geometry {
    pub fn n_in(&self) -> usize {
        match *self {
            Geometry::Seq { n, .. } => n,
            Geometry::Grid { h, w, .. } => h * w,
        }
    }
    /// Output count: like a pooling layer with kernel = stride = `stride` (`n / stride`,
    /// rounded down), so stride 1 keeps every token.
    pub fn n_out(&self) -> usize {
        match *self {
            Geometry::Seq { n, stride, .. } => n / stride,
            Geometry::Grid { h, w, stride, .. } => (h / stride) * (w / stride),
        }
    }
    /// The input token whose features predict output `o`'s pooling size.
    #[inline]
    pub fn centre(&self, o: usize) -> usize {
        match *self {
            Geometry::Seq { stride, .. } => stride * o,
            Geometry::Grid { w, stride, .. } => {
                let w_out = w / stride;
                let (r, c) = (o / w_out, o % w_out);
                stride * r * w + stride * c
            }
        }
    }
    /// Calls `f(j, dist²)` for every input `j` in output `o`'s window, in increasing `j`,
    /// with the window's radius lowered to `cap` (never raised).
    #[inline(always)]
    pub fn for_each_neighbour(&self, o: usize, cap: usize, mut f: impl FnMut(usize, usize)) {
        match *self {
            Geometry::Seq {
                n,
                stride,
                radius,
                causal,
            } => {
                let radius = radius.min(cap);
                let i = stride * o;
                let lo = i.saturating_sub(radius);
                let hi = if causal { i } else { (i + radius).min(n - 1) };
                for j in lo..=hi {
                    f(j, i.abs_diff(j).pow(2));
                }
            }
            Geometry::Grid {
                h,
                w,
                stride,
                radius,
            } => {
                let radius = radius.min(cap);
                let w_out = w / stride;
                let (r, c) = (stride * (o / w_out), stride * (o % w_out));
                let (r0, r1) = (r.saturating_sub(radius), (r + radius).min(h - 1));
                let (c0, c1) = (c.saturating_sub(radius), (c + radius).min(w - 1));
                for rj in r0..=r1 {
                    let dr = rj.abs_diff(r);
                    for cj in c0..=c1 {
                        let dc = cj.abs_diff(c);
                        f(rj * w + cj, dr * dr + dc * dc);
                    }
                }
            }
        }
    }
}

/// The numbers that shape the pooling: the size range and how the weights are normalised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub s_min: f64,
    pub s_max: f64,
    pub normalize: bool,
    pub eps: f64,
}

/// What the forward computes. Besides the output `y` (`[B, n_out, d]`) it keeps the
/// per-token weights `w` (`[B, n_in]`), sizes `s` and denominators `Z + eps` (both
/// `[B, n_out]`): the backward needs all three, and the layer shows `w` and `s` to the user.
#[derive(Clone)]
pub struct PoolOutputs {
    pub y: Tensor,
    pub w: Tensor,
    pub s: Tensor,
    pub denom: Tensor,
}

/// The gradients of the inputs: `dx` like `x`, `da` and `db` with `d` elements (the
/// predictors' weights, flat), `da0` and `db0` with one (their biases).
pub struct PoolGrads {
    pub dx: Tensor,
    pub da: Tensor,
    pub da0: Tensor,
    pub db: Tensor,
    pub db0: Tensor,
}

pub trait ContextPoolKernels {
    /// Pools contiguous tokens `x` `[B, geo.n_in(), d]` with the predictors `a` (d
    /// elements), `a0` (one), `b` (d), `b0` (one).
    fn context_pool(
        &self,
        x: &Tensor,
        predictors: [&Tensor; 4],
        geo: &Geometry,
        params: &Params,
    ) -> Result<PoolOutputs>;

    /// The gradients from the output gradient `g`, the inputs `x`, `a`, `b` and what the
    /// forward returned; it recomputes only the Gaussians of each window.
    #[allow(clippy::too_many_arguments)]
    fn context_pool_backward(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        fwd: &PoolOutputs,
        g: &Tensor,
        geo: &Geometry,
        params: &Params,
    ) -> Result<PoolGrads>;
}
