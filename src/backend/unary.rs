//! The table of element-wise functions of one tensor: for each, its name, what its
//! derivative is written from (and so what the forward saves), its formulas on the host, and
//! its CubeCL kernel. Every reader takes it from here: the op (`ops/unary.rs`) asks what to
//! save, the CPU backend runs the host formulas over slices, the CubeCL backend launches the
//! kernel type, which implements `cubegrad_ops::unary::UnaryKernel` with the same formulas.
//!
//! Adding a function is one row here, its kernel in `ops/src/unary.rs`, a method in
//! `src/ops/unary.rs` and an entry in the op registry (`src/testing/registry.rs`), which then
//! checks it against an f64 reference, by finite differences, and on every device.

use super::cpu::float::Float;
use super::cpu::loops::{filled_vec, CHUNK};
use super::cpu::simd::widest;
use cubegrad_ops::unary::{self as kernel, UnaryKernel};

/// An element-wise function. Its parameters travel with it and reach the kernels as two
/// runtime scalars `(p, q)` (see [`Unary::params`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    Exp,
    /// The natural logarithm.
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
    /// `ln(1 + eˣ)`, as `torch.nn.functional.softplus` (β = 1).
    Softplus,
    /// `scale·x + shift`: scalar arithmetic without allocating a scalar tensor.
    Affine {
        scale: f64,
        shift: f64,
    },
}

/// What a function's derivative is written from: whichever of `x` or `y = f(x)` is cheaper
/// (exp, tanh, sigmoid and sqrt use their output), or nothing at all (neg, affine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    Nothing,
    Input,
    Output,
}

impl Unary {
    /// The runtime scalars `(p, q)` the formulas and kernels read.
    pub fn params(self) -> (f64, f64) {
        match self {
            Unary::Powf(p) => (p, 0.0),
            Unary::Affine { scale, shift } => (scale, shift),
            _ => (0.0, 0.0),
        }
    }
}

/// Receives a function's kernel type: the CubeCL backend launches it. (Without a runtime
/// feature nothing launches kernels, so nothing visits.)
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) trait KernelVisitor {
    type Output;
    fn visit<K: UnaryKernel>(self, params: (f64, f64)) -> Self::Output;
}

/// A constant in the host formulas' float type.
fn c<T: Float>(x: f64) -> T {
    T::from_f64(x)
}

/// A function's host formulas, for the loops: one type per row of the table, whose methods
/// are always inlined, so that the loops compiled for the widest vectors contain them
/// (`cpu/simd.rs` says why a closure would not do).
pub(crate) trait HostFn {
    /// `f(x)` with the function's parameters `(p, q)`.
    fn forward<T: Float>(x: T, p: T, q: T) -> T;
    /// `g · f'` from the saved slice's element `s` (0 when nothing is saved).
    fn backward<T: Float>(g: T, s: T, p: T) -> T;
}

/// `F::forward` over a slice.
fn forward_loop<T: Float, F: HostFn>(x: &[T], p: T, q: T) -> Vec<T> {
    filled_vec(x.len(), CHUNK, |start, o| {
        widest!(for (o, &v) in o.iter_mut().zip(&x[start..]) {
            o.write(F::forward(v, p, q));
        })
    })
}

/// `F::backward` over the gradient and the saved slice; `s` is empty when the backward reads
/// nothing, and the formula then gets 0 for it.
fn backward_loop<T: Float, F: HostFn>(g: &[T], s: &[T], p: T) -> Vec<T> {
    if s.is_empty() {
        return filled_vec(g.len(), CHUNK, |start, o| {
            widest!(for (o, &v) in o.iter_mut().zip(&g[start..]) {
                o.write(F::backward(v, T::zero(), p));
            })
        });
    }
    filled_vec(g.len(), CHUNK, |start, o| {
        widest!(
            for ((o, &v), &w) in o.iter_mut().zip(&g[start..]).zip(&s[start..]) {
                o.write(F::backward(v, w, p));
            }
        )
    })
}

