//! Transformer blocks: gradients by finite differences for every attention pattern (with and
//! without ContextPool), causality, cached decoding against full recomputation, the
//! sparse patterns' masks, adaptive span's penalty, and positional encodings.

use cubegrad::autograd::{gradcheck, GradcheckOptions};
use cubegrad::nn::{
    fixed_mask, local_mask, orthogonal_random_features, sinusoidal_positions, strided_mask,
    update_memory, AttentionKind, ContextPoolOptions, EncoderOptions, GatedAttentionUnit,
    GauOptions, KvCache, LayerCache, MhaOptions, Module, PoolFeatures, PoolPlacement,
    RandomFeatures, Reformer, ReformerOptions, TransformerDecoderLayer, TransformerEncoderLayer,
    TransformerXlLayer,
};
use cubegrad::testing::{assert_close, Tolerance};
use cubegrad::{manual_seed, no_grad, DType, Tensor};

fn randn64(shape: &[usize]) -> Tensor {
    Tensor::randn(shape, 0.0, 1.0).to_dtype(DType::F64)
}

/// Every parameter in f64 (random, so that no term vanishes), evaluation mode.
fn to_f64(m: &mut dyn Module) {
    // Buffers (the random features) in f64 as they are; parameters redrawn larger.
    m.try_to_dtype(DType::F64).unwrap();
    m.visit_params_mut("", &mut |name, t| {
        let v = if name.ends_with("span") {
            Tensor::full(t.shape().clone(), 2.5)
        } else {
            Tensor::randn(t.shape().clone(), 0.0, 0.4)
        };
        *t = v.to_dtype(DType::F64).with_grad()
    });
    m.eval();
}

const KINDS: [AttentionKind; 6] = [
    AttentionKind::Full,
    AttentionKind::Local { window: 2 },
    AttentionKind::Strided { stride: 2 },
    AttentionKind::Fixed {
        stride: 3,
        summary: 1,
    },
    AttentionKind::AdaptiveSpan {
        initial_span: 2.0,
        ramp: 2.0,
        max_span: 8.0,
    },
    // Chunks of 3 over 5 and 9 tokens: a partial last chunk, and prefix sums across chunks.
    AttentionKind::RandomFeatures {
        features: 5,
        chunk: 3,
    },
];

fn causal_options(kind: AttentionKind, pool: bool) -> EncoderOptions {
    let mut o = EncoderOptions::new(4, 2);
    o.dim_feedforward = 6;
    o.dropout = 0.0;
    o.causal = true;
    o.attention = kind;
    o.context_pool = pool.then_some(ContextPoolOptions {
        causal: true,
        s_max: 3.0,
        ..Default::default()
    });
    o
}

#[test]
fn encoder_layers_pass_gradcheck_for_every_pattern() {
    manual_seed(30);
    for kind in KINDS {
        for pool in [false, true] {
            let mut layer = TransformerEncoderLayer::new(causal_options(kind, pool));
            to_f64(&mut layer);
            let x = randn64(&[2, 5, 4]).with_grad();
            let report = gradcheck(
                |x| layer.try_forward(&x[0], None),
                &[x],
                &GradcheckOptions::default(),
            )
            .unwrap();
            assert!(report.max_error <= 1e-6, "{kind:?}, pool {pool}: {report}");
            // Every parameter, the span included, gets a gradient.
            let y = layer.forward(&randn64(&[1, 5, 4]), None);
            let g = y.sum().backward();
            for (name, p) in layer.parameters() {
                assert!(g.get(&p).is_some(), "{kind:?}: {name} has no gradient");
            }
        }
    }
}

#[test]
fn causal_encoder_layers_ignore_future_tokens() {
    manual_seed(31);
    for kind in KINDS {
        let mut layer = TransformerEncoderLayer::new(causal_options(kind, true));
        to_f64(&mut layer);
        let x = randn64(&[1, 9, 4]);
        let mut changed = x.to_vec::<f64>();
        changed[6 * 4..].iter_mut().for_each(|v| *v -= 3.0);
        let a = layer.forward(&x, None).to_vec::<f64>();
        let b = layer
            .forward(&Tensor::from_vec(changed, [1, 9, 4]), None)
            .to_vec::<f64>();
        assert_close(&a[..6 * 4], &b[..6 * 4], Tolerance::F64, "the past");
        assert_ne!(
            a[6 * 4..],
            b[6 * 4..],
            "{kind:?}: the future did not change"
        );
    }
}

