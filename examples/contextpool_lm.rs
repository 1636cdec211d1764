//! A character-level language model on 233 State of the Union addresses, with ContextPool.
//!
//!     cargo run --release --example contextpool_lm
//!     cargo run --release --example contextpool_lm -- --compare
//!     cargo run --release --example contextpool_lm -- --help
//!
//! The default trains a small causal transformer whose layers pool each token's recent
//! context (ContextPool) before attention, reports bits per character (bpc) on held-out text,
//! and then writes a sample with the KV cache. `--compare` trains the paper's comparison on one
//! budget of steps: a deeper plain transformer, a shallower ContextPool one, adaptive attention
//! span and local attention. Everything lands in `--out` (default `runs/contextpool_lm`):
//! metrics as CSV/JSON, learning curves, the pooling sizes over a passage, an attention map, and
//! a checkpoint that `--resume` continues exactly.

mod common;

use clap::{Parser, ValueEnum};
use common::{
    heatmap, line_chart, out_dir, progress, text_heat, AnyResult, History, Series, Table,
};
use cubegrad::data::{lm_batch, lm_eval_batches, read_text, split_blocks, CharVocab, TextSplits};
use cubegrad::io::{load_checkpoint, save_checkpoint, Metadata};
use cubegrad::nn::{
    sinusoidal_positions, AttentionKind, ContextPoolOptions, Embedding, EncoderOptions, LayerCache,
    LayerNorm, Linear, MhaOptions, Module, TransformerEncoderLayer,
};
use cubegrad::optim::{clip_grad_norm, Adam, AdamConfig, LrSchedule, Optimizer, WarmupCosine};
use cubegrad::{manual_seed, no_grad, Device, Tensor};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// Plain causal self-attention.
    Baseline,
    /// ContextPool before attention (the paper's model).
    Contextpool,
    /// Adaptive attention span (Sukhbaatar et al., 2019).
    AdaptiveSpan,
    /// Each token attends to a fixed window of recent tokens.
    Local,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Baseline => "baseline",
            ModelKind::Contextpool => "contextpool",
            ModelKind::AdaptiveSpan => "adaptive-span",
            ModelKind::Local => "local",
        }
    }
    /// The depth each model gets unless `--layers` says otherwise: ContextPool's claim is that
    /// it matches a deeper plain model, so it gets half the layers.
    pub fn default_layers(self) -> usize {
        match self {
            ModelKind::Contextpool => 2,
            _ => 4,
        }
    }
}

const DEFAULT_OUT: &str = "runs/contextpool_lm";

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Character-level language model with ContextPool on the State of the Union addresses"
)]
pub struct Config {
    /// Any UTF-8 text file (gzipped if it ends in .gz)
    #[arg(long, default_value = "data/sotu.txt.gz")]
    pub data: String,
    #[arg(long, value_enum, default_value_t = ModelKind::Contextpool)]
    pub model: ModelKind,
    /// Number of layers (default: 2 for contextpool, 4 for the others)
    #[arg(long)]
    pub layers: Option<usize>,
    /// Train baseline (4 and 2 layers), contextpool, adaptive-span and local on one budget
    #[arg(long)]
    pub compare: bool,
    #[arg(long, default_value_t = 128)]
    pub d_model: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Context length in characters
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Training steps (the budget; with --compare, for each model)
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Peak learning rate (AdamW, linear warm-up then cosine decay to a tenth)
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Evaluate (and checkpoint) every this many steps
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Characters of the validation split used at each evaluation
    #[arg(long, default_value_t = 32768)]
    pub eval_chars: usize,
    /// Characters of the test split used for the final bpc
    #[arg(long, default_value_t = 131072)]
    pub test_chars: usize,
    /// ContextPool: pool only the keys and values, and attend from the unpooled queries
    #[arg(long)]
    pub pool_kv_only: bool,
    /// Local attention: keys this far back
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Characters to generate after training (0: none)
    #[arg(long, default_value_t = 400)]
    pub sample_chars: usize,
    #[arg(long, default_value = "The Congress")]
    pub prompt: String,
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, wgpu[:N] or cuda[:N]
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// Output folder (with --compare, the default is runs/contextpool_lm_compare)
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: String,
    /// Continue from the checkpoint in --out
    #[arg(long)]
    pub resume: bool,
    /// Stop once this step is reached, as if interrupted (resume continues the same run)
    #[arg(long, hide = true)]
    pub stop_at: Option<usize>,
    /// No progress bar or sample
    #[arg(long)]
    pub quiet: bool,
}

