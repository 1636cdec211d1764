//! Max and average pooling over the last two dims of `[planes, H, W]`, forward and backward.
//! Windows that reach into the padding see −∞ (max) or zeros (average). Max pooling returns,
//! for its backward, the flat in-plane index of each maximum (the first one on ties, as
//! PyTorch) as an i64 tensor.

use crate::error::Result;
use crate::tensor::{Shape, Tensor};

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// `count_include_pad`: divide by the whole window, padding included (PyTorch's default),
    /// rather than by the part inside the image.
    Avg {
        count_include_pad: bool,
        /// Divide every window's sum by this instead (PyTorch's `divisor_override`).
        divisor_override: Option<usize>,
    },
}

/// Window size, stride and padding, per axis (height, width).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolGeometry {
    pub h: usize,
    pub w: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    /// Round the output size up, so that a last partial window counts (PyTorch's
    /// `ceil_mode`); it is dropped when it would start in the right or bottom padding.
    pub ceil_mode: bool,
}

impl PoolGeometry {
    /// `floor((H + 2p − k) / s) + 1` per axis (with `ceil_mode`, `ceil`, less one when the
    /// last window would start beyond the image and its left padding, as PyTorch); `None`
    /// when the window does not fit.
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        if self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        let axis = |n: usize, k: usize, s: usize, p: usize| -> Option<usize> {
            let span = (n + 2 * p).checked_sub(k)?;
            let mut out = if self.ceil_mode {
                span.div_ceil(s) + 1
            } else {
                span / s + 1
            };
            if self.ceil_mode && (out - 1) * s >= n + p {
                out -= 1;
            }
            Some(out)
        };
        Some((
            axis(self.h, self.kernel.0, self.stride.0, self.padding.0)?,
            axis(self.w, self.kernel.1, self.stride.1, self.padding.1)?,
        ))
    }
    /// The window of output `(oh, ow)` clipped to the image: rows `r0..r1`, cols `c0..c1`.
    #[inline]
    pub fn window(&self, oh: usize, ow: usize) -> (usize, usize, usize, usize) {
        let y0 = (oh * self.stride.0) as isize - self.padding.0 as isize;
        let x0 = (ow * self.stride.1) as isize - self.padding.1 as isize;
        let clip = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
        (
            clip(y0, self.h),
            clip(y0 + self.kernel.0 as isize, self.h),
            clip(x0, self.w),
            clip(x0 + self.kernel.1 as isize, self.w),
        )
    }
}

pub trait PoolingKernels {
    /// Pools contiguous `x` (`planes` planes of `geo.h × geo.w`) into shape `out`: the outputs
    /// and, for max pooling, the in-plane index of each maximum.
    fn pool2d(
        &self,
        x: &Tensor,
        geo: &PoolGeometry,
        planes: usize,
        kind: PoolKind,
        out: &Shape,
    ) -> Result<(Tensor, Option<Tensor>)>;
    /// The input's gradient (shape `from`) from the output gradient `gy` (contiguous) and,
    /// for max pooling, the indices the forward returned.
    fn pool2d_backward(
        &self,
        gy: &Tensor,
        argmax: Option<&Tensor>,
        geo: &PoolGeometry,
        planes: usize,
        kind: PoolKind,
        from: &Shape,
    ) -> Result<Tensor>;
}
