//! The model: a small causal transformer over characters; the options that make its layers
//! plain, ContextPool, adaptive-span, sparse or random-feature attention, or replace them with
//! FLASH's units, Transformer-XL's layers (with their memory) or a reversible Reformer stack;
//! its forward FLOPs; and sampling (with the KV cache where the attention allows it).

use super::common::AnyResult;
use super::{Config, Features, ModelKind, Placement};
use cubegrad::data::CharVocab;
use cubegrad::nn::PoolPlacement;
use cubegrad::nn::{
    sinusoidal_positions, update_memory, AttentionKind, AttentionPattern, Embedding,
    EncoderOptions, GatedAttentionUnit, GauOptions, LayerCache, LayerNorm, Linear, Module,
    Reformer, ReformerOptions, TransformerEncoderLayer, TransformerXlLayer,
};
use cubegrad::{no_grad, Tensor};
use rand::{Rng, SeedableRng};

/// Embedding plus sinusoidal positions, pre-norm encoder layers (causal), a final norm and a
/// linear head over the characters.
pub struct CharLm {
    pub embed: Embedding,
    pub layers: Vec<TransformerEncoderLayer>,
    /// FLASH's layers instead (then `layers` is empty).
    pub gau_layers: Vec<GatedAttentionUnit>,
    /// Transformer-XL's layers instead (then `layers` is empty).
    pub xl_layers: Vec<TransformerXlLayer>,
    /// Transformer-XL's memory of the training streams, a buffer so that checkpoints keep it
    /// and `--resume` continues exactly.
    pub memory: Option<XlMemory>,
    /// Reformer's reversible stack instead (then `layers` is empty, and `norm` and `head`
    /// read both halves, `2·d` wide).
    pub reformer: Option<Reformer>,
    /// Reformer's chunk: inputs are padded at the end to a multiple of it.
    chunk: usize,
    pub norm: LayerNorm,
    pub head: Linear,
    d_model: usize,
}

/// The memory of every Transformer-XL layer for one batch of streams: `states`
/// `[layers, B, mem_len, d]`, of which the last `filled` positions hold memory.
pub struct XlMemory {
    pub states: Tensor,
    pub filled: Tensor,
}

impl XlMemory {
    pub fn new(layers: usize, batch: usize, mem_len: usize, d: usize) -> Self {
        XlMemory {
            states: Tensor::zeros([layers, batch, mem_len, d]),
            filled: Tensor::zeros([1]),
        }
    }
    /// How many positions hold memory (one read of a one-element buffer).
    pub fn filled(&self) -> usize {
        self.filled.to_vec::<f32>()[0] as usize
    }
    /// Layer `i`'s memory `[B, filled, d]`, or none before the first segment.
    pub fn layer(&self, i: usize, filled: usize) -> Option<Tensor> {
        let m = self.states.dims()[2];
        (filled > 0).then(|| {
            self.states
                .narrow(0, i, 1)
                .squeeze(0)
                .narrow(1, m - filled, filled)
        })
    }
    /// Keeps `layers` (each `[B, f, d]`, `f ≤ mem_len`) as the memory, zeros in front.
    pub fn store(&mut self, layers: &[Tensor]) {
        let (b, m, d) = (
            self.states.dims()[1],
            self.states.dims()[2],
            self.states.dims()[3],
        );
        let f = layers[0].dims()[1];
        let rows: Vec<Tensor> = layers
            .iter()
            .map(|t| {
                if f == m {
                    t.clone()
                } else {
                    let zeros = Tensor::full_on([b, m - f, d], 0.0, t.dtype(), t.device());
                    Tensor::concat(&[&zeros, t], 1)
                }
            })
            .collect();
        self.states = Tensor::stack(&rows.iter().collect::<Vec<_>>(), 0).detach();
        self.filled = Tensor::full([1], f as f64).to_device(self.states.device());
    }
    /// Forgets everything (a new pass over the streams starts).
    pub fn clear(&mut self) {
        self.filled = Tensor::zeros([1]).to_device(self.states.device());
    }
}

impl Module for XlMemory {
    cubegrad::module_tensors! {
        buffer "states" states;
        buffer "filled" filled;
    }
}