impl Config {
    pub fn layers(&self) -> usize {
        self.layers.unwrap_or(self.model.default_layers())
    }
}

/// Embedding plus sinusoidal positions, pre-norm encoder layers (causal), a final norm and a
/// linear head over the characters.
pub struct CharLm {
    pub embed: Embedding,
    pub layers: Vec<TransformerEncoderLayer>,
    pub norm: LayerNorm,
    pub head: Linear,
    d_model: usize,
}

pub fn layer_options(cfg: &Config, kind: ModelKind) -> EncoderOptions {
    let mut o = EncoderOptions::new(cfg.d_model, cfg.heads);
    o.causal = true;
    // Short runs on much more text than they can see: nothing to regularise.
    o.dropout = 0.0;
    match kind {
        ModelKind::Baseline => {}
        ModelKind::Contextpool => {
            o.context_pool = Some(ContextPoolOptions {
                causal: true,
                ..Default::default()
            });
            o.pool_queries = !cfg.pool_kv_only;
        }
        ModelKind::AdaptiveSpan => {
            o.attention = AttentionKind::AdaptiveSpan {
                initial_span: cfg.seq_len as f64 / 2.0,
                ramp: 32.0,
                max_span: cfg.seq_len as f64,
            }
        }
        ModelKind::Local => o.attention = AttentionKind::Local { window: cfg.window },
    }
    o
}

impl CharLm {
    pub fn new(cfg: &Config, kind: ModelKind, layers: usize, vocab: usize) -> Self {
        let opts = layer_options(cfg, kind);
        CharLm {
            embed: Embedding::new(vocab, cfg.d_model),
            layers: (0..layers)
                .map(|_| TransformerEncoderLayer::new(opts))
                .collect(),
            norm: LayerNorm::new(&[cfg.d_model]),
            head: Linear::new(cfg.d_model, vocab, true),
            d_model: cfg.d_model,
        }
    }

    /// The layers' input: embeddings of `ids` `[B, T]` plus the positions from `offset`.
    fn embed_at(&self, ids: &Tensor, offset: usize) -> Tensor {
        let t = ids.dims()[1];
        let pos = sinusoidal_positions(t, self.d_model, offset).to_device(ids.device());
        self.embed.forward(ids).add(&pos)
    }

    /// Logits `[B, T, vocab]` for `ids` `[B, T]`.
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        let mut h = self.embed_at(ids, 0);
        for layer in &self.layers {
            h = layer.forward(&h, None);
        }
        self.head.forward(&self.norm.forward(&h))
    }

    /// Logits for new tokens `ids` `[B, t]` after those already in `caches` (one per layer).
    pub fn forward_cached(&self, ids: &Tensor, caches: &mut [LayerCache]) -> Tensor {
        let mut h = self.embed_at(ids, caches[0].kv.len());
        for (layer, cache) in self.layers.iter().zip(caches.iter_mut()) {
            h = layer.forward_cached(&h, cache);
        }
        self.head.forward(&self.norm.forward(&h))
    }
}

impl Module for CharLm {
    cubegrad::module_tensors! {
        child "embed" embed;
        list "layers" layers;
        child "norm" norm;
        child "head" head;
    }
}

/// Forward FLOPs per token (a multiply-add counts 2), as the layers compute them: the
/// projections and feed-forward, attention over the keys each query really scores (half the
/// context on average when causal; the local window; adaptive span scores the whole context and
/// masks it), ContextPool's two projections and its window, and the output head.
pub fn flops_per_token(cfg: &Config, kind: ModelKind, layers: usize, vocab: usize) -> f64 {
    let d = cfg.d_model as f64;
    let opts = layer_options(cfg, kind);
    let ff = opts.dim_feedforward as f64;
    let keys = match kind {
        ModelKind::Local => (cfg.window + 1).min(cfg.seq_len) as f64,
        _ => (cfg.seq_len + 1) as f64 / 2.0,
    };
    let mut layer = 2.0 * (4.0 * d * d) + 2.0 * (2.0 * d * ff) + 2.0 * (2.0 * keys * d);
    if let Some(cp) = opts.context_pool {
        // Weight and size projections, then the causal window of radius + 1 taps per feature.
        layer += 2.0 * 2.0 * d + 2.0 * (cp.radius() + 1) as f64 * d;
    }
    layers as f64 * layer + 2.0 * d * vocab as f64
}

