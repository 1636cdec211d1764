//! Element-wise unary ops. For each: the forward `f(x)` and its derivative, written from
//! whichever of `x` or `y = f(x)` is cheaper (exp, tanh, sigmoid and sqrt save their output;
//! the others save their input; neg and affine save nothing).

use super::{from_float, with_float};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::elementwise::{map, zip_same};
use crate::backend::cube::ops as cube;
use crate::error::{OrPanic, Result};
use crate::tensor::{Float, Tensor};
use cubegrad_ops::elementwise::UnaryOp;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryKind {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Relu,
    /// GELU with the tanh approximation (GPT-2, BERT).
    GeluTanh,
    /// Exact GELU, `x·Φ(x)`, as `torch.nn.GELU()` by default.
    GeluErf,
    Powf(f64),
    /// `scale·x + shift`: scalar arithmetic without allocating a scalar tensor.
    Affine {
        scale: f64,
        shift: f64,
    },
}

impl UnaryKind {
    pub fn name(self) -> &'static str {
        match self {
            UnaryKind::Neg => "neg",
            UnaryKind::Exp => "exp",
            UnaryKind::Log => "log",
            UnaryKind::Sqrt => "sqrt",
            UnaryKind::Abs => "abs",
            UnaryKind::Tanh => "tanh",
            UnaryKind::Sigmoid => "sigmoid",
            UnaryKind::Relu => "relu",
            UnaryKind::GeluTanh => "gelu_tanh",
            UnaryKind::GeluErf => "gelu",
            UnaryKind::Powf(_) => "powf",
            UnaryKind::Affine { .. } => "affine",
        }
    }
    /// Whether the derivative is written from the output (`true`) or the input.
    fn saves_output(self) -> bool {
        matches!(
            self,
            UnaryKind::Exp | UnaryKind::Sqrt | UnaryKind::Tanh | UnaryKind::Sigmoid
        )
    }
    /// The same operation as a CubeCL kernel.
    fn kernel(self) -> UnaryOp {
        match self {
            UnaryKind::Neg => UnaryOp::Neg,
            UnaryKind::Exp => UnaryOp::Exp,
            UnaryKind::Log => UnaryOp::Log,
            UnaryKind::Sqrt => UnaryOp::Sqrt,
            UnaryKind::Abs => UnaryOp::Abs,
            UnaryKind::Tanh => UnaryOp::Tanh,
            UnaryKind::Sigmoid => UnaryOp::Sigmoid,
            UnaryKind::Relu => UnaryOp::Relu,
            UnaryKind::GeluTanh => UnaryOp::GeluTanh,
            UnaryKind::GeluErf => UnaryOp::GeluErf,
            UnaryKind::Powf(p) => UnaryOp::Powf(p),
            UnaryKind::Affine { scale, shift } => UnaryOp::Affine { scale, shift },
        }
    }
    fn saves_nothing(self) -> bool {
        matches!(self, UnaryKind::Neg | UnaryKind::Affine { .. })
    }
}

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

fn forward_slice<T: Float>(kind: UnaryKind, x: &[T]) -> Vec<T> {
    let c = T::from_f64;
    let (zero, one, half) = (T::zero(), T::one(), c(0.5));
    match kind {
        UnaryKind::Neg => map(x, move |v: T| -v),
        UnaryKind::Exp => map(x, move |v: T| v.fast_exp()),
        UnaryKind::Log => map(x, move |v: T| v.ln()),
        UnaryKind::Sqrt => map(x, move |v: T| v.sqrt()),
        UnaryKind::Abs => map(x, move |v: T| v.abs()),
        UnaryKind::Tanh => map(x, move |v: T| v.fast_tanh()),
        UnaryKind::Sigmoid => map(x, move |v: T| one / (one + (-v).fast_exp())),
        // `v < 0 ? 0 : v` lets NaN through, as PyTorch does.
        UnaryKind::Relu => map(x, move |v: T| if v < zero { zero } else { v }),
        UnaryKind::GeluTanh => {
            let (k, a) = (c(SQRT_2_OVER_PI), c(GELU_C));
            map(x, move |v: T| {
                half * v * (one + (k * (v + a * v * v * v)).fast_tanh())
            })
        }
        UnaryKind::GeluErf => {
            let r = c(std::f64::consts::FRAC_1_SQRT_2);
            map(x, move |v: T| half * v * (one + (v * r).erf()))
        }
        UnaryKind::Powf(p) => {
            let p = c(p);
            map(x, move |v: T| v.powf(p))
        }
        UnaryKind::Affine { scale, shift } => {
            let (s, b) = (c(scale), c(shift));
            map(x, move |v: T| v * s + b)
        }
    }
}

