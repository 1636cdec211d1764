//! Chapter 1: tensors and broadcasting.

use cubegrad::Tensor;

/// The chapter's first listing.
pub fn making_tensors() -> Tensor {
    // ANCHOR: making
    let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]); // 2 rows, 3 columns
    let z = Tensor::zeros([2, 3]);
    let r = Tensor::randn([2, 3], 0.0, 1.0); // normal numbers: mean 0, standard deviation 1
    assert_eq!(a.dims(), &[2, 3]);
    // ANCHOR_END: making
    a.add(&z).add(&r.mul_scalar(0.0))
}

/// Exercise 1: the output shapes, found by broadcasting zeros.
pub fn broadcast_shapes() -> Vec<Vec<usize>> {
    let pairs: [(&[usize], &[usize]); 3] =
        [(&[5, 1, 4], &[3, 1]), (&[1], &[2, 2]), (&[2, 1], &[1, 2])];
    pairs
        .iter()
        .map(|(a, b)| Tensor::zeros(*a).mul(&Tensor::zeros(*b)).dims().to_vec())
        .collect()
}

/// Exercise 2: `a` `[n]` as a column `[n, 1]` times `b` `[m]` as a row `[1, m]`.
pub fn outer(a: &Tensor, b: &Tensor) -> Tensor {
    let (n, m) = (a.numel(), b.numel());
    a.reshape(&[n, 1]).mul(&b.reshape(&[1, m]))
}

/// Exercise 3: `x` `[n, d]` as `[n, 1, d]` minus `y` `[m, d]` as `[1, m, d]` gives every
/// difference `[n, m, d]`; square and sum over the last axis.
pub fn sq_distances(x: &Tensor, y: &Tensor) -> Tensor {
    let (n, m, d) = (x.dims()[0], y.dims()[0], x.dims()[1]);
    x.reshape(&[n, 1, d])
        .sub(&y.reshape(&[1, m, d]))
        .square()
        .sum_axes(&[-1], false)
}
