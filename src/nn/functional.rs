//! Stateless layer functions.

use crate::tensor::Tensor;

/// Inverted dropout: in training, zeroes each element with probability `p` and scales the rest
/// by `1/(1−p)`, so evaluation needs no rescaling; the identity when not training.
#[track_caller]
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Tensor {
    assert!(
        (0.0..1.0).contains(&p),
        "dropout: p = {p} must be in [0, 1)"
    );
    if !training || p == 0.0 {
        return x.clone();
    }
    let keep = Tensor::bernoulli(x.shape().clone(), 1.0 - p).to_dtype(x.dtype());
    x.mul(&keep.mul_scalar(1.0 / (1.0 - p)))
}
