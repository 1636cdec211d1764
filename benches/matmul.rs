//! `matmul_f32/1024`: a 1024×1024 by 1024×1024 f32 product. Compare with PyTorch through
//! `python3 benches/peers/compare.py` (same shapes, same thread count).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cubegrad::{manual_seed, no_grad, Tensor};

fn matmul(c: &mut Criterion) {
    manual_seed(0);
    let n = 1024;
    let a = Tensor::randn([n, n], 0.0, 1.0);
    let b = Tensor::randn([n, n], 0.0, 1.0);
    let mut g = c.benchmark_group("matmul_f32");
    g.throughput(Throughput::Elements((2 * n * n * n) as u64));
    g.sample_size(30);
    g.bench_function("1024", |bench| bench.iter(|| no_grad(|| a.matmul(&b))));
    g.finish();
}

criterion_group!(benches, matmul);
criterion_main!(benches);
