//! Attention beyond the registry's forward/gradcheck cases: MultiheadAttention's symmetry,
//! masks and KV cache, dropout on the weights, additive attention, and their errors.

use cubegrad::autograd::{gradcheck, GradcheckOptions};
use cubegrad::nn::{
    lens_mask, pattern_mask, scaled_dot_product_attention, AdditiveAttention, AttentionPattern,
    Embedding, KvCache, MhaOptions, Module, MultiheadAttention, SdpaOptions,
};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::{manual_seed, no_grad, DType, Tensor};

fn randn64(shape: &[usize]) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0).to_dtype(DType::F64)
}

/// An evaluation-mode MHA with every parameter in f64 and random biases.
fn mha64(e: usize, heads: usize) -> MultiheadAttention {
    let mut m = MultiheadAttention::new(e, heads, 0.0);
    m.visit_params_mut("", &mut |_, t| {
        *t = Tensor::randn(t.shape().clone(), 0.0, 0.5)
            .to_dtype(DType::F64)
            .with_grad()
    });
    m.eval();
    m
}

fn no_weights() -> MhaOptions {
    MhaOptions {
        need_weights: false,
        ..Default::default()
    }
}

#[test]
fn self_attention_without_masks_is_permutation_equivariant() {
    manual_seed(20);
    let m = mha64(6, 3);
    let x = randn64(&[2, 5, 6]);
    let perm = [3i64, 0, 4, 1, 2];
    let idx = Tensor::from_vec(perm.to_vec(), [5]);
    let xp = x.index_select(1, &idx);
    let (y, _) = m.forward(&x, &x, &x, &no_weights());
    let (yp, _) = m.forward(&xp, &xp, &xp, &no_weights());
    assert_close(
        &yp.to_vec::<f64>(),
        &y.index_select(1, &idx).to_vec::<f64>(),
        Tolerance::F64,
        "f(P x) = P f(x)",
    );
}

#[test]
fn kv_cache_decoding_matches_full_causal_attention() {
    manual_seed(21);
    let m = mha64(8, 2);
    let x = randn64(&[2, 7, 8]);
    let full = MhaOptions {
        is_causal: true,
        need_weights: false,
        ..Default::default()
    };
    let (want, _) = m.forward(&x, &x, &x, &full);
    // One token at a time, and in uneven chunks.
    for chunks in [vec![1; 7], vec![3, 1, 3]] {
        let mut cache = KvCache::default();
        let mut outs = Vec::new();
        let mut start = 0;
        no_grad(|| {
            for len in chunks {
                outs.push(m.forward_cached(&x.narrow(1, start, len), &mut cache));
                start += len;
            }
        });
        assert_eq!(cache.len(), 7);
        let got = Tensor::concat(&outs.iter().collect::<Vec<_>>(), 1);
        assert_close(
            &got.to_vec::<f64>(),
            &want.to_vec::<f64>(),
            Tolerance::F64,
            "cached decoding",
        );
    }
}

