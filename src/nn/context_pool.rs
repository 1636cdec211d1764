//! ContextPool (Huang et al., ICML 2022): before attention, every token is replaced by a
//! weighted average of its neighbourhood, with per-token weights `w` and a per-token
//! neighbourhood size `s` both predicted from the features. The exact definition and its
//! options are in `shared/specs/contextpool.md`:
//!
//! ```text
//! w_j = σ(a · x_j + a0)                            pooling weight of token j
//! s_i = s_min + (s_max − s_min) · σ(b · x_i + b0)  pooling size (std) of token i
//! u_ij = w_j · exp(−dist²(i, j) / (2 s_i²))        for j within `radius` of i (j ≤ i if causal)
//! y_i = Σ_j u_ij x_j / (Z_i + eps),  Z_i = Σ_j u_ij (normalize) or 1
//! ```
//!
//! The whole layer is one fused op with a hand-written backward (the loops are in
//! `backend::cpu::context_pool`). Its five inputs are `x` and the two predictors, stored like
//! PyTorch's `nn.Linear(d, 1)`: `weight_proj.weight` `[1, d]` (`a`), `weight_proj.bias` `[1]`
//! (`a0`), `size_proj.weight` (`b`) and `size_proj.bias` (`b0`).
//!
//! Three layers use it: [`ContextPool`] over a sequence `[B, n, d]`, the same layer over an
//! H×W grid of tokens (`forward_grid`, with an optional class token passed through), and
//! [`ContextPool2d`], which replaces a stride-r max/avg pooling layer of a ConvNet.

use super::{child_name, Linear, Module};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::context_pool::{self as kernel, Geometry, Params, Saved};
use crate::backend::cube::ops as cube;
use crate::error::{Error, OrPanic, Result};
use crate::ops::{from_float, same_kind, with_float};
use crate::tensor::{Float, Tensor};
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
        }
    }
}

