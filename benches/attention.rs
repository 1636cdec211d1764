//! Multi-head self-attention forward + backward at the layer issue's size: B = 16, n = 256,
//! d = 128, 4 heads, causal, f32. The PyTorch peer runs the same projections around
//! `F.scaled_dot_product_attention` (what `nn.MultiheadAttention` does internally).

use criterion::{criterion_group, criterion_main, Criterion};
use cubegrad::nn::{MhaOptions, Module, MultiheadAttention};
use cubegrad::{manual_seed, Tensor};

fn attention(c: &mut Criterion) {
    manual_seed(0);
    let x = Tensor::randn([16, 256, 128], 0.0, 1.0).with_grad();
    let g = Tensor::randn([16, 256, 128], 0.0, 1.0);
    let mut mha = MultiheadAttention::new(128, 4, 0.0);
    mha.eval();
    let opts = MhaOptions {
        is_causal: true,
        need_weights: false,
        ..Default::default()
    };
    let mut grp = c.benchmark_group("attention_f32");
    grp.sample_size(20);
    grp.bench_function("mha_causal_fwd_bwd_b16_n256_d128_h4", |b| {
        b.iter(|| mha.forward(&x, &x, &x, &opts).0.backward_with(&g))
    });
    grp.finish();
}

criterion_group!(benches, attention);
criterion_main!(benches);
