//! Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`).

use crate::autograd::Gradients;
use crate::nn::Module;
use crate::tensor::{DType, Tensor};

/// Scales the gradients of `model`'s parameters so that their joint L2 norm is at most
/// `max_norm`; returns the norm before clipping. Like PyTorch, the scale is
/// `max_norm / (norm + 1e-6)`, applied only when it is below 1.
pub fn clip_grad_norm(model: &dyn Module, grads: &mut Gradients, max_norm: f64) -> f64 {
    crate::profile::scope("clip_grad_norm", || clip(model, grads, max_norm))
}

fn clip(model: &dyn Module, grads: &mut Gradients, max_norm: f64) -> f64 {
    // Each tensor once, even when the model shares it between layers (tied weights).
    let mut params: Vec<Tensor> = Vec::new();
    model.visit_params("", &mut |_, p| {
        if !params.iter().any(|q| q.id() == p.id()) {
            params.push(p.clone());
        }
    });
    // The squares summed where the gradients live, in the model's order: one number is read
    // back, and the sum is the same from run to run.
    let mut total: Option<Tensor> = None;
    for p in &params {
        if let Some(g) = grads.get(p) {
            let sq = g.mul(g).sum().to_dtype(DType::F64);
            total = Some(match total {
                Some(t) => t.add(&sq),
                None => sq,
            });
        }
    }
    let norm = total.map_or(0.0, |t| t.item().sqrt());
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        for p in &params {
            if let Some(g) = grads.get_mut(p) {
                *g = g.mul_scalar(scale);
            }
        }
    }
    norm
}

/// The name of the first of `model`'s parameters (in visiting order) whose gradient holds a
/// NaN or an infinity, if any: what a training loop names when its gradient norm is not
/// finite. It reads every gradient back to the host, so call it only then.
pub fn first_nonfinite_grad(model: &dyn Module, grads: &Gradients) -> Option<String> {
    let mut found = None;
    model.visit_params("", &mut |name, p| {
        if found.is_none() {
            if let Some(g) = grads.get(p) {
                if g.to_vec::<f64>().iter().any(|x| !x.is_finite()) {
                    found = Some(name.to_string());
                }
            }
        }
    });
    found
}