/// The options of each layer of a `kind` model: causal, without dropout, and with that
/// kind's attention.
pub fn layer_options(cfg: &Config, kind: ModelKind) -> EncoderOptions {
    let mut o = EncoderOptions::new(cfg.d_model, cfg.heads);
    o.causal = true;
    // Short runs on much more text than they can see: nothing to regularise.
    o.dropout = 0.0;
    match kind {
        // FLASH's units and Transformer-XL's layers replace these layers.
        ModelKind::Baseline | ModelKind::Flash | ModelKind::TransformerXl | ModelKind::Reformer => {
        }
        ModelKind::Contextpool => {
            o.context_pool = Some(cfg.pool_options());
            o.pool_placement = cfg.pool_placement.layer();
            o.pool_features = cfg.pool_features();
        }
        ModelKind::AdaptiveSpan => {
            o.attention = AttentionKind::AdaptiveSpan {
                initial_span: cfg.seq_len as f64 / 2.0,
                ramp: 32.0,
                max_span: cfg.seq_len as f64,
            }
        }
        ModelKind::Local => o.attention = AttentionKind::Local { window: cfg.window },
        ModelKind::Strided => o.attention = AttentionKind::Strided { stride: cfg.stride },
        ModelKind::Fixed => {
            o.attention = AttentionKind::Fixed {
                stride: cfg.stride,
                summary: cfg.summary,
            }
        }
        ModelKind::Performer => {
            o.attention = AttentionKind::RandomFeatures {
                features: cfg.features,
                chunk: cfg.chunk,
            }
        }
    }
    o
}

/// Reformer's layers: causal, without dropout, chunks of `--chunk`, `--n-hashes` rounds of
/// `--buckets` buckets.
pub fn reformer_options(cfg: &Config) -> ReformerOptions {
    let mut o = ReformerOptions::new(cfg.d_model, cfg.heads);
    (o.chunk, o.n_hashes, o.n_buckets, o.causal) = (cfg.chunk, cfg.n_hashes, cfg.buckets, true);
    o
}

/// FLASH's units: causal, the paper's expansion 2 and query/key width 128, chunks of
/// `--chunk`.
pub fn gau_options(cfg: &Config) -> GauOptions {
    GauOptions {
        chunk: cfg.chunk,
        causal: true,
        ..GauOptions::new(cfg.d_model)
    }
}

impl CharLm {
    pub fn new(cfg: &Config, kind: ModelKind, layers: usize, vocab: usize) -> Self {
        let opts = layer_options(cfg, kind);
        let (encoders, gaus, xls) = match kind {
            ModelKind::Flash => (0, layers, 0),
            ModelKind::TransformerXl => (0, 0, layers),
            ModelKind::Reformer => (0, 0, 0),
            _ => (layers, 0, 0),
        };
        let reformer =
            (kind == ModelKind::Reformer).then(|| Reformer::new(layers, reformer_options(cfg)));
        let width = if reformer.is_some() {
            2 * cfg.d_model
        } else {
            cfg.d_model
        };
        let xl = kind == ModelKind::TransformerXl;
        CharLm {
            embed: Embedding::new(vocab, cfg.d_model),
            layers: (0..encoders)
                .map(|_| TransformerEncoderLayer::new(opts))
                .collect(),
            gau_layers: (0..gaus)
                .map(|_| GatedAttentionUnit::new(gau_options(cfg)))
                .collect(),
            xl_layers: (0..xls)
                .map(|_| TransformerXlLayer::new(cfg.d_model, cfg.heads, 4 * cfg.d_model, 0.0))
                .collect(),
            memory: xl.then(|| XlMemory::new(layers, cfg.batch_size, cfg.mem_len, cfg.d_model)),
            reformer,
            chunk: cfg.chunk,
            norm: LayerNorm::new(&[width]),
            head: Linear::new(width, vocab, true),
            d_model: cfg.d_model,
        }
    }

    /// The layers' input: embeddings of `ids` `[B, T]` plus the positions from `offset`.
    pub fn embed_at(&self, ids: &Tensor, offset: usize) -> Tensor {
        let t = ids.dims()[1];
        let pos = sinusoidal_positions(t, self.d_model, offset).to_device(ids.device());
        self.embed.forward(ids).add(&pos)
    }

