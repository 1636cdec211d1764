//! The transformer's pieces: the position-wise GELU MLP, positional encodings, and pre-norm
//! encoder and decoder blocks, with names following PyTorch's `nn.TransformerEncoderLayer`
//! and `nn.TransformerDecoderLayer` (`self_attn`, `multihead_attn`, `linear1`, `linear2`,
//! `norm1`..`norm3`). An encoder block can pool its input with ContextPool before attention
//! (the paper's placement) and can use the attention patterns the paper compares against:
//! sliding-window, strided sparse, and adaptive span.

use super::{
    dropout, try_lara_attention, try_mra_attention, try_random_feature_attention, ContextPool,
    ContextPoolOptions, KvCache, LayerNorm, Linear, LinearAttentionOptions, MhaOptions, Module,
    MraOptions, MultiheadAttention, RandomFeatures,
};
use crate::error::{Error, OrPanic, Result};
use crate::ops::attention::AttentionPattern;
use crate::ops::Unary;
use crate::tensor::{DType, Tensor};

/// `linear2(dropout(gelu(linear1(x))))`: the position-wise feed-forward network.
pub struct FeedForward {
    pub linear1: Linear,
    pub linear2: Linear,
    pub dropout: f64,
    training: bool,
}

impl FeedForward {
    pub fn new(d_model: usize, dim_feedforward: usize, dropout: f64) -> Self {
        FeedForward {
            linear1: Linear::new(d_model, dim_feedforward, true),
            linear2: Linear::new(dim_feedforward, d_model, true),
            dropout,
            training: true,
        }
    }
    // ANCHOR: ffn
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.linear1.try_forward(x)?.try_unary(Unary::GeluErf)?;
        self.linear2
            .try_forward(&dropout(&h, self.dropout, self.training))
    }
    // ANCHOR_END: ffn
}

