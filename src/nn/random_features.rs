//! The random directions of random-feature (Performer) attention, kept by a layer as a buffer:
//! not trained, saved in checkpoints (a resumed run attends with the same features), and
//! redrawn on request. Performer's reference code redraws them every 1000 training steps
//! (`feature_redraw_interval`); a fixed draw is the other common choice.

use super::Module;
use crate::ops::linear_attention::orthogonal_random_features;
use crate::tensor::Tensor;

/// `projection` `[features, head_dim]`, shared by the heads of a layer.
pub struct RandomFeatures {
    pub projection: Tensor,
}

impl RandomFeatures {
    pub fn new(features: usize, head_dim: usize, seed: u64) -> Self {
        RandomFeatures {
            projection: orthogonal_random_features(features, head_dim, seed),
        }
    }
    /// Replaces the directions by a fresh draw from `seed`, where the old ones lived.
    pub fn redraw(&mut self, seed: u64) {
        let (m, d) = (self.projection.dims()[0], self.projection.dims()[1]);
        let fresh = orthogonal_random_features(m, d, seed)
            .to_dtype(self.projection.dtype())
            .to_device(self.projection.device());
        self.projection = fresh;
    }
}

impl Module for RandomFeatures {
    crate::module_tensors! {
        buffer "projection" projection;
    }
}
