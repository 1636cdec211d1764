//! Chapter 10: vision transformers.

use cubegrad::nn::PatchEmbedding;
use cubegrad::{no_grad, Tensor};

/// Exercise 1: `(tokens by formula, tokens from PatchEmbedding, attention entries)` for a
/// 224 × 224 image and 16 × 16 patches: 14 × 14 patches plus the class token.
pub fn vit_tokens() -> (usize, usize, usize) {
    let formula = (224 / 16) * (224 / 16) + 1;
    let pe = PatchEmbedding::new(3, (224, 224), 16, 8);
    let tokens = no_grad(|| pe.forward(&Tensor::zeros([1, 3, 224, 224]))).dims()[1];
    (formula, tokens, formula * formula)
}

/// Exercise 2: which tokens change when the pixels of patch (row 1, column 2) change, on a
/// 28 × 28 image with 7 × 7 patches (a 4 × 4 grid).
pub fn tokens_changed_by_one_patch() -> Vec<usize> {
    let pe = PatchEmbedding::new(1, (28, 28), 7, 8);
    let x = Tensor::randn([1, 1, 28, 28], 0.0, 1.0);
    let mut v = x.to_vec::<f32>();
    for r in 7..14 {
        for c in 14..21 {
            v[r * 28 + c] += 1.0;
        }
    }
    let x2 = Tensor::from_vec(v, [1, 1, 28, 28]);
    let (a, b) = no_grad(|| {
        (
            pe.forward(&x).to_vec::<f32>(),
            pe.forward(&x2).to_vec::<f32>(),
        )
    });
    (0..17)
        .filter(|&t| (0..8).any(|f| (a[t * 8 + f] - b[t * 8 + f]).abs() > 1e-6))
        .collect()
}
