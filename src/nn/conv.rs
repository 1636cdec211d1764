//! Convolutions (`Conv1d`, `Conv2d`) and pooling (`MaxPool2d`, `AvgPool2d`, global average
//! pooling) with PyTorch's arguments, layouts (`NCHW`; `weight` `[O, C/groups, kh, kw]`) and
//! output sizes. Convolution and pooling are fused ops; their loops are in
//! `backend::cpu::{conv, pooling}`, their device kernels in `cubegrad_ops::{conv, pool}`.

use super::{visit_named, visit_named_mut, Module};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::conv::{self as kernel, ConvGeometry};
use crate::backend::cpu::pooling::{self, PoolGeometry};
use crate::backend::cube::ops as cube;
use crate::error::{Error, OrPanic, Result};
use crate::ops::{from_float, same_kind, with_float};
use crate::tensor::{Float, Shape, Tensor};

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

fn fslice<T: Float>(t: &Tensor) -> Result<std::borrow::Cow<'_, [T]>> {
    t.float_slice::<T>("conv2d")
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

    /// Saves `x` and `w`: the backward recomputes the patch matrix from `x` (one sample at a
    /// time) instead of keeping it, which would be `kh·kw` times the input's size.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (x, w) = (inputs[0].try_contiguous()?, inputs[1].try_contiguous()?);
        let g = &self.geo;
        let (ho, wo) = g.out_hw().expect("checked before");
        if x.cube().is_some() {
            let y = self.forward_on_device(&x, &w, inputs.get(2).copied())?;
            return Ok(Forward::new(y, vec![x, w]));
        }
        let y = with_float!("conv2d", x.dtype(), |T| {
            let bias = if self.has_bias {
                Some(fslice::<T>(inputs[2])?)
            } else {
                None
            };
            let y = kernel::forward(&fslice::<T>(&x)?, &fslice::<T>(&w)?, bias.as_deref(), g);
            Ok(from_float(y, [g.n, g.o, ho, wo].into()))
        })?;
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
        if x.cube().is_some() {
            return self.backward_on_device(x, w, &gy, needs[0]);
        }
        let (dx, dw, db) = with_float!("conv2d", x.dtype(), |T| {
            let (dx, dw, db) = kernel::backward(
                &fslice::<T>(x)?,
                &fslice::<T>(w)?,
                &fslice::<T>(&gy)?,
                &self.geo,
                needs[0],
            );
            Ok((
                needs[0].then(|| from_float(dx, x.shape().clone())),
                from_float(dw, w.shape().clone()),
                from_float(db, [self.geo.o].into()),
            ))
        })?;
        let mut out = vec![dx, Some(dw)];
        if self.has_bias {
            out.push(Some(db));
        }
        Ok(out)
    }
}

/// On a CubeCL device the same im2col + matmul: the patch kernel, then the device matmul of
/// the weights `[G, O/G, K]` with the patches `[N, G, K, L]`. The backward recomputes the
/// patches (as on the CPU, rather than keep kh·kw copies of the input), and `col2im` gathers
/// the patch gradients back into the input.
impl Conv2dOp {
    fn shape(&self) -> cubegrad_ops::conv::ConvShape {
        let g = &self.geo;
        let (ho, wo) = g.out_hw().expect("checked before");
        cubegrad_ops::conv::ConvShape {
            n: g.n,
            c: g.c,
            h: g.h,
            w: g.w,
            groups: g.groups,
            kh: g.kh,
            kw: g.kw,
            stride: g.stride,
            padding: g.padding,
            dilation: g.dilation,
            ho,
            wo,
        }
    }

    /// `w` as `[G, O/G, K]`.
    fn grouped_weight(&self, w: &Tensor) -> Result<Tensor> {
        let g = &self.geo;
        w.try_reshape(&[g.groups, g.o / g.groups, g.c / g.groups * g.kh * g.kw])
    }

    fn forward_on_device(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        let s = self.shape();
        let cols = cube::im2col(x, &s)?;
        let y = self
            .grouped_weight(w)?
            .try_matmul(&cols)?
            .try_reshape(&[s.n, self.geo.o, s.ho, s.wo])?;
        match b {
            Some(b) => y.try_add(&b.try_reshape(&[1, self.geo.o, 1, 1])?),
            None => Ok(y),
        }
    }