/// `g · f'(·)`, where `s` is the saved input or output (see `saves_output`).
fn backward_slice<T: Float>(kind: UnaryKind, g: &[T], s: &[T]) -> Vec<T> {
    let c = T::from_f64;
    let (zero, one, half) = (T::zero(), T::one(), c(0.5));
    match kind {
        UnaryKind::Neg => map(g, move |g: T| -g),
        UnaryKind::Affine { scale, .. } => {
            let k = c(scale);
            map(g, move |g: T| g * k)
        }
        UnaryKind::Exp => zip_same(g, s, move |g: T, y: T| g * y),
        UnaryKind::Sqrt => zip_same(g, s, move |g: T, y: T| g * half / y),
        UnaryKind::Tanh => zip_same(g, s, move |g: T, y: T| g * (one - y * y)),
        UnaryKind::Sigmoid => zip_same(g, s, move |g: T, y: T| g * y * (one - y)),
        UnaryKind::Log => zip_same(g, s, move |g: T, x: T| g / x),
        // The subgradient at 0 is 0, as in PyTorch.
        UnaryKind::Abs => zip_same(g, s, move |g: T, x: T| {
            if x > zero {
                g
            } else if x < zero {
                -g
            } else {
                zero
            }
        }),
        UnaryKind::Relu => zip_same(g, s, move |g: T, x: T| if x > zero { g } else { zero }),
        UnaryKind::GeluTanh => {
            let (k, a) = (c(SQRT_2_OVER_PI), c(GELU_C));
            zip_same(g, s, move |g: T, x: T| {
                let t = (k * (x + a * x * x * x)).fast_tanh();
                let dinner = k * (one + c(3.0) * a * x * x);
                g * (half * (one + t) + half * x * (one - t * t) * dinner)
            })
        }
        UnaryKind::GeluErf => {
            let (r, q) = (c(std::f64::consts::FRAC_1_SQRT_2), c(FRAC_1_SQRT_2PI));
            zip_same(g, s, move |g: T, x: T| {
                g * (half * (one + (x * r).erf()) + x * q * (-half * x * x).exp())
            })
        }
        UnaryKind::Powf(p) => {
            let (p, pm1) = (c(p), c(p - 1.0));
            zip_same(g, s, move |g: T, x: T| g * p * x.powf(pm1))
        }
    }
}

struct Unary(UnaryKind);

impl Op for Unary {
    fn name(&self) -> &'static str {
        self.0.name()
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let out = if x.cube().is_some() {
            cube::unary(self.0.kernel(), x)?
        } else {
            with_float!(self.name(), x.dtype(), |T| {
                Ok(from_float(
                    forward_slice(self.0, &x.float_slice::<T>(self.name())?),
                    x.shape().clone(),
                ))
            })?
        };
        let saved = if self.0.saves_nothing() {
            vec![]
        } else if self.0.saves_output() {
            vec![out.clone()]
        } else {
            vec![x.clone()]
        };
        Ok(Forward::new(out, saved))
    }
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        _needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let name = self.name();
        if g.cube().is_some() {
            // Neg and affine saved nothing; their kernels never read `s`.
            let s = saved.first().unwrap_or(g);
            return Ok(vec![Some(cube::unary_backward(self.0.kernel(), g, s)?)]);
        }
        let gx = with_float!(name, g.dtype(), |T| {
            let gs = g.float_slice::<T>(name)?;
            let v = match saved.first() {
                Some(s) => backward_slice(self.0, &gs, &s.float_slice::<T>(name)?),
                None => backward_slice(self.0, &gs, &[]),
            };
            Ok(from_float(v, g.shape().clone()))
        })?;
        Ok(vec![Some(gx)])
    }
}

impl Tensor {
    /// Applies an element-wise function by kind (the methods below are shorthands).
    pub fn try_unary(&self, kind: UnaryKind) -> Result<Tensor> {
        apply(Unary(kind), &[self])
    }
    #[track_caller]
    pub fn unary(&self, kind: UnaryKind) -> Tensor {
        self.try_unary(kind).or_panic()
    }
    #[track_caller]
    pub fn neg(&self) -> Tensor {
        self.unary(UnaryKind::Neg)
    }
    #[track_caller]
    pub fn exp(&self) -> Tensor {
        self.unary(UnaryKind::Exp)
    }
    /// Natural logarithm.
    #[track_caller]
    pub fn log(&self) -> Tensor {
        self.unary(UnaryKind::Log)
    }
    #[track_caller]
    pub fn sqrt(&self) -> Tensor {
        self.unary(UnaryKind::Sqrt)
    }
    #[track_caller]
    pub fn abs(&self) -> Tensor {
        self.unary(UnaryKind::Abs)
    }
    #[track_caller]
    pub fn tanh(&self) -> Tensor {
        self.unary(UnaryKind::Tanh)
    }
    #[track_caller]
    pub fn sigmoid(&self) -> Tensor {
        self.unary(UnaryKind::Sigmoid)
    }
    #[track_caller]
    pub fn relu(&self) -> Tensor {
        self.unary(UnaryKind::Relu)
    }
    /// Exact GELU, `x·Φ(x)` (PyTorch's default `approximate='none'`).
    #[track_caller]
    pub fn gelu(&self) -> Tensor {
        self.unary(UnaryKind::GeluErf)
    }
    /// GELU with the tanh approximation (`approximate='tanh'`).
    #[track_caller]
    pub fn gelu_tanh(&self) -> Tensor {
        self.unary(UnaryKind::GeluTanh)
    }
    /// `x^p` for a real exponent.
    #[track_caller]
    pub fn powf(&self, p: f64) -> Tensor {
        self.unary(UnaryKind::Powf(p))
    }
    #[track_caller]
    pub fn square(&self) -> Tensor {
        self.unary(UnaryKind::Powf(2.0))
    }
    /// `scale·x + shift`.
    #[track_caller]
    pub fn affine(&self, scale: f64, shift: f64) -> Tensor {
        self.unary(UnaryKind::Affine { scale, shift })
    }
    #[track_caller]
    pub fn mul_scalar(&self, s: f64) -> Tensor {
        self.affine(s, 0.0)
    }
    #[track_caller]
    pub fn add_scalar(&self, s: f64) -> Tensor {
        self.affine(1.0, s)
    }
}