/// The corpus cut into characters and splits: 90% train, 5% validation, 5% test, dealt in
/// blocks of 20,000 characters by a seeded shuffle.
pub struct Corpus {
    pub vocab: CharVocab,
    pub splits: TextSplits,
}

pub fn load_corpus(path: &str, seed: u64) -> cubegrad::Result<Corpus> {
    let text = read_text(path)?;
    let vocab = CharVocab::from_text(&text);
    let ids = vocab.encode(&text)?;
    let splits = split_blocks(&ids, 20_000, 0.05, 0.05, seed);
    Ok(Corpus { vocab, splits })
}

/// Mean bits per character of `model` over the first `max_chars` characters of `ids`.
pub fn bits_per_char(model: &mut CharLm, ids: &[i64], cfg: &Config, max_chars: usize) -> f64 {
    model.eval();
    let (mut total, mut count) = (0.0, 0usize);
    no_grad(|| {
        for (x, y) in lm_eval_batches(ids, cfg.batch_size, cfg.seq_len, Some(max_chars)) {
            let n = y.numel();
            let logits = model.forward(&x.to_device(cfg.device));
            let v = logits.dim(-1);
            let loss = logits
                .reshape(&[n, v])
                .cross_entropy(&y.reshape(&[n]).to_device(cfg.device));
            total += loss.item() * n as f64;
            count += n;
        }
    });
    model.train();
    total / count.max(1) as f64 / std::f64::consts::LN_2
}

/// What one training run reports.
#[derive(Clone, Debug)]
pub struct Report {
    pub model: ModelKind,
    pub layers: usize,
    pub params: usize,
    pub flops_per_token: f64,
    /// Mean training bpc over the first and the last evaluation interval.
    pub first_train_bpc: f64,
    pub last_train_bpc: f64,
    pub valid_bpc: f64,
    pub test_bpc: f64,
    /// Wall time of the training loop, the periodic evaluations included.
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    pub history: History,
    pub sample: Option<String>,
    /// False when `--stop-at` ended the run before its last step.
    pub finished: bool,
}

const CHECKPOINT: &str = "checkpoint.safetensors";

fn model_tag(cfg: &Config, kind: ModelKind, layers: usize) -> String {
    let kv_only = if kind == ModelKind::Contextpool && cfg.pool_kv_only {
        " kv-only"
    } else {
        ""
    };
    format!(
        "{}{kv_only} layers={layers} d={} heads={} seq={} batch={} steps={}",
        kind.name(),
        cfg.d_model,
        cfg.heads,
        cfg.seq_len,
        cfg.batch_size,
        cfg.steps
    )
}

