//! 2-D and 1-D convolution as one fused op, with PyTorch's arguments, layouts (`NCHW`;
//! `weight` `[O, C/groups, kh, kw]`) and output sizes. The backends' contract is
//! `backend/conv.rs`.

use super::same_kind;
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::conv::ConvGeometry;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Stride, padding, dilation (per axis: height, width) and groups of a 2-D convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dOptions {
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub groups: usize,
}

impl Default for Conv2dOptions {
    fn default() -> Self {
        Conv2dOptions {
            stride: (1, 1),
            padding: (0, 0),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

/// Inputs: `x`, `w`, then `b` if `has_bias`.
struct Conv2dOp {
    geo: ConvGeometry,
    has_bias: bool,
}

impl Op for Conv2dOp {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    /// Saves `x` and `w`: the backward recomputes the patch matrix from `x` instead of
    /// keeping it, which would be `kh·kw` times the input's size.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (x, w) = (inputs[0].try_contiguous()?, inputs[1].try_contiguous()?);
        let y = backend::of(&x).conv2d(&x, &w, inputs.get(2).copied(), &self.geo)?;
        Ok(Forward::new(y, vec![x, w]))
    }

    fn backward(
        &self,
        saved: &[Tensor],
        gy: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, w) = (&saved[0], &saved[1]);
        let gy = gy.try_contiguous()?;
        let gr = backend::of(x).conv2d_backward(x, w, &gy, &self.geo, needs[0])?;
        let mut out = vec![gr.dx, Some(gr.dw)];
        if self.has_bias {
            out.push(Some(gr.db));
        }
        Ok(out)
    }
}

/// `F.conv2d(x, weight, bias, stride, padding, dilation, groups)`: `x` `[N, C, H, W]`,
/// `weight` `[O, C/groups, kh, kw]`, `bias` `[O]` → `[N, O, Ho, Wo]`.
pub fn try_conv2d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    o: Conv2dOptions,
) -> Result<Tensor> {
    const OP: &str = "conv2d";
    same_kind(OP, x, weight)?;
    if x.rank() != 4 || weight.rank() != 4 {
        return Err(Error::mismatch(
            OP,
            x.shape(),
            weight.shape(),
            "input [N, C, H, W] and weight [O, C/groups, kh, kw]",
        ));
    }
    let (n, c, h, w) = (x.dims()[0], x.dims()[1], x.dims()[2], x.dims()[3]);
    let (oc, cg, kh, kw) = (
        weight.dims()[0],
        weight.dims()[1],
        weight.dims()[2],
        weight.dims()[3],
    );
    let zero = o.stride.0 == 0 || o.stride.1 == 0 || o.dilation.0 == 0 || o.dilation.1 == 0;
    if o.groups == 0 || zero || kh == 0 || kw == 0 {
        return Err(Error::invalid(
            OP,
            format!("stride, dilation, kernel and groups must be positive: {o:?}"),
        ));
    }
    if c % o.groups != 0 || oc % o.groups != 0 || cg != c / o.groups {
        return Err(Error::mismatch(
            OP,
            x.shape(),
            weight.shape(),
            format!("with groups = {}, the input's {c} channels and the weight's {oc} outputs must divide by it, and the weight needs C/groups = {} input channels", o.groups, c / o.groups.max(1)),
        ));
    }
    let geo = ConvGeometry {
        n,
        c,
        h,
        w,
        o: oc,
        kh,
        kw,
        stride: o.stride,
        padding: o.padding,
        dilation: o.dilation,
        groups: o.groups,
    };
    if geo.out_hw().is_none() {
        return Err(Error::mismatch(
            OP,
            x.shape(),
            weight.shape(),
            format!("the kernel (dilated) is larger than the padded input ({o:?})"),
        ));
    }
    if let Some(b) = bias {
        same_kind(OP, x, b)?;
        if b.dims() != [oc] {
            return Err(Error::mismatch(
                OP,
                weight.shape(),
                b.shape(),
                format!("bias must be [{oc}]"),
            ));
        }
    }
    let mut inputs = vec![x, weight];
    inputs.extend(bias);
    apply(
        Conv2dOp {
            geo,
            has_bias: bias.is_some(),
        },
        &inputs,
    )
}

/// `F.conv1d`: `x` `[N, C, L]`, `weight` `[O, C/groups, k]` → `[N, O, Lo]`, as a 2-D
/// convolution over a height of 1.
pub fn try_conv1d(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    dilation: usize,
    groups: usize,
) -> Result<Tensor> {
    if x.rank() != 3 || weight.rank() != 3 {
        return Err(Error::mismatch(
            "conv1d",
            x.shape(),
            weight.shape(),
            "input [N, C, L] and weight [O, C/groups, k]",
        ));
    }
    let x4 = x.try_unsqueeze(2)?;
    let w4 = weight.try_unsqueeze(2)?;
    let o = Conv2dOptions {
        stride: (1, stride),
        padding: (0, padding),
        dilation: (1, dilation),
        groups,
    };
    try_conv2d(&x4, &w4, bias, o)?.try_squeeze(2)
}
