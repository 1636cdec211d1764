//! The gated attention unit of FLASH (Hua et al. 2022, "Transformer Quality in Linear Time"):
//! one layer in place of attention plus feed-forward. A pre-norm residual block,
//!
//! ```text
//! u, v = silu(to_hidden(LN(x)))          [.., n, e] each, e = expansion · d
//! z    = silu(to_qk(LN(x)))              [.., n, s], shared by the four below
//! quad_q, lin_q, quad_k, lin_k = z ⊙ γ_i + β_i
//! x'   = x + to_out(u ⊙ MixedChunkAttention(quad_q, quad_k, lin_q, lin_k, v))
//! ```
//!
//! with a single head, the squared-ReLU kernel inside chunks and linear attention across
//! them ([`try_mixed_chunk_attention`]), and a learned relative position bias inside a chunk
//! (the paper's Toeplitz form, one weight per distance). One GAU has about `3·d·e + d·s`
//! weights (7·d² at e = 2d, s = d), a transformer layer 12·d²: the paper stacks two GAUs per
//! transformer layer. Names follow lucidrains' FLASH-pytorch (`to_hidden`, `to_qk`,
//! `qk_offset_scale.gamma`/`.beta`, `to_out`). Positions come from the model's input here (the
//! paper adds rotary embeddings to q and k; not built).

use super::{dropout, try_mixed_chunk_attention, LayerNorm, Linear, MixedChunkOptions, Module};
use crate::error::{Error, OrPanic, Result};
use crate::ops::Unary;
use crate::tensor::Tensor;

/// Options of a [`GatedAttentionUnit`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GauOptions {
    pub d_model: usize,
    /// `e = expansion_factor · d_model` (the paper: 2).
    pub expansion_factor: usize,
    /// `s`, the shared width of queries and keys (the paper: 128).
    pub query_key_dim: usize,
    /// Tokens per chunk (the paper: 256).
    pub chunk: usize,
    pub causal: bool,
    pub dropout: f64,
}

impl GauOptions {
    pub fn new(d_model: usize) -> Self {
        GauOptions {
            d_model,
            expansion_factor: 2,
            query_key_dim: 128,
            chunk: 256,
            causal: false,
            dropout: 0.0,
        }
    }
}

/// The four per-dimension scales and offsets that turn `z` into the quadratic and linear
/// queries and keys: `gamma` ~ N(0, 0.02²), `beta` = 0, `[4, s]`.
pub struct OffsetScale {
    pub gamma: Tensor,
    pub beta: Tensor,
}

impl Module for OffsetScale {
    crate::module_tensors! {
        param "gamma" gamma;
        param "beta" beta;
    }
}

pub struct GatedAttentionUnit {
    pub norm: LayerNorm,
    pub to_hidden: Linear,
    pub to_qk: Linear,
    pub qk_offset_scale: OffsetScale,
    /// `[2·chunk − 1]`: the bias for distance `j − i` inside a chunk, at `j − i + chunk − 1`.
    pub rel_pos_bias: Tensor,
    pub to_out: Linear,
    pub options: GauOptions,
    training: bool,
}

fn silu(x: &Tensor) -> Result<Tensor> {
    x.try_mul(&x.try_unary(Unary::Sigmoid)?)
}

impl GatedAttentionUnit {
    #[track_caller]
    pub fn new(options: GauOptions) -> Self {
        let (d, s) = (options.d_model, options.query_key_dim);
        let e = options.expansion_factor * d;
        assert!(
            options.chunk >= 1 && e >= 1 && s >= 1,
            "GatedAttentionUnit: chunk, expansion_factor and query_key_dim must be at least 1"
        );
        GatedAttentionUnit {
            norm: LayerNorm::new(&[d]),
            to_hidden: Linear::new(d, 2 * e, true),
            to_qk: Linear::new(d, s, true),
            qk_offset_scale: OffsetScale {
                gamma: Tensor::randn([4, s], 0.0, 0.02).with_grad(),
                beta: Tensor::zeros([4, s]).with_grad(),
            },
            rel_pos_bias: Tensor::zeros([2 * options.chunk - 1]).with_grad(),
            to_out: Linear::new(e, d, true),
            options,
            training: true,
        }
    }

    /// The bias matrix `[C, C]`, `b[i][j] = w[j − i + C − 1]`, gathered from the weights (so
    /// each weight's gradient sums over its diagonal).
    fn bias(&self) -> Result<Tensor> {
        let c = self.options.chunk;
        let idx: Vec<i64> = (0..c * c).map(|x| (x % c + c - 1 - x / c) as i64).collect();
        let idx = Tensor::from_vec(idx, [c * c]).try_to_device(self.rel_pos_bias.device())?;
        self.rel_pos_bias
            .try_index_select(0, &idx)?
            .try_reshape(&[c, c])
    }

    // ANCHOR: gau_forward
    /// `x` `[B, n, d_model]` → `[B, n, d_model]`.
    pub fn try_forward(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.options.d_model;
        if x.rank() != 3 || x.dim(-1) != d {
            return Err(Error::bad_shape(
                "GatedAttentionUnit",
                x.shape(),
                format!("needs [B, n, d_model = {d}]"),
            ));
        }
        let e = self.options.expansion_factor * d;
        let h = self.norm.try_forward(x)?;
        let hidden = silu(&self.to_hidden.try_forward(&h)?)?;
        let (u, v) = (hidden.try_narrow(-1, 0, e)?, hidden.try_narrow(-1, e, e)?);
        let z = silu(&self.to_qk.try_forward(&h)?)?;
        // [B, n, 4, s]: the four scaled and shifted copies of z.
        let base = z
            .try_unsqueeze(-2)?
            .try_mul(&self.qk_offset_scale.gamma)?
            .try_add(&self.qk_offset_scale.beta)?;
        let part = |i: usize| base.try_narrow(-2, i, 1)?.try_squeeze(-2);
        let (quad_q, lin_q, quad_k, lin_k) = (part(0)?, part(1)?, part(2)?, part(3)?);
        let opts = MixedChunkOptions {
            causal: self.options.causal,
            chunk: self.options.chunk,
        };
        let a = try_mixed_chunk_attention(
            &quad_q,
            &quad_k,
            &lin_q,
            &lin_k,
            &v,
            Some(&self.bias()?),
            opts,
        )?;
        let out = self.to_out.try_forward(&u.try_mul(&a)?)?;
        x.try_add(&dropout(&out, self.options.dropout, self.training))
    }
    // ANCHOR_END: gau_forward
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        self.try_forward(x).or_panic()
    }
}

impl Module for GatedAttentionUnit {
    crate::module_tensors! {
        child "norm" norm;
        child "to_hidden" to_hidden;
        child "to_qk" to_qk;
        child "qk_offset_scale" qk_offset_scale;
        param "rel_pos_bias" rel_pos_bias;
        child "to_out" to_out;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