    /// `dW = Σ_n gy·colsᵀ`, `db = Σ gy` over samples and positions, `dcols = Wᵀ·gy`.
    fn backward_on_device(
        &self,
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        need_x: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let (s, g) = (self.shape(), &self.geo);
        let gy = gy.try_reshape(&[s.n, g.groups, g.o / g.groups, s.ho * s.wo])?;
        let cols = cube::im2col(x, &s)?;
        let dw = gy
            .try_matmul(&cols.try_transpose(-2, -1)?)?
            .try_sum_axes(&[0], false)?
            .try_reshape(w.dims())?;
        let dx = if need_x {
            let dcols = self
                .grouped_weight(w)?
                .try_transpose(-2, -1)?
                .try_matmul(&gy)?;
            Some(cube::col2im(&dcols, &s)?)
        } else {
            None
        };
        let mut out = vec![dx, Some(dw)];
        if self.has_bias {
            let db = gy
                .try_reshape(&[s.n, g.o, s.ho * s.wo])?
                .try_sum_axes(&[0, 2], false)?;
            out.push(Some(db));
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

/// PyTorch's default initialisation of a convolution or linear layer: weight and bias
/// uniform in ±1/√fan_in.
fn default_init(shape: &[usize], fan_in: usize, bias: bool) -> (Tensor, Option<Tensor>) {
    let bound = 1.0 / (fan_in as f64).sqrt();
    let w = Tensor::rand_uniform(shape, -bound, bound).with_grad();
    let b = bias.then(|| Tensor::rand_uniform([shape[0]], -bound, bound).with_grad());
    (w, b)
}

pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// `nn.Conv2d(in, out, kernel_size)` with stride 1, no padding; set `options` for more.
    #[track_caller]
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: (usize, usize),
        options: Conv2dOptions,
        bias: bool,
    ) -> Self {
        assert!(
            options.groups > 0
                && in_channels % options.groups == 0
                && out_channels % options.groups == 0,
            "Conv2d: channels {in_channels} → {out_channels} must divide by groups {}",
            options.groups
        );
        let cg = in_channels / options.groups;
        let (weight, bias) = default_init(
            &[out_channels, cg, kernel.0, kernel.1],
            cg * kernel.0 * kernel.1,
            bias,
        );
        Conv2d {
            weight,
            bias,
            options,
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        try_conv2d(x, &self.weight, self.bias.as_ref(), self.options)
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

pub struct Conv1d {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Conv1d {
    #[track_caller]
    pub fn new(in_channels: usize, out_channels: usize, kernel: usize, bias: bool) -> Self {
        let (weight, bias) = default_init(
            &[out_channels, in_channels, kernel],
            in_channels * kernel,
            bias,
        );
        Conv1d {
            weight,
            bias,
            stride: 1,
            padding: 0,
            dilation: 1,
            groups: 1,
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        try_conv1d(
            x,
            &self.weight,
            self.bias.as_ref(),
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

impl Module for Conv2d {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_named(
            prefix,
            &[("weight", Some(&self.weight)), ("bias", self.bias.as_ref())],
            f,
        );
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_named_mut(
            prefix,
            [
                ("weight", Some(&mut self.weight)),
                ("bias", self.bias.as_mut()),
            ],
            f,
        );
    }
}

impl Module for Conv1d {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        visit_named(
            prefix,
            &[("weight", Some(&self.weight)), ("bias", self.bias.as_ref())],
            f,
        );
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        visit_named_mut(
            prefix,
            [
                ("weight", Some(&mut self.weight)),
                ("bias", self.bias.as_mut()),
            ],
            f,
        );
    }
}

/// Max or average pooling of `[N, C, H, W]` over windows.
#[derive(Clone, Copy, Debug, PartialEq)]
enum PoolKind {
    Max,
    Avg { count_include_pad: bool },
}

struct Pool2dOp {
    geo: PoolGeometry,
    planes: usize,
    kind: PoolKind,
    /// Max pooling: the flat in-plane index of each output's maximum, set by forward.
    argmax: std::cell::RefCell<Vec<usize>>,
}

impl Op for Pool2dOp {
    fn name(&self) -> &'static str {
        match self.kind {
            PoolKind::Max => "max_pool2d",
            PoolKind::Avg { .. } => "avg_pool2d",
        }
    }
    /// Saves nothing but, for max pooling, where each maximum was (kept in the op).
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0].try_contiguous()?;
        let (ho, wo) = self.geo.out_hw().expect("checked before");
        let mut shape = x.dims().to_vec();
        let r = shape.len();
        shape[r - 2] = ho;
        shape[r - 1] = wo;
        if x.cube().is_some() {
            let (max, include_pad) = self.device_kind();
            let s = self.shape();
            let (y, idx) = cube::pool2d(&x, &s, max, include_pad, Shape::new(&shape))?;
            let mut saved = vec![x];
            saved.extend(idx);
            return Ok(Forward::new(y, saved));
        }
        let y = with_float!("pool2d", x.dtype(), |T| {
            let xs = x.float_slice::<T>("pool2d")?;
            let y = match self.kind {
                PoolKind::Max => {
                    let (y, idx) = pooling::max_forward(&xs, self.planes, &self.geo);
                    *self.argmax.borrow_mut() = idx;
                    y
                }
                PoolKind::Avg { count_include_pad } => {
                    pooling::avg_forward(&xs, self.planes, &self.geo, count_include_pad)
                }
            };
            Ok(from_float(y, Shape::new(&shape)))
        })?;
        Ok(Forward::new(y, vec![x]))
    }
    fn backward(&self, saved: &[Tensor], gy: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let x = &saved[0];
        let gy = gy.try_contiguous()?;
        if x.cube().is_some() {
            let (_, include_pad) = self.device_kind();
            let s = self.shape();
            let dx = cube::pool2d_backward(&gy, saved.get(1), &s, include_pad, x.shape().clone())?;
            return Ok(vec![Some(dx)]);
        }
        let dx = with_float!("pool2d", x.dtype(), |T| {
            let gs = gy.float_slice::<T>("pool2d")?;
            let dx = match self.kind {
                PoolKind::Max => pooling::max_backward(
                    &gs,
                    &self.argmax.borrow(),
                    self.planes,
                    self.geo.h,
                    self.geo.w,
                ),
                PoolKind::Avg { count_include_pad } => {
                    pooling::avg_backward(&gs, self.planes, &self.geo, count_include_pad)
                }
            };
            Ok(from_float(dx, x.shape().clone()))
        })?;
        Ok(vec![Some(dx)])
    }
}

/// On a CubeCL device: one kernel per direction; max pooling saves its indices as an i64
/// tensor (on the CPU they stay in the op).
impl Pool2dOp {
    fn device_kind(&self) -> (bool, bool) {
        match self.kind {
            PoolKind::Max => (true, false),
            PoolKind::Avg { count_include_pad } => (false, count_include_pad),
        }
    }
    fn shape(&self) -> cubegrad_ops::pool::PoolShape {
        let g = &self.geo;
        let (ho, wo) = g.out_hw().expect("checked before");
        cubegrad_ops::pool::PoolShape {
            planes: self.planes,
            h: g.h,
            w: g.w,
            kernel: g.kernel,
            stride: g.stride,
            padding: g.padding,
            ho,
            wo,
        }
    }
}

fn pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
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
    let r = x.rank();
    let geo = PoolGeometry {
        h: x.dims()[r - 2],
        w: x.dims()[r - 1],
        kernel,
        stride,
        padding,
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
        argmax: Default::default(),
    };
    apply(op, &[x])
}

/// `F.max_pool2d(x, kernel, stride, padding)` over the last two dims.
pub fn try_max_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
) -> Result<Tensor> {
    pool2d(x, kernel, stride, padding, PoolKind::Max)
}

/// `F.avg_pool2d(x, kernel, stride, padding, count_include_pad)` over the last two dims.
pub fn try_avg_pool2d(
    x: &Tensor,
    kernel: (usize, usize),
    stride: (usize, usize),
    padding: (usize, usize),
    count_include_pad: bool,
) -> Result<Tensor> {
    pool2d(
        x,
        kernel,
        stride,
        padding,
        PoolKind::Avg { count_include_pad },
    )
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

/// `nn.MaxPool2d(kernel_size, stride = kernel_size, padding)`.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl MaxPool2d {
    pub fn new(kernel: usize) -> Self {
        MaxPool2d {
            kernel: (kernel, kernel),
            stride: (kernel, kernel),
            padding: (0, 0),
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        try_max_pool2d(x, self.kernel, self.stride, self.padding)
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

/// `nn.AvgPool2d(kernel_size, stride = kernel_size, padding, count_include_pad = True)`.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub count_include_pad: bool,
}

impl AvgPool2d {
    pub fn new(kernel: usize) -> Self {
        AvgPool2d {
            kernel: (kernel, kernel),
            stride: (kernel, kernel),
            padding: (0, 0),
            count_include_pad: true,
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        try_avg_pool2d(
            x,
            self.kernel,
            self.stride,
            self.padding,
            self.count_include_pad,
        )
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}
