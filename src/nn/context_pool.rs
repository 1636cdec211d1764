//! ContextPool layers (Huang et al., ICML 2022): [`ContextPool`] pools each token's
//! neighbourhood before attention, over a sequence or an H×W grid of tokens, and
//! [`ContextPool2d`] replaces a stride-r pooling layer of a ConvNet. The math is one fused op,
//! `ops::context_pool`, whose module comment gives the definition.

use super::{Linear, Module};
use crate::error::{Error, OrPanic, Result};
use crate::ops::context_pool::{
    grid_checks, run, seq_geometry, ContextPoolOptions, Geometry, PoolStats, Stash,
};
use crate::tensor::Tensor;
use std::rc::Rc;

/// The initial bias of the size predictor: with zero weights, every token starts at size
/// `init_size` (1, the spec's initialisation, unless the options say otherwise), or the
/// nearest size the range allows.
fn initial_size_bias(opts: &ContextPoolOptions) -> f64 {
    let span = opts.s_max - opts.s_min;
    if span <= 0.0 {
        return 0.0;
    }
    let p = ((opts.init_size - opts.s_min) / span).clamp(1e-3, 1.0 - 1e-3);
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
    /// (every weight 0.5) and `b0` such that every size starts at `options.init_size` (1).
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

impl Module for ContextPool {
    crate::module_tensors! {
        child "weight_proj" weight_proj;
        child "size_proj" size_proj;
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
    crate::module_tensors! {
        flatten pool;
    }
}