#[test]
fn padded_keys_do_not_change_the_output() {
    manual_seed(22);
    let m = mha64(4, 2);
    let q = randn64(&[2, 3, 4]);
    let kv = randn64(&[2, 6, 4]).to_vec::<f64>();
    let pad = Tensor::from_vec(
        (0..12)
            .map(|i| i % 6 >= if i < 6 { 4 } else { 2 })
            .collect::<Vec<bool>>(),
        [2, 6],
    );
    let opts = MhaOptions {
        key_padding_mask: Some(pad),
        ..Default::default()
    };
    let mut changed = kv.clone();
    for (i, v) in changed.iter_mut().enumerate() {
        let (b, j) = (i / 24, (i / 4) % 6);
        if j >= if b == 0 { 4 } else { 2 } {
            *v += 10.0;
        }
    }
    let kv1 = Tensor::from_vec(kv, [2, 6, 4]);
    let kv2 = Tensor::from_vec(changed, [2, 6, 4]);
    let (y1, w1) = m.forward(&q, &kv1, &kv1, &opts);
    let (y2, _) = m.forward(&q, &kv2, &kv2, &opts);
    assert_eq!(y1.to_vec::<f64>(), y2.to_vec::<f64>());
    // Averaged weights: [B, L, S], zero on padded keys, rows summing to one.
    let w = w1.unwrap().to_vec::<f64>();
    for b in 0..2 {
        for i in 0..3 {
            let row = &w[(b * 3 + i) * 6..(b * 3 + i + 1) * 6];
            let valid = if b == 0 { 4 } else { 2 };
            assert!(row[valid..].iter().all(|&p| p == 0.0));
            assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
    }
}

#[test]
fn multihead_attention_gradients_pass_gradcheck() {
    manual_seed(23);
    let m = mha64(4, 2);
    let q = randn64(&[2, 3, 4]).with_grad();
    let kv = randn64(&[2, 5, 4]).with_grad();
    let pad = Tensor::from_vec(
        vec![
            false, false, false, true, false, false, false, false, false, false,
        ],
        [2, 5],
    );
    let opts = MhaOptions {
        key_padding_mask: Some(pad),
        need_weights: false,
        ..Default::default()
    };
    let report = gradcheck(
        |x| Ok(m.try_forward(&x[0], &x[1], &x[1], &opts)?.0),
        &[q, kv],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error <= 1e-6, "{report}");
    // And the parameters get gradients too.
    let (y, _) = m.forward(
        &randn64(&[1, 3, 4]),
        &randn64(&[1, 2, 4]),
        &randn64(&[1, 2, 4]),
        &no_weights(),
    );
    let g = y.sum().backward();
    for (name, p) in m.parameters() {
        assert!(g.get(&p).is_some(), "{name} has no gradient");
    }
}

#[test]
fn attention_dropout_is_inverted_and_differentiable() {
    manual_seed(24);
    let (q, k, v) = (
        randn64(&[1, 3, 4]),
        randn64(&[1, 6, 4]),
        randn64(&[1, 6, 2]),
    );
    let plain = scaled_dot_product_attention(&q, &k, &v, &SdpaOptions::default()).to_vec::<f64>();
    let opts = SdpaOptions {
        dropout_p: 0.3,
        ..Default::default()
    };
    // The mean over many draws approaches the output without dropout.
    let draws = 4000;
    let mut mean = vec![0.0; plain.len()];
    for _ in 0..draws {
        let o = scaled_dot_product_attention(&q, &k, &v, &opts).to_vec::<f64>();
        for (m, x) in mean.iter_mut().zip(o) {
            *m += x / draws as f64;
        }
    }
    let tol = Tolerance {
        rel: 0.0,
        abs: 0.05,
    };
    assert_close(&mean, &plain, tol, "E[dropout output]");
    // With the same seed for every evaluation the mask is fixed and gradcheck applies.
    let report = gradcheck(
        |x| {
            manual_seed(5);
            cubegrad::nn::try_scaled_dot_product_attention(&x[0], &x[1], &x[2], &opts)
        },
        &[q.with_grad(), k.with_grad(), v.with_grad()],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error <= 1e-6, "{report}");
}

#[test]
fn additive_attention_masks_by_valid_length() {
    manual_seed(25);
    let att = AdditiveAttention::new(3, 4, 5, 0.0);
    let (q, k, v) = (
        Tensor::randn([2, 1, 3], 0.0, 1.0),
        Tensor::ones([2, 10, 4]),
        Tensor::arange(0.0, 40.0, 1.0)
            .reshape(&[1, 10, 4])
            .broadcast_to([2, 10, 4])
            .contiguous(),
    );
    let lens = Tensor::from_vec(vec![2i64, 6], [2]);
    let y = att.forward(&q, &k, &v, Some(&lens));
    assert_eq!(y.dims(), &[2, 1, 4]);
    let w = att.last_weights().unwrap().to_vec::<f32>();
    // All keys are equal, so the weights are uniform over the valid ones.
    for (b, len) in [(0, 2), (1, 6)] {
        let row = &w[b * 10..(b + 1) * 10];
        for (j, &p) in row.iter().enumerate() {
            let want = if j < len { 1.0 / len as f32 } else { 0.0 };
            assert!((p - want).abs() < 1e-6, "batch {b}, key {j}: {p}");
        }
    }
    let m = lens_mask(&lens, 1, 10, true).unwrap();
    assert_eq!(m.dims(), &[2, 1, 1, 10]);
}

#[test]
fn attention_errors_name_the_op_and_shapes() {
    let m = MultiheadAttention::new(6, 2, 0.0);
    let e = m
        .try_forward(
            &Tensor::zeros([2, 3, 5]),
            &Tensor::zeros([2, 3, 6]),
            &Tensor::zeros([2, 3, 6]),
            &MhaOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("MultiheadAttention") && e.contains("[2, 3, 5]"),
        "{e}"
    );
    let opts = MhaOptions {
        key_padding_mask: Some(Tensor::from_vec(vec![false; 4], [2, 2])),
        ..Default::default()
    };
    let x = Tensor::zeros([2, 3, 6]);
    let e = m.try_forward(&x, &x, &x, &opts).unwrap_err().to_string();
    assert!(
        e.contains("key_padding_mask") && e.contains("[2, 2]"),
        "{e}"
    );
    let e = cubegrad::nn::try_scaled_dot_product_attention(
        &Tensor::zeros([2, 3, 4]),
        &Tensor::zeros([2, 5, 3]),
        &Tensor::zeros([2, 5, 3]),
        &SdpaOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("scaled_dot_product_attention") && e.contains("[2, 3, 4]"),
        "{e}"
    );
}

#[test]
fn the_embedding_padding_row_gets_no_gradient() {
    let emb = Embedding::with_padding(5, 3, 1);
    let idx = Tensor::from_vec(vec![1i64, 2, 1, 4], [2, 2]);
    let y = emb.forward(&idx);
    assert_eq!(y.dims(), &[2, 2, 3]);
    let g = y.sum().backward();
    let gw = g.get(&emb.weight).unwrap().to_vec::<f32>();
    assert_eq!(&gw[3..6], &[0.0; 3], "padding row");
    assert_eq!(&gw[6..9], &[1.0; 3], "row 2 used once");
    assert_eq!(&gw[12..15], &[1.0; 3], "row 4 used once");
    assert_eq!(
        &y.to_vec::<f32>()[..3],
        &[0.0; 3],
        "the padding row starts at zero"
    );
}

#[test]
fn blocked_causal_attention_equals_an_explicit_causal_mask() {
    // Long enough for several 64-row blocks; L ≠ S checks the top-left alignment.
    manual_seed(26);
    for (l, s) in [(150, 150), (130, 170)] {
        let q = randn64(&[2, 3, l, 8]).with_grad();
        let k = randn64(&[2, 3, s, 8]).with_grad();
        let v = randn64(&[2, 3, s, 5]).with_grad();
        let g = randn64(&[2, 3, l, 5]);
        let causal = SdpaOptions {
            is_causal: true,
            ..Default::default()
        };
        let masked = SdpaOptions {
            attn_mask: Some(cubegrad::nn::causal_mask(l, s)),
            ..Default::default()
        };
        let a = scaled_dot_product_attention(&q, &k, &v, &causal);
        let b = scaled_dot_product_attention(&q, &k, &v, &masked);
        assert_close(
            &a.to_vec::<f64>(),
            &b.to_vec::<f64>(),
            Tolerance::F64,
            "output",
        );
        let (ga, gb) = (a.backward_with(&g), b.backward_with(&g));
        for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
            assert_close(
                &ga.get(t).unwrap().to_vec::<f64>(),
                &gb.get(t).unwrap().to_vec::<f64>(),
                Tolerance::F64,
                name,
            );
        }
    }
}

