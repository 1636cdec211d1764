//! One training step of the `contextpool_lm` example's models, as its loop runs it: forward,
//! cross-entropy, backward, gradient clipping at 1.0 and an AdamW step (weight decay 0.01).
//! Batch 32 × 128 characters of a 99-character vocabulary, d = 128, 4 heads, GELU
//! feed-forward 512, pre-norm, causal, no dropout, f32:
//!
//! - `plain_4l`, `plain_2l`: full causal attention, 4 and 2 layers;
//! - `contextpool_2l`: ContextPool (causal, s ∈ [0.5, 8], radius 24) before attention,
//!   pooling queries, keys and values, 2 layers (the example's default model);
//! - `local_4l`: sliding-window attention over the 32 previous characters, 4 layers.
//!
//! The PyTorch peer (`benches/peers/torch_peer.py`, ids `train_step_f32/...`) builds the same
//! models from `nn.TransformerEncoderLayer(norm_first=True)`, with ContextPool written with
//! `unfold`.

use criterion::{criterion_group, Criterion};
use cubegrad::nn::{
    sinusoidal_positions, AttentionKind, ContextPoolOptions, Embedding, EncoderOptions, LayerNorm,
    Linear, Module, PoolPlacement, TransformerEncoderLayer,
};
use cubegrad::optim::{clip_grad_norm, Adam, AdamConfig, Optimizer};
use cubegrad::{manual_seed, profile, Tensor};

const BATCH: usize = 32;
const SEQ: usize = 128;
const VOCAB: usize = 99;
const D: usize = 128;
const HEADS: usize = 4;

/// The example's `CharLm`: embedding plus sinusoidal positions, encoder layers, a final norm
/// and the head.
struct Lm {
    embed: Embedding,
    positions: Tensor,
    layers: Vec<TransformerEncoderLayer>,
    norm: LayerNorm,
    head: Linear,
}

impl Lm {
    fn new(layers: usize, opts: EncoderOptions) -> Self {
        Lm {
            embed: Embedding::new(VOCAB, D),
            positions: sinusoidal_positions(SEQ, D, 0),
            layers: (0..layers)
                .map(|_| TransformerEncoderLayer::new(opts))
                .collect(),
            norm: LayerNorm::new(&[D]),
            head: Linear::new(D, VOCAB, true),
        }
    }

    fn forward(&self, ids: &Tensor) -> Tensor {
        let mut h = self.embed.forward(ids).add(&self.positions);
        for layer in &self.layers {
            h = layer.forward(&h, None);
        }
        self.head.forward(&self.norm.forward(&h))
    }
}

impl Module for Lm {
    cubegrad::module_tensors! {
        child "embed" embed;
        list "layers" layers;
        child "norm" norm;
        child "head" head;
    }
}

fn options(attention: AttentionKind, context_pool: bool) -> EncoderOptions {
    let mut o = EncoderOptions::new(D, HEADS);
    o.causal = true;
    o.dropout = 0.0;
    o.attention = attention;
    if context_pool {
        o.context_pool = Some(ContextPoolOptions {
            causal: true,
            ..Default::default()
        });
    }
    o
}

fn step(model: &mut Lm, opt: &mut Adam, x: &Tensor, y: &Tensor) {
    let n = BATCH * SEQ;
    let loss = model
        .forward(x)
        .reshape(&[n, VOCAB])
        .cross_entropy(&y.reshape(&[n]));
    let mut grads = profile::scope("backward", || loss.backward());
    clip_grad_norm(model, &mut grads, 1.0);
    opt.step(model, &grads).unwrap();
}

fn train_step(c: &mut Criterion) {
    let (x, y) = batch();
    let mut grp = c.benchmark_group("train_step_f32");
    grp.sample_size(10);
    for (name, layers, opts) in models() {
        manual_seed(0);
        let mut model = Lm::new(layers, opts);
        let mut opt: Adam = AdamConfig::adamw().lr(1e-3).weight_decay(0.01).init();
        grp.bench_function(name, |b| b.iter(|| step(&mut model, &mut opt, &x, &y)));
    }
    grp.finish();
}

fn batch() -> (Tensor, Tensor) {
    // A fixed batch of pseudo-random characters; the targets are the next characters.
    let id = |i: usize| ((i * 7919 + 13) % VOCAB) as i64;
    let x = Tensor::from_vec((0..BATCH * SEQ).map(id).collect::<Vec<_>>(), [BATCH, SEQ]);
    let y = Tensor::from_vec((1..=BATCH * SEQ).map(id).collect::<Vec<_>>(), [BATCH, SEQ]);
    (x, y)
}

/// The four models: name, layers, layer options.
fn models() -> Vec<(&'static str, usize, EncoderOptions)> {
    vec![
        ("plain_4l", 4, options(AttentionKind::Full, false)),
        ("plain_2l", 2, options(AttentionKind::Full, false)),
        ("contextpool_2l", 2, options(AttentionKind::Full, true)),
        (
            "local_4l",
            4,
            options(AttentionKind::Local { window: 32 }, false),
        ),
    ]
}

/// With `CUBEGRAD_PROFILE_STEP=1`, prints each model's per-op table (the mean of ten steps,
/// after three warm-up steps) instead of timing:
/// `CUBEGRAD_PROFILE_STEP=1 cargo bench --bench train_step`.
fn profile_steps(models: &[(&str, usize, EncoderOptions)], x: &Tensor, y: &Tensor) {
    for (name, layers, opts) in models {
        manual_seed(0);
        let mut model = Lm::new(*layers, *opts);
        let mut opt: Adam = AdamConfig::adamw().lr(1e-3).weight_decay(0.01).init();
        for _ in 0..3 {
            step(&mut model, &mut opt, x, y);
        }
        let (_, report) = profile::record(|| {
            for _ in 0..10 {
                step(&mut model, &mut opt, x, y);
            }
        });
        println!("\n### {name}\n\n{}", report.per_iteration(10));
    }
}

criterion_group!(benches, train_step);

fn main() {
    if std::env::var_os("CUBEGRAD_PROFILE_STEP").is_some() {
        let (x, y) = batch();
        // The profile also takes the example's default, ContextPool per head (no PyTorch
        // peer, so it is profiled, not timed).
        let mut with_per_head = models();
        let mut per_head = options(AttentionKind::Full, true);
        per_head.pool_placement = PoolPlacement::PerHead;
        with_per_head.push(("contextpool_per_head_2l", 2, per_head));
        profile_steps(&with_per_head, &x, &y);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
