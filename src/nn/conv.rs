//! Convolution and pooling layers (`Conv1d`, `Conv2d`, `MaxPool2d`, `AvgPool2d`) with
//! PyTorch's arguments, names and initialisation; the math is the fused ops of `ops::conv`
//! and `ops::pooling`.

use super::Module;
use crate::error::{OrPanic, Result};
use crate::ops::conv::{try_conv1d, try_conv2d, Conv2dOptions};
use crate::ops::pooling::{
    try_avg_pool2d_with, try_max_pool2d_with, AvgPool2dOptions, MaxPool2dOptions,
};
use crate::tensor::Tensor;

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
    crate::module_tensors! {
        param "weight" weight;
        param "bias" bias;
    }
}

impl Module for Conv1d {
    crate::module_tensors! {
        param "weight" weight;
        param "bias" bias;
    }
}

/// `nn.MaxPool2d(kernel_size, stride = kernel_size, padding, ceil_mode)`.
#[derive(Clone, Copy, Debug)]
pub struct MaxPool2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub ceil_mode: bool,
}

impl MaxPool2d {
    pub fn new(kernel: usize) -> Self {
        MaxPool2d {
            kernel: (kernel, kernel),
            stride: (kernel, kernel),
            padding: (0, 0),
            ceil_mode: false,
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let o = MaxPool2dOptions {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            ceil_mode: self.ceil_mode,
        };
        try_max_pool2d_with(x, o)
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

/// `nn.AvgPool2d(kernel_size, stride = kernel_size, padding, ceil_mode, count_include_pad =
/// True, divisor_override)`.
#[derive(Clone, Copy, Debug)]
pub struct AvgPool2d {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub ceil_mode: bool,
    pub count_include_pad: bool,
    pub divisor_override: Option<usize>,
}

impl AvgPool2d {
    pub fn new(kernel: usize) -> Self {
        AvgPool2d {
            kernel: (kernel, kernel),
            stride: (kernel, kernel),
            padding: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
        }
    }
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let o = AvgPool2dOptions {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            ceil_mode: self.ceil_mode,
            count_include_pad: self.count_include_pad,
            divisor_override: self.divisor_override,
        };
        try_avg_pool2d_with(x, o)
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

/// Pooling layers hold no tensors.
impl Module for MaxPool2d {
    crate::module_tensors! {}
}
impl Module for AvgPool2d {
    crate::module_tensors! {}
}
