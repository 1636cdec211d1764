//! ContextPool forward + backward at the layer issue's sizes: B = 16, d = 128, s_max = 8
//! (so a window of 2·24 + 1 tokens, or 24 + 1 causal), n ∈ {256, 1024, 4096}, f32, with a
//! fixed upstream gradient. The PyTorch peer computes the same formula with dense n×n
//! tensors, which is how one writes it in eager PyTorch; ours never builds the n×n matrix, so
//! its time should grow linearly in n. `compare.py` also reports each one's FLOP rate (6
//! flops per tap and feature: 2 forward, 4 backward) as a fraction of the sgemm rate of
//! `matmul_f32/1024` from the same run.

use criterion::{criterion_group, criterion_main, Criterion};
use cubegrad::nn::{ContextPool, ContextPoolOptions};
use cubegrad::{manual_seed, Tensor};

// ANCHOR: cp_bench
fn context_pool(c: &mut Criterion) {
    manual_seed(0);
    let mut grp = c.benchmark_group("context_pool_f32");
    grp.sample_size(10);
    for (n, causal) in [256, 1024, 4096]
        .into_iter()
        .flat_map(|n| [(n, false), (n, true)])
    {
        let x = Tensor::randn([16, n, 128], 0.0, 1.0).with_grad();
        let g = Tensor::randn([16, n, 128], 0.0, 1.0);
        let opts = ContextPoolOptions {
            causal,
            ..Default::default()
        };
        let mut layer = ContextPool::new(128, opts);
        // Random predictors, so that weights and sizes vary from token to token: with
        // b ~ N(0, 0.3²) and b0 = 0 the sizes spread over the whole range [0.5, 8] (mean
        // 4.25). Small sizes are cheaper (the window stops where the Gaussian is e^−80), so
        // the sizes' spread matters: at the initial size 1 every token would be cheap.
        layer.weight_proj.weight = Tensor::randn([1, 128], 0.0, 0.1).with_grad();
        layer.size_proj.weight = Tensor::randn([1, 128], 0.0, 0.3).with_grad();
        layer.size_proj.bias = Some(Tensor::zeros([1]).with_grad());
        let name = if causal {
            format!("fwd_bwd_causal_n{n}")
        } else {
            format!("fwd_bwd_n{n}")
        };
        grp.bench_function(name, |b| b.iter(|| layer.forward(&x).backward_with(&g)));
    }
    grp.finish();
}
// ANCHOR_END: cp_bench

criterion_group!(benches, context_pool);
criterion_main!(benches);
