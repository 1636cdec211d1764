//! `nn.MultiheadAttention` with PyTorch's semantics, parameter names and layouts
//! (`batch_first = true`), on top of the fused [`scaled dot-product attention`](super::attention)
//! op, plus a KV cache for autoregressive decoding.
//!
//! | cubegrad / PyTorch name | shape | when |
//! | --- | --- | --- |
//! | `in_proj_weight` | `[3E, E]` | `kdim == vdim == E` |
//! | `q_proj_weight`, `k_proj_weight`, `v_proj_weight` | `[E, E]`, `[E, kdim]`, `[E, vdim]` | otherwise |
//! | `in_proj_bias` | `[3E]` | `bias` |
//! | `out_proj.weight`, `out_proj.bias` | `[E, E]`, `[E]` | always (bias if `bias`) |
//!
//! Masks follow `nn.MultiheadAttention`, not `F.scaled_dot_product_attention`: in a bool
//! `key_padding_mask` (`[B, S]`) or `attn_mask` (`[L, S]` or `[B·heads, L, S]`), **true marks
//! a position to ignore**; float masks are added to the scores.

use super::{Linear, Module};
use crate::error::{Error, OrPanic, Result};
use crate::ops::attention::{
    and_masks, sdpa_with, split_mask, AttentionPattern, SdpaOptions, WeightsStash,
};
use crate::ops::linear::try_linear;
use crate::tensor::Tensor;
use std::rc::Rc;

pub struct MultiheadAttention {
    pub embed_dim: usize,
    pub num_heads: usize,
    pub dropout: f64,
    pub kdim: usize,
    pub vdim: usize,
    pub in_proj_weight: Option<Tensor>,
    pub q_proj_weight: Option<Tensor>,
    pub k_proj_weight: Option<Tensor>,
    pub v_proj_weight: Option<Tensor>,
    pub in_proj_bias: Option<Tensor>,
    pub out_proj: Linear,
    training: bool,
    last: WeightsStash,
}

/// The optional arguments of `forward`, with PyTorch's defaults.
#[derive(Clone)]
pub struct MhaOptions {
    pub key_padding_mask: Option<Tensor>,
    pub need_weights: bool,
    pub attn_mask: Option<Tensor>,
    pub average_attn_weights: bool,
    pub is_causal: bool,
    /// A sparse pattern of keys that the kernel skips by (see `SdpaOptions::pattern`); not
    /// a PyTorch option.
    pub pattern: AttentionPattern,
}

impl Default for MhaOptions {
    fn default() -> Self {
        MhaOptions {
            key_padding_mask: None,
            need_weights: true,
            attn_mask: None,
            average_attn_weights: true,
            is_causal: false,
            pattern: AttentionPattern::Full,
        }
    }
}

/// Keys and values of the tokens decoded so far, per head: `[B, heads, T, head_dim]`.
#[derive(Clone, Default)]
pub struct KvCache {
    pub k: Option<Tensor>,
    pub v: Option<Tensor>,
}

