//! Chapter 6: scoring functions and masked softmax.

use cubegrad::autograd::{GradcheckOptions, GradcheckReport};
use cubegrad::nn::AdditiveAttention;
use cubegrad::{gradcheck, no_grad, DType, Tensor};

/// Exercise 1: `(naive, cubegrad)` softmax of `[1000, 1001]` in f32. The naive one divides
/// infinity by infinity.
pub fn naive_and_safe_softmax() -> (Vec<f32>, Vec<f32>) {
    let s = [1000.0f32, 1001.0];
    let e: Vec<f32> = s.iter().map(|v| v.exp()).collect();
    let total: f32 = e.iter().sum();
    let naive = e.iter().map(|v| v / total).collect();
    let safe = Tensor::from_vec(s.to_vec(), [2])
        .softmax(-1)
        .to_vec::<f32>();
    (naive, safe)
}

/// Exercise 2: masked softmax against central differences.
pub fn masked_softmax_gradcheck() -> cubegrad::Result<GradcheckReport> {
    let x = Tensor::randn([3, 5], 0.0, 1.0)
        .to_dtype(DType::F64)
        .with_grad();
    let keep: Vec<bool> = (0..15).map(|i| i % 4 != 1).collect();
    let mask = Tensor::from_vec(keep, [3, 5]);
    gradcheck(
        |v| v[0].try_masked_softmax(&mask, -1),
        &[x],
        &GradcheckOptions::default(),
    )
}

/// Exercise 3: the weights of one query over four keys when only two are valid, for two
/// different contents of the masked keys.
pub fn additive_weights_ignore_padding() -> (Vec<f32>, Vec<f32>) {
    let att = AdditiveAttention::new(3, 3, 8, 0.0);
    let q = Tensor::randn([1, 1, 3], 0.0, 1.0);
    let lens = Tensor::from_vec(vec![2i64], [1]);
    let weights = |k: &Tensor| {
        no_grad(|| att.forward(&q, k, k, Some(&lens)));
        att.last_weights().unwrap().to_vec::<f32>()
    };
    let k1 = Tensor::randn([1, 4, 3], 0.0, 1.0);
    let mut changed = k1.to_vec::<f32>();
    for v in &mut changed[6..] {
        *v += 100.0;
    }
    (weights(&k1), weights(&Tensor::from_vec(changed, [1, 4, 3])))
}
