//! ContextPool beyond the registry's small cases (which check the forward against the dense
//! reference and the backward by finite differences): the properties the spec promises, the
//! layer's initialisation, statistics, names and errors, and that it learns a pooling size.

use cubegrad::nn::{ContextPool, ContextPool2d, ContextPoolOptions, Module};
use cubegrad::optim::{AdamConfig, Optimizer};
use cubegrad::testing::naive::{self, Array};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::{manual_seed, DType, Tensor};

fn randn64(shape: &[usize], std: f64) -> Tensor {
    Tensor::randn(shape, 0.0, std).to_dtype(DType::F64)
}

/// A layer in f64 with random predictors (so weights and sizes vary from token to token).
fn layer64(d: usize, opts: ContextPoolOptions) -> ContextPool {
    let mut l = ContextPool::new(d, opts);
    l.weight_proj.weight = randn64(&[1, d], 0.5).with_grad();
    l.weight_proj.bias = Some(randn64(&[1], 0.5).with_grad());
    l.size_proj.weight = randn64(&[1, d], 0.5).with_grad();
    l.size_proj.bias = Some(randn64(&[1], 0.5).with_grad());
    l
}

fn predictor_arrays(l: &ContextPool) -> Vec<Array> {
    l.parameters()
        .iter()
        .map(|(_, t)| Array::from_tensor(t))
        .collect()
}

#[test]
fn windowed_kernel_matches_the_dense_reference_on_a_long_sequence() {
    manual_seed(10);
    // n = 101 > 2R + 1 = 49, so most windows are cut by the radius, not by the ends.
    for causal in [false, true] {
        let opts = ContextPoolOptions {
            causal,
            ..Default::default()
        };
        let l = layer64(16, opts);
        let x = randn64(&[3, 101, 16], 1.0);
        let y = l.forward(&x);
        let mut inputs = vec![Array::from_tensor(&x)];
        inputs.extend(predictor_arrays(&l));
        let want = naive::context_pool(
            &inputs,
            naive::DensePool {
                h: 1,
                w: 101,
                stride: 1,
                radius: opts.radius(),
                causal,
                s_min: opts.s_min,
                s_max: opts.s_max,
                normalize: true,
                eps: opts.eps,
            },
        );
        assert_close(
            &y.to_vec::<f64>(),
            &want.data,
            Tolerance::F64,
            "context_pool n=101",
        );
    }
}

#[test]
fn tiny_pooling_sizes_give_the_identity_map() {
    manual_seed(11);
    let opts = ContextPoolOptions {
        s_min: 0.02,
        s_max: 0.02,
        eps: 1e-12,
        ..Default::default()
    };
    let l = layer64(5, opts);
    let x = randn64(&[2, 13, 5], 1.0);
    let y = l.forward(&x);
    // Neighbours at distance 1 weigh exp(−1 / (2 · 0.02²)) ≈ e^−1250 = 0; what is left is
    // w_i x_i / (w_i + eps), with eps small enough to vanish.
    let tol = Tolerance {
        rel: 1e-5,
        abs: 1e-5,
    };
    assert_close(&y.to_vec::<f64>(), &x.to_vec::<f64>(), tol, "s → 0");
}

