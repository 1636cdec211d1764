//! Chapter 14: your own layer.

use cubegrad::autograd::{apply, Forward, GradcheckOptions, GradcheckReport, Op};
use cubegrad::{gradcheck, DType, Tensor};

/// Exercise 1: `y = a · tanh(x)`, inputs `x` and the scalar `a` (shape `[1]`). Saves
/// `t = tanh(x)` and `a`: `∂L/∂x = g · a · (1 − t²)`, `∂L/∂a = Σ g · t`.
pub struct ScaledTanh;

impl Op for ScaledTanh {
    fn name(&self) -> &'static str {
        "scaled_tanh"
    }
    fn forward(&self, inputs: &[&Tensor]) -> cubegrad::Result<Forward> {
        let (x, a) = (inputs[0], inputs[1]);
        let t = x.tanh();
        Ok(Forward::new(t.mul(a), vec![t, a.clone()]))
    }
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        let (t, a) = (&saved[0], &saved[1]);
        let gx = needs[0].then(|| g.mul(a).mul(&t.square().neg().add_scalar(1.0)));
        let ga = needs[1].then(|| g.mul(t).sum().reshape(&[1]));
        Ok(vec![gx, ga])
    }
}

pub fn check_scaled_tanh() -> cubegrad::Result<GradcheckReport> {
    let x = Tensor::randn([4, 3], 0.0, 1.0)
        .to_dtype(DType::F64)
        .with_grad();
    let a = Tensor::from_vec(vec![1.7f64], [1]).with_grad();
    gradcheck(
        |v| apply(ScaledTanh, &[&v[0], &v[1]]),
        &[x, a],
        &GradcheckOptions::default(),
    )
}

/// Exercise 2: the Swish op saving only `x` and `β`, recomputing the gate in the backward:
/// less memory held between forward and backward, one more sigmoid per step.
pub struct LeanSwish;

impl Op for LeanSwish {
    fn name(&self) -> &'static str {
        "lean_swish"
    }
    fn forward(&self, inputs: &[&Tensor]) -> cubegrad::Result<Forward> {
        let (x, beta) = (inputs[0], inputs[1]);
        Ok(Forward::new(
            x.mul(&x.mul(beta).sigmoid()),
            vec![x.clone(), beta.clone()],
        ))
    }
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        let (x, beta) = (&saved[0], &saved[1]);
        let s = x.mul(beta).sigmoid();
        let ds = s.mul(&s.neg().add_scalar(1.0));
        let gx = needs[0].then(|| g.mul(&s.add(&x.mul(beta).mul(&ds))));
        let gb = needs[1].then(|| g.mul(&x.square()).mul(&ds).sum_axes(&[0], false));
        Ok(vec![gx, gb])
    }
}

pub fn check_lean_swish() -> cubegrad::Result<GradcheckReport> {
    let x = Tensor::randn([5, 4], 0.0, 1.5)
        .to_dtype(DType::F64)
        .with_grad();
    let beta = Tensor::rand_uniform([4], 0.2, 2.0)
        .to_dtype(DType::F64)
        .with_grad();
    gradcheck(
        |v| apply(LeanSwish, &[&v[0], &v[1]]),
        &[x, beta],
        &GradcheckOptions::default(),
    )
}