impl Module for FeedForward {
    crate::module_tensors! {
        child "linear1" linear1;
        child "linear2" linear2;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

// ANCHOR: sinusoidal
/// The sinusoidal positional encoding of "Attention is all you need": `[n, d]` with
/// `P[i, 2k] = sin(i / 10000^(2k/d))` and `P[i, 2k+1] = cos(i / 10000^(2k/d))`, for
/// positions `offset .. offset + n`.
pub fn sinusoidal_positions(n: usize, d: usize, offset: usize) -> Tensor {
    let mut v = Vec::with_capacity(n * d);
    for i in offset..offset + n {
        for c in 0..d {
            let freq = 10000f64.powf(-((c / 2 * 2) as f64) / d as f64);
            let a = i as f64 * freq;
            v.push(if c % 2 == 0 { a.sin() } else { a.cos() } as f32);
        }
    }
    Tensor::from_vec(v, [n, d])
}
// ANCHOR_END: sinusoidal

/// Learned absolute positions: `weight` `[max_len, d]`, initialised N(0, 0.02²) (GPT-2).
pub struct PositionalEmbedding {
    pub weight: Tensor,
}

impl PositionalEmbedding {
    pub fn new(max_len: usize, d: usize) -> Self {
        PositionalEmbedding {
            weight: Tensor::randn([max_len, d], 0.0, 0.02).with_grad(),
        }
    }
    /// `x` `[B, n, d]` plus the embeddings of positions `offset .. offset + n`.
    pub fn try_forward(&self, x: &Tensor, offset: usize) -> Result<Tensor> {
        let n = x.dim(-2);
        if offset + n > self.weight.dims()[0] {
            return Err(Error::bad_shape(
                "PositionalEmbedding",
                x.shape(),
                format!(
                    "positions {offset}..{} exceed max_len {}",
                    offset + n,
                    self.weight.dims()[0]
                ),
            ));
        }
        x.try_add(&self.weight.try_narrow(0, offset, n)?)
    }
}

impl Module for PositionalEmbedding {
    crate::module_tensors! {
        param "weight" weight;
    }
}

/// Adaptive attention span (Sukhbaatar et al. 2019): each head learns a span `z` and weighs
/// the key at distance `x` by `m_z(x) = clamp((R + z − x) / R, 0, 1)`, then renormalises.
/// `span_penalty` is the L1 term to add to the loss.
pub struct AdaptiveSpan {
    /// `[heads]`, in tokens.
    pub span: Tensor,
    pub ramp: f64,
    pub max_span: f64,
}

impl AdaptiveSpan {
    pub fn new(heads: usize, initial_span: f64, ramp: f64, max_span: f64) -> Self {
        AdaptiveSpan {
            span: Tensor::full([heads], initial_span).with_grad(),
            ramp,
            max_span,
        }
    }
    // ANCHOR: adaptive_span_mask
    /// The soft mask `[heads, L, S]` for distances `i − j` (causal: negative distances get 0
    /// through the causal mask applied before).
    fn mask(&self, l: usize, s: usize, dtype: DType) -> Result<Tensor> {
        let dist: Vec<f64> = (0..l * s)
            .map(|x| (x / s) as f64 - (x % s) as f64)
            .collect();
        let dist = Tensor::from_vec(dist, [1, l, s])
            .to_dtype(dtype)
            .try_to_device(self.span.device())?;
        let z = self.span.try_reshape(&[self.span.numel(), 1, 1])?;
        // u = (R + z − x) / R, then clamp(u, 0, 1) = relu(u) − relu(u − 1).
        let u = z.try_sub(&dist)?.try_unary(Unary::Affine {
            scale: 1.0 / self.ramp,
            shift: 1.0,
        })?;
        let shifted = u.try_unary(Unary::Affine {
            scale: 1.0,
            shift: -1.0,
        })?;
        u.try_unary(Unary::Relu)?
            .try_sub(&shifted.try_unary(Unary::Relu)?)
    }
    // ANCHOR_END: adaptive_span_mask
    /// `coeff · mean(z)`, the L1 penalty on the spans.
    pub fn span_penalty(&self, coeff: f64) -> Result<Tensor> {
        Ok(self.span.try_mean_axes(&[0], false)?.mul_scalar(coeff))
    }
    /// Keeps each span in `[0, max_span]` after an optimizer step.
    pub fn clamp_spans(&mut self) {
        // A few numbers, one per head: clamped on the host and put back where they live.
        let v: Vec<f32> = self
            .span
            .to_vec::<f32>()
            .into_iter()
            .map(|z| z.clamp(0.0, self.max_span as f32))
            .collect();
        let device = self.span.device();
        self.span = Tensor::from_vec(v, self.span.shape().clone())
            .to_device(device)
            .detach()
            .with_grad();
    }
}

/// Which keys each query may see, besides causality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttentionKind {
    Full,
    /// Sliding window of `window` keys on each side (before, when causal).
    Local {
        window: usize,
    },
    /// Child et al.'s strided pattern.
    Strided {
        stride: usize,
    },
    /// Child et al.'s fixed pattern: blocks of `stride` tokens, each query sees its block and
    /// the last `summary` tokens of every block.
    Fixed {
        stride: usize,
        summary: usize,
    },
    /// Random-feature linear attention (Performer's FAVOR+): `features` positive random
    /// features per head, causal by chunks of `chunk` tokens (see
    /// [`try_random_feature_attention`](crate::nn::try_random_feature_attention)).
    RandomFeatures {
        features: usize,
        chunk: usize,
    },
    /// LARA (Zheng et al. 2022): `proposals` importance-sampling proposals from segment means,
    /// one random sample each in training, their means in evaluation (see
    /// [`try_lara_attention`](crate::nn::try_lara_attention)). Bidirectional only.
    Lara {
        proposals: usize,
    },
    /// MRA (Zeng et al. 2022): blocks of `block` tokens, `refined` exact blocks per query
    /// block, the rest from block means (see [`try_mra_attention`](crate::nn::try_mra_attention)).
    /// Bidirectional only.
    Mra {
        block: usize,
        refined: usize,
    },
    /// Learned per-head span (see [`AdaptiveSpan`]).
    AdaptiveSpan {
        initial_span: f64,
        ramp: f64,
        max_span: f64,
    },
}

/// Where a layer's ContextPool sits: the placements the ContextPool study compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolPlacement {
    /// Pool the attention input: queries, keys and values all read the pooled tokens (the
    /// paper's figure 2(a), and the default).
    Input,
    /// Pool the attention input for the keys and values only; the queries read the unpooled
    /// tokens, so each token still asks its own question.
    KeysValues,
    /// Pool the block's output tokens, after attention and the feed-forward: the residual
    /// stream itself is pooled and the next block reads pooled tokens (figure 2(c) read as a
    /// module between blocks).
    AfterBlock,
    /// After the key and value projections, per head: each head pools its own keys and
    /// values (together, with one weight and size per token, predicted from that head's keys
    /// and values), with weights and sizes of its own.
    PerHead,
}

