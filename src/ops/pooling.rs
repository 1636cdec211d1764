//! Max and average pooling over the last two dims (`[N, C, H, W]` or `[C, H, W]`) as one
//! fused op each, with PyTorch's arguments and output sizes, and global average pooling.
//! The backends' contract is `backend/pooling.rs`.

use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::pooling::PoolGeometry;
pub use crate::backend::pooling::PoolKind;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};

struct Pool2dOp {
    geo: PoolGeometry,
    planes: usize,
    kind: PoolKind,
    /// The input's shape, for the backward.
    from: Shape,
}

impl Op for Pool2dOp {
    fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pool2d",
            PoolKind::Avg { .. } => "avg_pool2d",
        }
    }
    /// Saves, for max pooling, where each maximum was (an i64 tensor of the output's shape);
    /// average pooling saves nothing.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0].try_contiguous()?;
        let (ho, wo) = self.geo.out_hw().expect("checked before");
        let mut shape = x.dims().to_vec();
        let r = shape.len();
        shape[r - 2] = ho;
        shape[r - 1] = wo;
        let (y, argmax) =
            backend::of(&x).pool2d(&x, &self.geo, self.planes, self.kind, &Shape::new(&shape))?;
        Ok(Forward::new(y, argmax.into_iter().collect()))
    }
    fn backward(&self, saved: &[Tensor], gy: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let gy = gy.try_contiguous()?;
        let dx = backend::of(&gy).pool2d_backward(
            &gy,
            saved.first(),
            &self.geo,
            self.planes,
            self.kind,
            &self.from,
        )?;
        Ok(vec![Some(dx)])
    }
}

fn pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    ceil_mode: bool,
    kind: PoolKind,
) -> Result<Tensor> {
    let op = if kind == PoolKind::Max {
        "max_pool2d"
    } else {
        "avg_pool2d"
    };
    if x.rank() < 3 || !x.dtype().is_float() {
        return Err(Error::bad_shape(
            op,
            x.shape(),
            "expected a float [N, C, H, W] or [C, H, W] input",
        ));
    }
    if kernel.0 == 0 || kernel.1 == 0 || 2 * padding.0 > kernel.0 || 2 * padding.1 > kernel.1 {
        return Err(Error::invalid(
            op,
            format!(
                "kernel {kernel:?} must be positive and padding {padding:?} at most half of it"
            ),
        ));
    }
    if let PoolKind::Avg {
        divisor_override: Some(0),
        ..
    } = kind
    {
        return Err(Error::invalid(op, "divisor_override must not be 0"));
    }
    let r = x.rank();
    let geo = PoolGeometry {
        h: x.dims()[r - 2],
        w: x.dims()[r - 1],
        kernel,
        stride,
        padding,
        ceil_mode,
    };
    if geo.out_hw().is_none() {
        return Err(Error::bad_shape(
            op,
            x.shape(),
            format!("the window {kernel:?} (stride {stride:?}, padding {padding:?}) does not fit"),
        ));
    }
    let planes = x.numel() / (geo.h * geo.w).max(1);
    let op = Pool2dOp {
        geo,
        planes,
        kind,
        from: x.shape().clone(),
    };
    apply(op, &[x])
}

/// `F.max_pool2d`'s arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2dOptions {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    /// Round the output size up, keeping a last partial window (dropped when it would start
    /// in the padding).
    pub ceil_mode: bool,
}

impl MaxPool2dOptions {
    /// PyTorch's defaults: stride = kernel, no padding, output size rounded down.
    pub fn new(kernel: (usize, usize)) -> Self {
        MaxPool2dOptions {
            kernel,
            stride: kernel,
            padding: (0, 0),
            ceil_mode: false,
        }
    }
}

/// `F.avg_pool2d`'s arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2dOptions {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    /// Round the output size up, keeping a last partial window (dropped when it would start
    /// in the padding).
    pub ceil_mode: bool,
    /// Divide by the whole window, padding included, rather than by its part inside the image
    /// (a ceil-mode window reaching beyond the padding counts only up to it, as in PyTorch).
    pub count_include_pad: bool,
    /// Divide every window's sum by this instead.
    pub divisor_override: Option<usize>,
}

impl AvgPool2dOptions {
    /// PyTorch's defaults: stride = kernel, no padding, output size rounded down, padding
    /// counted, no override.
    pub fn new(kernel: (usize, usize)) -> Self {
        AvgPool2dOptions {
            kernel,
            stride: kernel,
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
}

/// `F.max_pool2d(x, kernel, stride, padding)` over the last two dims.
pub fn try_max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    pool2d(x, kernel, stride, padding, false, PoolKind::Max)
}

/// `F.max_pool2d` with all its arguments (`ceil_mode` too).
pub fn try_max_pool2d_with(x: &Tensor, o: MaxPool2dOptions) -> Result<Tensor> {
    pool2d(x, o.kernel, o.stride, o.padding, o.ceil_mode, PoolKind::Max)
}

/// `F.avg_pool2d(x, kernel, stride, padding, count_include_pad)` over the last two dims.
pub fn try_avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    count_include_pad: bool,
) -> Result<Tensor> {
    let mut o = AvgPool2dOptions::new(kernel);
    (o.stride, o.padding, o.count_include_pad) = (stride, padding, count_include_pad);
    try_avg_pool2d_with(x, o)
}

/// `F.avg_pool2d` with all its arguments (`ceil_mode` and `divisor_override` too).
pub fn try_avg_pool2d_with(x: &Tensor, o: AvgPool2dOptions) -> Result<Tensor> {
    let kind = PoolKind::Avg {
        count_include_pad: o.count_include_pad,
        divisor_override: o.divisor_override,
    };
    pool2d(x, o.kernel, o.stride, o.padding, o.ceil_mode, kind)
}

/// Global average pooling: `[N, C, H, W]` → `[N, C]` (`AdaptiveAvgPool2d(1)` and a flatten).
pub fn try_global_avg_pool2d(x: &Tensor) -> Result<Tensor> {
    if x.rank() != 4 {
        return Err(Error::bad_shape(
            "global_avg_pool2d",
            x.shape(),
            "expected [N, C, H, W]",
        ));
    }
    x.try_mean_axes(&[2, 3], false)
}
