//! Layer-sized element-wise work on `[4096, 512]` (batch 16 × 256 tokens, width 512):
//! a plain add, and the chain `gelu_tanh(x·w + b) + x` with `w`, `b` of shape `[512]`,
//! forward alone and forward + backward.

use criterion::{criterion_group, criterion_main, Criterion};
use cubegrad::{manual_seed, no_grad, Tensor};

fn elementwise(c: &mut Criterion) {
    manual_seed(0);
    let (rows, d) = (4096, 512);
    let x = Tensor::randn([rows, d], 0.0, 1.0);
    let y = Tensor::randn([rows, d], 0.0, 1.0);
    let w = Tensor::randn([d], 0.0, 1.0);
    let b = Tensor::randn([d], 0.0, 1.0);
    let g = Tensor::randn([rows, d], 0.0, 1.0);
    let chain = |x: &Tensor, w: &Tensor, b: &Tensor| x.mul(w).add(b).gelu_tanh().add(x);
    let (xg, wg, bg) = (
        x.clone().with_grad(),
        w.clone().with_grad(),
        b.clone().with_grad(),
    );
    let mut grp = c.benchmark_group("elementwise_f32");
    grp.sample_size(30);
    grp.bench_function("add_4096x512", |bench| bench.iter(|| no_grad(|| x.add(&y))));
    grp.bench_function("gelu_chain_4096x512", |bench| {
        bench.iter(|| no_grad(|| chain(&x, &w, &b)))
    });
    grp.bench_function("gelu_chain_fwd_bwd_4096x512", |bench| {
        bench.iter(|| chain(&xg, &wg, &bg).backward_with(&g))
    });
    grp.finish();
}

criterion_group!(benches, elementwise);
criterion_main!(benches);