/// What ContextPool reads when it sits before attention (`Input`, `KeysValues`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolFeatures {
    /// The layer-normalised tokens, which attention reads (the default): the predictors see
    /// features of a fixed scale.
    Normalized,
    /// The residual stream before the layer norm: the raw tokens are pooled (their predictors
    /// see raw features) and then normalised.
    Raw,
}

/// Options of a [`TransformerEncoderLayer`].
#[derive(Clone, Copy, Debug)]
pub struct EncoderOptions {
    pub d_model: usize,
    pub nhead: usize,
    pub dim_feedforward: usize,
    pub dropout: f64,
    /// Each token attends only to itself and earlier tokens (language models).
    pub causal: bool,
    pub attention: AttentionKind,
    /// ContextPool, with these options, where `pool_placement` says.
    pub context_pool: Option<ContextPoolOptions>,
    /// With ContextPool: where it sits (before attention by default).
    pub pool_placement: PoolPlacement,
    /// With ContextPool before attention: whether it pools the normalised or the raw tokens.
    pub pool_features: PoolFeatures,
    /// With ContextPool on image tokens: pool over this `(H, W)` grid instead of the
    /// sequence, passing a leading class token through when the flag is set (ViT).
    pub pool_grid: Option<(usize, usize, bool)>,
}

impl EncoderOptions {
    pub fn new(d_model: usize, nhead: usize) -> Self {
        EncoderOptions {
            d_model,
            nhead,
            dim_feedforward: 4 * d_model,
            dropout: 0.1,
            causal: false,
            attention: AttentionKind::Full,
            context_pool: None,
            pool_placement: PoolPlacement::Input,
            pool_features: PoolFeatures::Normalized,
            pool_grid: None,
        }
    }
}

/// Per-layer state for decoding token by token.
#[derive(Clone, Default)]
pub struct LayerCache {
    pub kv: KvCache,
    /// The last `radius` normalised inputs, which ContextPool's window still needs.
    pub pool_history: Option<Tensor>,
}

/// Pre-norm encoder block: `h = LN(x)`, `h' = ContextPool(h)` (optional),
/// `x = x + Attention(q = h' or h, k = v = h')`, `x = x + FFN(LN(x))`; or with ContextPool
/// elsewhere, as [`PoolPlacement`] says.
pub struct TransformerEncoderLayer {
    pub self_attn: MultiheadAttention,
    pub ffn: FeedForward,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    /// ContextPool before attention or after the block.
    pub context_pool: Option<ContextPool>,
    /// ContextPool per head ([`PoolPlacement::PerHead`]): one layer per head, over the head's
    /// keys and values side by side (`2 · head_dim` features).
    pub context_pool_heads: Vec<ContextPool>,
    pub adaptive_span: Option<AdaptiveSpan>,
    /// The random directions of `AttentionKind::RandomFeatures`.
    pub random_features: Option<RandomFeatures>,
    pub options: EncoderOptions,
    training: bool,
}