#[test]
fn normalized_pooling_with_uniform_weights_stays_inside_the_inputs_hull() {
    manual_seed(12);
    let mut l = layer64(4, ContextPoolOptions::default());
    // a = 0, a0 = 0: every w_j = 1/2.
    l.weight_proj.weight = Tensor::zeros([1, 4]).to_dtype(DType::F64).with_grad();
    l.weight_proj.bias = Some(Tensor::zeros([1]).to_dtype(DType::F64).with_grad());
    let x = randn64(&[2, 40, 4], 3.0);
    let y = l.forward(&x).to_vec::<f64>();
    let xs = x.to_vec::<f64>();
    let mut checked = 0;
    for bt in 0..2 {
        for i in 0..40usize {
            // The window of token i under the default radius 24.
            let (lo, hi) = (i.saturating_sub(24), (i + 24).min(39));
            for k in 0..4 {
                let column = (lo..=hi).map(|j| xs[(bt * 40 + j) * 4 + k]);
                let (mn, mx) = column.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                    (a.min(v), b.max(v))
                });
                let v = y[(bt * 40 + i) * 4 + k];
                // eps shrinks the weights' sum to Z/(Z + eps), a relative 1e-6 at most.
                let slack = 1e-5 * mx.abs().max(mn.abs());
                assert!(
                    v >= mn - slack && v <= mx + slack,
                    "token {i}, feature {k}: {v} outside [{mn}, {mx}]"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 40 * 4);
}

#[test]
fn causal_outputs_do_not_depend_on_future_tokens() {
    manual_seed(13);
    let opts = ContextPoolOptions {
        causal: true,
        ..Default::default()
    };
    let l = layer64(6, opts);
    let x = randn64(&[2, 30, 6], 1.0).with_grad();
    let y = l.forward(&x);
    // Change tokens 17.. and nothing before 17 moves.
    let mut changed = x.to_vec::<f64>();
    for bt in 0..2 {
        for v in &mut changed[(bt * 30 + 17) * 6..(bt + 1) * 30 * 6] {
            *v += 5.0;
        }
    }
    let y2 = l.forward(&Tensor::from_vec(changed, [2, 30, 6]));
    let (a, b) = (y.to_vec::<f64>(), y2.to_vec::<f64>());
    for bt in 0..2 {
        let past = (bt * 30 * 6)..((bt * 30 + 17) * 6);
        assert_eq!(
            a[past.clone()],
            b[past.clone()],
            "batch {bt}: the past changed"
        );
        let future = ((bt * 30 + 17) * 6)..((bt + 1) * 30 * 6);
        assert_ne!(
            a[future.clone()],
            b[future],
            "batch {bt}: the future did not"
        );
    }
    // And the gradient of token 10's output reaches no later input.
    let mut pick = vec![0.0; 2 * 30 * 6];
    pick[10 * 6..11 * 6].fill(1.0);
    let grads = y.backward_with(&Tensor::from_vec(pick, [2, 30, 6]));
    let gx = grads.get(&x).unwrap().to_vec::<f64>();
    assert!(gx[11 * 6..30 * 6].iter().all(|&v| v == 0.0));
    assert!(gx[..10 * 6].iter().any(|&v| v != 0.0));
}

#[test]
fn the_layer_starts_at_size_one_and_weight_half_and_reports_its_statistics() {
    let l = ContextPool::new(8, ContextPoolOptions::default());
    assert!(l.last_stats().is_none());
    let names: Vec<String> = l.parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "weight_proj.weight",
            "weight_proj.bias",
            "size_proj.weight",
            "size_proj.bias"
        ]
    );
    assert_eq!(l.num_params(), 2 * (8 + 1));
    let y = l.forward(&Tensor::randn([3, 11, 8], 0.0, 1.0));
    assert_eq!(y.dims(), &[3, 11, 8]);
    let stats = l.last_stats().unwrap();
    assert_eq!(stats.weights.dims(), &[3, 11]);
    assert_eq!(stats.sizes.dims(), &[3, 11]);
    assert!(stats.weights.to_vec::<f32>().iter().all(|&w| w == 0.5));
    assert!(stats
        .sizes
        .to_vec::<f32>()
        .iter()
        .all(|&s| (s - 1.0).abs() < 1e-5));
}