#[test]
fn cached_decoding_matches_the_full_forward() {
    manual_seed(32);
    let (input, kv) = (PoolPlacement::Input, PoolPlacement::KeysValues);
    for (pool, placement) in [(false, input), (true, input), (true, kv)] {
        let mut o = causal_options(AttentionKind::Full, pool);
        o.pool_placement = placement;
        if let Some(cp) = &mut o.context_pool {
            // A window shorter than the sequence, so the cache's history is cut.
            cp.radius = Some(3);
        }
        let mut layer = TransformerEncoderLayer::new(o);
        to_f64(&mut layer);
        let x = randn64(&[2, 10, 4]);
        let want = layer.forward(&x, None);
        for chunks in [vec![1; 10], vec![4, 1, 5]] {
            let mut cache = LayerCache::default();
            let mut parts = Vec::new();
            let mut start = 0;
            no_grad(|| {
                for len in chunks {
                    parts.push(layer.forward_cached(&x.narrow(1, start, len), &mut cache));
                    start += len;
                }
            });
            let got = Tensor::concat(&parts.iter().collect::<Vec<_>>(), 1);
            assert_close(
                &got.to_vec::<f64>(),
                &want.to_vec::<f64>(),
                Tolerance::F64,
                &format!("pool {pool}, {placement:?}"),
            );
        }
    }
}

/// The ContextPool study's placements and options: exact gradients (the input's and every
/// parameter's), causality, the per-head layers' names and shapes, and cached decoding
/// refusing what it cannot follow.
#[test]
fn every_pool_placement_passes_gradcheck_and_stays_causal() {
    manual_seed(34);
    let cases = [
        (PoolPlacement::Input, PoolFeatures::Raw, 1.0),
        (PoolPlacement::KeysValues, PoolFeatures::Normalized, 0.6),
        (PoolPlacement::AfterBlock, PoolFeatures::Normalized, 1.0),
        (PoolPlacement::PerHead, PoolFeatures::Normalized, 0.6),
    ];
    for (placement, features, init_size) in cases {
        let mut o = causal_options(AttentionKind::Full, true);
        o.pool_placement = placement;
        o.pool_features = features;
        if let Some(cp) = &mut o.context_pool {
            cp.init_size = init_size;
        }
        let mut layer = TransformerEncoderLayer::new(o);
        let what = format!("{placement:?}, {features:?}");
        if placement == PoolPlacement::PerHead {
            let names: Vec<(String, Vec<usize>)> = layer
                .parameters()
                .into_iter()
                .filter(|(n, _)| n.starts_with("context_pool"))
                .map(|(n, p)| (n, p.dims().to_vec()))
                .collect();
            assert_eq!(names.len(), 8, "{names:?}");
            assert_eq!(
                names[0],
                ("context_pool_heads.0.weight_proj.weight".into(), vec![1, 4])
            );
            assert_eq!(names[7].0, "context_pool_heads.1.size_proj.bias");
        }
        to_f64(&mut layer);
        let x = randn64(&[2, 5, 4]).with_grad();
        let report = gradcheck(
            |x| layer.try_forward(&x[0], None),
            &[x],
            &GradcheckOptions::default(),
        )
        .unwrap();
        assert!(report.max_error <= 1e-6, "{what}: {report}");
        let g = layer.forward(&randn64(&[1, 5, 4]), None).sum().backward();
        for (name, p) in layer.parameters() {
            assert!(g.get(&p).is_some(), "{what}: {name} has no gradient");
        }
        // Causal: later tokens change nothing before them.
        let x = randn64(&[1, 9, 4]);
        let mut changed = x.to_vec::<f64>();
        changed[6 * 4..].iter_mut().for_each(|v| *v -= 3.0);
        let a = layer.forward(&x, None).to_vec::<f64>();
        let b = layer
            .forward(&Tensor::from_vec(changed, [1, 9, 4]), None)
            .to_vec::<f64>();
        assert_close(&a[..6 * 4], &b[..6 * 4], Tolerance::F64, &what);
        assert_ne!(a[6 * 4..], b[6 * 4..], "{what}: the future did not change");
        let cached = layer.try_forward_cached(&x, &mut LayerCache::default());
        let decodes = placement == PoolPlacement::KeysValues;
        assert_eq!(cached.is_ok(), decodes, "{what}");
    }
}

