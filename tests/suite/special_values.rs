//! Softmax and friends on NaN, ±∞ and fully masked rows, as PyTorch defines them.

use cubegrad::Tensor;

#[test]
fn softmax_special_values() {
    let inf = f32::INFINITY;
    let x = Tensor::from_vec(
        vec![1.0f32, f32::NAN, 2.0, -inf, 0.0, 1.0, -inf, -inf, -inf],
        [3, 3],
    );
    let y = x.softmax(-1).to_vec::<f32>();
    assert!(
        y[..3].iter().all(|v| v.is_nan()),
        "a NaN poisons its row: {y:?}"
    );
    assert_eq!(y[3], 0.0, "exp(-inf) is exactly 0");
    assert!((y[4] + y[5] - 1.0).abs() < 1e-6);
    assert_eq!(
        &y[6..],
        &[0.0, 0.0, 0.0],
        "a row of -inf has no mass (PyTorch gives NaN here; we give 0)"
    );
    let ls = x.log_softmax(-1).to_vec::<f32>();
    assert_eq!(ls[3], -inf);
    assert!(ls[..3].iter().all(|v| v.is_nan()));
}

#[test]
fn masked_softmax_special_rows() {
    let x = Tensor::from_vec(vec![3.0f32, 1.0, 2.0, 5.0, 5.0, 5.0], [2, 3]);
    let keep = Tensor::from_vec(vec![true, false, true, false, false, false], [2, 3]);
    let y = x.masked_softmax(&keep, -1).to_vec::<f32>();
    let e = (1.0f32).exp();
    assert!(
        (y[0] - e / (e + 1.0)).abs() < 1e-6 && y[1] == 0.0 && (y[2] - 1.0 / (e + 1.0)).abs() < 1e-6,
        "{y:?}"
    );
    assert_eq!(&y[3..], &[0.0, 0.0, 0.0], "a fully masked row is all zeros");
    // Masked positions pass no gradient, even where the scores are huge.
    let xg = Tensor::from_vec(vec![3.0f64, 1e30, 2.0], [1, 3]).with_grad();
    let m = Tensor::from_vec(vec![true, false, true], [1, 3]);
    let g = xg
        .masked_softmax(&m, -1)
        .mul(&Tensor::from_vec(vec![1.0f64, 2.0, 3.0], [1, 3]))
        .sum()
        .backward();
    assert_eq!(g.get(&xg).unwrap().to_vec::<f64>()[1], 0.0);
}

#[test]
fn argmax_comparisons_and_one_hot() {
    let x = Tensor::from_vec(vec![1.0f32, 3.0, 3.0, -1.0, 0.5, 2.0], [2, 3]);
    assert_eq!(
        x.argmax(-1, false).to_vec::<i64>(),
        vec![1, 2],
        "first index on ties"
    );
    assert_eq!(x.argmin(0, true).dims(), &[1, 3]);
    assert_eq!(x.argmin(0, true).to_vec::<i64>(), vec![1, 1, 1]);
    let t = Tensor::from_vec(vec![2.0f32], [1]);
    assert_eq!(
        x.gt(&t).to_vec::<bool>(),
        vec![false, true, true, false, false, false]
    );
    assert_eq!(
        x.le(&t).to_vec::<bool>(),
        vec![true, false, false, true, true, true]
    );
    let labels = Tensor::from_vec(vec![2i64, 0, -1], [3]);
    let oh = labels.one_hot(3);
    assert_eq!(oh.dims(), &[3, 3]);
    assert_eq!(
        oh.to_vec::<f32>(),
        vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        "-1 counts from the end"
    );
    assert!(Tensor::from_vec(vec![3i64], [1]).try_one_hot(3).is_err());
}
