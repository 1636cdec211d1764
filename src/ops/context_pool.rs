//! ContextPool (Huang et al., ICML 2022): before attention, every token is replaced by a
//! weighted average of its neighbourhood, with per-token weights `w` and a per-token
//! neighbourhood size `s` both predicted from the features. The exact definition and its
//! options are in `docs/specs/contextpool.md`:
//!
//! ```text
//! w_j = σ(a · x_j + a0)                            pooling weight of token j
//! s_i = s_min + (s_max − s_min) · σ(b · x_i + b0)  pooling size (std) of token i
//! u_ij = w_j · exp(−dist²(i, j) / (2 s_i²))        for j within `radius` of i (j ≤ i if causal)
//! y_i = Σ_j u_ij x_j / (Z_i + eps),  Z_i = Σ_j u_ij (normalize) or 1
//! ```
//!
//! The whole layer is one fused op with a hand-written backward (the contract and the window
//! geometry are in `backend/context_pool.rs`). Its five inputs are `x` and the two predictors, stored like
//! PyTorch's `nn.Linear(d, 1)`: `weight_proj.weight` `[1, d]` (`a`), `weight_proj.bias` `[1]`
//! (`a0`), `size_proj.weight` (`b`) and `size_proj.bias` (`b0`).
//!
//! Three layers use it (`nn::context_pool`): `ContextPool` over a sequence `[B, n, d]`, the
//! same layer over an H×W grid of tokens (`forward_grid`, with an optional class token passed
//! through), and `ContextPool2d`, which replaces a stride-r max/avg pooling layer of a ConvNet.

use super::same_kind;
use crate::autograd::{apply, Forward, Op};
use crate::backend;
pub use crate::backend::context_pool::Geometry;
use crate::backend::context_pool::{Params, PoolOutputs};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::cell::RefCell;
use std::rc::Rc;

/// The options of the spec, with its defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ContextPoolOptions {
    /// Smallest and largest pooling size (the Gaussian's standard deviation, in tokens).
    pub s_min: f64,
    pub s_max: f64,
    /// Window radius R in tokens (per axis on a grid); `None` means `ceil(3 · s_max)`, where
    /// the Gaussian has fallen below 1.2% of its peak.
    pub radius: Option<usize>,
    /// Pool only the current and earlier tokens (for language models). Sequences only.
    pub causal: bool,
    /// Divide by the sum of the weights, making each output a weighted mean.
    pub normalize: bool,
    pub eps: f64,
    /// The size every token starts at (the layer's initialisation; the spec's is 1), clamped
    /// into `[s_min, s_max]` just inside the range, where the sigmoid can still move it.
    pub init_size: f64,
}

impl Default for ContextPoolOptions {
    fn default() -> Self {
        ContextPoolOptions {
            s_min: 0.5,
            s_max: 8.0,
            radius: None,
            causal: false,
            normalize: true,
            eps: 1e-6,
            init_size: 1.0,
        }
    }
}

impl ContextPoolOptions {
    pub fn radius(&self) -> usize {
        self.radius
            .unwrap_or_else(|| (3.0 * self.s_max).ceil() as usize)
    }
    pub(crate) fn params(&self) -> Params {
        Params {
            s_min: self.s_min,
            s_max: self.s_max,
            normalize: self.normalize,
            eps: self.eps,
        }
    }
    pub(crate) fn check(&self, op: &'static str) -> Result<()> {
        if !(self.s_min > 0.0 && self.s_max >= self.s_min && self.s_max.is_finite()) {
            return Err(Error::invalid(
                op,
                format!(
                    "need 0 < s_min <= s_max < inf, got s_min = {}, s_max = {}",
                    self.s_min, self.s_max
                ),
            ));
        }
        if !(self.init_size.is_finite() && self.init_size > 0.0) {
            return Err(Error::invalid(
                op,
                format!(
                    "init_size = {} must be a finite size above 0",
                    self.init_size
                ),
            ));
        }
        if self.eps.is_nan() || self.eps < 0.0 {
            return Err(Error::invalid(
                op,
                format!("eps = {} must be >= 0", self.eps),
            ));
        }
        Ok(())
    }
}

/// The weights `w` (`[B, n_in]`) and sizes `s` (`[B, n_out]`) of a layer's last forward;
/// grid layers reshape them to `[B, H, W]` and `[B, H_out, W_out]`.
#[derive(Clone)]
pub struct PoolStats {
    pub weights: Tensor,
    pub sizes: Tensor,
}

pub(crate) type Stash = Rc<RefCell<Option<PoolStats>>>;

/// The fused op. Inputs: `x` `[B, n_in, d]` (contiguous tokens), `a` `[1, d]`, `a0` `[1]`,
/// `b` `[1, d]`, `b0` `[1]`. Output: `[B, n_out, d]`.
struct ContextPoolOp {
    geo: Geometry,
    params: Params,
    /// Where the layer wants the last forward's `w` and `s`; none for the bare function.
    stash: Option<Stash>,
}

