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
}

impl PoolGeometry {
    /// `floor((H + 2p − k) / s) + 1` per axis (PyTorch's `ceil_mode = False`); `None` when
    /// the window does not fit.
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let (ph, pw) = (self.h + 2 * self.padding.0, self.w + 2 * self.padding.1);
        if ph < self.kernel.0 || pw < self.kernel.1 || self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        Some((
            (ph - self.kernel.0) / self.stride.0 + 1,
            (pw - self.kernel.1) / self.stride.1 + 1,
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
