//! 2-D convolution as one fused primitive, forward and backward (a 1-D convolution is a 2-D
//! one over a height of 1). Both backends unroll the input's patches (im2col) and multiply
//! them by the weights; the backward recomputes the patches rather than keep `kh·kw` copies
//! of the input, and folds the patch gradients back (col2im).

use crate::error::Result;
use crate::tensor::Tensor;

/// Sizes and hyper-parameters of one convolution (PyTorch's `Conv2d` arguments).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvGeometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl ConvGeometry {
    /// Output height and width; `None` when the kernel does not fit.
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let span_h = self.dilation.0 * (self.kh - 1) + 1;
        let span_w = self.dilation.1 * (self.kw - 1) + 1;
        let (ph, pw) = (self.h + 2 * self.padding.0, self.w + 2 * self.padding.1);
        if ph < span_h || pw < span_w {
            return None;
        }
        Some((
            (ph - span_h) / self.stride.0 + 1,
            (pw - span_w) / self.stride.1 + 1,
        ))
    }
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }
    pub fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Rows of the patch matrix of one group: `C/g · kh · kw`.
    pub fn k(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
}

/// The gradients of a convolution: the input's (when asked), the weight's and the bias's.
pub struct ConvGrads {
    pub dx: Option<Tensor>,
    pub dw: Tensor,
    pub db: Tensor,
}

pub trait ConvKernels {
    /// `x` `[N, C, H, W]` convolved with `w` `[O, C/groups, kh, kw]` (both contiguous), plus
    /// the bias `b` `[O]`: `[N, O, Ho, Wo]`.
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        geo: &ConvGeometry,
    ) -> Result<Tensor>;
    /// The gradients from the output gradient `gy` (contiguous); `dx` only with `need_x`.
    fn conv2d_backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        geo: &ConvGeometry,
        need_x: bool,
    ) -> Result<ConvGrads>;
}
