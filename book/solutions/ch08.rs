//! Chapter 8: multi-head attention and positions.

use cubegrad::nn::{sinusoidal_positions, MhaOptions, MultiheadAttention};
use cubegrad::{no_grad, Tensor};

/// Exercise 1: `(attention of the permuted input, permuted attention of the input)`.
pub fn permuted_outputs(perm: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let (n, e) = (perm.len(), 8);
    let mha = MultiheadAttention::new(e, 2, 0.0);
    let x = Tensor::randn([1, n, e], 0.0, 1.0);
    let idx = Tensor::from_vec(perm.iter().map(|&p| p as i64).collect::<Vec<_>>(), [n]);
    let xp = x.index_select(1, &idx);
    let opts = MhaOptions::default();
    no_grad(|| {
        let y = mha.forward(&x, &x, &x, &opts).0;
        let yp = mha.forward(&xp, &xp, &xp, &opts).0;
        (yp.to_vec::<f32>(), y.index_select(1, &idx).to_vec::<f32>())
    })
}

/// Exercise 2: `P[i]·P[i + delta]` for several `i`.
pub fn dot_at_offset(delta: usize, starts: &[usize], d: usize) -> Vec<f64> {
    let n = starts.iter().max().unwrap() + delta + 1;
    let p = sinusoidal_positions(n, d, 0).to_vec::<f32>();
    starts
        .iter()
        .map(|&i| {
            (0..d)
                .map(|c| p[i * d + c] as f64 * p[(i + delta) * d + c] as f64)
                .sum()
        })
        .collect()
}
