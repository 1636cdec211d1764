//! Layers: dropout's statistics and gradient, Linear's shapes and errors.

use cubegrad::nn::{dropout, Linear, Module};
use cubegrad::{manual_seed, Tensor};

#[test]
fn dropout_zeroes_a_fraction_scales_the_rest_and_passes_gradients_through_the_mask() {
    manual_seed(1);
    let x = Tensor::ones([200, 100]).with_grad();
    let y = dropout(&x, 0.3, true);
    let v = y.to_vec::<f32>();
    let zeros = v.iter().filter(|&&a| a == 0.0).count() as f64 / v.len() as f64;
    assert!((zeros - 0.3).abs() < 0.02, "dropped fraction {zeros}");
    assert!(v.iter().all(|&a| a == 0.0 || (a - 1.0 / 0.7).abs() < 1e-6));
    // The gradient is the same mask, scaled: d(sum y)/dx = y for x = 1.
    let g = y.sum().backward();
    assert_eq!(g.get(&x).unwrap().to_vec::<f32>(), v);
    // Evaluation is the identity.
    assert_eq!(dropout(&x, 0.3, false).to_vec::<f32>(), x.to_vec::<f32>());
}

#[test]
fn linear_shapes_and_errors() {
    let l = Linear::new(5, 3, true);
    assert_eq!(l.forward(&Tensor::zeros([2, 7, 5])).dims(), &[2, 7, 3]);
    assert_eq!(l.num_params(), 5 * 3 + 3);
    // With zero input the output is the bias.
    assert_eq!(
        l.forward(&Tensor::zeros([1, 5])).to_vec::<f32>(),
        l.bias.as_ref().unwrap().to_vec::<f32>()
    );
    let e = l
        .try_forward(&Tensor::zeros([2, 4]))
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Linear: [2, 4] and [3, 5]") && e.contains("in_features = 5"),
        "{e}"
    );
    let no_bias = Linear::new(5, 3, false);
    assert_eq!(no_bias.parameters().len(), 1);
}

#[test]
fn the_dropout_module_follows_train_and_eval() {
    use cubegrad::nn::Dropout;
    manual_seed(2);
    let mut d = Dropout::new(0.5);
    let x = Tensor::ones([1000]);
    let zeros = d
        .forward(&x)
        .to_vec::<f32>()
        .iter()
        .filter(|&&v| v == 0.0)
        .count();
    assert!((400..600).contains(&zeros), "{zeros} of 1000 dropped");
    d.eval();
    assert_eq!(d.forward(&x).to_vec::<f32>(), x.to_vec::<f32>());
}