/// Generates, from the rows below, the methods every reader calls. Each row is
/// `pattern => name, reads, kernel type, |x, p, q| forward, |g, s, p| backward;`.
macro_rules! unary_table {
    ($( $pat:pat => $name:literal, $reads:ident, $kernel:ident,
        |$x:ident, $fp:pat_param, $fq:pat_param| $fwd:expr,
        |$g:ident, $s:pat_param, $bp:pat_param| $bwd:expr; )*) => {
        impl Unary {
            /// The function's name, as the tape and errors report it.
            pub fn name(self) -> &'static str {
                match self { $($pat => $name,)* }
            }
            /// What the backward reads, and so what the forward saves.
            pub fn reads(self) -> Reads {
                match self { $($pat => Reads::$reads,)* }
            }
            /// `f(x)` over a slice, on the CPU: one monomorphised loop per function, so that
            /// it vectorises.
            pub(crate) fn host_forward<T: Float>(self, x: &[T]) -> Vec<T> {
                let (p, q) = (c::<T>(self.params().0), c::<T>(self.params().1));
                match self {
                    $($pat => forward_loop::<T, host::$kernel>(x, p, q),)*
                }
            }
            /// `g · f'(s)` over slices, on the CPU.
            pub(crate) fn host_backward<T: Float>(self, g: &[T], s: &[T]) -> Vec<T> {
                let p = c::<T>(self.params().0);
                match self {
                    $($pat => backward_loop::<T, host::$kernel>(g, s, p),)*
                }
            }
            /// Hands the function's kernel type to `visitor`.
            #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
            pub(crate) fn with_kernel<V: KernelVisitor>(self, visitor: V) -> V::Output {
                match self { $($pat => visitor.visit::<kernel::$kernel>(self.params()),)* }
            }
        }

        /// The host types, one per row.
        mod host {
            $(pub struct $kernel;)*
        }

        $(impl HostFn for host::$kernel {
            #[inline(always)]
            fn forward<T: Float>($x: T, $fp: T, $fq: T) -> T {
                $fwd
            }
            #[inline(always)]
            fn backward<T: Float>($g: T, $s: T, $bp: T) -> T {
                $bwd
            }
        })*
    };
}

// ANCHOR: unary_table
unary_table! {
    Unary::Neg => "neg", Nothing, Neg,
        |x, _p, _q| -x,
        |g, _s, _p| -g;
    Unary::Exp => "exp", Output, Exp,
        |x, _p, _q| x.fast_exp(),
        |g, y, _p| g * y;
    Unary::Log => "log", Input, Log,
        |x, _p, _q| x.ln(),
        |g, x, _p| g / x;
    Unary::Sqrt => "sqrt", Output, Sqrt,
        |x, _p, _q| x.sqrt(),
        |g, y, _p| g * c(0.5) / y;
    // The subgradient at 0 is 0, as in PyTorch.
    Unary::Abs => "abs", Input, Abs,
        |x, _p, _q| x.abs(),
        |g, x, _p| if x > c(0.0) { g } else if x < c(0.0) { -g } else { c(0.0) };
    Unary::Tanh => "tanh", Output, Tanh,
        |x, _p, _q| x.fast_tanh(),
        |g, y, _p| g * (c::<T>(1.0) - y * y);
    Unary::Sigmoid => "sigmoid", Output, Sigmoid,
        |x, _p, _q| c::<T>(1.0) / (c::<T>(1.0) + (-x).fast_exp()),
        |g, y, _p| g * y * (c::<T>(1.0) - y);
    // `x < 0 ? 0 : x` lets NaN through, as PyTorch does.
    Unary::Relu => "relu", Input, Relu,
        |x, _p, _q| if x < c(0.0) { c(0.0) } else { x },
        |g, x, _p| if x > c(0.0) { g } else { c(0.0) };
    Unary::GeluTanh => "gelu_tanh", Input, GeluTanh,
        |x, _p, _q| gelu_tanh(x),
        |g, x, _p| g * gelu_tanh_grad(x);
    // x·Φ(x), with Φ through erfc (fastmath.rs): vectorised, and accurate in the left tail.
    Unary::GeluErf => "gelu", Input, GeluErf,
        |x, _p, _q| x * x.normal_cdf(),
        |g, x, _p| g * x.mul_add(c::<T>(FRAC_1_SQRT_2PI) * x.exp_neg_half_square(), x.normal_cdf());
    Unary::Powf(_) => "powf", Input, Powf,
        |x, p, _q| x.powf(p),
        |g, x, p| g * p * x.powf(p - c(1.0));
    Unary::Softplus => "softplus", Input, Softplus,
        |x, _p, _q| x.max(c(0.0)) + (c::<T>(1.0) + (-x.abs()).fast_exp()).ln(),
        |g, x, _p| g / (c::<T>(1.0) + (-x).fast_exp());
    Unary::Affine { .. } => "affine", Nothing, Affine,
        |x, scale, shift| x * scale + shift,
        |g, _s, scale| g * scale;
}
// ANCHOR_END: unary_table

const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_C: f64 = 0.044_715;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

#[inline(always)]
fn gelu_tanh<T: Float>(x: T) -> T {
    let inner = c::<T>(SQRT_2_OVER_PI) * (x + c::<T>(GELU_C) * x * x * x);
    c::<T>(0.5) * x * (c::<T>(1.0) + inner.fast_tanh())
}

#[inline(always)]
fn gelu_tanh_grad<T: Float>(x: T) -> T {
    let (k, a, one, half) = (
        c::<T>(SQRT_2_OVER_PI),
        c::<T>(GELU_C),
        c::<T>(1.0),
        c::<T>(0.5),
    );
    let t = (k * (x + a * x * x * x)).fast_tanh();
    let dinner = k * (one + c::<T>(3.0) * a * x * x);
    half * (one + t) + half * x * (one - t * t) * dinner
}
