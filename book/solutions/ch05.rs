//! Chapter 5: attention pooling.

use cubegrad::Tensor;

/// Parametric attention pooling with a fixed width `w`: queries `[q]`, keys and values `[k]`
/// shared by every query.
pub fn gaussian_pool(queries: &[f32], keys: &[f32], values: &[f32], w: f64) -> Vec<f32> {
    let (q, k) = (queries.len(), keys.len());
    let qs = Tensor::from_vec(queries.to_vec(), [q, 1]);
    let ks = Tensor::from_vec(keys.to_vec(), [1, k]);
    let vs = Tensor::from_vec(values.to_vec(), [1, k]);
    let weights = qs
        .sub(&ks)
        .mul_scalar(w)
        .square()
        .mul_scalar(-0.5)
        .softmax(-1);
    weights.mul(&vs).sum_axes(&[-1], false).to_vec::<f32>()
}

/// Exercise 2: the Laplace kernel, `softmax(−|x − x_i|·w)`.
pub fn laplace_pool(queries: &[f32], keys: &[f32], values: &[f32], w: f64) -> Vec<f32> {
    let (q, k) = (queries.len(), keys.len());
    let qs = Tensor::from_vec(queries.to_vec(), [q, 1]);
    let ks = Tensor::from_vec(keys.to_vec(), [1, k]);
    let vs = Tensor::from_vec(values.to_vec(), [1, k]);
    let weights = qs.sub(&ks).abs().mul_scalar(-w).softmax(-1);
    weights.mul(&vs).sum_axes(&[-1], false).to_vec::<f32>()
}