#[test]
fn attention_dropout_drops_the_weights_a_whole_mask_of_the_same_seed_drops() {
    // The CPU draws the mask tile by tile (and key by key for the strided pattern's far
    // keys); element (h, i, j) must be the one a mask of the weights' shape drawn from the
    // same seed has. Several tiles, causal and not, full and sparse.
    let cases = [
        (false, AttentionPattern::Full),
        (true, AttentionPattern::Full),
        (true, AttentionPattern::Local { window: 20 }),
        (false, AttentionPattern::Strided { stride: 9 }),
        (
            true,
            AttentionPattern::Fixed {
                stride: 12,
                summary: 3,
            },
        ),
        (
            false,
            AttentionPattern::Fixed {
                stride: 7,
                summary: 2,
            },
        ),
    ];
    for (causal, pattern) in cases {
        let (q, k, v) = (
            randn64(&[2, 70, 4]).with_grad(),
            randn64(&[2, 131, 4]).with_grad(),
            randn64(&[2, 131, 3]),
        );
        let opts = SdpaOptions {
            dropout_p: 0.4,
            is_causal: causal,
            pattern,
            ..Default::default()
        };
        manual_seed(7);
        let fused = scaled_dot_product_attention(&q, &k, &v, &opts);
        // The same draw of the generator, as a whole mask: dropout of ones.
        manual_seed(7);
        let ones = Tensor::ones([2, 70, 131]).to_dtype(DType::F64);
        let mask = cubegrad::nn::dropout(&ones, 0.4, true);
        let scores = q.matmul(&k.transpose(-2, -1)).mul_scalar(0.5);
        let keep = pattern_mask(70, 131, pattern, causal);
        let composed = scores.masked_softmax(&keep, -1).mul(&mask).matmul(&v);
        let what = format!("{pattern:?}, causal {causal}");
        assert_close(
            &fused.to_vec::<f64>(),
            &composed.to_vec::<f64>(),
            Tolerance::F64,
            &what,
        );
        let g = randn64(&[2, 70, 3]);
        let (gf, gc) = (fused.backward_with(&g), composed.backward_with(&g));
        for (name, t) in [("dq", &q), ("dk", &k)] {
            assert_close(
                &gf.get(t).unwrap().to_vec::<f64>(),
                &gc.get(t).unwrap().to_vec::<f64>(),
                Tolerance::F64,
                &format!("{name}, {what}"),
            );
        }
    }
}

