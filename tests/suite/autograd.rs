//! The tape's contract: reverse order is enough, gradients accumulate, backward returns a
//! fresh store and frees what it walked, no_grad records nothing, and a user-defined op is a
//! first-class citizen.

use cubegrad::autograd::{apply, clear_tape, gradcheck, tape_len, Forward, GradcheckOptions, Op};
use cubegrad::{no_grad, DType, Result, Tensor};

fn t64(v: &[f64], shape: &[usize]) -> Tensor {
    Tensor::from_vec(v.to_vec(), shape).with_grad()
}

/// micrograd's counterexample to backward without a topological order: `b = a + a; c = b + b`.
#[test]
fn reused_intermediate_accumulates() {
    let a = t64(&[3.0], &[1]);
    let b = a.add(&a);
    let c = b.add(&b);
    let g = c.sum().backward();
    assert_eq!(g.get(&a).unwrap().to_vec::<f64>(), vec![4.0]);
}

#[test]
fn backward_twice_gives_the_same_fresh_gradients() {
    let x = t64(&[1.0, -2.0, 0.5], &[3]);
    let g1 = x.mul(&x).sum().backward();
    let g2 = x.mul(&x).sum().backward();
    assert_eq!(g1.get(&x).unwrap().to_vec::<f64>(), vec![2.0, -4.0, 1.0]);
    assert_eq!(
        g2.get(&x).unwrap().to_vec::<f64>(),
        g1.get(&x).unwrap().to_vec::<f64>()
    );
}

#[test]
fn backward_frees_the_tape() {
    clear_tape();
    let x = t64(&[1.0, 2.0], &[2]);
    let y = x.exp().mul(&x).sum();
    assert!(tape_len() >= 3);
    let _ = y.backward();
    assert_eq!(tape_len(), 0);
    // Backward through the freed graph again is an error, not a silent zero.
    let err = y.try_backward().unwrap_err().to_string();
    assert!(err.contains("freed"), "{err}");
}

#[test]
fn detach_and_constants_stop_gradients() {
    let x = t64(&[2.0], &[1]);
    let c = Tensor::from_vec(vec![5.0f64], [1]);
    let y = x.mul(&x.detach()).add(&c).sum();
    let g = y.backward();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>(), vec![2.0]);
    assert!(g.get(&c).is_none());
}

#[test]
fn retain_grad_keeps_an_intermediate() {
    let x = t64(&[1.0, 2.0], &[2]);
    let h = x.mul_scalar(3.0).retain_grad();
    let y = h.square().sum();
    let g = y.backward();
    assert_eq!(g.get(&h).unwrap().to_vec::<f64>(), vec![6.0, 12.0]);
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>(), vec![18.0, 36.0]);
}

#[test]
fn backward_without_grad_inputs_is_an_error() {
    let x = Tensor::from_vec(vec![1.0f32], [1]);
    assert!(x.exp().try_backward().is_err());
    let w = t64(&[1.0], &[1]);
    let y = no_grad(|| w.exp());
    assert!(!y.requires_grad());
    assert!(y.try_backward().is_err());
}

/// A user-defined op: `y = x³` with a hand-written backward, through the public trait.
struct Cube;
impl Op for Cube {
    fn name(&self) -> &'static str {
        "cube"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        Ok(Forward::new(x.powf(3.0), vec![x.clone()]))
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.mul(&saved[0].square().mul_scalar(3.0)))])
    }
}

/// The same op with a deliberately wrong backward (2x² instead of 3x²).
struct BadCube;
impl Op for BadCube {
    fn name(&self) -> &'static str {
        "bad_cube"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Cube.forward(inputs)
    }
    fn backward(&self, saved: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.mul(&saved[0].square().mul_scalar(2.0)))])
    }
}

/// A backward that returns the right values in the wrong order: invisible to a cotangent of
/// all ones, caught by gradcheck's random cotangent.
struct SwappedRowSum;
impl Op for SwappedRowSum {
    fn name(&self) -> &'static str {
        "swapped"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Ok(Forward::new(inputs[0].mul_scalar(2.0), vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let flipped: Vec<f64> = g.to_vec::<f64>().into_iter().rev().collect();
        Ok(vec![Some(
            Tensor::from_vec(flipped, g.shape().clone()).mul_scalar(2.0),
        )])
    }
}

#[test]
fn custom_op_trains_and_passes_gradcheck() {
    let x = t64(&[0.5, -1.5, 2.0], &[3]);
    let report = gradcheck(
        |i| apply(Cube, &[&i[0]]),
        std::slice::from_ref(&x),
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error < 1e-8, "{report}");
    let g = apply(Cube, &[&x]).unwrap().sum().backward();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>(), vec![0.75, 6.75, 12.0]);
}

#[test]
fn gradcheck_rejects_wrong_backwards() {
    let x = t64(&[0.5, -1.5, 2.0], &[3]);
    let err = gradcheck(
        |i| apply(BadCube, &[&i[0]]),
        std::slice::from_ref(&x),
        &GradcheckOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("gradcheck failed"), "{err}");
    let y = t64(&[0.1, 0.2, 0.3, 0.4], &[4]);
    assert!(gradcheck(
        |i| apply(SwappedRowSum, &[&i[0]]),
        &[y],
        &GradcheckOptions::default()
    )
    .is_err());
}

#[test]
fn gradcheck_needs_f64() {
    let x = Tensor::from_vec(vec![1.0f32], [1]).with_grad();
    assert!(gradcheck(|i| Ok(i[0].exp()), &[x], &GradcheckOptions::default()).is_err());
}

#[test]
fn gradients_keep_dtype_and_shape_of_leaves() {
    let w = Tensor::randn([4, 3], 0.0, 1.0).with_grad();
    let b = Tensor::randn([3], 0.0, 1.0).with_grad();
    let x = Tensor::randn([5, 4], 0.0, 1.0);
    let g = x.matmul(&w).add(&b).tanh().mean().backward();
    assert_eq!(g.get(&w).unwrap().dims(), &[4, 3]);
    assert_eq!(g.get(&b).unwrap().dims(), &[3]);
    assert_eq!(g.get(&w).unwrap().dtype(), DType::F32);
}

/// An op whose forward returns its input unchanged still gets a node of its own.
struct Identity;
impl Op for Identity {
    fn name(&self) -> &'static str {
        "identity"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Ok(Forward::new(inputs[0].clone(), vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.mul_scalar(3.0))])
    }
}

#[test]
fn identity_op_output_has_its_own_identity() {
    let x = t64(&[1.0, 2.0], &[2]);
    let y = apply(Identity, &[&x]).unwrap();
    assert_ne!(y.id(), x.id());
    let g = y.sum().backward();
    assert_eq!(g.get(&x).unwrap().to_vec::<f64>(), vec![3.0, 3.0]);
}
