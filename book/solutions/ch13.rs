//! Chapter 13: ConvNets with ContextPool.

use cubegrad::nn::{ContextPool2d, ContextPoolOptions, ConvBlock};
use cubegrad::{no_grad, Tensor};

/// Exercise 1: the output shapes of a block with max pooling and with ContextPool.
pub fn block_shapes() -> (Vec<usize>, Vec<usize>) {
    let x = Tensor::randn([2, 3, 28, 28], 0.0, 1.0);
    let mut max = ConvBlock::new(3, 8, "max").unwrap();
    let mut cp = ConvBlock::new(3, 8, "contextpool").unwrap();
    no_grad(|| {
        (
            max.forward(&x).dims().to_vec(),
            cp.forward(&x).dims().to_vec(),
        )
    })
}

/// Exercise 2: `(output, input at the stride-2 centres)` with a tiny pooling size.
pub fn tiny_pool_picks_centres() -> (Vec<f32>, Vec<f32>) {
    let opts = ContextPoolOptions {
        s_min: 0.05,
        s_max: 0.05,
        radius: Some(1),
        ..Default::default()
    };
    let pool = ContextPool2d::new(2, 2, opts);
    let x = Tensor::randn([1, 2, 6, 6], 0.0, 1.0);
    let y = no_grad(|| pool.forward(&x)).to_vec::<f32>();
    let xs = x.to_vec::<f32>();
    let mut centres = Vec::new();
    for c in 0..2 {
        for r in 0..3 {
            for q in 0..3 {
                centres.push(xs[c * 36 + (2 * r) * 6 + 2 * q]);
            }
        }
    }
    (y, centres)
}