/// Trains one model and writes its metrics, figures and checkpoint into `dir`.
pub fn train_one(
    cfg: &Config,
    corpus: &Corpus,
    kind: ModelKind,
    layers: usize,
    dir: &Path,
) -> AnyResult<(Report, CharLm)> {
    manual_seed(cfg.seed);
    let vocab = corpus.vocab.len();
    let mut model = CharLm::new(cfg, kind, layers, vocab);
    model.try_to_device(cfg.device)?;
    let mut opt: Adam = AdamConfig::adamw().lr(cfg.lr).weight_decay(0.01).init();
    let schedule = WarmupCosine {
        base: cfg.lr,
        min: cfg.lr / 10.0,
        warmup: (cfg.steps / 20).max(1),
        total: cfg.steps,
    };
    let tag = model_tag(cfg, kind, layers);
    let ckpt_path = dir.join(CHECKPOINT);
    let mut history = History::new(&["step", "train_bpc", "valid_bpc", "lr", "seconds"]);
    let mut step = 0usize;
    let mut seconds_before = 0.0;
    if cfg.resume {
        let ck = load_checkpoint(&ckpt_path, &mut model, &mut opt)?;
        let saved = ck.extra.get("model").cloned().unwrap_or_default();
        if saved != tag {
            return Err(format!(
                "{}: the checkpoint is of \"{saved}\", this run is \"{tag}\"",
                ckpt_path.display()
            )
            .into());
        }
        step = ck.get("step").ok_or("checkpoint lacks \"step\"")?;
        seconds_before = ck.get("seconds").unwrap_or(0.0);
        history = ck
            .extra
            .get("history")
            .and_then(|h| History::from_json(h))
            .ok_or("checkpoint lacks a readable \"history\"")?;
    }
    let params = model.num_params();
    let end = cfg.stop_at.map_or(cfg.steps, |s| s.min(cfg.steps));
    let bar = progress(cfg.steps, cfg.quiet);
    bar.set_position(step as u64);
    let started = Instant::now();
    let (mut sum_bpc, mut n_bpc) = (0.0, 0usize);
    while step < end {
        let (x, y) = lm_batch(&corpus.splits.train, cfg.batch_size, cfg.seq_len)?;
        let (x, y) = (x.to_device(cfg.device), y.to_device(cfg.device));
        let n = y.numel();
        let lr = schedule.lr(step);
        opt.set_lr(lr);
        let logits = model.forward(&x);
        let ce = logits.reshape(&[n, vocab]).cross_entropy(&y.reshape(&[n]));
        let mut loss = ce.clone();
        for l in &model.layers {
            if let Some(span) = &l.adaptive_span {
                // The L1 pull on the spans, as in the adaptive-span paper (per head, in tokens).
                loss = loss.add(&span.span_penalty(2e-6 * cfg.seq_len as f64)?);
            }
        }
        let mut grads = loss.backward();
        clip_grad_norm(&model, &mut grads, 1.0);
        opt.step(&mut model, &grads)?;
        for l in &mut model.layers {
            if let Some(span) = &mut l.adaptive_span {
                span.clamp_spans();
            }
        }
        step += 1;
        let bpc = ce.item() / std::f64::consts::LN_2;
        sum_bpc += bpc;
        n_bpc += 1;
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        let tps = (step * cfg.batch_size * cfg.seq_len) as f64 / seconds.max(1e-9);
        bar.set_position(step as u64);
        bar.set_message(format!("{bpc:.3} bpc, {tps:.0} chars/s"));
        if step % cfg.eval_every == 0 || step == cfg.steps {
            let valid = bits_per_char(&mut model, &corpus.splits.valid, cfg, cfg.eval_chars);
            let seconds = seconds_before + started.elapsed().as_secs_f64();
            history.push(vec![
                step as f64,
                sum_bpc / n_bpc as f64,
                valid,
                lr,
                seconds,
            ]);
            (sum_bpc, n_bpc) = (0.0, 0);
            bar.println(format!(
                "[{}] step {step:5}  train {:.3} bpc  valid {valid:.3} bpc",
                kind.name(),
                history.rows.last().unwrap()[1]
            ));
            let mut extra = Metadata::new();
            extra.insert("model".into(), tag.clone());
            extra.insert("step".into(), step.to_string());
            extra.insert("seconds".into(), seconds.to_string());
            extra.insert("history".into(), history.to_json());
            save_checkpoint(&ckpt_path, &model, &opt, &extra)?;
        }
    }
    bar.finish_and_clear();
    history.write_csv(&dir.join("metrics.csv"))?;
    let train_seconds = history.rows.last().map_or(0.0, |r| r[4]);
    let finished = step >= cfg.steps;
    let test_bpc = if finished {
        bits_per_char(&mut model, &corpus.splits.test, cfg, cfg.test_chars)
    } else {
        f64::NAN
    };
    let report = Report {
        model: kind,
        layers,
        params,
        flops_per_token: flops_per_token(cfg, kind, layers, vocab),
        first_train_bpc: history.rows.first().map_or(f64::NAN, |r| r[1]),
        last_train_bpc: history.rows.last().map_or(f64::NAN, |r| r[1]),
        valid_bpc: history.rows.last().map_or(f64::NAN, |r| r[2]),
        test_bpc,
        train_seconds,
        tokens_per_second: (step * cfg.batch_size * cfg.seq_len) as f64 / train_seconds.max(1e-9),
        history,
        sample: None,
        finished,
    };
    common::write_json(&dir.join("metrics.json"), &report_json(&report))?;
    line_chart(
        &dir.join("learning_curve.svg"),
        &format!("{} ({layers} layers)", kind.name()),
        "step",
        "bits per character",
        &[
            Series::line("train", report.history.points("step", "train_bpc")),
            Series::line("validation", report.history.points("step", "valid_bpc")),
        ],
    )?;
    Ok((report, model))
}