#[test]
fn the_initial_size_sets_every_tokens_first_size() {
    for (init, lo, hi) in [(1.0, 0.99, 1.01), (0.5, 0.5, 0.52), (20.0, 7.98, 8.0)] {
        let cp = cubegrad::nn::ContextPool::new(
            4,
            ContextPoolOptions {
                init_size: init,
                ..Default::default()
            },
        );
        cp.forward(&Tensor::randn([1, 6, 4], 0.0, 1.0));
        let sizes = cp.last_stats().unwrap().sizes.to_vec::<f64>();
        assert!(
            sizes.iter().all(|s| (lo..=hi).contains(s)),
            "init {init}: {sizes:?}"
        );
    }
}

#[test]
fn decoder_cached_decoding_matches_the_full_forward() {
    manual_seed(33);
    let mut dec = TransformerDecoderLayer::new(4, 2, 6, 0.0);
    to_f64(&mut dec);
    let (tgt, mem) = (randn64(&[2, 6, 4]), randn64(&[2, 5, 4]));
    let pad = Tensor::from_vec((0..10).map(|i| i >= 8).collect::<Vec<bool>>(), [2, 5]);
    let want = dec.try_forward(&tgt, &mem, Some(&pad)).unwrap();
    let mut cache = KvCache::default();
    let parts: Vec<Tensor> = no_grad(|| {
        (0..6)
            .map(|i| {
                dec.try_forward_cached(&tgt.narrow(1, i, 1), &mem, Some(&pad), &mut cache)
                    .unwrap()
            })
            .collect()
    });
    let got = Tensor::concat(&parts.iter().collect::<Vec<_>>(), 1);
    assert_close(
        &got.to_vec::<f64>(),
        &want.to_vec::<f64>(),
        Tolerance::F64,
        "decoder",
    );
    let report = gradcheck(
        |x| dec.try_forward(&x[0], &x[1], Some(&pad)),
        &[tgt.with_grad(), mem.with_grad()],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error <= 1e-6, "{report}");
}

#[test]
fn sparse_patterns_keep_the_documented_keys() {
    // Row i lists the keys query i may see (by hand, from the definitions).
    let rows = |m: Tensor, s: usize| -> Vec<Vec<usize>> {
        m.to_vec::<bool>()
            .chunks(s)
            .map(|r| (0..s).filter(|&j| r[j]).collect())
            .collect()
    };
    assert_eq!(
        rows(local_mask(5, 5, 1, true), 5),
        vec![vec![0], vec![0, 1], vec![1, 2], vec![2, 3], vec![3, 4]]
    );
    assert_eq!(
        rows(local_mask(3, 4, 1, false), 4),
        vec![vec![0, 1], vec![0, 1, 2], vec![1, 2, 3]]
    );
    assert_eq!(
        rows(strided_mask(7, 7, 3, true), 7)[6],
        vec![0, 3, 4, 5, 6],
        "the 3 latest keys and every 3rd before them"
    );
    let fixed = rows(fixed_mask(9, 9, 3, 1, true), 9);
    assert_eq!(
        (fixed[4].clone(), fixed[7].clone()),
        (vec![2, 3, 4], vec![2, 5, 6, 7]),
        "its own block of 3 so far, and the last key of each block before"
    );
    assert_eq!(
        rows(fixed_mask(1, 9, 3, 1, false), 9),
        vec![vec![0, 1, 2, 5, 8]]
    );
}