#[test]
fn a_grid_with_a_class_token_pools_the_grid_and_passes_the_token_through() {
    manual_seed(14);
    let opts = ContextPoolOptions {
        s_max: 2.0,
        ..Default::default()
    };
    let l = layer64(3, opts);
    let x = randn64(&[2, 1 + 4 * 5, 3], 1.0).with_grad();
    let y = l.forward_grid(&x, (4, 5), true);
    assert_eq!(y.dims(), &[2, 21, 3]);
    let (xs, ys) = (x.to_vec::<f64>(), y.to_vec::<f64>());
    for bt in 0..2 {
        assert_eq!(xs[bt * 63..bt * 63 + 3], ys[bt * 63..bt * 63 + 3]);
    }
    // The grid part equals pooling the grid alone.
    let grid = x.narrow(1, 1, 20);
    let alone = cubegrad::nn::try_context_pool_2d(
        &grid,
        &l.weight_proj.weight,
        l.weight_proj.bias.as_ref().unwrap(),
        &l.size_proj.weight,
        l.size_proj.bias.as_ref().unwrap(),
        (4, 5),
        1,
        &opts,
    )
    .unwrap();
    assert_close(
        &y.narrow(1, 1, 20).to_vec::<f64>(),
        &alone.to_vec::<f64>(),
        Tolerance::F64,
        "grid part",
    );
    let stats = l.last_stats().unwrap();
    assert_eq!(stats.sizes.dims(), &[2, 4, 5]);
    // The class token's gradient is the upstream gradient, untouched by the pooling.
    let g = randn64(&[2, 21, 3], 1.0);
    let gx = y.backward_with(&g).get(&x).unwrap().to_vec::<f64>();
    let gv = g.to_vec::<f64>();
    for bt in 0..2 {
        assert_eq!(gx[bt * 63..bt * 63 + 3], gv[bt * 63..bt * 63 + 3]);
    }
}

#[test]
fn contextpool2d_has_the_shape_of_the_pooling_layer_it_replaces() {
    // MaxPool2d(r) on H×W gives floor(H/r) × floor(W/r), odd sizes included.
    for (h, w, r) in [(7, 7, 2), (8, 6, 2), (9, 10, 3), (5, 5, 1)] {
        let p = ContextPool2d::new(4, r, ContextPoolOptions::default());
        let y = p.forward(&Tensor::randn([2, 4, h, w], 0.0, 1.0));
        assert_eq!(y.dims(), &[2, 4, h / r, w / r], "{h}×{w}, stride {r}");
        let st = p.last_stats().unwrap();
        assert_eq!(st.weights.dims(), &[2, h, w]);
        assert_eq!(st.sizes.dims(), &[2, h / r, w / r]);
    }
}

#[test]
fn contextpool2d_equals_grid_pooling_of_channels_last_tokens() {
    manual_seed(15);
    let mut p = ContextPool2d::new(3, 2, ContextPoolOptions::default());
    p.pool = layer64(3, ContextPoolOptions::default());
    let x = randn64(&[2, 3, 5, 6], 1.0);
    let y = p.forward(&x);
    let tokens = x.reshape(&[2, 3, 30]).permute(&[0, 2, 1]).contiguous();
    let mut inputs = vec![Array::from_tensor(&tokens)];
    inputs.extend(predictor_arrays(&p.pool));
    let o = ContextPoolOptions::default();
    let want = naive::context_pool(
        &inputs,
        naive::DensePool {
            h: 5,
            w: 6,
            stride: 2,
            radius: o.radius(),
            causal: false,
            s_min: o.s_min,
            s_max: o.s_max,
            normalize: true,
            eps: o.eps,
        },
    );
    // want is [B, 2·3, C]; y is [B, C, 2, 3].
    let want = naive::permute(&want, &[0, 2, 1]);
    assert_close(
        &y.to_vec::<f64>(),
        &want.data,
        Tolerance::F64,
        "ContextPool2d",
    );
}

