//! Chapter 4: optimizers.

use cubegrad::nn::Module;
use cubegrad::optim::{AdamConfig, Optimizer, SgdConfig};
use cubegrad::Tensor;

/// One scalar parameter as a module.
pub struct Scalar {
    pub p: Tensor,
}

impl Module for Scalar {
    cubegrad::module_tensors! {
        param "p" p;
    }
}

/// Exercise 1: `steps` of SGD with momentum on `(p − 3)²`, by hand and with `Sgd`.
pub fn momentum_by_hand_and_with_sgd(steps: usize) -> (Vec<f64>, Vec<f64>) {
    let (lr, mu) = (0.05, 0.9);
    let (mut p, mut b) = (0.0f64, 0.0f64);
    let mut hand = Vec::new();
    for t in 0..steps {
        let g = 2.0 * (p - 3.0);
        b = if t == 0 { g } else { mu * b + g }; // PyTorch starts the buffer at the first gradient
        p -= lr * b;
        hand.push(p);
    }
    let mut model = Scalar {
        p: Tensor::from_vec(vec![0.0f64], [1]).with_grad(),
    };
    let mut opt = SgdConfig {
        lr,
        momentum: mu,
        ..Default::default()
    }
    .init();
    let mut lib = Vec::new();
    for _ in 0..steps {
        let loss = model.p.add_scalar(-3.0).square().sum();
        let grads = loss.backward();
        opt.step(&mut model, &grads).unwrap();
        lib.push(model.p.item());
    }
    (hand, lib)
}

/// Exercise 2: the size of Adam's first step for a gradient of the given scale.
pub fn adam_first_step(scale: f64, lr: f64) -> f64 {
    let mut model = Scalar {
        p: Tensor::from_vec(vec![1.0f64], [1]).with_grad(),
    };
    let mut opt = AdamConfig::adam().lr(lr).init();
    let grads = model.p.mul_scalar(scale).sum().backward();
    opt.step(&mut model, &grads).unwrap();
    (model.p.item() - 1.0).abs()
}
