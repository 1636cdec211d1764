//! Attention, forward + backward, f32:
//!
//! - `attention_f32/mha_causal_fwd_bwd_b16_n256_d128_h4`: multi-head self-attention at the
//!   layer issue's size (the PyTorch peer runs the same projections around
//!   `F.scaled_dot_product_attention`, what `nn.MultiheadAttention` does internally);
//! - `sdpa_f32/causal_fwd_bwd_b16_h4_d32_n{256,1024,4096}`: causal scaled dot-product
//!   attention alone, `[16, 4, n, 32]` (PyTorch: `F.scaled_dot_product_attention(...,
//!   is_causal=True)`);
//! - `sdpa_f32/local_w128_fwd_bwd_b16_h4_d32_n4096`: a causal sliding window of 128 keys
//!   (`AttentionPattern::Local`, skipped by tiles; PyTorch: the same band as a bool mask).
//!
//! `CUBEGRAD_BENCH_MEMORY=1 cargo bench --bench attention` instead prints the peak memory
//! (growth of the process's resident high-water mark) of one causal fwd+bwd at n = 4096;
//! `python3 benches/peers/torch_peer.py --memory` prints PyTorch's.

use criterion::{criterion_group, Criterion};
use cubegrad::nn::{
    scaled_dot_product_attention, AttentionPattern, MhaOptions, Module, MultiheadAttention,
    SdpaOptions,
};
use cubegrad::{manual_seed, Tensor};
use std::time::Duration;

fn mha(c: &mut Criterion) {
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

/// `q`, `k`, `v` (requiring grad) and an output gradient of `[16, 4, n, 32]`.
fn qkvg(n: usize) -> [Tensor; 4] {
    let r = || Tensor::randn([16, 4, n, 32], 0.0, 1.0);
    [r().with_grad(), r().with_grad(), r().with_grad(), r()]
}

fn fwd_bwd(qkvg: &[Tensor; 4], pattern: AttentionPattern) {
    let [q, k, v, g] = qkvg;
    let opts = SdpaOptions {
        is_causal: true,
        pattern,
        ..Default::default()
    };
    scaled_dot_product_attention(q, k, v, &opts).backward_with(g);
}

fn sdpa(c: &mut Criterion) {
    manual_seed(0);
    let mut grp = c.benchmark_group("sdpa_f32");
    grp.sample_size(10);
    for n in [256, 1024, 4096] {
        let t = qkvg(n);
        if n == 4096 {
            // About a second per repetition.
            grp.measurement_time(Duration::from_secs(20));
        }
        grp.bench_function(format!("causal_fwd_bwd_b16_h4_d32_n{n}"), |b| {
            b.iter(|| fwd_bwd(&t, AttentionPattern::Full))
        });
    }
    let t = qkvg(4096);
    grp.measurement_time(Duration::from_secs(5));
    grp.bench_function("local_w128_fwd_bwd_b16_h4_d32_n4096", |b| {
        b.iter(|| fwd_bwd(&t, AttentionPattern::Local { window: 128 }))
    });
    grp.finish();
}

/// The process's resident high-water mark, in bytes (Linux).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn peak_memory() {
    manual_seed(0);
    let t = qkvg(4096);
    let before = peak_rss().expect("VmHWM in /proc/self/status (Linux only)");
    fwd_bwd(&t, AttentionPattern::Full);
    let after = peak_rss().expect("VmHWM in /proc/self/status");
    let inputs = 4 * t[0].numel() * 4;
    println!(
        "sdpa causal fwd+bwd [16, 4, 4096, 32] f32: peak memory +{:.1} MB over the inputs \
         ({:.1} MB of q, k, v, g)",
        (after - before) as f64 / 1e6,
        inputs as f64 / 1e6
    );
}

criterion_group!(benches, mha, sdpa);

fn main() {
    if std::env::var_os("CUBEGRAD_BENCH_MEMORY").is_some() {
        peak_memory();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