#[test]
fn bad_input_names_the_op_and_the_shapes() {
    let l = ContextPool::new(8, ContextPoolOptions::default());
    let e = l
        .try_forward(&Tensor::zeros([2, 5, 7]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("context_pool") && e.contains("[2, 5, 7]"), "{e}");
    let e = l
        .try_forward(&Tensor::zeros([5, 8]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("context_pool") && e.contains("[5, 8]"), "{e}");
    let e = l
        .try_forward_grid(&Tensor::zeros([2, 13, 8]), (3, 4), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("[2, 13, 8]") && e.contains("3×4"), "{e}");
    let causal = ContextPool::new(
        8,
        ContextPoolOptions {
            causal: true,
            ..Default::default()
        },
    );
    let e = causal
        .try_forward_grid(&Tensor::zeros([2, 12, 8]), (3, 4), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("causal"), "{e}");
    let p = ContextPool2d::new(4, 3, ContextPoolOptions::default());
    let e = p
        .try_forward(&Tensor::zeros([1, 4, 2, 5]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("ContextPool2d") && e.contains("stride 3"), "{e}");
    let e = l
        .try_forward(&Tensor::zeros([2, 5, 8]).to_dtype(DType::F64))
        .unwrap_err()
        .to_string();
    assert!(e.contains("context_pool") && e.contains("dtype"), "{e}");
}

#[test]
fn the_layer_learns_the_pooling_size_of_its_target() {
    manual_seed(16);
    // The target is the same input pooled with every size fixed at 3 and uniform weights.
    let fixed = ContextPoolOptions {
        s_min: 3.0,
        s_max: 3.0,
        ..Default::default()
    };
    let teacher = ContextPool::new(8, fixed);
    let x = Tensor::randn([4, 48, 8], 0.0, 1.0);
    let target = teacher.forward(&x).detach();
    let mut student = ContextPool::new(8, ContextPoolOptions::default());
    let mut opt = AdamConfig::adam().lr(0.05).init();
    let mean_size = |l: &ContextPool| -> f64 {
        let s = l.last_stats().unwrap().sizes.to_vec::<f32>();
        s.iter().map(|&v| v as f64).sum::<f64>() / s.len() as f64
    };
    let first = student.forward(&x).mse_loss(&target).item();
    let start = mean_size(&student);
    for _ in 0..150 {
        let loss = student.forward(&x).mse_loss(&target);
        let grads = loss.backward();
        opt.step(&mut student, &grads).unwrap();
    }
    let last = student.forward(&x).mse_loss(&target).item();
    let end = mean_size(&student);
    assert!((start - 1.0).abs() < 1e-4, "starts at size {start}");
    assert!(
        (end - 3.0).abs() < 0.3,
        "learned mean size {end}, want about 3"
    );
    assert!(last < 0.05 * first, "loss {first} → {last}");
}

#[test]
fn the_banded_sequence_kernel_agrees_with_the_window_loop() {
    // A 1 × n grid pools exactly as a two-sided sequence, but runs the general window loop;
    // the sequence runs the banded register kernels. f32, the bench's width, n not a multiple
    // of the 4-row blocks.
    manual_seed(31);
    let (n, d) = (301, 128);
    let x = Tensor::randn([2, n, d], 0.0, 1.0).with_grad();
    let g = Tensor::randn([2, n, d], 0.0, 1.0);
    let opts = ContextPoolOptions::default();
    let mut layer = ContextPool::new(d, opts);
    layer.weight_proj.weight = Tensor::randn([1, d], 0.0, 0.1).with_grad();
    layer.size_proj.weight = Tensor::randn([1, d], 0.0, 0.3).with_grad();
    let seq = layer.forward(&x);
    let grid = layer.try_forward_grid(&x, (1, n), false).unwrap();
    let tol = Tolerance {
        rel: 1e-4,
        abs: 1e-5,
    };
    assert_close(&seq.to_vec::<f64>(), &grid.to_vec::<f64>(), tol, "y");
    let (gs, gg) = (seq.backward_with(&g), grid.backward_with(&g));
    for (name, t) in [
        ("dx", &x),
        ("da", &layer.weight_proj.weight),
        ("db", &layer.size_proj.weight),
    ] {
        assert_close(
            &gs.get(t).unwrap().to_vec::<f64>(),
            &gg.get(t).unwrap().to_vec::<f64>(),
            tol,
            name,
        );
    }
}
