//! Conv2d forward + backward at the layer issue's size: B = 32, 32 → 64 channels, 28×28,
//! 3×3 kernel with padding 1, bias, f32.

use criterion::{criterion_group, criterion_main, Criterion};
use cubegrad::nn::{Conv2d, Conv2dOptions};
use cubegrad::{manual_seed, Tensor};

fn conv(c: &mut Criterion) {
    manual_seed(0);
    let x = Tensor::randn([32, 32, 28, 28], 0.0, 1.0).with_grad();
    let g = Tensor::randn([32, 64, 28, 28], 0.0, 1.0);
    let opts = Conv2dOptions {
        padding: (1, 1),
        ..Default::default()
    };
    let conv = Conv2d::new(32, 64, (3, 3), opts, true);
    let mut grp = c.benchmark_group("conv_f32");
    grp.sample_size(20);
    grp.bench_function("conv2d_fwd_bwd_b32_c32_o64_28x28_k3", |b| {
        b.iter(|| conv.forward(&x).backward_with(&g))
    });
    grp.finish();
}

criterion_group!(benches, conv);
criterion_main!(benches);
