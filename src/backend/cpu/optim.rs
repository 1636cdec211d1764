//! Fused optimizer updates on the CPU: one pass over a parameter, its gradient and its state,
//! in place. The formulas are PyTorch's (`torch.optim.SGD`, `Adam`, `AdamW`, single-tensor
//! path).

use super::float::Float;
use super::{exclusive, with_float, Cpu};
use crate::backend::optim::{AdamHyper, OptimKernels, SgdHyper};
use crate::error::Result;
use crate::tensor::Tensor;

impl OptimKernels for Cpu {
    fn sgd_step(
        &self,
        p: &mut Tensor,
        g: &Tensor,
        buf: Option<&mut Tensor>,
        first: bool,
        h: SgdHyper,
    ) -> Result<()> {
        with_float!("Sgd", p.dtype(), |T| {
            let gs = super::slice::<T>("Sgd", g)?;
            let ps = T::slice_of_mut(exclusive("Sgd", p)?).expect("the dtype was matched");
            match buf {
                Some(b) => {
                    let bs = T::slice_of_mut(exclusive("Sgd", b)?);
                    sgd_step(ps, &gs, bs, first, h)
                }
                None => sgd_step(ps, &gs, None, false, h),
            }
            Ok(())
        })
    }

    fn adam_step(
        &self,
        p: &mut Tensor,
        g: &Tensor,
        m: &mut Tensor,
        v: &mut Tensor,
        t: u64,
        h: AdamHyper,
    ) -> Result<()> {
        with_float!("Adam", p.dtype(), |T| {
            let gs = super::slice::<T>("Adam", g)?;
            let ps = T::slice_of_mut(exclusive("Adam", p)?).expect("the dtype was matched");
            let ms = T::slice_of_mut(exclusive("Adam", m)?).expect("same dtype as the parameter");
            let vs = T::slice_of_mut(exclusive("Adam", v)?).expect("same dtype as the parameter");
            adam_step(ps, &gs, ms, vs, t, h);
            Ok(())
        })
    }
}

/// `d = g + wd·p`; with momentum `buf = μ·buf + (1−τ)·d` (on the first step `buf = d`);
/// Nesterov uses `d + μ·buf`, otherwise `buf`; then `p −= lr·d`.
pub fn sgd_step<T: Float>(p: &mut [T], g: &[T], buf: Option<&mut [T]>, first: bool, h: SgdHyper) {
    let c = T::from_f64;
    let (lr, wd, mu, damp) = (
        c(h.lr),
        c(h.weight_decay),
        c(h.momentum),
        c(1.0 - h.dampening),
    );
    match buf {
        None => p
            .iter_mut()
            .zip(g)
            .for_each(|(p, &g)| *p = *p - lr * (g + wd * *p)),
        Some(buf) => {
            for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                let d = g + wd * *p;
                *b = if first { d } else { mu * *b + damp * d };
                let step = if h.nesterov { d + mu * *b } else { *b };
                *p = *p - lr * step;
            }
        }
    }
}

// ANCHOR: adam_cpu
/// One Adam/AdamW step at step number `t` (1-based), updating `p`, `m` and `v` in place:
/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε)`.
pub fn adam_step<T: Float>(p: &mut [T], g: &[T], m: &mut [T], v: &mut [T], t: u64, h: AdamHyper) {
    let c = T::from_f64;
    let (b1, b2) = (c(h.beta1), c(h.beta2));
    let (one_b1, one_b2) = (c(1.0 - h.beta1), c(1.0 - h.beta2));
    let step_size = c(h.lr / (1.0 - h.beta1.powi(t as i32)));
    let bc2_sqrt = c((1.0 - h.beta2.powi(t as i32)).sqrt());
    let eps = c(h.eps);
    let (wd, decay) = if h.decoupled {
        (T::zero(), c(1.0 - h.lr * h.weight_decay))
    } else {
        (c(h.weight_decay), T::one())
    };
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = g + wd * *p;
        *p *= decay;
        *m = b1 * *m + one_b1 * g;
        *v = b2 * *v + one_b2 * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p = *p - step_size * *m / denom;
    }
}
// ANCHOR_END: adam_cpu