#[test]
fn adaptive_span_penalty_pulls_spans_down() {
    let o = causal_options(
        AttentionKind::AdaptiveSpan {
            initial_span: 4.0,
            ramp: 2.0,
            max_span: 8.0,
        },
        false,
    );
    let layer = TransformerEncoderLayer::new(o);
    let span = layer.adaptive_span.as_ref().unwrap();
    let p = span.span_penalty(0.5).unwrap();
    assert!((p.item() - 2.0).abs() < 1e-6, "0.5 · mean(4, 4)");
    let g = p.backward();
    assert_eq!(g.get(&span.span).unwrap().to_vec::<f32>(), vec![0.25, 0.25]);
}

#[test]
fn sinusoidal_positions_follow_the_formula() {
    let p = sinusoidal_positions(3, 4, 0).to_vec::<f32>();
    let want = [
        0.0,
        1.0,
        0.0,
        1.0,
        1f64.sin(),
        1f64.cos(),
        (1.0 / 100.0f64).sin(),
        (1.0 / 100.0f64).cos(),
        2f64.sin(),
        2f64.cos(),
        (2.0 / 100.0f64).sin(),
        (2.0 / 100.0f64).cos(),
    ];
    for (a, b) in p.iter().zip(want) {
        assert!((*a as f64 - b).abs() < 1e-6);
    }
    // An offset continues the same table.
    assert_eq!(
        sinusoidal_positions(1, 4, 2).to_vec::<f32>(),
        p[8..].to_vec()
    );
}

fn gau_options(causal: bool) -> GauOptions {
    GauOptions {
        query_key_dim: 3,
        chunk: 3,
        causal,
        ..GauOptions::new(4)
    }
}

/// FLASH's gated attention unit: every weight gets a gradient that matches central
/// differences, causal or not, over a partial last chunk (7 tokens, chunks of 3).
#[test]
fn gated_attention_units_pass_gradcheck() {
    manual_seed(33);
    for causal in [true, false] {
        let mut gau = GatedAttentionUnit::new(gau_options(causal));
        to_f64(&mut gau);
        let x = randn64(&[2, 7, 4]).with_grad();
        let mut inputs = vec![x];
        let names: Vec<String> = gau.parameters().into_iter().map(|(n, _)| n).collect();
        inputs.extend(gau.parameters().into_iter().map(|(_, p)| p));
        let report = gradcheck(
            |x| {
                let mut g = GatedAttentionUnit::new(gau_options(causal));
                let mut params = x[1..].iter();
                g.visit_params_mut("", &mut |_, t| *t = params.next().unwrap().clone());
                g.eval();
                g.try_forward(&x[0])
            },
            &inputs,
            &GradcheckOptions::default(),
        )
        .unwrap();
        assert!(report.max_error <= 1e-6, "causal {causal}: {report}");
        assert_eq!(
            names,
            [
                "norm.weight",
                "norm.bias",
                "to_hidden.weight",
                "to_hidden.bias",
                "to_qk.weight",
                "to_qk.bias",
                "qk_offset_scale.gamma",
                "qk_offset_scale.beta",
                "rel_pos_bias",
                "to_out.weight",
                "to_out.bias",
            ]
        );
    }
}

#[test]
fn causal_gated_attention_units_ignore_future_tokens() {
    manual_seed(34);
    let mut gau = GatedAttentionUnit::new(gau_options(true));
    to_f64(&mut gau);
    let x = randn64(&[1, 8, 4]);
    let mut changed = x.to_vec::<f64>();
    // From the middle of the third chunk on.
    changed[7 * 4..].iter_mut().for_each(|v| *v += 2.0);
    let a = gau.forward(&x).to_vec::<f64>();
    let b = gau
        .forward(&Tensor::from_vec(changed, [1, 8, 4]))
        .to_vec::<f64>();
    assert_close(&a[..7 * 4], &b[..7 * 4], Tolerance::F64, "the past");
    assert_ne!(a[7 * 4..], b[7 * 4..], "the future did not change");
}

