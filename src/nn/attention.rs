//! Additive (Bahdanau) attention, a module on top of tensor ops. Scaled dot-product attention
//! is a fused op (`ops::attention`); the mask builders are in `ops::masks`.

use crate::error::{OrPanic, Result};
use crate::ops::attention::WeightsStash;
use crate::ops::Unary;
use crate::tensor::Tensor;
use std::rc::Rc;

/// Additive (Bahdanau) attention: `score(q, k) = w_vᵀ tanh(W_q q + W_k k)`, then a
/// (masked) softmax over keys and a weighted sum of values. `q` `[B, L, Dq]`, `k` `[B, S, Dk]`,
/// `v` `[B, S, Dv]`; `valid_lens` as in [`lens_mask`]. Parameters follow d2l's
/// `AdditiveAttention`: `W_q` (`[h, Dq]`), `W_k` (`[h, Dk]`), `w_v` (`[1, h]`), no biases.
pub struct AdditiveAttention {
    pub w_q: super::Linear,
    pub w_k: super::Linear,
    pub w_v: super::Linear,
    pub dropout: f64,
    training: bool,
    last: WeightsStash,
}

impl AdditiveAttention {
    pub fn new(query_size: usize, key_size: usize, num_hiddens: usize, dropout: f64) -> Self {
        AdditiveAttention {
            w_q: super::Linear::new(query_size, num_hiddens, false),
            w_k: super::Linear::new(key_size, num_hiddens, false),
            w_v: super::Linear::new(num_hiddens, 1, false),
            dropout,
            training: true,
            last: Rc::default(),
        }
    }
    // ANCHOR: additive_forward
    pub fn try_forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        valid_lens: Option<&Tensor>,
    ) -> Result<Tensor> {
        let qh = self.w_q.try_forward(q)?.try_unsqueeze(2)?; // [B, L, 1, h]
        let kh = self.w_k.try_forward(k)?.try_unsqueeze(1)?; // [B, 1, S, h]
        let features = qh.try_add(&kh)?.try_unary(Unary::Tanh)?;
        let scores = self.w_v.try_forward(&features)?.try_squeeze(-1)?; // [B, L, S]
        let p = match valid_lens {
            // Builds the mask where the scores live (a device needs it there too).
            Some(vl) => scores.try_masked_softmax_lens(vl)?,
            None => scores.try_softmax(-1)?,
        };
        *self.last.borrow_mut() = Some(p.detach());
        super::dropout(&p, self.dropout, self.training).try_matmul(v)
    }
    // ANCHOR_END: additive_forward
    #[track_caller]
    pub fn forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        valid_lens: Option<&Tensor>,
    ) -> Tensor {
        self.try_forward(q, k, v, valid_lens).or_panic()
    }
    /// The attention weights `[B, L, S]` of the last forward (before dropout).
    pub fn last_weights(&self) -> Option<Tensor> {
        self.last.borrow().clone()
    }
}

impl super::Module for AdditiveAttention {
    crate::module_tensors! {
        child "W_q" w_q;
        child "W_k" w_k;
        child "w_v" w_v;
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}