impl KvCache {
    pub fn len(&self) -> usize {
        self.k.as_ref().map_or(0, |k| k.dim(-2))
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MultiheadAttention {
    /// `nn.MultiheadAttention(embed_dim, num_heads, dropout, bias=True, batch_first=True)`.
    #[track_caller]
    pub fn new(embed_dim: usize, num_heads: usize, dropout: f64) -> Self {
        Self::with_dims(embed_dim, num_heads, dropout, true, embed_dim, embed_dim)
    }

    /// With separate key and value sizes (`kdim`, `vdim`) and an optional bias.
    #[track_caller]
    pub fn with_dims(
        embed_dim: usize,
        num_heads: usize,
        dropout: f64,
        bias: bool,
        kdim: usize,
        vdim: usize,
    ) -> Self {
        assert!(
            num_heads > 0 && embed_dim % num_heads == 0,
            "MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}"
        );
        let e = embed_dim;
        let same = kdim == e && vdim == e;
        // PyTorch: xavier_uniform_ on the input projections, zero biases.
        let xavier =
            |rows: usize, cols: usize| Tensor::xavier_uniform([rows, cols], 1.0).with_grad();
        let mut out_proj = Linear::new(e, e, bias);
        if let Some(b) = &mut out_proj.bias {
            *b = Tensor::zeros([e]).with_grad();
        }
        MultiheadAttention {
            embed_dim,
            num_heads,
            dropout,
            kdim,
            vdim,
            in_proj_weight: same.then(|| xavier(3 * e, e)),
            q_proj_weight: (!same).then(|| xavier(e, e)),
            k_proj_weight: (!same).then(|| xavier(e, kdim)),
            v_proj_weight: (!same).then(|| xavier(e, vdim)),
            in_proj_bias: bias.then(|| Tensor::zeros([3 * e]).with_grad()),
            out_proj,
            training: true,
            last: Rc::default(),
        }
    }

    pub fn head_dim(&self) -> usize {
        self.embed_dim / self.num_heads
    }

    // ANCHOR: mha_heads
    /// Projection `i` (0 = query, 1 = key, 2 = value) of `x` `[B, n, in]` → `[B, heads, n, hd]`.
    pub(crate) fn project(&self, x: &Tensor, i: usize) -> Result<Tensor> {
        let e = self.embed_dim;
        let w = match &self.in_proj_weight {
            Some(w) => w.try_narrow(0, i * e, e)?,
            None => [
                &self.q_proj_weight,
                &self.k_proj_weight,
                &self.v_proj_weight,
            ][i]
                .clone()
                .expect("separate projection weights exist when in_proj_weight does not"),
        };
        let want = [e, self.kdim, self.vdim][i];
        if x.rank() != 3 || x.dim(-1) != want {
            return Err(Error::bad_shape(
                "MultiheadAttention",
                x.shape(),
                format!(
                    "the {} must be [batch, len, {want}] (batch_first)",
                    ["query", "key", "value"][i]
                ),
            ));
        }
        let b = self
            .in_proj_bias
            .as_ref()
            .map(|b| b.try_narrow(0, i * e, e))
            .transpose()?;
        let y = try_linear(x, &w, b.as_ref())?;
        let (bsz, n) = (x.dims()[0], x.dims()[1]);
        y.try_reshape(&[bsz, n, self.num_heads, self.head_dim()])?
            .try_permute(&[0, 2, 1, 3])
    }

    /// Heads `[B, heads, L, hd]` → `[B, L, E]`, then the output projection.
    pub(crate) fn merge(&self, o: &Tensor) -> Result<Tensor> {
        let (bsz, l) = (o.dims()[0], o.dims()[2]);
        let o = o
            .try_permute(&[0, 2, 1, 3])?
            .try_reshape(&[bsz, l, self.embed_dim])?;
        self.out_proj.try_forward(&o)
    }
    // ANCHOR_END: mha_heads

    pub(crate) fn sdpa_options(&self) -> SdpaOptions {
        SdpaOptions {
            dropout_p: if self.training { self.dropout } else { 0.0 },
            ..Default::default()
        }
    }

    /// `query` `[B, L, E]`, `key` `[B, S, kdim]`, `value` `[B, S, vdim]` → the output
    /// `[B, L, E]` and, with `need_weights`, the attention weights (after dropout, as
    /// PyTorch): `[B, L, S]` averaged over heads, or `[B, heads, L, S]`.
    pub fn try_forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        opts: &MhaOptions,
    ) -> Result<(Tensor, Option<Tensor>)> {
        const OP: &str = "MultiheadAttention";
        let (q, k, v) = (
            self.project(query, 0)?,
            self.project(key, 1)?,
            self.project(value, 2)?,
        );
        if k.dims()[0] != q.dims()[0] || v.dims()[0] != q.dims()[0] || v.dims()[2] != k.dims()[2] {
            return Err(Error::mismatch(
                OP,
                key.shape(),
                value.shape(),
                "query, key and value need one batch size, key and value one length",
            ));
        }
        self.attend_heads(&q, &k, &v, opts)
    }

    /// Attention over projected heads `q` `[B, h, L, hd]`, `k`, `v` `[B, h, S, hd]` with the
    /// masks of `opts`, then the output projection: the second half of
    /// [`try_forward`](Self::try_forward), for layers that change the heads in between
    /// (ContextPool per head).
    pub(crate) fn attend_heads(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        opts: &MhaOptions,
    ) -> Result<(Tensor, Option<Tensor>)> {
        const OP: &str = "MultiheadAttention";
        let (bsz, l, s, h) = (q.dims()[0], q.dims()[2], k.dims()[2], self.num_heads);
        let (mut keep, mut add) = (None, None);
        if let Some(kpm) = &opts.key_padding_mask {
            if kpm.dims() != [bsz, s] {
                return Err(Error::mismatch(
                    OP,
                    kpm.shape(),
                    k.shape(),
                    format!("key_padding_mask must be [batch, key len] = [{bsz}, {s}]"),
                ));
            }
            let (kk, ka) = split_mask(Some(kpm.try_reshape(&[bsz, 1, 1, s])?), true)?;
            keep = kk;
            add = ka;
        }
        if let Some(am) = &opts.attn_mask {
            let am = match am.dims() {
                [a, b] if *a == l && *b == s => am.clone(),
                [n, a, b] if *n == bsz * h && *a == l && *b == s => {
                    am.try_reshape(&[bsz, h, l, s])?
                }
                _ => {
                    return Err(Error::bad_shape(
                        OP,
                        am.shape(),
                        format!("attn_mask must be [{l}, {s}] or [{}, {l}, {s}]", bsz * h),
                    ))
                }
            };
            let (kk, ka) = split_mask(Some(am), true)?;
            if let Some(kk) = kk {
                keep = Some(and_masks(keep, kk)?);
            }
            if let Some(ka) = ka {
                add = Some(match add {
                    Some(a) => a.try_add(&ka)?,
                    None => ka,
                });
            }
        }
        let stash = opts.need_weights.then(|| self.last.clone());
        let sdpa = SdpaOptions {
            is_causal: opts.is_causal,
            pattern: opts.pattern,
            ..self.sdpa_options()
        };
        let o = sdpa_with(q, k, v, keep, add, &sdpa, stash)?;
        let weights = if opts.need_weights {
            let w = self.last.borrow_mut().take().map(|w| w.detach());
            match w {
                Some(w) if opts.average_attn_weights => Some(w.try_mean_axes(&[1], false)?),
                other => other,
            }
        } else {
            None
        };
        Ok((self.merge(&o)?, weights))
    }
    #[track_caller]
    pub fn forward(
        &self,
        query: &Tensor,
        key: &Tensor,
        value: &Tensor,
        opts: &MhaOptions,
    ) -> (Tensor, Option<Tensor>) {
        self.try_forward(query, key, value, opts).or_panic()
    }

    /// Causal self-attention over new tokens `x` `[B, t, E]` that follow the `cache.len()`
    /// tokens already in `cache`; appends their keys and values. Decoding token by token
    /// with it gives the same outputs as `forward` with `is_causal` over the whole sequence,
    /// at O(T) instead of O(T²) per new token.
    pub fn try_forward_cached(&self, x: &Tensor, cache: &mut KvCache) -> Result<Tensor> {
        self.try_forward_cached_qkv(x, x, cache)
    }

    /// As [`try_forward_cached`](Self::try_forward_cached), with queries from `query` and
    /// keys and values from `kv` (both `[B, t, E]`, the same new positions): for blocks
    /// that attend from unpooled queries to pooled keys.
    pub fn try_forward_cached_qkv(
        &self,
        query: &Tensor,
        kv: &Tensor,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        if self.kdim != self.embed_dim || self.vdim != self.embed_dim {
            return Err(Error::invalid(
                "MultiheadAttention",
                "the KV cache is for self-attention (kdim = vdim = embed_dim)",
            ));
        }
        if query.dims() != kv.dims() {
            return Err(Error::mismatch(
                "MultiheadAttention",
                query.shape(),
                kv.shape(),
                "cached queries and keys must cover the same new positions",
            ));
        }
        let x = query;
        let (q, k_new, v_new) = (
            self.project(query, 0)?,
            self.project(kv, 1)?,
            self.project(kv, 2)?,
        );
        // ANCHOR: kv_cache
        let past = cache.len();
        let (k, v) = match (&cache.k, &cache.v) {
            (Some(pk), Some(pv)) => (
                Tensor::try_concat(&[pk, &k_new], 2)?,
                Tensor::try_concat(&[pv, &v_new], 2)?,
            ),
            _ => (k_new, v_new),
        };
        let (t, s) = (x.dims()[1], past + x.dims()[1]);
        // New query i sits at position past + i and sees keys j ≤ past + i.
        let keep: Vec<bool> = (0..t * s).map(|p| p % s <= past + p / s).collect();
        let keep = Tensor::from_vec(keep, [t, s]);
        let o = sdpa_with(&q, &k, &v, Some(keep), None, &self.sdpa_options(), None)?;
        cache.k = Some(k);
        cache.v = Some(v);
        // ANCHOR_END: kv_cache
        self.merge(&o)
    }
    #[track_caller]
    pub fn forward_cached(&self, x: &Tensor, cache: &mut KvCache) -> Tensor {
        self.try_forward_cached(x, cache).or_panic()
    }
}

impl Module for MultiheadAttention {
    crate::module_tensors! {
        param "in_proj_weight" in_proj_weight;
        param "q_proj_weight" q_proj_weight;
        param "k_proj_weight" k_proj_weight;
        param "v_proj_weight" v_proj_weight;
        param "in_proj_bias" in_proj_bias;
        child "out_proj" out_proj;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
