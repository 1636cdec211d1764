//! Chapter 12: ContextPool.

use cubegrad::autograd::{GradcheckOptions, GradcheckReport};
use cubegrad::nn::{ContextPool, ContextPoolOptions, Module};
use cubegrad::{gradcheck, no_grad, DType, Tensor};

/// Exercise 1: `(by hand, ContextPool)`. With every `w` equal, `w` cancels between the weighted
/// sum and the normaliser; with `s = 1` and `R = 1` each output averages itself (weight 1) and
/// its neighbours (weight e^−½).
pub fn by_hand_and_layer() -> (Vec<f64>, Vec<f32>) {
    let x = [1.0, 2.0, 4.0, 8.0, 16.0];
    let g = (-0.5f64).exp();
    let hand = (0..5usize)
        .map(|i| {
            let (mut num, mut den) = (0.0, 0.0);
            for (j, &xj) in x
                .iter()
                .enumerate()
                .take((i + 2).min(5))
                .skip(i.saturating_sub(1))
            {
                let k = if i == j { 1.0 } else { g };
                num += k * xj;
                den += k;
            }
            num / den
        })
        .collect();
    let layer = ContextPool::new(
        1,
        ContextPoolOptions {
            radius: Some(1),
            ..Default::default()
        },
    );
    let input = Tensor::from_vec(x.iter().map(|&v| v as f32).collect::<Vec<_>>(), [1, 5, 1]);
    (hand, no_grad(|| layer.forward(&input)).to_vec::<f32>())
}

/// Exercise 2: a causal layer in f64 with random predictors, checked on the input and on every
/// parameter.
pub fn causal_gradcheck() -> cubegrad::Result<GradcheckReport> {
    let opts = ContextPoolOptions {
        causal: true,
        s_max: 2.0,
        ..Default::default()
    };
    let mut layer = ContextPool::new(4, opts);
    layer.weight_proj.weight = Tensor::randn([1, 4], 0.0, 0.5).with_grad();
    layer.size_proj.weight = Tensor::randn([1, 4], 0.0, 0.5).with_grad();
    let params: Vec<Tensor> = layer
        .parameters()
        .into_iter()
        .map(|(_, p)| p.to_dtype(DType::F64).with_grad())
        .collect();
    let x = Tensor::randn([2, 9, 4], 0.0, 1.0)
        .to_dtype(DType::F64)
        .with_grad();
    let mut inputs = vec![x];
    inputs.extend(params);
    gradcheck(
        |v| cubegrad::nn::try_context_pool_1d(&v[0], &v[1], &v[2], &v[3], &v[4], &opts),
        &inputs,
        &GradcheckOptions::default(),
    )
}
