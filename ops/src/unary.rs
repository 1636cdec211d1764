//! Element-wise functions of one tensor, forward and backward: one `#[cube]` trait, one
//! implementation per function, and one shared launcher for each direction (Burn's pattern).
//! A function's parameters (`powf`'s exponent, `affine`'s scale and shift) are runtime
//! scalars `p` and `q`, so one compiled kernel serves every value.
//!
//! Which value a backward reads, the forward's input or its output, is decided once, in
//! cubegrad's table of unary functions (`src/backend/unary.rs`), which names these types;
//! the backward kernels just receive it as `s`.

use crate::common::{grid, scalar};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// One element-wise function.
#[cube]
pub trait UnaryKernel: 'static + Send + Sync {
    /// `f(x)`.
    fn forward<F: Float>(x: F, p: F, q: F) -> F;
    /// `g · f'(·)`, written from `s`: the forward's input or its output.
    fn backward<F: Float>(g: F, s: F, p: F) -> F;
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;
const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;

/// `−x`.
pub struct Neg;
#[cube]
impl UnaryKernel for Neg {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        -x
    }
    fn backward<F: Float>(g: F, _s: F, _p: F) -> F {
        -g
    }
}

/// `eˣ`; its derivative is its output.
pub struct Exp;
#[cube]
impl UnaryKernel for Exp {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        F::exp(x)
    }
    fn backward<F: Float>(g: F, y: F, _p: F) -> F {
        g * y
    }
}

/// `ln x`.
pub struct Log;
#[cube]
impl UnaryKernel for Log {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        F::ln(x)
    }
    fn backward<F: Float>(g: F, x: F, _p: F) -> F {
        g / x
    }
}

/// `√x`, differentiated from its output.
pub struct Sqrt;
#[cube]
impl UnaryKernel for Sqrt {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        F::sqrt(x)
    }
    fn backward<F: Float>(g: F, y: F, _p: F) -> F {
        g * F::new(0.5) / y
    }
}

/// `|x|`; the subgradient at 0 is 0, as in PyTorch.
pub struct Abs;
#[cube]
impl UnaryKernel for Abs {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        F::abs(x)
    }
    fn backward<F: Float>(g: F, x: F, _p: F) -> F {
        let mut r = F::new(0.0);
        if x > F::new(0.0) {
            r = g;
        }
        if x < F::new(0.0) {
            r = -g;
        }
        r
    }
}

/// `tanh x`, differentiated from its output.
pub struct Tanh;
#[cube]
impl UnaryKernel for Tanh {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        F::tanh(x)
    }
    fn backward<F: Float>(g: F, y: F, _p: F) -> F {
        g * (F::new(1.0) - y * y)
    }
}

/// `1 / (1 + e⁻ˣ)`, differentiated from its output.
pub struct Sigmoid;
#[cube]
impl UnaryKernel for Sigmoid {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        F::new(1.0) / (F::new(1.0) + F::exp(-x))
    }
    fn backward<F: Float>(g: F, y: F, _p: F) -> F {
        g * y * (F::new(1.0) - y)
    }
}

/// `max(x, 0)`; `x < 0 ? 0 : x` lets NaN through, as PyTorch and the CPU do.
pub struct Relu;
#[cube]
impl UnaryKernel for Relu {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        let mut r = x;
        if x < F::new(0.0) {
            r = F::new(0.0);
        }
        r
    }
    fn backward<F: Float>(g: F, x: F, _p: F) -> F {
        let mut r = F::new(0.0);
        if x > F::new(0.0) {
            r = g;
        }
        r
    }
}

/// GELU with the tanh approximation (GPT-2, BERT).
pub struct GeluTanh;
#[cube]
impl UnaryKernel for GeluTanh {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        let inner = F::new(SQRT_2_OVER_PI) * (x + F::new(GELU_C) * x * x * x);
        F::new(0.5) * x * (F::new(1.0) + F::tanh(inner))
    }
    fn backward<F: Float>(g: F, x: F, _p: F) -> F {
        let (one, half) = (F::new(1.0), F::new(0.5));
        let k = F::new(SQRT_2_OVER_PI);
        let a = F::new(GELU_C);
        let t = F::tanh(k * (x + a * x * x * x));
        let dinner = k * (one + F::new(3.0) * a * x * x);
        g * (half * (one + t) + half * x * (one - t * t) * dinner)
    }
}

