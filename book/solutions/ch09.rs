//! Chapter 9: the transformer.

use cubegrad::nn::{EncoderOptions, Module, TransformerEncoderLayer};
use cubegrad::{no_grad, Tensor};

/// Exercise 1: `(by formula, num_params())`. Attention: the `[3d, d]` input projection and its
/// bias, the `[d, d]` output projection and its bias; feed-forward: `[ff, d] + ff` and
/// `[d, ff] + d`; two layer norms of `2d` each.
pub fn encoder_params(d: usize, heads: usize, ff: usize) -> (usize, usize) {
    let formula = (3 * d * d + 3 * d) + (d * d + d) + (ff * d + ff) + (d * ff + d) + 2 * 2 * d;
    let mut o = EncoderOptions::new(d, heads);
    o.dim_feedforward = ff;
    (formula, TransformerEncoderLayer::new(o).num_params())
}

/// Exercise 2: the first `keep` outputs of a causal block for two inputs that differ only after
/// position `keep`.
pub fn causal_prefix_outputs(n: usize, keep: usize) -> (Vec<f32>, Vec<f32>) {
    let mut o = EncoderOptions::new(16, 2);
    o.causal = true;
    o.dropout = 0.0;
    let mut layer = TransformerEncoderLayer::new(o);
    layer.set_training(false);
    let x = Tensor::randn([1, n, 16], 0.0, 1.0);
    let mut v = x.to_vec::<f32>();
    for e in &mut v[keep * 16..] {
        *e += 5.0;
    }
    let x2 = Tensor::from_vec(v, [1, n, 16]);
    no_grad(|| {
        let a = layer.forward(&x, None).narrow(1, 0, keep).to_vec::<f32>();
        let b = layer.forward(&x2, None).narrow(1, 0, keep).to_vec::<f32>();
        (a, b)
    })
}