fn report_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "model": r.model.name(),
        "layers": r.layers,
        "params": r.params,
        "flops_per_token": r.flops_per_token,
        "first_train_bpc": r.first_train_bpc,
        "last_train_bpc": r.last_train_bpc,
        "valid_bpc": r.valid_bpc,
        "test_bpc": r.test_bpc,
        "train_seconds": r.train_seconds,
        "tokens_per_second": r.tokens_per_second,
        "finished": r.finished,
    })
}

/// Generates `n` characters after `prompt` with the KV cache, sampling at `temperature` with
/// its own RNG. The cache covers one context length: when it is full, the last half of the
/// text is fed again as a fresh prompt, so positions stay within those seen in training.
pub fn generate(
    model: &mut CharLm,
    vocab: &CharVocab,
    cfg: &Config,
    n: usize,
) -> AnyResult<String> {
    let mut ids = vocab.encode(&cfg.prompt)?;
    if ids.is_empty() {
        return Err("generate: the prompt is empty".into());
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed);
    model.eval();
    let fresh = |model: &CharLm, ids: &[i64], caches: &mut Vec<LayerCache>| {
        *caches = vec![LayerCache::default(); model.layers.len()];
        let x = Tensor::from_vec(ids.to_vec(), [1, ids.len()]).to_device(cfg.device);
        model.forward_cached(&x, caches)
    };
    let mut caches = Vec::new();
    let keep = (cfg.seq_len / 2).max(1);
    let start = ids.len().saturating_sub(keep);
    let mut logits = no_grad(|| fresh(model, &ids[start..], &mut caches));
    for _ in 0..n {
        let last = logits.dim(1) - 1;
        let row: Vec<f32> = logits.narrow(1, last, 1).to_vec::<f32>();
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let weights: Vec<f64> = row
            .iter()
            .map(|&z| ((z as f64 - max) / cfg.temperature.max(1e-6)).exp())
            .collect();
        let total: f64 = weights.iter().sum();
        let mut u = rng.gen::<f64>() * total;
        let mut next = weights.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                next = i;
                break;
            }
            u -= w;
        }
        ids.push(next as i64);
        logits = no_grad(|| {
            if caches[0].kv.len() >= cfg.seq_len {
                fresh(model, &ids[ids.len() - keep..], &mut caches)
            } else {
                let x = Tensor::from_vec(vec![next as i64], [1, 1]).to_device(cfg.device);
                model.forward_cached(&x, &mut caches)
            }
        });
    }
    model.train();
    Ok(vocab.decode(&ids))
}

