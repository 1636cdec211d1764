//! The GRU's hand-written backward through time, against central differences (f64, random
//! cotangent) and against the same recurrence composed from differentiable tensor ops.

use cubegrad::autograd::GradcheckOptions;
use cubegrad::nn::{try_gru_layer, Gru, Module};
use cubegrad::{gradcheck, manual_seed, DType, Tensor};

fn f64_param(shape: &[usize], scale: f64) -> Tensor {
    Tensor::randn(shape, 0.0, scale)
        .to_dtype(DType::F64)
        .with_grad()
}

/// PyTorch's GRU equations, one step at a time, every op recorded on the tape.
fn composed(
    x: &Tensor,
    h0: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: &Tensor,
    b_hh: &Tensor,
) -> Tensor {
    let hs = w_hh.dims()[1];
    let mut h = h0.clone();
    let mut outs = Vec::new();
    for t in 0..x.dims()[1] {
        let xt = x.narrow(1, t, 1).squeeze(1);
        let gi = xt.matmul(&w_ih.t()).add(b_ih);
        let gh = h.matmul(&w_hh.t()).add(b_hh);
        let r = gi.narrow(1, 0, hs).add(&gh.narrow(1, 0, hs)).sigmoid();
        let z = gi.narrow(1, hs, hs).add(&gh.narrow(1, hs, hs)).sigmoid();
        let n = gi
            .narrow(1, 2 * hs, hs)
            .add(&r.mul(&gh.narrow(1, 2 * hs, hs)))
            .tanh();
        h = z.neg().add_scalar(1.0).mul(&n).add(&z.mul(&h));
        outs.push(h.clone());
    }
    Tensor::stack(&outs.iter().collect::<Vec<_>>(), 1)
}

#[test]
fn gru_layer_passes_gradcheck_on_every_input() {
    manual_seed(3);
    let (b, t, i, h) = (2, 4, 3, 5);
    let inputs = vec![
        f64_param(&[b, t, i], 1.0),
        f64_param(&[b, h], 0.5),
        f64_param(&[3 * h, i], 0.5),
        f64_param(&[3 * h, h], 0.5),
        f64_param(&[3 * h], 0.3),
        f64_param(&[3 * h], 0.3),
    ];
    let report = gradcheck(
        |v| try_gru_layer(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]),
        &inputs,
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error < 1e-6, "{report}");
}

#[test]
fn gru_layer_matches_the_composed_recurrence() {
    manual_seed(4);
    let (b, t, i, h) = (3, 6, 4, 7);
    let v: Vec<Tensor> = vec![
        f64_param(&[b, t, i], 1.0),
        f64_param(&[b, h], 0.5),
        f64_param(&[3 * h, i], 0.4),
        f64_param(&[3 * h, h], 0.4),
        f64_param(&[3 * h], 0.2),
        f64_param(&[3 * h], 0.2),
    ];
    let cot = Tensor::randn([b, t, h], 0.0, 1.0).to_dtype(DType::F64);
    let fused = try_gru_layer(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]).unwrap();
    let reference = composed(&v[0], &v[1], &v[2], &v[3], &v[4], &v[5]);
    let close = |a: &Tensor, r: &Tensor, what: &str| {
        for (x, y) in a.to_vec::<f64>().iter().zip(r.to_vec::<f64>()) {
            assert!((x - y).abs() < 1e-10, "{what}: {x} vs {y}");
        }
    };
    close(&fused, &reference, "output");
    let gf = fused.mul(&cot).sum().backward();
    let gr = reference.mul(&cot).sum().backward();
    for (k, p) in v.iter().enumerate() {
        close(
            gf.get(p).unwrap(),
            gr.get(p).unwrap(),
            &format!("gradient of input {k}"),
        );
    }
}

#[test]
fn gru_module_has_pytorch_names_and_checks_shapes() {
    let gru = Gru::new(4, 6, 2);
    let names: Vec<String> = gru.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "weight_ih_l0",
            "weight_hh_l0",
            "bias_ih_l0",
            "bias_hh_l0",
            "weight_ih_l1",
            "weight_hh_l1",
            "bias_ih_l1",
            "bias_hh_l1"
        ]
    );
    assert_eq!(gru.parameters()[0].1.dims(), &[18, 4]);
    let (out, state) = gru.forward(&Tensor::randn([2, 5, 4], 0.0, 1.0), None);
    assert_eq!(out.dims(), &[2, 5, 6]);
    assert_eq!(state.dims(), &[2, 2, 6]);
    // The last layer's final state is its last output.
    assert_eq!(
        state.narrow(0, 1, 1).squeeze(0).to_vec::<f32>(),
        out.narrow(1, 4, 1).squeeze(1).to_vec::<f32>()
    );
    let err = gru
        .try_forward(&Tensor::randn([2, 5, 3], 0.0, 1.0), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("gru") && err.contains("[2, 5, 3]"), "{err}");
}
