//! Softmax over the last axis of `[16384, 256]` (batch 16 × 4 heads × 256 queries, 256 keys):
//! forward alone, and forward + backward with a fixed upstream gradient.

use criterion::{criterion_group, criterion_main, Criterion};
use cubegrad::{manual_seed, no_grad, Tensor};

fn softmax(c: &mut Criterion) {
    manual_seed(0);
    let x = Tensor::randn([16384, 256], 0.0, 1.0);
    let g = Tensor::randn([16384, 256], 0.0, 1.0);
    let xg = x.clone().with_grad();
    let mut grp = c.benchmark_group("softmax_f32");
    grp.sample_size(30);
    grp.bench_function("fwd_16384x256", |b| b.iter(|| no_grad(|| x.softmax(-1))));
    grp.bench_function("fwd_bwd_16384x256", |b| {
        b.iter(|| xg.softmax(-1).backward_with(&g))
    });
    grp.finish();
}

criterion_group!(benches, softmax);
criterion_main!(benches);
