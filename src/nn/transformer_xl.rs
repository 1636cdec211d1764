//! Transformer-XL's layer (Dai et al. 2019): attention with relative positions over a memory
//! of the previous segment's hidden states plus the current segment, then the feed-forward
//! network. Names follow the reference PyTorch code (`kimiyoung/transformer-xl`,
//! `RelPartialLearnableDecoderLayer`): `dec_attn.qkv_net`, `dec_attn.r_net`,
//! `dec_attn.o_net`, `dec_attn.r_w_bias` (u), `dec_attn.r_r_bias` (v), `pos_ff`. The layer is
//! pre-norm like the rest of cubegrad (the reference code's `pre_lnorm` option), and keeps its
//! own u and v (its `untie_r` option).
//!
//! The memory a layer reads is what entered that layer in the previous segment, cut to the
//! last `mem_len` positions and detached ([`update_memory`]): gradients stop at the segment
//! boundary, while the context reaches back `layers × mem_len` tokens.

use super::Module;
use super::{dropout, relative_positions, try_relative_attention, FeedForward, LayerNorm, Linear};
use crate::error::{Error, OrPanic, Result};
use crate::tensor::Tensor;

/// Multi-head attention with relative positions (`RelPartialLearnableMultiHeadAttn`).
pub struct RelativeMultiheadAttention {
    /// `[3·heads·d_head, d_model]`, no bias: queries, keys and values at once.
    pub qkv_net: Linear,
    /// `[heads·d_head, d_model]`, no bias: the distances' sinusoids to per-head encodings.
    pub r_net: Linear,
    /// `[d_model, heads·d_head]`, no bias.
    pub o_net: Linear,
    /// `u` `[heads, d_head]`: the content bias every query adds.
    pub r_w_bias: Tensor,
    /// `v` `[heads, d_head]`: the position bias every query adds.
    pub r_r_bias: Tensor,
    pub n_head: usize,
    pub d_head: usize,
}

impl RelativeMultiheadAttention {
    pub fn new(d_model: usize, n_head: usize, d_head: usize) -> Self {
        RelativeMultiheadAttention {
            qkv_net: Linear::new(d_model, 3 * n_head * d_head, false),
            r_net: Linear::new(d_model, n_head * d_head, false),
            o_net: Linear::new(n_head * d_head, d_model, false),
            // The reference code draws both from N(0, 0.02²).
            r_w_bias: Tensor::randn([n_head, d_head], 0.0, 0.02).with_grad(),
            r_r_bias: Tensor::randn([n_head, d_head], 0.0, 0.02).with_grad(),
            n_head,
            d_head,
        }
    }

    // ANCHOR: xl_attention
    /// `cat` `[B, K, d_model]`, the normalised memory and segment; the last `l` positions are
    /// the queries. Returns `[B, l, d_model]`.
    pub fn try_forward(&self, cat: &Tensor, l: usize) -> Result<Tensor> {
        let (b, k, d) = (cat.dims()[0], cat.dim(-2), cat.dim(-1));
        let (h, e) = (self.n_head, self.d_head);
        // [B, K, 3, h, e] → three [B, h, K, e].
        let heads = self
            .qkv_net
            .try_forward(cat)?
            .try_reshape(&[b, k, 3, h, e])?
            .try_permute(&[2, 0, 3, 1, 4])?;
        let part = |i: usize| heads.try_narrow(0, i, 1)?.try_squeeze(0);
        let (q, key, value) = (part(0)?.try_narrow(-2, k - l, l)?, part(1)?, part(2)?);
        let pos = relative_positions(k, d)
            .try_to_dtype(cat.dtype())?
            .try_to_device(cat.device())?;
        let r = self
            .r_net
            .try_forward(&pos)?
            .try_reshape(&[k, h, e])?
            .try_permute(&[1, 0, 2])?;
        let out = try_relative_attention(&q, &key, &value, &r, &self.r_w_bias, &self.r_r_bias)?;
        let merged = out
            .try_permute(&[0, 2, 1, 3])?
            .try_reshape(&[b, l, h * e])?;
        self.o_net.try_forward(&merged)
    }
    // ANCHOR_END: xl_attention
}

impl Module for RelativeMultiheadAttention {
    crate::module_tensors! {
        child "qkv_net" qkv_net;
        child "r_net" r_net;
        child "o_net" o_net;
        param "r_w_bias" r_w_bias;
        param "r_r_bias" r_r_bias;
    }
}

/// One pre-norm Transformer-XL layer.
pub struct TransformerXlLayer {
    pub dec_attn: RelativeMultiheadAttention,
    pub pos_ff: FeedForward,
    pub norm1: LayerNorm,
    pub norm2: LayerNorm,
    pub dropout: f64,
    training: bool,
}

impl TransformerXlLayer {
    pub fn new(d_model: usize, nhead: usize, dim_feedforward: usize, dropout: f64) -> Self {
        TransformerXlLayer {
            dec_attn: RelativeMultiheadAttention::new(d_model, nhead, d_model / nhead),
            pos_ff: FeedForward::new(d_model, dim_feedforward, dropout),
            norm1: LayerNorm::new(&[d_model]),
            norm2: LayerNorm::new(&[d_model]),
            dropout,
            training: true,
        }
    }

    // ANCHOR: xl_forward
    /// `x` `[B, L, d]` after `memory` `[B, M, d]` (this layer's inputs of the previous
    /// segment; read without gradient). Causal.
    pub fn try_forward(&self, x: &Tensor, memory: Option<&Tensor>) -> Result<Tensor> {
        let cat = match memory {
            Some(m) if m.dim(-2) > 0 => {
                if m.rank() != 3 || m.dims()[0] != x.dims()[0] || m.dim(-1) != x.dim(-1) {
                    return Err(Error::mismatch(
                        "TransformerXlLayer",
                        m.shape(),
                        x.shape(),
                        "the memory must be [B, M, d] for a segment [B, L, d]",
                    ));
                }
                Tensor::try_concat(&[&m.detach(), x], 1)?
            }
            _ => x.clone(),
        };
        let a = self
            .dec_attn
            .try_forward(&self.norm1.try_forward(&cat)?, x.dim(-2))?;
        let x = x.try_add(&dropout(&a, self.dropout, self.training))?;
        let f = self.pos_ff.try_forward(&self.norm2.try_forward(&x)?)?;
        x.try_add(&dropout(&f, self.dropout, self.training))
    }
    // ANCHOR_END: xl_forward
    #[track_caller]
    pub fn forward(&self, x: &Tensor, memory: Option<&Tensor>) -> Tensor {
        self.try_forward(x, memory).or_panic()
    }
}

impl Module for TransformerXlLayer {
    crate::module_tensors! {
        child "dec_attn" dec_attn;
        child "pos_ff" pos_ff;
        child "norm1" norm1;
        child "norm2" norm2;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// The next memory of a layer: the last `mem_len` positions of its previous memory followed
/// by its input `x` of this segment, detached.
pub fn update_memory(memory: Option<&Tensor>, x: &Tensor, mem_len: usize) -> Result<Tensor> {
    let cat = match memory {
        Some(m) if m.dim(-2) > 0 => Tensor::try_concat(&[m, x], 1)?,
        _ => x.clone(),
    };
    let n = cat.dim(-2);
    let keep = mem_len.min(n);
    Ok(cat.try_narrow(1, n - keep, keep)?.detach())
}