impl TransformerEncoderLayer {
    #[track_caller]
    pub fn new(options: EncoderOptions) -> Self {
        let d = options.d_model;
        if let Some(cp) = &options.context_pool {
            assert!(
                !options.causal || cp.causal,
                "TransformerEncoderLayer: a causal layer needs a causal ContextPool"
            );
        }
        let adaptive_span = match options.attention {
            AttentionKind::AdaptiveSpan {
                initial_span,
                ramp,
                max_span,
            } => Some(AdaptiveSpan::new(
                options.nhead,
                initial_span,
                ramp,
                max_span,
            )),
            _ => None,
        };
        let random_features = match options.attention {
            AttentionKind::RandomFeatures { features, .. } => {
                let seed = crate::random::with_rng(rand::Rng::gen::<u64>);
                Some(RandomFeatures::new(features, d / options.nhead, seed))
            }
            _ => None,
        };
        TransformerEncoderLayer {
            self_attn: MultiheadAttention::new(d, options.nhead, options.dropout),
            ffn: FeedForward::new(d, options.dim_feedforward, options.dropout),
            norm1: LayerNorm::new(&[d]),
            norm2: LayerNorm::new(&[d]),
            context_pool: match options.pool_placement {
                PoolPlacement::PerHead => None,
                _ => options.context_pool.map(|o| ContextPool::new(d, o)),
            },
            context_pool_heads: match (options.pool_placement, options.context_pool) {
                (PoolPlacement::PerHead, Some(o)) => (0..options.nhead)
                    .map(|_| ContextPool::new(2 * (d / options.nhead), o))
                    .collect(),
                _ => Vec::new(),
            },
            adaptive_span,
            random_features,
            options,
            training: true,
        }
    }

    /// One layer's ContextPool over a sequence, or over the grid of image tokens.
    fn pool_tokens(&self, cp: &ContextPool, x: &Tensor) -> Result<Tensor> {
        match self.options.pool_grid {
            None => cp.try_forward(x),
            Some((gh, gw, cls)) => cp.try_forward_grid(x, (gh, gw), cls),
        }
    }

    /// Attention with ContextPool per head: each head's keys and values, side by side, pooled
    /// by that head's layer, then split again. Returns the output and, when
    /// `opts.need_weights`, the weights per head.
    fn attend_pooled_heads(
        &self,
        q: &Tensor,
        kv: &Tensor,
        opts: &MhaOptions,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let mha = &self.self_attn;
        let (qh, kh, vh) = (mha.project(q, 0)?, mha.project(kv, 1)?, mha.project(kv, 2)?);
        let (bsz, heads, n, hd) = (kh.dims()[0], kh.dims()[1], kh.dims()[2], kh.dims()[3]);
        let (mut ks, mut vs) = (Vec::with_capacity(heads), Vec::with_capacity(heads));
        for (i, cp) in self.context_pool_heads.iter().enumerate() {
            let k = kh.try_narrow(1, i, 1)?.try_reshape(&[bsz, n, hd])?;
            let v = vh.try_narrow(1, i, 1)?.try_reshape(&[bsz, n, hd])?;
            let pooled = self.pool_tokens(cp, &Tensor::try_concat(&[&k, &v], -1)?)?;
            ks.push(pooled.try_narrow(2, 0, hd)?.try_reshape(&[bsz, 1, n, hd])?);
            vs.push(
                pooled
                    .try_narrow(2, hd, hd)?
                    .try_reshape(&[bsz, 1, n, hd])?,
            );
        }
        let ks: Vec<&Tensor> = ks.iter().collect();
        let vs: Vec<&Tensor> = vs.iter().collect();
        let (k, v) = (Tensor::try_concat(&ks, 1)?, Tensor::try_concat(&vs, 1)?);
        mha.attend_heads(&qh, &k, &v, opts)
    }