impl Op for ContextPoolOp {
    fn name(&self) -> &'static str {
        "context_pool"
    }

    /// Saves `x`, `a`, `b` (the backward multiplies by them), and the output `y`, the
    /// weights `w`, sizes `s` and denominators `Z + eps`: together O(B·n·d), so the backward
    /// recomputes only the Gaussians of the window, never an n×n matrix.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (a, a0, b, b0) = (inputs[1], inputs[2], inputs[3], inputs[4]);
        let x = inputs[0].try_contiguous()?;
        let out = backend::of(&x).context_pool(&x, [a, a0, b, b0], &self.geo, &self.params)?;
        if let Some(stash) = &self.stash {
            *stash.borrow_mut() = Some(PoolStats {
                weights: out.w.clone(),
                sizes: out.s.clone(),
            });
        }
        let PoolOutputs { y, w, s, denom } = out;
        let saved = vec![x, a.clone(), b.clone(), y.clone(), w, s, denom];
        Ok(Forward::new(y, saved))
    }

    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [x, a, b, y, w, s, denom] = saved else {
            unreachable!("context_pool saves seven tensors")
        };
        let g = g.try_contiguous()?;
        let fwd = PoolOutputs {
            y: y.clone(),
            w: w.clone(),
            s: s.clone(),
            denom: denom.clone(),
        };
        let gr =
            backend::of(x).context_pool_backward(x, a, b, &fwd, &g, &self.geo, &self.params)?;
        Ok(vec![
            Some(gr.dx),
            Some(gr.da.try_reshape(a.dims())?),
            Some(gr.da0),
            Some(gr.db.try_reshape(b.dims())?),
            Some(gr.db0),
        ])
    }
}

/// Checks shapes and runs the op. `x` is `[B, n_in, d]` with `n_in = geo.n_in()`.
pub(crate) fn run(
    x: &Tensor,
    predictors: [&Tensor; 4],
    geo: Geometry,
    opts: &ContextPoolOptions,
    stash: Option<Stash>,
) -> Result<Tensor> {
    const OP: &str = "context_pool";
    opts.check(OP)?;
    if x.rank() != 3 || x.dims()[1] != geo.n_in() {
        return Err(Error::bad_shape(
            OP,
            x.shape(),
            format!("expected [batch, {} tokens, features]", geo.n_in()),
        ));
    }
    if geo.n_out() == 0 {
        return Err(Error::bad_shape(
            OP,
            x.shape(),
            "the stride leaves no output token",
        ));
    }
    let d = x.dims()[2];
    let [a, a0, b, b0] = predictors;
    for (t, want) in [(a, d), (a0, 1), (b, d), (b0, 1)] {
        same_kind(OP, x, t)?;
        if t.numel() != want {
            return Err(Error::mismatch(
                OP,
                x.shape(),
                t.shape(),
                format!("predictor weights need {d} elements and biases 1"),
            ));
        }
    }
    let op = ContextPoolOp {
        geo,
        params: opts.params(),
        stash,
    };
    apply(op, &[x, a, a0, b, b0])
}

/// The window layout of a sequence `[B, n, d]` (a wrong rank is caught by `run`).
pub(crate) fn seq_geometry(x: &Tensor, opts: &ContextPoolOptions) -> Geometry {
    Geometry::Seq {
        n: if x.rank() == 3 { x.dims()[1] } else { 0 },
        stride: 1,
        radius: opts.radius(),
        causal: opts.causal,
    }
}

/// ContextPool over a sequence, as a function: `x` `[B, n, d]`, predictor weights `a`, `b`
/// (`d` elements each, e.g. `[1, d]`) and biases `a0`, `b0` (one element each).
pub fn try_context_pool_1d(
    x: &Tensor,
    a: &Tensor,
    a0: &Tensor,
    b: &Tensor,
    b0: &Tensor,
    opts: &ContextPoolOptions,
) -> Result<Tensor> {
    run(x, [a, a0, b, b0], seq_geometry(x, opts), opts, None)
}

/// ContextPool over an `h × w` grid of tokens, `x` `[B, h·w, d]` in row-major order, pooled
/// with `stride` (1 keeps every token; r gives `[B, (h/r)·(w/r), d]`). `opts.causal` must be
/// false: a grid has no order.
#[allow(clippy::too_many_arguments)]
pub fn try_context_pool_2d(
    x: &Tensor,
    a: &Tensor,
    a0: &Tensor,
    b: &Tensor,
    b0: &Tensor,
    (h, w): (usize, usize),
    stride: usize,
    opts: &ContextPoolOptions,
) -> Result<Tensor> {
    grid_checks(x, h, w, stride, opts)?;
    let geo = Geometry::Grid {
        h,
        w,
        stride,
        radius: opts.radius(),
    };
    run(x, [a, a0, b, b0], geo, opts, None)
}

pub(crate) fn grid_checks(
    x: &Tensor,
    h: usize,
    w: usize,
    stride: usize,
    opts: &ContextPoolOptions,
) -> Result<()> {
    if opts.causal {
        return Err(Error::invalid(
            "context_pool_2d",
            "causal pooling needs a sequence; a grid has no order",
        ));
    }
    if stride == 0 || h == 0 || w == 0 {
        return Err(Error::bad_shape(
            "context_pool_2d",
            x.shape(),
            format!("grid {h}×{w} with stride {stride}: all must be positive"),
        ));
    }
    Ok(())
}