/// Performer's features: orthogonal within a block of `d` rows, the same draw for the same
/// seed, a different one after a redraw with another seed.
#[test]
fn random_features_are_orthogonal_blocks_drawn_from_a_seed() {
    let (m, d) = (12, 5);
    let p = orthogonal_random_features(m, d, 7)
        .to_dtype(DType::F64)
        .to_vec::<f64>();
    let row = |i: usize| &p[i * d..(i + 1) * d];
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    for block in [0..5, 5..10, 10..12] {
        for i in block.clone() {
            for j in block.clone().filter(|&j| j != i) {
                let cos = dot(row(i), row(j)) / (dot(row(i), row(i)) * dot(row(j), row(j))).sqrt();
                assert!(cos.abs() < 1e-5, "rows {i} and {j}: cos {cos}");
            }
        }
    }
    // Across blocks the rows are independent draws, not orthogonal.
    assert!(dot(row(0), row(5)).abs() > 1e-3);
    let mut rf = RandomFeatures::new(m, d, 7);
    assert_eq!(
        rf.projection.to_vec::<f32>(),
        orthogonal_random_features(m, d, 7).to_vec::<f32>()
    );
    let before = rf.projection.to_vec::<f32>();
    rf.redraw(8);
    assert_ne!(rf.projection.to_vec::<f32>(), before);
    assert_eq!(rf.state_dict()[0].0, "projection");
}