    fn attend(&self, q: &Tensor, kv: &Tensor, key_padding_mask: Option<&Tensor>) -> Result<Tensor> {
        // Local and strided attention are patterns the kernel skips by, not masks: they cost
        // the keys they keep.
        let pattern = match self.options.attention {
            AttentionKind::Full => AttentionPattern::Full,
            AttentionKind::Local { window } => AttentionPattern::Local { window },
            AttentionKind::Strided { stride } => AttentionPattern::Strided { stride },
            AttentionKind::Fixed { stride, summary } => AttentionPattern::Fixed { stride, summary },
            AttentionKind::AdaptiveSpan { .. } => {
                return self.attend_adaptive_span(q, kv, key_padding_mask)
            }
            AttentionKind::RandomFeatures { .. }
            | AttentionKind::Lara { .. }
            | AttentionKind::Mra { .. } => return self.attend_approximate(q, kv, key_padding_mask),
        };
        let opts = MhaOptions {
            key_padding_mask: key_padding_mask.cloned(),
            need_weights: false,
            attn_mask: None,
            average_attn_weights: true,
            is_causal: self.options.causal,
            pattern,
        };
        if !self.context_pool_heads.is_empty() {
            return Ok(self.attend_pooled_heads(q, kv, &opts)?.0);
        }
        Ok(self.self_attn.try_forward(q, kv, kv, &opts)?.0)
    }

    /// Adaptive span reweights the softmax output, so it is composed from tensor ops (it is
    /// a baseline, not a fused kernel).
    fn attend_adaptive_span(
        &self,
        q: &Tensor,
        kv: &Tensor,
        key_padding_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let span = self.adaptive_span.as_ref().expect("set with AttentionKind");
        let mha = &self.self_attn;
        let (qh, kh, vh) = (mha.project(q, 0)?, mha.project(kv, 1)?, mha.project(kv, 2)?);
        let (bsz, l, s) = (q.dims()[0], q.dim(-2), kv.dim(-2));
        let scale = 1.0 / (mha.head_dim() as f64).sqrt();
        let scores = qh
            .try_matmul(&kh.try_transpose(-2, -1)?)?
            .try_unary(Unary::Affine { scale, shift: 0.0 })?;
        let mut keep: Vec<bool> = (0..l * s)
            .map(|x| !self.options.causal || x % s <= x / s)
            .collect();
        let mut keep_shape = vec![1, 1, l, s];
        if let Some(kpm) = key_padding_mask {
            let pad = kpm.to_vec::<bool>();
            keep = (0..bsz * l * s)
                .map(|x| keep[x % (l * s)] && !pad[(x / (l * s)) * s + x % s])
                .collect();
            keep_shape = vec![bsz, 1, l, s];
        }
        let keep = Tensor::from_vec(keep, keep_shape).try_to_device(scores.device())?;
        let p = scores.try_masked_softmax(&keep, -1)?;
        let weighted = p.try_mul(&span.mask(l, s, p.dtype())?)?;
        let z = weighted
            .try_sum_axes(&[-1], true)?
            .try_unary(Unary::Affine {
                scale: 1.0,
                shift: 1e-8,
            })?;
        let a = dropout(&weighted.try_div(&z)?, mha.dropout, self.training);
        mha.merge(&a.try_matmul(&vh)?)
    }

