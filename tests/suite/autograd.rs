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

/// Tapes are per thread. A graph recorded on one thread and differentiated on another is an
/// error naming the cause, even when the other thread's tape has a node at the same position
/// (which an index alone would have mistaken for it, and differentiated the wrong graph).
#[test]
fn a_graph_differentiated_on_another_thread_is_an_error_not_a_wrong_gradient() {
    let w = t64(&[1.0, 2.0, 3.0], &[3]);
    let (w2, y) = std::thread::spawn(move || {
        clear_tape();
        let y = w.mul_scalar(2.0).square().sum();
        (w, y)
    })
    .join()
    .unwrap();
    // This thread's tape holds nodes at the same positions, from a graph of its own.
    clear_tape();
    let own = w2.exp().mul_scalar(3.0).sum();
    let err = y.try_backward().unwrap_err().to_string();
    assert!(err.contains("another thread"), "{err}");
    // A graph that mixes the other thread's output into this thread's ops fails the same way
    // when the walk reaches it.
    let mixed = y.add(&w2.sum());
    let err = mixed.try_backward().unwrap_err().to_string();
    assert!(err.contains("another thread"), "{err}");
    // Detached, the other thread's result is a constant here, and this thread's gradients
    // are right.
    let fixed = y.detach().mul(&w2.sum());
    let g = fixed.backward();
    let y_value = 4.0 * (1.0 + 4.0 + 9.0);
    assert_eq!(g.get(&w2).unwrap().to_vec::<f64>(), vec![y_value; 3]);
    let g = own.backward();
    let want: Vec<f64> = [1.0f64, 2.0, 3.0].iter().map(|v| 3.0 * v.exp()).collect();
    assert_eq!(g.get(&w2).unwrap().to_vec::<f64>(), want);
}

/// Tensors built on other threads (data loading, under `no_grad` or not) are ordinary inputs
/// here, and threads that each record and differentiate their own graphs of shared
/// parameters get the same gradients as one thread would.
#[test]
fn tensors_cross_threads_and_each_thread_differentiates_its_own_graphs() {
    let (tx, rx) = std::sync::mpsc::channel();
    let loaders: Vec<_> = (0..2)
        .map(|k| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..3 {
                    let v: Vec<f64> = (0..4).map(|j| (k * 10 + i * 3 + j) as f64 / 7.0).collect();
                    let batch = if k == 0 {
                        no_grad(|| Tensor::from_vec(v, [2, 2]).mul_scalar(0.5))
                    } else {
                        Tensor::from_vec(v, [2, 2]).mul_scalar(0.5)
                    };
                    tx.send((k, i, batch)).unwrap();
                }
                assert_eq!(tape_len(), 0, "a loader recorded nothing");
            })
        })
        .collect();
    drop(tx);
    let w = t64(&[0.5, -1.0, 2.0, 0.25], &[2, 2]);
    let loss_of = |x: &Tensor, w: &Tensor| x.matmul(w).tanh().sum();
    let mut batches: Vec<(usize, usize, Tensor)> = rx.iter().collect();
    for l in loaders {
        l.join().unwrap();
    }
    batches.sort_by_key(|(k, i, _)| (*k, *i));
    // Here, one batch after another.
    let here: Vec<Vec<f64>> = batches
        .iter()
        .map(|(_, _, x)| loss_of(x, &w).backward().get(&w).unwrap().to_vec::<f64>())
        .collect();
    // The same batches, each on a thread of its own, all at once.
    let there: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .iter()
            .map(|(_, _, x)| {
                let w = &w;
                s.spawn(move || loss_of(x, w).backward().get(w).unwrap().to_vec::<f64>())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(here, there);
    assert_eq!(here.len(), 6);
}
