//! Chapter 14: your own layer.

use cubegrad::autograd::{
    apply, apply_custom, CustomOp, Forward, GradcheckOptions, GradcheckReport, Op,
};
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

/// Exercise 3: `y = a · tanh(x)` with its own CPU loops. On a GPU its inputs would meet the
/// trait's default `cube_forward`: an `Unsupported` error naming `scaled_tanh_loops` and the
/// device (the op gives no kernel), not a silent copy to the host.
pub struct ScaledTanhLoops;

impl CustomOp for ScaledTanhLoops {
    fn name(&self) -> &'static str {
        "scaled_tanh_loops"
    }
    fn cpu_forward(&self, inputs: &[&Tensor]) -> cubegrad::Result<Tensor> {
        let (x, a) = (inputs[0].try_to_vec::<f64>()?, inputs[1].item());
        let y: Vec<f64> = x.iter().map(|v| a * v.tanh()).collect();
        Tensor::try_from_vec(y, inputs[0].shape().clone())?.try_to_dtype(inputs[0].dtype())
    }
    fn cpu_backward(
        &self,
        inputs: &[&Tensor],
        _output: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> cubegrad::Result<Vec<Option<Tensor>>> {
        let (x, a) = (inputs[0].try_to_vec::<f64>()?, inputs[1].item());
        let g = grad.try_to_vec::<f64>()?;
        let dx: Vec<f64> = x
            .iter()
            .zip(&g)
            .map(|(v, g)| g * a * (1.0 - v.tanh().powi(2)))
            .collect();
        let da: f64 = x.iter().zip(&g).map(|(v, g)| g * v.tanh()).sum();
        let dtype = inputs[0].dtype();
        Ok(vec![
            needs[0]
                .then(|| Tensor::try_from_vec(dx, inputs[0].shape().clone())?.try_to_dtype(dtype))
                .transpose()?,
            needs[1]
                .then(|| Tensor::try_from_vec(vec![da], [1])?.try_to_dtype(dtype))
                .transpose()?,
        ])
    }
}

pub fn check_scaled_tanh_loops() -> cubegrad::Result<GradcheckReport> {
    let x = Tensor::randn([4, 3], 0.0, 1.0)
        .to_dtype(DType::F64)
        .with_grad();
    let a = Tensor::from_vec(vec![1.7f64], [1]).with_grad();
    gradcheck(
        |v| apply_custom(ScaledTanhLoops, &[&v[0], &v[1]]),
        &[x, a],
        &GradcheckOptions::default(),
    )
}