    /// The approximations of softmax attention (random features, LARA, MRA), composed from
    /// tensor ops on the projected heads. None forms an attention matrix to mask or drop out:
    /// they take no key padding mask, and only random features have a causal form (by chunks).
    fn attend_approximate(
        &self,
        q: &Tensor,
        kv: &Tensor,
        key_padding_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (name, causal_form) = match self.options.attention {
            AttentionKind::RandomFeatures { .. } => ("random-feature", true),
            AttentionKind::Lara { .. } => ("LARA", false),
            _ => ("MRA", false),
        };
        if key_padding_mask.is_some() || (self.options.causal && !causal_form) {
            let what = if causal_form {
                ""
            } else {
                " is bidirectional and"
            };
            return Err(Error::invalid(
                "TransformerEncoderLayer",
                format!(
                    "{name} attention{what} takes no key_padding_mask (pad with whole sequences)"
                ),
            ));
        }
        let mha = &self.self_attn;
        let (qh, kh, vh) = (mha.project(q, 0)?, mha.project(kv, 1)?, mha.project(kv, 2)?);
        let out = match self.options.attention {
            AttentionKind::RandomFeatures { chunk, .. } => {
                let rf = self
                    .random_features
                    .as_ref()
                    .expect("set with AttentionKind");
                let opts = LinearAttentionOptions {
                    causal: self.options.causal,
                    chunk,
                };
                try_random_feature_attention(&qh, &kh, &vh, &rf.projection, opts)?
            }
            AttentionKind::Lara { proposals } => {
                // Fresh samples every training forward, the proposals' means in evaluation.
                let mut dims = qh.dims().to_vec();
                let rank = dims.len();
                dims[rank - 2] = proposals;
                let noise = if self.training {
                    Tensor::randn(dims, 0.0, 1.0)
                } else {
                    Tensor::zeros(dims)
                };
                let noise = noise.try_to_dtype(qh.dtype())?.try_to_device(qh.device())?;
                try_lara_attention(&qh, &kh, &vh, &noise)?
            }
            AttentionKind::Mra { block, refined } => {
                try_mra_attention(&qh, &kh, &vh, MraOptions { block, refined })?
            }
            _ => unreachable!("attend_approximate serves the three kinds above"),
        };
        mha.merge(&out)
    }

    // ANCHOR: encoder_forward
    /// `x` `[B, n, d_model]`; `key_padding_mask` `[B, n]` (true = padding), as PyTorch.
    pub fn try_forward(&self, x: &Tensor, key_padding_mask: Option<&Tensor>) -> Result<Tensor> {
        let (h, pooled) = self.attention_inputs(x)?;
        let a = self.attend(self.queries(&h, &pooled), &pooled, key_padding_mask)?;
        let x = x.try_add(&dropout(&a, self.options.dropout, self.training))?;
        let f = self.ffn.try_forward(&self.norm2.try_forward(&x)?)?;
        let out = x.try_add(&dropout(&f, self.options.dropout, self.training))?;
        match (&self.context_pool, self.options.pool_placement) {
            (Some(cp), PoolPlacement::AfterBlock) => self.pool_tokens(cp, &out),
            _ => Ok(out),
        }
    }
    // ANCHOR_END: encoder_forward

    /// The attention weights of this layer for the input `x` `[B, n, d_model]`, one map per
    /// head, `[B, heads, n, n]` (query rows, key columns), as PyTorch's `need_weights` with
    /// `average_attn_weights=False`: what the queries of [`try_forward`](Self::try_forward)
    /// give the keys after ContextPool, wherever it sits. Full attention only (the patterns,
    /// adaptive span and the approximations form no such matrix); no dropout.
    pub fn try_attention_weights(
        &self,
        x: &Tensor,
        key_padding_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        if self.options.attention != AttentionKind::Full {
            return Err(Error::invalid(
                "TransformerEncoderLayer::try_attention_weights",
                format!(
                    "only full attention forms an attention matrix, not {:?}",
                    self.options.attention
                ),
            ));
        }
        let (h, pooled) = self.attention_inputs(x)?;
        let q = self.queries(&h, &pooled);
        let opts = MhaOptions {
            key_padding_mask: key_padding_mask.cloned(),
            need_weights: true,
            attn_mask: None,
            average_attn_weights: false,
            is_causal: self.options.causal,
            pattern: AttentionPattern::Full,
        };
        let (_, w) = if self.context_pool_heads.is_empty() {
            self.self_attn.try_forward(q, &pooled, &pooled, &opts)?
        } else {
            self.attend_pooled_heads(q, &pooled, &opts)?
        };
        Ok(w.expect("need_weights returns the weights"))
    }
    /// [`try_attention_weights`](Self::try_attention_weights), panicking at the caller's line.
    #[track_caller]
    pub fn attention_weights(&self, x: &Tensor, key_padding_mask: Option<&Tensor>) -> Tensor {
        self.try_attention_weights(x, key_padding_mask).or_panic()
    }

