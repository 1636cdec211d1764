//! Fused optimizer updates, one kernel per parameter tensor, in place: the same formulas as
//! the CPU's `backend::cpu::optim` (PyTorch's SGD and Adam/AdamW).

use crate::common::{grid, scalar};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// Adam/AdamW: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `p ← decay·p − step · m / (√v / bc2 + ε)`, where `g` already includes `wd·p` for Adam.
// ANCHOR: adam_kernel
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn adam_kernel<F: Float + CubeElement>(
    p: &mut Array<F>,
    g: &Array<F>,
    m: &mut Array<F>,
    v: &mut Array<F>,
    beta1: F,
    beta2: F,
    step_size: F,
    bc2_sqrt: F,
    eps: F,
    wd: F,
    decay: F,
) {
    let i = ABSOLUTE_POS;
    if i < p.len() {
        let grad = g[i] + wd * p[i];
        let pd = p[i] * decay;
        let mi = beta1 * m[i] + (F::new(1.0) - beta1) * grad;
        let vi = beta2 * v[i] + (F::new(1.0) - beta2) * grad * grad;
        m[i] = mi;
        v[i] = vi;
        p[i] = pd - step_size * mi / (F::sqrt(vi) / bc2_sqrt + eps);
    }
}
// ANCHOR_END: adam_kernel

/// SGD with optional momentum (`first` sets the buffer to the gradient, as PyTorch).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn sgd_kernel<F: Float + CubeElement>(
    p: &mut Array<F>,
    g: &Array<F>,
    buf: &mut Array<F>,
    lr: F,
    wd: F,
    mu: F,
    damp: F,
    #[comptime] momentum: bool,
    #[comptime] first: bool,
    #[comptime] nesterov: bool,
) {
    let i = ABSOLUTE_POS;
    if i < p.len() {
        let d = g[i] + wd * p[i];
        if comptime![momentum] {
            let mut b = d;
            if comptime![!first] {
                b = mu * buf[i] + damp * d;
            }
            buf[i] = b;
            let mut step = b;
            if comptime![nesterov] {
                step = d + mu * b;
            }
            p[i] -= lr * step;
        } else {
            p[i] -= lr * d;
        }
    }
}

/// Adam's hyper-parameters, as both backends take them (`cubegrad::backend::optim`).
#[derive(Clone, Copy, Debug)]
pub struct AdamHyper {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the weights directly (`p ← p·(1 − lr·wd)`) instead of adding `wd·p` to
    /// the gradient.
    pub decoupled: bool,
}

/// One Adam/AdamW step (`t` is 1-based) on `n` elements, updating `p`, `m`, `v` in place.
#[allow(clippy::too_many_arguments)]
pub fn adam_step<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    p: &Handle,
    g: &Handle,
    m: &Handle,
    v: &Handle,
    n: usize,
    t: u64,
    h: AdamHyper,
) {
    let c = scalar::<F>;
    let step_size = h.lr / (1.0 - h.beta1.powi(t as i32));
    let bc2 = (1.0 - h.beta2.powi(t as i32)).sqrt();
    let (wd, decay) = if h.decoupled {
        (0.0, 1.0 - h.lr * h.weight_decay)
    } else {
        (h.weight_decay, 1.0)
    };
    let (count, dim) = grid(n);
    // SAFETY: the four buffers hold n elements each.
    unsafe {
        adam_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(p.clone(), n),
            ArrayArg::from_raw_parts(g.clone(), n),
            ArrayArg::from_raw_parts(m.clone(), n),
            ArrayArg::from_raw_parts(v.clone(), n),
            c(h.beta1),
            c(h.beta2),
            c(step_size),
            c(bc2),
            c(h.eps),
            c(wd),
            c(decay),
        );
    }
}

/// SGD's hyper-parameters, as both backends take them.
#[derive(Clone, Copy, Debug)]
pub struct SgdHyper {
    pub lr: f64,
    pub momentum: f64,
    pub dampening: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

/// One SGD step on `n` elements; `buf` is the momentum buffer (ignored without momentum).
#[allow(clippy::too_many_arguments)]
pub fn sgd_step<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    p: &Handle,
    g: &Handle,
    buf: &Handle,
    n: usize,
    first: bool,
    h: SgdHyper,
) {
    let c = scalar::<F>;
    let (count, dim) = grid(n);
    let momentum = h.momentum != 0.0;
    // SAFETY: p and g hold n elements, and buf too when momentum is on (else it is unread).
    unsafe {
        sgd_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(p.clone(), n),
            ArrayArg::from_raw_parts(g.clone(), n),
            ArrayArg::from_raw_parts(buf.clone(), if momentum { n } else { 1 }),
            c(h.lr),
            c(h.weight_decay),
            c(h.momentum),
            c(1.0 - h.dampening),
            momentum,
            first,
            h.nesterov,
        );
    }
}
