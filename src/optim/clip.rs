//! Gradient clipping by global norm (`torch.nn.utils.clip_grad_norm_`).

use crate::autograd::Gradients;
use crate::nn::Module;

/// Scales the gradients of `model`'s parameters so that their joint L2 norm is at most
/// `max_norm`; returns the norm before clipping. Like PyTorch, the scale is
/// `max_norm / (norm + 1e-6)`, applied only when it is below 1.
pub fn clip_grad_norm(model: &dyn Module, grads: &mut Gradients, max_norm: f64) -> f64 {
    crate::profile::scope("clip_grad_norm", || clip(model, grads, max_norm))
}

fn clip(model: &dyn Module, grads: &mut Gradients, max_norm: f64) -> f64 {
    let mut ids = std::collections::HashSet::new();
    model.visit_params("", &mut |_, p| {
        ids.insert(p.id());
    });
    let mut sq = 0.0;
    for id in &ids {
        if let Some(g) = grads.get_by_id(*id) {
            sq += g.to_vec::<f64>().iter().map(|x| x * x).sum::<f64>();
        }
    }
    let norm = sq.sqrt();
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        for (id, g) in grads.iter_mut() {
            if ids.contains(id) {
                *g = g.mul_scalar(scale);
            }
        }
    }
    norm
}