    /// What the queries read: the pooled tokens when ContextPool pools the attention input,
    /// else the normalised tokens `h`.
    fn queries<'a>(&self, h: &'a Tensor, pooled: &'a Tensor) -> &'a Tensor {
        match self.options.pool_placement {
            PoolPlacement::Input => pooled,
            _ => h,
        }
    }

    /// The normalised tokens `h` and what attention's keys and values read: `h` pooled when
    /// ContextPool sits before attention (from `h`, or from the raw `x` normalised after
    /// pooling), else `h` itself.
    fn attention_inputs(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let before = matches!(
            self.options.pool_placement,
            PoolPlacement::Input | PoolPlacement::KeysValues
        );
        let h = self.norm1.try_forward(x)?;
        let pooled = match (&self.context_pool, before, self.options.pool_features) {
            (Some(cp), true, PoolFeatures::Normalized) => self.pool_tokens(cp, &h)?,
            (Some(cp), true, PoolFeatures::Raw) => {
                self.norm1.try_forward(&self.pool_tokens(cp, x)?)?
            }
            _ => h.clone(),
        };
        Ok((h, pooled))
    }
    #[track_caller]
    pub fn forward(&self, x: &Tensor, key_padding_mask: Option<&Tensor>) -> Tensor {
        self.try_forward(x, key_padding_mask).or_panic()
    }

    /// Causal decoding: new tokens `x` `[B, t, d]` after those in `cache`. Gives the same
    /// outputs as `forward` over the whole sequence (full attention, evaluation mode).
    pub fn try_forward_cached(&self, x: &Tensor, cache: &mut LayerCache) -> Result<Tensor> {
        if !self.options.causal || self.options.attention != AttentionKind::Full {
            return Err(Error::invalid(
                "TransformerEncoderLayer",
                "cached decoding needs a causal layer with full attention",
            ));
        }
        let before = matches!(
            self.options.pool_placement,
            PoolPlacement::Input | PoolPlacement::KeysValues
        );
        if self.options.context_pool.is_some()
            && (!before || self.options.pool_features != PoolFeatures::Normalized)
        {
            return Err(Error::invalid(
                "TransformerEncoderLayer",
                "cached decoding supports ContextPool before attention on the normalised \
                 tokens (placements Input and KeysValues); run the others on the whole window",
            ));
        }
        let h = self.norm1.try_forward(x)?;
        let t = x.dim(-2);
        let pooled = match &self.context_pool {
            Some(cp) => {
                // Pool the new tokens with the history their causal windows reach back to.
                let window = match &cache.pool_history {
                    Some(hist) => Tensor::try_concat(&[hist, &h], 1)?,
                    None => h.clone(),
                };
                let n = window.dim(-2);
                let keep = cp.options.radius().min(n);
                cache.pool_history = Some(window.try_narrow(1, n - keep, keep)?);
                cp.try_forward(&window)?.try_narrow(1, n - t, t)?
            }
            None => h.clone(),
        };
        let q = match self.options.pool_placement {
            PoolPlacement::Input => &pooled,
            _ => &h,
        };
        let a = self
            .self_attn
            .try_forward_cached_qkv(q, &pooled, &mut cache.kv)?;
        let x = x.try_add(&a)?;
        let f = self.ffn.try_forward(&self.norm2.try_forward(&x)?)?;
        x.try_add(&f)
    }
    #[track_caller]
    pub fn forward_cached(&self, x: &Tensor, cache: &mut LayerCache) -> Tensor {
        self.try_forward_cached(x, cache).or_panic()
    }
}

