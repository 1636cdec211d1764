//! The GPU targets, on a CubeCL device: matmul n×n (n = 4096 by default), softmax over
//! `[16384, 256]` and the layer-sized element-wise chain `gelu_tanh(x·w + b) + x` on `[4096,
//! 512]` (forward, and forward + backward), plus layer norm on `[4096, 512]`. Every
//! repetition ends with `synchronize`, so the time is the work and not its queuing.
//!
//!     CUBEGRAD_BENCH_DEVICE=cuda cargo bench --features cuda --bench device
//!     python3 benches/peers/compare.py --device cuda
//!
//! `CUBEGRAD_BENCH_DEVICE` picks the device (`cuda`, `wgpu`, `cuda:1`...; default: the first
//! built one); `CUBEGRAD_BENCH_MATMUL` the matmul size, `CUBEGRAD_BENCH_SCALE` divides the rows
//! of the other workloads (lavapipe needs both small). Without a device it prints why and
//! measures nothing.

use criterion::{criterion_group, criterion_main, Criterion};
use cubegrad::backend::synchronize;
use cubegrad::nn::try_layer_norm;
use cubegrad::testing::built_devices;
use cubegrad::{manual_seed, no_grad, Device, Tensor};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn device() -> Option<Device> {
    let chosen = match std::env::var("CUBEGRAD_BENCH_DEVICE") {
        Ok(s) => s.parse::<Device>().expect("CUBEGRAD_BENCH_DEVICE"),
        Err(_) => *built_devices().first()?,
    };
    cubegrad::backend::is_available(chosen).then_some(chosen)
}

fn on_device(c: &mut Criterion) {
    let Some(dev) = device() else {
        eprintln!("device bench: no CubeCL device (build with --features cuda or wgpu); skipped");
        return;
    };
    manual_seed(0);
    let n = env_usize("CUBEGRAD_BENCH_MATMUL", 4096);
    let scale = env_usize("CUBEGRAD_BENCH_SCALE", 1).max(1);
    let put = |t: Tensor| t.to_device(dev);
    let timed = |f: &dyn Fn() -> Tensor| {
        let out = f();
        synchronize(dev).expect("synchronize");
        out
    };

    let mut grp = c.benchmark_group("device_f32");
    grp.sample_size(20);
    let (a, b) = (
        put(Tensor::randn([n, n], 0.0, 1.0)),
        put(Tensor::randn([n, n], 0.0, 1.0)),
    );
    grp.bench_function(format!("matmul_{n}"), |bench| {
        bench.iter(|| timed(&|| no_grad(|| a.matmul(&b))))
    });

    let rows = 16384 / scale;
    let s = put(Tensor::randn([rows, 256], 0.0, 1.0));
    let gs = put(Tensor::randn([rows, 256], 0.0, 1.0));
    let sg = s.clone().with_grad();
    grp.bench_function("softmax_fwd_16384x256", |bench| {
        bench.iter(|| timed(&|| no_grad(|| s.softmax(-1))))
    });
    grp.bench_function("softmax_fwd_bwd_16384x256", |bench| {
        bench.iter(|| {
            timed(&|| {
                let grads = sg.softmax(-1).backward_with(&gs);
                grads.get(&sg).unwrap().clone()
            })
        })
    });

    let (rows, d) = (4096 / scale, 512);
    let x = put(Tensor::randn([rows, d], 0.0, 1.0));
    let w = put(Tensor::randn([d], 0.0, 1.0));
    let bias = put(Tensor::randn([d], 0.0, 1.0));
    let g = put(Tensor::randn([rows, d], 0.0, 1.0));
    let chain = |x: &Tensor, w: &Tensor, b: &Tensor| x.mul(w).add(b).gelu_tanh().add(x);
    let (xg, wg, bg) = (
        x.clone().with_grad(),
        w.clone().with_grad(),
        bias.clone().with_grad(),
    );
    grp.bench_function("gelu_chain_4096x512", |bench| {
        bench.iter(|| timed(&|| no_grad(|| chain(&x, &w, &bias))))
    });
    grp.bench_function("gelu_chain_fwd_bwd_4096x512", |bench| {
        bench.iter(|| {
            timed(&|| {
                let grads = chain(&xg, &wg, &bg).backward_with(&g);
                grads.get(&xg).unwrap().clone()
            })
        })
    });
    grp.bench_function("layer_norm_fwd_bwd_4096x512", |bench| {
        bench.iter(|| {
            timed(&|| {
                let y = try_layer_norm(&xg, &[d], Some(&wg), Some(&bg), 1e-5).unwrap();
                let grads = y.backward_with(&g);
                grads.get(&xg).unwrap().clone()
            })
        })
    });
    grp.finish();
}

criterion_group!(benches, on_device);
criterion_main!(benches);