/// Transformer-XL: a segment read after a memory of the previous segment gives what the
/// layer gives on both segments at once (relative positions make the cached states mean the
/// same), the gradient stops at the memory, and the layer passes gradcheck.
#[test]
fn transformer_xl_layers_read_memory_as_the_same_sequence() {
    manual_seed(35);
    let mut layer = TransformerXlLayer::new(4, 2, 6, 0.0);
    to_f64(&mut layer);
    let (first, second) = (randn64(&[2, 5, 4]), randn64(&[2, 3, 4]));
    let whole = layer.forward(&Tensor::concat(&[&first, &second], 1), None);
    let with_memory = layer.forward(&second, Some(&first));
    assert_close(
        &with_memory.to_vec::<f64>(),
        &whole.narrow(1, 5, 3).to_vec::<f64>(),
        Tolerance::F64,
        "segment after memory",
    );
    // A memory cut to its last 2 positions is the sequence from there on.
    let memory = update_memory(None, &first, 2).unwrap();
    assert_eq!(memory.dims(), [2, 2, 4]);
    let whole = layer.forward(&Tensor::concat(&[&first.narrow(1, 3, 2), &second], 1), None);
    assert_close(
        &layer.forward(&second, Some(&memory)).to_vec::<f64>(),
        &whole.narrow(1, 2, 3).to_vec::<f64>(),
        Tolerance::F64,
        "cut memory",
    );

    let memory = first.with_grad();
    let x = second.with_grad();
    let g = layer.forward(&x, Some(&memory)).sum().backward();
    assert!(g.get(&x).is_some());
    assert!(g.get(&memory).is_none(), "a gradient reached the memory");
    let report = gradcheck(
        |x| layer.try_forward(&x[0], Some(&memory)),
        &[x],
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error <= 1e-6, "{report}");
    let names: Vec<String> = layer.parameters().into_iter().map(|(n, _)| n).collect();
    for want in [
        "dec_attn.qkv_net.weight",
        "dec_attn.r_net.weight",
        "dec_attn.o_net.weight",
        "dec_attn.r_w_bias",
        "dec_attn.r_r_bias",
        "pos_ff.linear1.weight",
        "norm2.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
}

fn reformer(layers: usize, reversible: bool) -> Reformer {
    manual_seed(36);
    let mut o = ReformerOptions::new(4, 2);
    (o.dim_feedforward, o.n_hashes, o.n_buckets, o.chunk) = (6, 2, 4, 3);
    (o.causal, o.reversible) = (true, reversible);
    let mut r = Reformer::new(layers, o);
    to_f64(&mut r);
    r
}

/// Reformer: the reversible stack's backward, which recomputes every block's input from its
/// output, gives the gradients the plain stack records (same rotations), for the input and
/// every weight; the reversible stack passes gradcheck; the outputs are causal.
#[test]
fn reversible_reformer_layers_give_the_recorded_gradients() {
    let (rev, plain) = (reformer(3, true), reformer(3, false));
    let x = randn64(&[2, 9, 4]).with_grad();
    let run = |m: &Reformer| {
        manual_seed(7); // the rotations
        let y = m.forward(&x);
        let seed = Tensor::randn(y.shape().clone(), 0.0, 1.0).to_dtype(DType::F64);
        (y.clone(), y.backward_with(&seed))
    };
    let ((y_rev, g_rev), (y_plain, g_plain)) = (run(&rev), run(&plain));
    assert_close(
        &y_rev.to_vec::<f64>(),
        &y_plain.to_vec::<f64>(),
        Tolerance::F64,
        "output",
    );
    assert_close(
        &g_rev.get(&x).unwrap().to_vec::<f64>(),
        &g_plain.get(&x).unwrap().to_vec::<f64>(),
        Tolerance::F64,
        "input gradient",
    );
    let params = rev.parameters().into_iter().zip(plain.parameters());
    for ((name, a), (_, b)) in params {
        let (ga, gb) = (g_rev.get(&a), g_plain.get(&b));
        let (ga, gb) = (
            ga.unwrap_or_else(|| panic!("{name}: no gradient")),
            gb.unwrap(),
        );
        assert_close(
            &ga.to_vec::<f64>(),
            &gb.to_vec::<f64>(),
            Tolerance::F64,
            &name,
        );
    }
    let report = gradcheck(
        |x| {
            manual_seed(7);
            rev.try_forward(&x[0])
        },
        std::slice::from_ref(&x),
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error <= 1e-6, "{report}");

    // Causal: changing the last 3 tokens leaves the first 6 outputs alone.
    let mut changed = x.detach().to_vec::<f64>();
    changed[2 * 9 * 4 - 3 * 4..]
        .iter_mut()
        .for_each(|v| *v += 1.0);
    manual_seed(7);
    let a = rev.forward(&x.detach()).to_vec::<f64>();
    manual_seed(7);
    let b = rev
        .forward(&Tensor::from_vec(changed, [2, 9, 4]))
        .to_vec::<f64>();
    assert_close(
        &a[9 * 8..9 * 8 + 6 * 8],
        &b[9 * 8..9 * 8 + 6 * 8],
        Tolerance::F64,
        "past",
    );
    assert!(rev
        .state_dict()
        .iter()
        .any(|(n, _)| n == "layers.0.attention.self_attention.query_key.weight"));
}

/// A bidirectional f64 encoder layer with `attention`, its options, and its gradcheck
/// against `x`.
fn bidirectional_layer(
    attention: AttentionKind,
    x: &Tensor,
) -> (TransformerEncoderLayer, EncoderOptions) {
    let mut o = EncoderOptions::new(4, 2);
    (o.dim_feedforward, o.dropout, o.attention) = (6, 0.0, attention);
    let mut layer = TransformerEncoderLayer::new(o);
    to_f64(&mut layer);
    let report = gradcheck(
        |x| layer.try_forward(&x[0], None),
        std::slice::from_ref(x),
        &GradcheckOptions::default(),
    )
    .unwrap();
    assert!(report.max_error <= 1e-6, "{attention:?}: {report}");
    (layer, o)
}

/// The same options made causal are refused, naming the attention.
fn assert_refused_when_causal(mut o: EncoderOptions, name: &str) {
    o.causal = true;
    let err = TransformerEncoderLayer::new(o)
        .try_forward(&Tensor::randn([1, 5, 4], 0.0, 1.0), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains(name), "{err}");
}

/// LARA in an encoder layer: gradcheck in evaluation (the proposals' means), fresh samples in
/// training, and a causal layer refused by name.
#[test]
fn lara_encoder_layers_sample_in_training_and_refuse_causal_use() {
    manual_seed(37);
    let x = randn64(&[2, 7, 4]).with_grad();
    let (mut layer, o) = bidirectional_layer(AttentionKind::Lara { proposals: 3 }, &x);
    let eval = layer.forward(&x, None).to_vec::<f64>();
    assert_eq!(layer.forward(&x, None).to_vec::<f64>(), eval);
    layer.train();
    let (a, b) = (layer.forward(&x, None), layer.forward(&x, None));
    assert_ne!(
        a.to_vec::<f64>(),
        b.to_vec::<f64>(),
        "no fresh samples in training"
    );
    assert_refused_when_causal(o, "LARA");
}

/// MRA in an encoder layer: gradcheck (the refined blocks fixed by the inputs), and a causal
/// layer refused by name.
#[test]
fn mra_encoder_layers_pass_gradcheck_and_refuse_causal_use() {
    manual_seed(39);
    let x = randn64(&[2, 8, 4]).with_grad();
    let kind = AttentionKind::Mra {
        block: 3,
        refined: 1,
    };
    let (_, o) = bidirectional_layer(kind, &x);
    assert_refused_when_causal(o, "MRA");
}

/// `attention_weights` gives each head's map after ContextPool, wherever it sits: rows sum to
/// 1 and never reach the future; with sizes too small to reach a neighbour (so pooling gives
/// each token back) every placement's maps equal the layer's own attention read without
/// ContextPool; attention that forms no matrix (here a sparse pattern) is refused by name.
#[test]
fn attention_weights_follow_every_placement() {
    manual_seed(35);
    let placements = [
        PoolPlacement::Input,
        PoolPlacement::KeysValues,
        PoolPlacement::AfterBlock,
        PoolPlacement::PerHead,
    ];
    for placement in placements {
        for narrow in [false, true] {
            let mut o = causal_options(AttentionKind::Full, true);
            o.pool_placement = placement;
            if narrow {
                o.context_pool = Some(ContextPoolOptions {
                    causal: true,
                    s_min: 0.01,
                    s_max: 0.02,
                    init_size: 0.01,
                    eps: 1e-300,
                    ..Default::default()
                });
            }
            let mut layer = TransformerEncoderLayer::new(o);
            to_f64(&mut layer);
            let x = randn64(&[2, 7, 4]);
            let w = layer.attention_weights(&x, None);
            assert_eq!(w.dims(), [2, 2, 7, 7], "{placement:?}");
            let v = w.to_vec::<f64>();
            for (r, row) in v.chunks(7).enumerate() {
                let i = r % 7;
                let sum: f64 = row.iter().sum();
                assert!(
                    (sum - 1.0).abs() < 1e-12,
                    "{placement:?}: row {r} sums to {sum}"
                );
                assert!(
                    row[i + 1..].iter().all(|&p| p == 0.0),
                    "{placement:?}: {row:?}"
                );
            }
            // The same maps from the attention module itself, on the unpooled tokens.
            let h = layer.norm1.forward(&x);
            let opts = MhaOptions {
                need_weights: true,
                average_attn_weights: false,
                is_causal: true,
                ..Default::default()
            };
            let plain = layer.self_attn.forward(&h, &h, &h, &opts).1.unwrap();
            let plain = plain.to_vec::<f64>();
            if narrow || placement == PoolPlacement::AfterBlock {
                assert_close(&v, &plain, Tolerance::F64, &format!("{placement:?}"));
            } else {
                let most = v.iter().zip(&plain).map(|(a, b)| (a - b).abs());
                let most = most.fold(0.0, f64::max);
                assert!(
                    most > 1e-3,
                    "{placement:?}: pooling changed no weight ({most})"
                );
            }
        }
    }
    let layer =
        TransformerEncoderLayer::new(causal_options(AttentionKind::Local { window: 2 }, false));
    let err = layer
        .try_attention_weights(&Tensor::randn([1, 3, 4], 0.0, 1.0), None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("try_attention_weights"), "{err}");
}