impl Module for TransformerEncoderLayer {
    crate::module_tensors! {
        child "self_attn" self_attn;
        flatten ffn;
        child "norm1" norm1;
        child "norm2" norm2;
        optional "context_pool" context_pool;
        list "context_pool_heads" context_pool_heads;
        optional "adaptive_span" adaptive_span;
        optional "random_features" random_features;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

impl Module for AdaptiveSpan {
    crate::module_tensors! {
        param "span" span;
    }
}

/// Pre-norm decoder block: causal self-attention, cross-attention to `memory`, FFN, each
/// as `x = x + sublayer(LN(x))`.
pub struct TransformerDecoderLayer {
    pub self_attn: MultiheadAttention,
    pub multihead_attn: MultiheadAttention,
    pub ffn: FeedForward,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    pub norm3: LayerNorm,
    pub dropout: f64,
    training: bool,
}

impl TransformerDecoderLayer {
    pub fn new(d_model: usize, nhead: usize, dim_feedforward: usize, dropout: f64) -> Self {
        TransformerDecoderLayer {
            self_attn: MultiheadAttention::new(d_model, nhead, dropout),
            multihead_attn: MultiheadAttention::new(d_model, nhead, dropout),
            ffn: FeedForward::new(d_model, dim_feedforward, dropout),
            norm1: LayerNorm::new(&[d_model]),
            norm2: LayerNorm::new(&[d_model]),
            norm3: LayerNorm::new(&[d_model]),
            dropout,
            training: true,
        }
    }
    fn drop(&self, x: &Tensor) -> Tensor {
        dropout(x, self.dropout, self.training)
    }
    /// `x` `[B, T, d]` (targets so far), `memory` `[B, S, d]` (the encoder's output);
    /// `memory_key_padding_mask` `[B, S]` (true = padding).
    pub fn try_forward(
        &self,
        x: &Tensor,
        memory: &Tensor,
        memory_key_padding_mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.norm1.try_forward(x)?;
        let causal = MhaOptions {
            need_weights: false,
            is_causal: true,
            ..Default::default()
        };
        let x = x.try_add(&self.drop(&self.self_attn.try_forward(&h, &h, &h, &causal)?.0))?;
        let h = self.norm2.try_forward(&x)?;
        let cross = MhaOptions {
            need_weights: false,
            key_padding_mask: memory_key_padding_mask.cloned(),
            ..Default::default()
        };
        let c = self
            .multihead_attn
            .try_forward(&h, memory, memory, &cross)?
            .0;
        let x = x.try_add(&self.drop(&c))?;
        let f = self.ffn.try_forward(&self.norm3.try_forward(&x)?)?;
        x.try_add(&self.drop(&f))
    }
    /// Decoding with a cache of the self-attention's keys and values; the cross-attention
    /// reads `memory` whole each step.
    pub fn try_forward_cached(
        &self,
        x: &Tensor,
        memory: &Tensor,
        memory_key_padding_mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let h = self.norm1.try_forward(x)?;
        let x = x.try_add(&self.self_attn.try_forward_cached(&h, cache)?)?;
        let h = self.norm2.try_forward(&x)?;
        let cross = MhaOptions {
            need_weights: false,
            key_padding_mask: memory_key_padding_mask.cloned(),
            ..Default::default()
        };
        let x = x.try_add(
            &self
                .multihead_attn
                .try_forward(&h, memory, memory, &cross)?
                .0,
        )?;
        let f = self.ffn.try_forward(&self.norm3.try_forward(&x)?)?;
        x.try_add(&f)
    }
}

impl Module for TransformerDecoderLayer {
    crate::module_tensors! {
        child "self_attn" self_attn;
        child "multihead_attn" multihead_attn;
        flatten ffn;
        child "norm1" norm1;
        child "norm2" norm2;
        child "norm3" norm3;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
