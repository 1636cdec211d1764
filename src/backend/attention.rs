//! Scaled dot-product attention as one fused primitive, forward and backward, the same
//! algorithm on every backend:
//!
//! ```text
//! S = scale · Q Kᵀ + additive mask          P = softmax(S) where kept (0 elsewhere)
//! O = (P ⊙ D) V                              D: the dropout mask, already divided by 1 − p
//! ```
//!
//! The forward returns `P` for the backward (the one n×n matrix per head it needs):
//! `dV = (P ⊙ D)ᵀ G`, `dP = (G Vᵀ) ⊙ D`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`, `dQ = scale · dS K`,
//! `dK = scale · dSᵀ Q`; an additive mask's gradient is `dS`.

use crate::error::Result;
use crate::tensor::Tensor;

/// Sizes: `n` heads (every leading dim flattened), `l` queries, `s` keys, `e` query/key
/// features, `ev` value features.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionDims {
    pub n: usize,
    pub l: usize,
    pub s: usize,
    pub e: usize,
    pub ev: usize,
}

impl AttentionDims {
    /// The sizes of `q` `[..., L, E]`, `k` `[..., S, E]`, `v` `[..., S, Ev]`, which share
    /// their leading dims.
    pub fn of(q: &Tensor, k: &Tensor, v: &Tensor) -> Self {
        let r = q.rank();
        AttentionDims {
            n: q.dims()[..r - 2].iter().product(),
            l: q.dims()[r - 2],
            s: k.dims()[r - 2],
            e: q.dims()[r - 1],
            ev: v.dims()[r - 1],
        }
    }
}

/// Everything that shapes the weights besides `Q`, `K` and `V`. `keep` and `add` broadcast
/// to the scores `[..., L, S]` (a `[B, 1, 1, S]` padding mask, one `[L, S]` for every head)
/// and are read through their strides, never expanded.
#[derive(Clone, Copy)]
pub struct AttentionMasks<'a> {
    /// Query `i` sees keys `j ≤ i` only.
    pub causal: bool,
    /// Bool: where attention may look.
    pub keep: Option<&'a Tensor>,
    /// Float: added to the scores.
    pub add: Option<&'a Tensor>,
}

pub trait AttentionKernels {
    /// `(O, P)` for contiguous `q`, `k`, `v` with the same leading dims, and the dropout
    /// mask `drop` (`P`'s shape) when dropout is on.
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        masks: AttentionMasks<'_>,
        scale: f64,
        drop: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)>;

    /// `(dQ, dK, dV, dS)` from the output gradient `g`; `dS` (`P`'s shape) only when
    /// `want_ds` (an additive mask needs it).
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: &Tensor,
        drop: Option<&Tensor>,
        g: &Tensor,
        scale: f64,
        causal: bool,
        want_ds: bool,
    ) -> Result<(Tensor, Tensor, Tensor, Option<Tensor>)>;
}
