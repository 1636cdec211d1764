//! Pieces of vision models: the ViT patch embedding with its class token and learned
//! positions (names as torchvision's `VisionTransformer`: `conv_proj`, `class_token`,
//! `pos_embedding`), and a small CNN block whose pooling can be max, average or ContextPool.

use super::conv::AvgPool2d;
use super::{
    BatchNorm2d, ContextPool2d, ContextPoolOptions, Conv2d, Conv2dOptions, MaxPool2d, Module,
};
use crate::error::{Error, OrPanic, Result};
use crate::ops::Unary;
use crate::tensor::Tensor;

/// Cuts `[B, C, H, W]` into `p×p` patches, projects each to `d` features (a convolution with
/// kernel = stride = p), prepends a learned class token and adds learned positions:
/// `[B, 1 + (H/p)·(W/p), d]`.
pub struct PatchEmbedding {
    pub conv_proj: Conv2d,
    pub class_token: Tensor,
    pub pos_embedding: Tensor,
    pub patch: usize,
    pub grid: (usize, usize),
}

impl PatchEmbedding {
    #[track_caller]
    pub fn new(channels: usize, image: (usize, usize), patch: usize, d: usize) -> Self {
        assert!(
            patch > 0 && image.0 % patch == 0 && image.1 % patch == 0,
            "PatchEmbedding: image {image:?} must divide into {patch}×{patch} patches"
        );
        let opts = Conv2dOptions {
            stride: (patch, patch),
            ..Default::default()
        };
        let grid = (image.0 / patch, image.1 / patch);
        PatchEmbedding {
            conv_proj: Conv2d::new(channels, d, (patch, patch), opts, true),
            class_token: Tensor::zeros([1, 1, d]).with_grad(),
            pos_embedding: Tensor::randn([1, 1 + grid.0 * grid.1, d], 0.0, 0.02).with_grad(),
            patch,
            grid,
        }
    }
    // ANCHOR: patch_embedding
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let (gh, gw) = self.grid;
        let want = [gh * self.patch, gw * self.patch];
        if x.rank() != 4 || x.dims()[2..] != want {
            return Err(Error::bad_shape(
                "PatchEmbedding",
                x.shape(),
                format!("expected [batch, channels, {}, {}]", want[0], want[1]),
            ));
        }
        let b = x.dims()[0];
        let d = self.class_token.dim(-1);
        let tokens = self
            .conv_proj
            .try_forward(x)?
            .try_reshape(&[b, d, gh * gw])?
            .try_permute(&[0, 2, 1])?;
        let cls = self.class_token.try_broadcast_to([b, 1, d])?;
        Tensor::try_concat(&[&cls, &tokens], 1)?.try_add(&self.pos_embedding)
    }
    // ANCHOR_END: patch_embedding
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

impl Module for PatchEmbedding {
    crate::module_tensors! {
        child "conv_proj" conv_proj;
        param "class_token" class_token;
        param "pos_embedding" pos_embedding;
    }
}

/// How a [`ConvBlock`] halves its resolution.
pub enum Pooling {
    Max(MaxPool2d),
    Avg(AvgPool2d),
    ContextPool(ContextPool2d),
}

/// `pool(relu(bn(conv3×3(x))))`: the block of a small CNN, with max, average or ContextPool
/// pooling of stride 2 (the paper's replacement of pooling layers).
pub struct ConvBlock {
    pub conv: Conv2d,
    pub bn: BatchNorm2d,
    pub pool: Pooling,
}

impl ConvBlock {
    pub fn new(in_channels: usize, out_channels: usize, pool: &str) -> Result<Self> {
        let pad = Conv2dOptions {
            padding: (1, 1),
            ..Default::default()
        };
        let pool = match pool {
            "max" => Pooling::Max(MaxPool2d::new(2)),
            "avg" => Pooling::Avg(AvgPool2d::new(2)),
            "contextpool" => Pooling::ContextPool(ContextPool2d::new(
                out_channels,
                2,
                ContextPoolOptions {
                    s_max: 2.0,
                    ..Default::default()
                },
            )),
            other => {
                return Err(Error::invalid(
                    "ConvBlock",
                    format!("pooling {other:?}: use max, avg or contextpool"),
                ))
            }
        };
        Ok(ConvBlock {
            conv: Conv2d::new(in_channels, out_channels, (3, 3), pad, false),
            bn: BatchNorm2d::new(out_channels),
            pool,
        })
    }
    pub fn try_forward(&mut self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv.try_forward(x)?;
        let h = self.bn.try_forward(&h)?.try_unary(Unary::Relu)?;
        match &self.pool {
            Pooling::Max(p) => p.try_forward(&h),
            Pooling::Avg(p) => p.try_forward(&h),
            Pooling::ContextPool(p) => p.try_forward(&h),
        }
    }
    #[track_caller]
    pub fn forward(&mut self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

impl Module for ConvBlock {
    crate::module_tensors! {
        child "conv" conv;
        child "bn" bn;
        child "pool" pool;
    }
}

impl Pooling {
    /// The pooling layer, as a module.
    fn layer(&self) -> &dyn Module {
        match self {
            Pooling::Max(p) => p,
            Pooling::Avg(p) => p,
            Pooling::ContextPool(p) => p,
        }
    }
    fn layer_mut(&mut self) -> &mut dyn Module {
        match self {
            Pooling::Max(p) => p,
            Pooling::Avg(p) => p,
            Pooling::ContextPool(p) => p,
        }
    }
}

/// Only ContextPool pooling has tensors; the walk goes to whichever layer is chosen.
impl Module for Pooling {
    fn visit(&self, v: &mut super::Visit<'_>) {
        self.layer().visit(v)
    }
    fn visit_mut(&mut self, v: &mut super::VisitMut<'_>) {
        self.layer_mut().visit_mut(v)
    }
}