/// The figures of a trained model on a passage of held-out text: ContextPool's pooling sizes
/// per character in each layer, and the attention weights of head 1 in layer 1.
pub fn passage_figures(
    model: &mut CharLm,
    corpus: &Corpus,
    cfg: &Config,
    dir: &Path,
) -> AnyResult<()> {
    let n = cfg.seq_len.min(corpus.splits.test.len() - 1);
    // Open the passage on a paragraph of prose: after a line break, at a capital letter (the
    // addresses' `=== year_name ===` headers start with '=').
    let test = &corpus.splits.test;
    let ch = |i: usize| corpus.vocab.chars()[test[i] as usize];
    let start = (0..test.len() - n - 1)
        .find(|&i| ch(i) == '\n' && ch(i + 1).is_uppercase())
        .map_or(0, |i| i + 1);
    let ids = &corpus.splits.test[start..start + n];
    let chars: Vec<char> = ids
        .iter()
        .map(|&i| corpus.vocab.chars()[i as usize])
        .collect();
    model.eval();
    let x = Tensor::from_vec(ids.to_vec(), [1, n]).to_device(cfg.device);
    let mut sizes_csv = String::from("position,char");
    no_grad(|| -> AnyResult<()> {
        let mut h = model.embed_at(&x, 0);
        let mut per_layer = Vec::new();
        for (li, layer) in model.layers.iter().enumerate() {
            if li == 0
                && layer.adaptive_span.is_none()
                && layer.options.attention == AttentionKind::Full
            {
                let hn = layer.norm1.forward(&h);
                let pooled = match &layer.context_pool {
                    Some(cp) => cp.forward(&hn),
                    None => hn.clone(),
                };
                let opts = MhaOptions {
                    need_weights: true,
                    average_attn_weights: false,
                    is_causal: true,
                    ..Default::default()
                };
                let (_, w) = layer
                    .self_attn
                    .try_forward(&pooled, &pooled, &pooled, &opts)?;
                let w = w.ok_or("attention weights were not returned")?;
                let m = n.min(64);
                let head0 = w.narrow(1, 0, 1).to_vec::<f32>();
                let rows: Vec<Vec<f64>> = (0..m)
                    .map(|i| (0..m).map(|j| head0[i * n + j] as f64).collect())
                    .collect();
                let labels: Vec<String> = chars[..m].iter().map(|c| show(*c)).collect();
                heatmap(
                    &dir.join("attention_layer1_head1.svg"),
                    &format!(
                        "{}: attention of layer 1, head 1 (query rows, key columns)",
                        cfg.model.name()
                    ),
                    &rows,
                    &labels,
                    &labels,
                )?;
            }
            h = layer.forward(&h, None);
            if let Some(cp) = &layer.context_pool {
                let stats = cp.last_stats().ok_or("ContextPool kept no statistics")?;
                per_layer.push(stats.sizes.to_device(Device::Cpu).to_vec::<f32>());
            }
        }
        for (li, s) in per_layer.iter().enumerate() {
            sizes_csv.push_str(&format!(",layer{}_size", li + 1));
            let values: Vec<f64> = s.iter().map(|&v| v as f64).collect();
            text_heat(
                &dir.join(format!("pool_sizes_layer{}.svg", li + 1)),
                &format!(
                    "ContextPool sizes s per character, layer {} (light = pools wide)",
                    li + 1
                ),
                &chars,
                &values,
                64,
            )?;
        }
        sizes_csv.push('\n');
        for (i, c) in chars.iter().enumerate() {
            sizes_csv.push_str(&format!("{i},{:?}", show(*c)));
            for s in &per_layer {
                sizes_csv.push_str(&format!(",{}", s[i]));
            }
            sizes_csv.push('\n');
        }
        Ok(())
    })?;
    model.train();
    if model.layers.iter().any(|l| l.context_pool.is_some()) {
        common::write_file(&dir.join("pool_sizes.csv"), &sizes_csv)?;
    }
    Ok(())
}

fn show(c: char) -> String {
    match c {
        '\n' => "⏎".into(),
        ' ' => "␣".into(),
        c => c.to_string(),
    }
}

/// The single-model run: train, figures, sample.
pub fn run(cfg: &Config) -> AnyResult<Report> {
    let corpus = load_corpus(&cfg.data, cfg.seed)?;
    let dir = out_dir(&cfg.out)?;
    if !cfg.quiet {
        println!(
            "{}: {} characters ({} distinct); train {}, valid {}, test {}",
            cfg.data,
            common::thousands(
                corpus.splits.train.len() + corpus.splits.valid.len() + corpus.splits.test.len()
            ),
            corpus.vocab.len(),
            common::thousands(corpus.splits.train.len()),
            common::thousands(corpus.splits.valid.len()),
            common::thousands(corpus.splits.test.len()),
        );
    }
    let (mut report, mut model) = train_one(cfg, &corpus, cfg.model, cfg.layers(), &dir)?;
    if report.finished {
        passage_figures(&mut model, &corpus, cfg, &dir)?;
        if cfg.sample_chars > 0 {
            let s = generate(&mut model, &corpus.vocab, cfg, cfg.sample_chars)?;
            common::write_file(&dir.join("sample.txt"), &s)?;
            report.sample = Some(s);
        }
    }
    Ok(report)
}