impl ContextPoolOptions {
    pub fn radius(&self) -> usize {
        self.radius
            .unwrap_or_else(|| (3.0 * self.s_max).ceil() as usize)
    }
    fn params(&self) -> Params {
        Params {
            s_min: self.s_min,
            s_max: self.s_max,
            normalize: self.normalize,
            eps: self.eps,
        }
    }
    fn check(&self, op: &'static str) -> Result<()> {
        if !(self.s_min > 0.0 && self.s_max >= self.s_min && self.s_max.is_finite()) {
            return Err(Error::invalid(
                op,
                format!(
                    "need 0 < s_min <= s_max < inf, got s_min = {}, s_max = {}",
                    self.s_min, self.s_max
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

type Stash = Rc<RefCell<Option<PoolStats>>>;

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
        let (x, a, a0, b, b0) = (inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]);
        let (batch, d) = (x.dims()[0], x.dims()[2]);
        let n_out = self.geo.n_out();
        let out = if x.cube().is_some() {
            let f = cube::context_pool_forward(x, [a, a0, b, b0], &self.geo, &self.params)?;
            (f.y, f.w, f.s, f.denom)
        } else {
            with_float!("context_pool", x.dtype(), |T| {
                let xs = x.float_slice::<T>("context_pool")?;
                let (av, bv) = (
                    a.float_slice::<T>("context_pool")?,
                    b.float_slice::<T>("context_pool")?,
                );
                let a0 = a0.float_slice::<T>("context_pool")?[0];
                let b0 = b0.float_slice::<T>("context_pool")?[0];
                let f = kernel::forward(&xs, batch, d, self.geo, self.params, &av, a0, &bv, b0);
                Ok((
                    from_float(f.y, [batch, n_out, d].into()),
                    from_float(f.w, [batch, self.geo.n_in()].into()),
                    from_float(f.s, [batch, n_out].into()),
                    from_float(f.denom, [batch, n_out].into()),
                ))
            })?
        };
        let (y, w, s, denom) = out;
        if let Some(stash) = &self.stash {
            *stash.borrow_mut() = Some(PoolStats {
                weights: w.clone(),
                sizes: s.clone(),
            });
        }
        let saved = vec![
            x.try_contiguous()?,
            a.clone(),
            b.clone(),
            y.clone(),
            w,
            s,
            denom,
        ];
        Ok(Forward::new(y, saved))
    }

    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let [x, a, b, y, w, s, denom] = saved else {
            unreachable!("context_pool saves seven tensors")
        };
        let g = g.try_contiguous()?;
        let (batch, d) = (x.dims()[0], x.dims()[2]);
        if x.cube().is_some() {
            let fwd = cube::PoolForward {
                y: y.clone(),
                w: w.clone(),
                s: s.clone(),
                denom: denom.clone(),
            };
            let (dx, da, db) =
                cube::context_pool_backward(x, a, b, &fwd, &g, &self.geo, &self.params)?;
            // The kernels return each predictor's weight gradient with its bias's last.
            let split = |full: &Tensor, w: &Tensor| -> Result<(Tensor, Tensor)> {
                Ok((
                    full.try_narrow(0, 0, d)?.try_reshape(w.dims())?,
                    full.try_narrow(0, d, 1)?,
                ))
            };
            let ((da, da0), (db, db0)) = (split(&da, a)?, split(&db, b)?);
            return Ok(vec![Some(dx), Some(da), Some(da0), Some(db), Some(db0)]);
        }
        with_float!("context_pool", x.dtype(), |T| {
            fn sl<T: Float>(t: &Tensor) -> Result<std::borrow::Cow<'_, [T]>> {
                t.float_slice::<T>("context_pool")
            }
            let (xs, ys, ws, ss, ds) = (sl(x)?, sl(y)?, sl(w)?, sl(s)?, sl(denom)?);
            let saved = Saved {
                x: &xs,
                y: &ys,
                w: &ws,
                s: &ss,
                denom: &ds,
            };
            let (av, bv, gs) = (sl(a)?, sl(b)?, sl(&g)?);
            let gr = kernel::backward(saved, batch, d, self.geo, self.params, &av, &bv, &gs);
            Ok(vec![
                Some(from_float(gr.dx, x.shape().clone())),
                Some(from_float(gr.da, a.shape().clone())),
                Some(from_float::<T>(vec![gr.da0], [1].into())),
                Some(from_float(gr.db, b.shape().clone())),
                Some(from_float::<T>(vec![gr.db0], [1].into())),
            ])
        })
    }
}

/// Checks shapes and runs the op. `x` is `[B, n_in, d]` with `n_in = geo.n_in()`.
fn run(
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
fn seq_geometry(x: &Tensor, opts: &ContextPoolOptions) -> Geometry {
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

fn grid_checks(
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

/// The initial bias of the size predictor: with zero weights, every token starts at size
/// s = 1 (the spec's initialisation), or the nearest size the range allows.
fn initial_size_bias(opts: &ContextPoolOptions) -> f64 {
    let span = opts.s_max - opts.s_min;
    if span <= 0.0 {
        return 0.0;
    }
    let p = ((1.0 - opts.s_min) / span).clamp(1e-3, 1.0 - 1e-3);
    (p / (1.0 - p)).ln()
}

/// The layer: its two predictors and options, and the statistics of its last forward.
///
/// ```
/// use cubegrad::nn::{ContextPool, ContextPoolOptions};
///
/// // Before attention, pool each token's neighbourhood with learned weights and sizes.
/// let pool = ContextPool::new(64, ContextPoolOptions { causal: true, ..Default::default() });
/// let x = cubegrad::Tensor::randn([2, 100, 64], 0.0, 1.0);
/// let y = pool.forward(&x); // [2, 100, 64]
/// let stats = pool.last_stats().unwrap(); // per-token sizes s and weights w
/// assert_eq!(y.dims(), &[2, 100, 64]);
/// assert_eq!(stats.sizes.dims(), &[2, 100]);
/// ```
pub struct ContextPool {
    /// Predicts the pooling weight `w_j` of each token (`a`, `a0`).
    pub weight_proj: Linear,
    /// Predicts the pooling size `s_i` of each token (`b`, `b0`).
    pub size_proj: Linear,
    pub options: ContextPoolOptions,
    last: Stash,
}

impl ContextPool {
    /// A layer for `d_model` features, initialised as the spec says: `a = b = 0`, `a0 = 0`
    /// (every weight 0.5) and `b0` such that every size starts at 1.
    #[track_caller]
    pub fn new(d_model: usize, options: ContextPoolOptions) -> Self {
        options.check("ContextPool::new").or_panic();
        let mut weight_proj = Linear::new(d_model, 1, true);
        weight_proj.weight = Tensor::zeros([1, d_model]).with_grad();
        weight_proj.bias = Some(Tensor::zeros([1]).with_grad());
        let mut size_proj = Linear::new(d_model, 1, true);
        size_proj.weight = Tensor::zeros([1, d_model]).with_grad();
        size_proj.bias = Some(Tensor::full([1], initial_size_bias(&options)).with_grad());
        ContextPool {
            weight_proj,
            size_proj,
            options,
            last: Rc::default(),
        }
    }

    fn predictors(&self) -> [&Tensor; 4] {
        fn bias(l: &Linear) -> &Tensor {
            l.bias.as_ref().expect("ContextPool keeps its biases")
        }
        [
            &self.weight_proj.weight,
            bias(&self.weight_proj),
            &self.size_proj.weight,
            bias(&self.size_proj),
        ]
    }

    /// Pools a sequence `[B, n, d]` → `[B, n, d]`.
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        run(
            x,
            self.predictors(),
            seq_geometry(x, &self.options),
            &self.options,
            Some(self.last.clone()),
        )
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }

    /// Pools image tokens `[B, h·w, d]`, or `[B, 1 + h·w, d]` when `class_token` is true: the
    /// first token is then passed through unchanged, as in a vision transformer.
    pub fn try_forward_grid(
        &self,
        x: &Tensor,
        (h, w): (usize, usize),
        class_token: bool,
    ) -> Result<Tensor> {
        grid_checks(x, h, w, 1, &self.options)?;
        let skip = usize::from(class_token);
        if x.rank() != 3 || x.dims()[1] != skip + h * w {
            return Err(Error::bad_shape(
                "context_pool_2d",
                x.shape(),
                format!(
                    "expected [batch, {} tokens, features] for a {h}×{w} grid{}",
                    skip + h * w,
                    if class_token {
                        " and a class token"
                    } else {
                        ""
                    }
                ),
            ));
        }
        let geo = Geometry::Grid {
            h,
            w,
            stride: 1,
            radius: self.options.radius(),
        };
        let grid = if class_token {
            x.try_narrow(1, 1, h * w)?
        } else {
            x.clone()
        };
        let pooled = run(
            &grid,
            self.predictors(),
            geo,
            &self.options,
            Some(self.last.clone()),
        )?;
        if let Some(st) = self.last.borrow_mut().as_mut() {
            let bsz = x.dims()[0];
            st.weights = st.weights.try_reshape(&[bsz, h, w])?;
            st.sizes = st.sizes.try_reshape(&[bsz, h, w])?;
        }
        if class_token {
            Tensor::try_concat(&[&x.try_narrow(1, 0, 1)?, &pooled], 1)
        } else {
            Ok(pooled)
        }
    }
    #[track_caller]
    pub fn forward_grid(&self, x: &Tensor, hw: (usize, usize), class_token: bool) -> Tensor {
        self.try_forward_grid(x, hw, class_token).or_panic()
    }

    /// The pooling weights and sizes of the last forward (for plots), or `None` before one.
    pub fn last_stats(&self) -> Option<PoolStats> {
        self.last.borrow().clone()
    }
}

fn visit_predictors(prefix: &str, wp: &Linear, sp: &Linear, f: &mut dyn FnMut(&str, &Tensor)) {
    wp.visit_params(&child_name(prefix, "weight_proj"), f);
    sp.visit_params(&child_name(prefix, "size_proj"), f);
}

impl Module for ContextPool {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_predictors(prefix, &self.weight_proj, &self.size_proj, f);
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.weight_proj
            .visit_params_mut(&child_name(prefix, "weight_proj"), f);
        self.size_proj
            .visit_params_mut(&child_name(prefix, "size_proj"), f);
    }
}

/// ContextPool as the pooling layer of a ConvNet: `[B, C, H, W]` → `[B, C, H/r, W/r]`, the
/// shape `MaxPool2d(r)` gives. Weights are predicted at every position, sizes at the output
/// centres `(r·i, r·j)`.
pub struct ContextPool2d {
    pub pool: ContextPool,
    pub stride: usize,
}

impl ContextPool2d {
    #[track_caller]
    pub fn new(channels: usize, stride: usize, options: ContextPoolOptions) -> Self {
        assert!(stride > 0, "ContextPool2d: stride must be positive");
        ContextPool2d {
            pool: ContextPool::new(channels, options),
            stride,
        }
    }

    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        const OP: &str = "ContextPool2d";
        if x.rank() != 4 || x.dims()[1] != self.pool.weight_proj.in_features() {
            return Err(Error::bad_shape(
                OP,
                x.shape(),
                format!(
                    "expected [batch, {} channels, height, width]",
                    self.pool.weight_proj.in_features()
                ),
            ));
        }
        let (bsz, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
        let r = self.stride;
        if h < r || w < r {
            return Err(Error::bad_shape(
                OP,
                x.shape(),
                format!("the image is smaller than the stride {r}"),
            ));
        }
        grid_checks(x, h, w, r, &self.pool.options)?;
        // The kernel wants channels last: [B, C, H, W] → [B, H·W, C].
        let tokens = x
            .try_reshape(&[bsz, c, h * w])?
            .try_permute(&[0, 2, 1])?
            .try_contiguous()?;
        let geo = Geometry::Grid {
            h,
            w,
            stride: r,
            radius: self.pool.options.radius(),
        };
        let pooled = run(
            &tokens,
            self.pool.predictors(),
            geo,
            &self.pool.options,
            Some(self.pool.last.clone()),
        )?;
        let (ho, wo) = (h / r, w / r);
        if let Some(st) = self.pool.last.borrow_mut().as_mut() {
            st.weights = st.weights.try_reshape(&[bsz, h, w])?;
            st.sizes = st.sizes.try_reshape(&[bsz, ho, wo])?;
        }
        pooled
            .try_permute(&[0, 2, 1])?
            .try_reshape(&[bsz, c, ho, wo])
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
    pub fn last_stats(&self) -> Option<PoolStats> {
        self.pool.last_stats()
    }
}

impl Module for ContextPool2d {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        self.pool.visit_params(prefix, f);
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        self.pool.visit_params_mut(prefix, f);
    }
}