    /// Logits `[B, T, vocab]` for `ids` `[B, T]` (Transformer-XL without memory).
    pub fn forward(&self, ids: &Tensor) -> Tensor {
        if !self.xl_layers.is_empty() {
            return self.forward_segment(ids, None, 0).0;
        }
        if let Some(reformer) = &self.reformer {
            // LSH attention needs whole chunks: pad at the end (causal, so the padding is
            // never attended to by the real tokens, though it takes part in the hashing).
            let t = ids.dims()[1];
            let padded = t.div_ceil(self.chunk) * self.chunk;
            let h = self.embed_at(ids, 0);
            let h = if padded == t {
                h
            } else {
                let pad = Tensor::full_on(
                    [h.dims()[0], padded - t, self.d_model],
                    0.0,
                    h.dtype(),
                    h.device(),
                );
                Tensor::concat(&[&h, &pad], 1)
            };
            let out = reformer.forward(&h).narrow(1, 0, t);
            return self.head.forward(&self.norm.forward(&out));
        }
        let mut h = self.embed_at(ids, 0);
        for layer in &self.layers {
            h = layer.forward(&h, None);
        }
        for gau in &self.gau_layers {
            h = gau.forward(&h);
        }
        self.head.forward(&self.norm.forward(&h))
    }

    // ANCHOR: xl_segment
    /// Transformer-XL: logits for the segment `ids` `[B, T]` after `memory`, and each layer's
    /// next memory (its last `mem_len` inputs, detached). No absolute positions: the layers
    /// score distances.
    pub fn forward_segment(
        &self,
        ids: &Tensor,
        memory: Option<&XlMemory>,
        mem_len: usize,
    ) -> (Tensor, Vec<Tensor>) {
        let mut h = self.embed.forward(ids);
        let mut next = Vec::with_capacity(self.xl_layers.len());
        let filled = memory.map_or(0, XlMemory::filled);
        for (i, layer) in self.xl_layers.iter().enumerate() {
            let m = memory.and_then(|m| m.layer(i, filled));
            next.push(update_memory(m.as_ref(), &h, mem_len).expect("shapes checked"));
            h = layer.forward(&h, m.as_ref());
        }
        (self.head.forward(&self.norm.forward(&h)), next)
    }
    // ANCHOR_END: xl_segment

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
        // Two of the three lists are empty, so the names do not collide.
        list "layers" gau_layers;
        list "layers" xl_layers;
        optional "memory" memory;
        optional "reformer" reformer;
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
    if kind == ModelKind::Flash {
        // Per unit: the three projections, then the kernel inside a chunk over the
        // (chunk + 1) / 2 keys a query sees there on average (scores of width s, values of
        // width e), and the linear part's state k'vᵀ and its read by q'.
        let g = gau_options(cfg);
        let (e, s) = (
            (g.expansion_factor * cfg.d_model) as f64,
            g.query_key_dim as f64,
        );
        let inside = (g.chunk.min(cfg.seq_len) as f64 + 1.0) / 2.0;
        let unit = 2.0 * d * 2.0 * e
            + 2.0 * d * s
            + 2.0 * e * d
            + 2.0 * inside * (s + e)
            + 2.0 * (2.0 * s * e);
        return layers as f64 * unit + 2.0 * d * vocab as f64;
    }
    let opts = layer_options(cfg, kind);
    let ff = opts.dim_feedforward as f64;
    if kind == ModelKind::Reformer {
        // Shared-QK, value and output projections and the feed-forward; hashing every token
        // (d·buckets per round: each head's e·buckets/2 over d/e heads, times 2 for the
        // multiply-add), and per round a window of 2·chunk keys, scored and averaged in full
        // whatever the causal mask hides. The backward's recomputation is not counted (it is
        // a forward FLOP count).
        let o = reformer_options(cfg);
        let (r, c) = (o.n_hashes as f64, o.chunk as f64);
        let layer = 2.0 * (3.0 * d * d)
            + 2.0 * (2.0 * d * ff)
            + r * d * o.n_buckets as f64
            + r * 2.0 * (2.0 * (2.0 * c) * d);
        return layers as f64 * layer + 2.0 * (2.0 * d) * vocab as f64;
    }
    if kind == ModelKind::TransformerXl {
        // Keys and values are projected for the memory too (it holds hidden states), the
        // distances' encodings once per segment for the batch, and a query scores its content
        // and its distance against the memory plus, on average, half the segment.
        let (m, l, b) = (
            cfg.mem_len as f64,
            cfg.seq_len as f64,
            cfg.batch_size as f64,
        );
        let keys = m + (l + 1.0) / 2.0;
        let layer = 2.0 * d * d * (1.0 + 2.0 * (m + l) / l)
            + 2.0 * d * d * (m + l) / (l * b)
            + 2.0 * d * d
            + 2.0 * (2.0 * d * ff)
            + 2.0 * (3.0 * keys * d);
        return layers as f64 * layer + 2.0 * d * vocab as f64;
    }
    // The keys each query actually attends to, averaged over the positions of a window: the
    // sparse patterns skip the others (adaptive span still computes them all).
    let pattern = match opts.attention {
        AttentionKind::Local { window } => AttentionPattern::Local { window },
        AttentionKind::Strided { stride } => AttentionPattern::Strided { stride },
        AttentionKind::Fixed { stride, summary } => AttentionPattern::Fixed { stride, summary },
        _ => AttentionPattern::Full,
    };
    let n = cfg.seq_len;
    let seen = (0..n)
        .map(|i| (0..=i).filter(|&j| pattern.allows(i, j, true)).count())
        .sum::<usize>();
    let keys = seen as f64 / n as f64;
    let attention = match opts.attention {
        AttentionKind::RandomFeatures { features, chunk } => {
            // Feature maps of q and k, φ(k)vᵀ into the chunk's state, φ(q) against the running
            // state (values and normaliser), and the masked kernel inside a chunk against the
            // (chunk + 1) / 2 keys a query sees there on average.
            let (m, h) = (features as f64, cfg.heads as f64);
            let inside = (chunk.min(n) as f64 + 1.0) / 2.0;
            2.0 * (2.0 * m * d) + 2.0 * m * d + 2.0 * (m * d + m * h) + 2.0 * inside * (m * h + d)
        }
        _ => 2.0 * (2.0 * keys * d),
    };
    let mut layer = 2.0 * (4.0 * d * d) + 2.0 * (2.0 * d * ff) + attention;
    if let Some(cp) = opts.context_pool {
        // Weight and size projections, then the causal window of radius + 1 taps per feature;
        // per head, each head pools its keys and values (2·d features in all, and the
        // predictors read them).
        let f = if opts.pool_placement == PoolPlacement::PerHead {
            2.0 * d
        } else {
            d
        };
        layer += 2.0 * 2.0 * f + 2.0 * (cp.radius() + 1) as f64 * f;
    }
    layers as f64 * layer + 2.0 * d * vocab as f64
}

/// Generates `n` characters after `prompt` with the KV cache, sampling at `temperature` with
/// its own RNG. The cache covers one context length: when it is full, the last half of the
/// text is fed again as a fresh prompt, so positions stay within those seen in training.
/// Models whose attention the cache does not serve (sparse patterns, adaptive span) run the
/// last context length again for each character instead.
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
    // The cache serves plain attention, and ContextPool before attention on normalised tokens.
    let cached = match cfg.model {
        ModelKind::Baseline => true,
        ModelKind::Contextpool => {
            matches!(cfg.pool_placement, Placement::Input | Placement::Kv)
                && cfg.pool_features == Features::Normalized
        }
        _ => false,
    };
    let mut logits = no_grad(|| {
        if cached {
            fresh(model, &ids[start..], &mut caches)
        } else {
            let x = Tensor::from_vec(ids[start..].to_vec(), [1, ids.len() - start]);
            model.forward(&x.to_device(cfg.device))
        }
    });
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
            if !cached {
                let window = &ids[ids.len().saturating_sub(cfg.seq_len)..];
                let x = Tensor::from_vec(window.to_vec(), [1, window.len()]).to_device(cfg.device);
                model.forward(&x)
            } else if caches[0].kv.len() >= cfg.seq_len {
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