/// The comparison: each model on the same steps, batch and context, then one table.
pub fn compare(cfg: &Config) -> AnyResult<Vec<Report>> {
    let corpus = load_corpus(&cfg.data, cfg.seed)?;
    // Beside, not inside, the single run's folder.
    let base = if cfg.out == DEFAULT_OUT {
        "runs/contextpool_lm_compare".to_string()
    } else {
        cfg.out.clone()
    };
    let cfg = &Config {
        out: base,
        ..cfg.clone()
    };
    let dir = out_dir(&cfg.out)?;
    // The paper's comparison, plus the plain model at ContextPool's depth, which tells a
    // reader whether pooling helps at equal depth (without --layers, which sets every depth).
    let mut runs: Vec<(ModelKind, usize)> = vec![
        (ModelKind::Baseline, ModelKind::Baseline.default_layers()),
        (
            ModelKind::Contextpool,
            ModelKind::Contextpool.default_layers(),
        ),
    ];
    if cfg.layers.is_none() {
        runs.push((ModelKind::Baseline, ModelKind::Contextpool.default_layers()));
    }
    runs.push((
        ModelKind::AdaptiveSpan,
        ModelKind::AdaptiveSpan.default_layers(),
    ));
    runs.push((ModelKind::Local, ModelKind::Local.default_layers()));
    let mut reports = Vec::new();
    for (kind, default_layers) in runs {
        let layers = cfg.layers.unwrap_or(default_layers);
        let name = if layers == kind.default_layers() {
            kind.name().to_string()
        } else {
            format!("{}-{layers}layers", kind.name())
        };
        let sub = out_dir(&format!("{}/{name}", cfg.out))?;
        let sub_cfg = Config {
            model: kind,
            ..cfg.clone()
        };
        let (report, mut model) = train_one(&sub_cfg, &corpus, kind, layers, &sub)?;
        if report.finished {
            passage_figures(&mut model, &corpus, &sub_cfg, &sub)?;
        }
        reports.push(report);
    }
    let mut table = Table::new(&[
        "model",
        "layers",
        "params",
        "FLOPs/char (fwd)",
        "valid bpc",
        "test bpc",
        "wall time (s)",
        "chars/s",
    ]);
    for r in &reports {
        table.push(vec![
            r.model.name().into(),
            r.layers.to_string(),
            common::thousands(r.params),
            format!("{:.2} M", r.flops_per_token / 1e6),
            format!("{:.3}", r.valid_bpc),
            format!("{:.3}", r.test_bpc),
            format!("{:.0}", r.train_seconds),
            format!("{:.0}", r.tokens_per_second),
        ]);
    }
    table.write(&dir, "results")?;
    let series: Vec<Series> = reports
        .iter()
        .map(|r| {
            Series::line(
                &format!("{} ({} layers)", r.model.name(), r.layers),
                r.history.points("step", "valid_bpc"),
            )
        })
        .collect();
    line_chart(
        &dir.join("compare_valid_bpc.svg"),
        "Validation bits per character on one budget",
        "step",
        "bits per character",
        &series,
    )?;
    common::write_json(
        &dir.join("results.json"),
        &serde_json::Value::Array(reports.iter().map(report_json).collect()),
    )?;
    if !cfg.quiet {
        println!("{}", table.markdown());
    }
    Ok(reports)
}

#[allow(dead_code)]
fn main() {
    let cfg = Config::parse();
    let result = if cfg.compare {
        compare(&cfg).map(|_| ())
    } else {
        run(&cfg).map(|r| {
            if !r.finished {
                println!("stopped at step {} of {}; continue with --resume", r.history.rows.last().map_or(0.0, |x| x[0]), cfg.steps);
                return;
            }
            println!(
                "{} ({} layers, {} parameters): test {:.3} bpc (validation {:.3}), {:.0} s, {:.0} chars/s",
                r.model.name(),
                r.layers,
                common::thousands(r.params),
                r.test_bpc,
                r.valid_bpc,
                r.train_seconds,
                r.tokens_per_second
            );
            if let Some(s) = &r.sample {
                println!("\nsample:\n{s}\n");
            }
            println!("figures and metrics in {}", PathBuf::from(&cfg.out).display());
        })
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
