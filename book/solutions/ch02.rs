//! Chapter 2: reverse-mode autodiff.

use cubegrad::autograd::{apply, Forward, GradcheckOptions, GradcheckReport, Op};
use cubegrad::{gradcheck, DType, Tensor};

/// The chapter's gradcheck listing.
pub fn use_gradcheck() -> GradcheckReport {
    // ANCHOR: use_gradcheck
    let x = Tensor::randn([3, 4], 0.0, 1.0)
        .to_dtype(DType::F64)
        .with_grad();
    let f = |v: &[Tensor]| Ok(v[0].tanh().mul(&v[0])); // x · tanh(x)
    let report = gradcheck(f, &[x], &GradcheckOptions::default()).unwrap();
    assert!(report.max_error < 1e-6);
    // ANCHOR_END: use_gradcheck
    report
}

/// Exercise 1: `f = a·b + a`, so `∂f/∂a = b + 1 = 4` and `∂f/∂b = a = 2`.
pub fn grads_of_ab_plus_a() -> (f64, f64) {
    let a = Tensor::scalar(2.0f64).with_grad();
    let b = Tensor::scalar(3.0f64).with_grad();
    let f = a.mul(&b).add(&a);
    let g = f.backward();
    (g.get(&a).unwrap().item(), g.get(&b).unwrap().item())
}

/// Exercise 2: `y = x²`. Saves `x`; `∂L/∂x = g · 2x`.
pub struct Square;

impl Op for Square {
    fn name(&self) -> &'static str {
        "square_exercise"
    }
    fn forward(&self, inputs: &[&Tensor]) -> cubegrad::Result<Forward> {
        let x = inputs[0];
        Ok(Forward::new(x.mul(x), vec![x.clone()]))
    }
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        _: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.mul(&saved[0]).mul_scalar(2.0))])
    }
}

pub fn check_square() -> cubegrad::Result<GradcheckReport> {
    let x = Tensor::randn([5], 0.0, 1.0)
        .to_dtype(DType::F64)
        .with_grad();
    gradcheck(
        |v| apply(Square, &[&v[0]]),
        &[x],
        &GradcheckOptions::default(),
    )
}

/// Exercise 3: `y = 2x` whose backward returns the right numbers in reversed order.
pub struct ReversedDouble;

impl Op for ReversedDouble {
    fn name(&self) -> &'static str {
        "reversed_double"
    }
    fn forward(&self, inputs: &[&Tensor]) -> cubegrad::Result<Forward> {
        Ok(Forward::new(inputs[0].mul_scalar(2.0), vec![]))
    }
    fn backward(
        &self,
        _: &[Tensor],
        g: &Tensor,
        _: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        let reversed: Vec<f64> = g.to_vec::<f64>().into_iter().rev().collect();
        Ok(vec![Some(
            Tensor::from_vec(reversed, g.shape().clone()).mul_scalar(2.0),
        )])
    }
}

/// With a plain sum every output's gradient is 1, so reversing changes nothing: the gradient
/// is right (all 2). gradcheck's random cotangent exposes it. Returns (gradient of the sum,
/// gradcheck's verdict).
pub fn plain_sum_misses_what_gradcheck_finds() -> (Vec<f64>, cubegrad::Result<GradcheckReport>) {
    let x = Tensor::from_vec(vec![0.1f64, 0.2, 0.3, 0.4], [4]).with_grad();
    let g = apply(ReversedDouble, &[&x]).unwrap().sum().backward();
    let by_sum = g.get(&x).unwrap().to_vec::<f64>();
    let check = gradcheck(
        |v| apply(ReversedDouble, &[&v[0]]),
        &[x],
        &GradcheckOptions::default(),
    );
    (by_sum, check)
}