/// Exact GELU, `x·Φ(x)`.
pub struct GeluErf;
#[cube]
impl UnaryKernel for GeluErf {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        F::new(0.5) * x * (F::new(1.0) + F::erf(x * F::new(FRAC_1_SQRT_2)))
    }
    fn backward<F: Float>(g: F, x: F, _p: F) -> F {
        let half = F::new(0.5);
        let cdf = half * (F::new(1.0) + F::erf(x * F::new(FRAC_1_SQRT_2)));
        let pdf = F::new(FRAC_1_SQRT_2PI) * F::exp(-half * x * x);
        g * (cdf + x * pdf)
    }
}

/// `xᵖ` for a real exponent `p`.
pub struct Powf;
#[cube]
impl UnaryKernel for Powf {
    fn forward<F: Float>(x: F, p: F, _q: F) -> F {
        F::powf(x, p)
    }
    fn backward<F: Float>(g: F, x: F, p: F) -> F {
        g * p * F::powf(x, p - F::new(1.0))
    }
}

/// `p·x + q`: scalar arithmetic without a scalar tensor.
pub struct Affine;
#[cube]
impl UnaryKernel for Affine {
    fn forward<F: Float>(x: F, p: F, q: F) -> F {
        x * p + q
    }
    fn backward<F: Float>(g: F, _s: F, p: F) -> F {
        g * p
    }
}

/// `ln(1 + eˣ)`, computed as `max(x, 0) + ln(1 + e^−|x|)` so that a large `x` does not
/// overflow; its derivative is `σ(x)`.
pub struct Softplus;
#[cube]
impl UnaryKernel for Softplus {
    fn forward<F: Float>(x: F, _p: F, _q: F) -> F {
        let mut m = x;
        if x < F::new(0.0) {
            m = F::new(0.0);
        }
        m + F::ln(F::new(1.0) + F::exp(-F::abs(x)))
    }
    fn backward<F: Float>(g: F, x: F, _p: F) -> F {
        g / (F::new(1.0) + F::exp(-x))
    }
}

// ANCHOR: unary_kernel
/// `out[i] = K(x[i])`: one unit per element.
#[cube(launch)]
fn forward_kernel<F: Float + CubeElement, K: UnaryKernel>(
    x: &Array<F>,
    out: &mut Array<F>,
    p: F,
    q: F,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        out[i] = K::forward::<F>(x[i], p, q);
    }
}
// ANCHOR_END: unary_kernel

#[cube(launch)]
fn backward_kernel<F: Float + CubeElement, K: UnaryKernel>(
    g: &Array<F>,
    s: &Array<F>,
    out: &mut Array<F>,
    p: F,
) {
    let i = ABSOLUTE_POS;
    if i < out.len() {
        out[i] = K::backward::<F>(g[i], s[i], p);
    }
}

/// `K(x)` for `n` contiguous elements, with the function's parameters `(p, q)`.
pub fn forward<R: Runtime, F: Float + CubeElement, K: UnaryKernel>(
    client: &ComputeClient<R>,
    x: &Handle,
    n: usize,
    (p, q): (f64, f64),
) -> Handle {
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    // SAFETY: both handles hold n elements of F (one when n is 0).
    unsafe {
        forward_kernel::launch::<F, K, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), n.max(1)),
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
            scalar::<F>(p),
            scalar::<F>(q),
        );
    }
    out
}

/// `g · K'` for `n` contiguous elements, `s` being what the backward reads. A function whose
/// backward reads nothing gets `g` as `s`, which its kernel ignores.
pub fn backward<R: Runtime, F: Float + CubeElement, K: UnaryKernel>(
    client: &ComputeClient<R>,
    g: &Handle,
    s: &Handle,
    n: usize,
    p: f64,
) -> Handle {
    let out = client.empty(n.max(1) * std::mem::size_of::<F>());
    let (count, dim) = grid(n);
    // SAFETY: the three handles hold n elements of F (one when n is 0).
    unsafe {
        backward_kernel::launch::<F, K, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(g.clone(), n.max(1)),
            ArrayArg::from_raw_parts(s.clone(), n.max(1)),
            ArrayArg::from_raw_parts(out.clone(), n.max(1)),
            scalar::<F>(p),
        );
    }
    out
}