#[test]
fn rows_that_see_no_key_give_zeros_and_no_nan() {
    // Rows 0 and 100 hide every key; the rest see some, across several tiles.
    let (l, s) = (101, 90);
    let keep: Vec<bool> = (0..l * s)
        .map(|x| {
            let (i, j) = (x / s, x % s);
            i != 0 && i != 100 && (i + j) % 3 != 0
        })
        .collect();
    let keep = Tensor::from_vec(keep, [l, s]);
    let q = randn64(&[1, l, 4]).with_grad();
    let (k, v) = (randn64(&[1, s, 4]).with_grad(), randn64(&[1, s, 2]));
    let opts = SdpaOptions {
        attn_mask: Some(keep),
        ..Default::default()
    };
    let y = scaled_dot_product_attention(&q, &k, &v, &opts);
    let yv = y.to_vec::<f64>();
    assert_eq!(&yv[..2], &[0.0, 0.0]);
    assert_eq!(&yv[200..], &[0.0, 0.0]);
    assert!(yv.iter().all(|x| x.is_finite()));
    let g = y.backward_with(&randn64(&[1, l, 2]));
    let dq = g.get(&q).unwrap().to_vec::<f64>();
    assert!(dq.iter().all(|x| x.is_finite()));
    assert_eq!(
        &dq[..4],
        &[0.0; 4],
        "a row that sees nothing passes no gradient"
    );
    assert!(g
        .get(&k)
        .unwrap()
        .to_vec::<f64>()
        .iter()
        .all(|x| x.is_finite()));
}

/// MRA: with every block refined it is softmax attention; the coarse level alone is further
/// from it than one refined block per query block, which is further than two.
#[test]
fn mra_attention_refines_towards_softmax_attention() {
    use cubegrad::nn::{try_mra_attention, MraOptions};
    cubegrad::manual_seed(38);
    let f64s = |shape: &[usize], std: f64| Tensor::randn(shape, 0.0, std).to_dtype(DType::F64);
    let (q, k, v) = (
        f64s(&[3, 40, 8], 1.5),
        f64s(&[3, 40, 8], 1.5),
        f64s(&[3, 40, 4], 1.0),
    );
    let exact = cubegrad::nn::scaled_dot_product_attention(&q, &k, &v, &Default::default());
    let mra = |refined| {
        try_mra_attention(&q, &k, &v, MraOptions { block: 6, refined })
            .unwrap()
            .to_vec::<f64>()
    };
    // 40 tokens in blocks of 6: 7 blocks, the last of 4.
    assert_close(
        &mra(7),
        &exact.to_vec::<f64>(),
        Tolerance::F64,
        "all refined",
    );
    let err = |a: Vec<f64>| {
        a.iter()
            .zip(exact.to_vec::<f64>())
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let (e1, e2, e4) = (err(mra(1)), err(mra(2)), err(mra(4)));
    assert!(
        e4 < e2 && e2 < e1,
        "errors with 1, 2, 4 refined blocks: {e1} {e2} {e4}"
    );
}

/// Random-feature attention stays finite, with finite gradients, when a causal query's only
/// key is far from the others (its features would underflow to zero in f32 without
/// Performer's ε: the LM stopped on a NaN gradient at step 486 before it).
#[test]
fn random_feature_attention_survives_a_key_far_from_the_rest() {
    use cubegrad::nn::{
        orthogonal_random_features, try_random_feature_attention, LinearAttentionOptions,
    };
    cubegrad::manual_seed(40);
    let q = Tensor::randn([1, 8, 4], 0.0, 1.0).with_grad();
    let mut kv = Tensor::randn([1, 8, 4], 0.0, 1.0).to_vec::<f32>();
    kv[..4].copy_from_slice(&[30.0, -20.0, 0.0, 10.0]);
    let k = Tensor::from_vec(kv, [1, 8, 4]).with_grad();
    let v = Tensor::randn([1, 8, 2], 0.0, 1.0).with_grad();
    let opts = LinearAttentionOptions {
        causal: true,
        chunk: 3,
    };
    let y = try_random_feature_attention(&q, &k, &v, &orthogonal_random_features(6, 4, 1), opts)
        .unwrap();
    assert!(
        y.to_vec::<f32>().iter().all(|x| x.is_finite()),
        "{:?}",
        y.to_vec::<f32>()
    );
    let g = y.sum().backward();
    for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
        let grad = g.get(t).unwrap().to_vec::<f32>();
        assert!(grad.iter().all(|x| x.is_finite()), "{name}: {grad:?}");
    }
}
