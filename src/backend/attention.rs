//! Scaled dot-product attention as one fused primitive, forward and backward:
//!
//! ```text
//! S = scale · Q Kᵀ + additive mask          P = softmax(S) where kept (0 elsewhere)
//! O = (P ⊙ D) V                              D: the dropout mask, already divided by 1 − p
//! ```
//!
//! The backward needs `P` again: `dV = (P ⊙ D)ᵀ G`, `dP = (G Vᵀ) ⊙ D`,
//! `dS = P ⊙ (dP − rowsum(G ⊙ O))`, `dQ = scale · dS K`, `dK = scale · dSᵀ Q`; an additive
//! mask's gradient is `dS`. (`rowsum(G ⊙ O)` equals `rowsum(dP ⊙ P)`, and needs no `P`.)
//!
//! How a backend gets `P` back is its own choice, and what it saves says which: the CPU runs
//! flash attention (tiles of keys with an online softmax, saving only each row's log-sum-exp,
//! so memory is O(n·d) per head and `P` is recomputed tile by tile in the backward); a CubeCL
//! device saves `P` itself. The op keeps whatever [`AttentionForward::saved`] holds and hands
//! it back to the same backend.
//!
//! Dropout is given as a probability and a seed, not as a mask: element `(h, i, j)` of the
//! weights `[n, l, s]` is kept where the Philox stream of the seed keeps element
//! `(h·l + i)·s + j` (`backend/random.rs`), so a backend can draw the mask tile by tile, or
//! whole, and every backend drops the same weights.

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

/// Which keys each query may see at all, as a structure a kernel can skip by, so that a
/// sparse pattern costs what it keeps: banded local attention O(n·w·d), the strided one
/// O(n·(stride + n/stride)·d), where a mask would cost O(n²·d). Indices are top-left aligned
/// like the causal mask: query `i` and key `j` are at distance `i − j`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttentionPattern {
    /// Every key.
    #[default]
    Full,
    /// A sliding window: keys with `|i − j| ≤ window`.
    Local { window: usize },
    /// Child et al.'s strided pattern: the previous `stride − 1` keys and every `stride`-th
    /// key beyond, `|i − j| < stride` or `(i − j) mod stride = 0`.
    Strided { stride: usize },
    /// Child et al.'s fixed pattern: the keys are cut into blocks of `stride`; a query sees its
    /// own block and the last `summary` keys of every block, which carry what a block holds to
    /// the others: `⌊i/ℓ⌋ = ⌊j/ℓ⌋` or `j mod ℓ ≥ ℓ − c`.
    Fixed { stride: usize, summary: usize },
}

impl AttentionPattern {
    // ANCHOR: pattern_allows
    /// Whether query `i` may see key `j` (`causal`: only `j ≤ i`).
    pub fn allows(self, i: usize, j: usize, causal: bool) -> bool {
        if causal && j > i {
            return false;
        }
        let d = i.abs_diff(j);
        match self {
            AttentionPattern::Full => true,
            AttentionPattern::Local { window } => d <= window,
            AttentionPattern::Strided { stride } => {
                let stride = stride.max(1);
                d < stride || d % stride == 0
            }
            AttentionPattern::Fixed { stride, summary } => {
                let l = stride.max(1);
                i / l == j / l || j % l >= l - summary.min(l)
            }
        }
    }
    // ANCHOR_END: pattern_allows

    /// The band around the diagonal that holds the keys query `i` sees near it: `|i − j| ≤
    /// band` (every key for `Full`). The strided pattern's keys beyond it are its every
    /// `stride`-th ones, the fixed pattern's its blocks' summary keys; inside the band the
    /// fixed pattern also hides the keys of neighbouring blocks that are not summaries.
    pub fn band(self) -> Option<usize> {
        match self {
            AttentionPattern::Full => None,
            AttentionPattern::Local { window } => Some(window),
            AttentionPattern::Strided { stride } | AttentionPattern::Fixed { stride, .. } => {
                Some(stride.max(1) - 1)
            }
        }
    }

    /// Whether some keys lie beyond [`band`](Self::band) (the strided and fixed patterns').
    pub fn has_far_keys(self) -> bool {
        matches!(
            self,
            AttentionPattern::Strided { .. } | AttentionPattern::Fixed { .. }
        )
    }
}

/// Everything that shapes the weights besides `Q`, `K` and `V`. `keep` and `add` broadcast
/// to the scores `[..., L, S]` (a `[B, 1, 1, S]` padding mask, one `[L, S]` for every head)
/// and are read through their strides, never expanded.
#[derive(Clone, Copy)]
pub struct AttentionMasks<'a> {
    /// Query `i` sees keys `j ≤ i` only.
    pub causal: bool,
    /// A sparse pattern of keys, on top of causality.
    pub pattern: AttentionPattern,
    /// Bool: where attention may look.
    pub keep: Option<&'a Tensor>,
    /// Float: added to the scores.
    pub add: Option<&'a Tensor>,
}

/// Dropout on the attention weights (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AttentionDropout {
    pub p: f64,
    pub seed: u64,
}

/// What the forward returns: the output `O` (`[..., L, Ev]`) and what the backward needs
/// besides `q`, `k`, `v` and `O`: the row log-sum-exps `[..., L]` for a flash backend, or
/// `P` `[..., L, S]` for one that stores it.
pub struct AttentionForward {
    pub o: Tensor,
    pub saved: Tensor,
}

/// The gradients of `q`, `k`, `v`, and of the scores `dS` (`[..., L, S]`) when asked for.
pub struct AttentionGrads {
    pub dq: Tensor,
    pub dk: Tensor,
    pub dv: Tensor,
    pub ds: Option<Tensor>,
}

pub trait AttentionKernels {
    /// `O` for contiguous `q`, `k`, `v` with the same leading dims, and what the backward
    /// needs.
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        masks: AttentionMasks<'_>,
        scale: f64,
        dropout: Option<AttentionDropout>,
    ) -> Result<AttentionForward>;

    /// The gradients from the output gradient `g` (contiguous), given the forward's inputs,
    /// output and saved tensor; `dS` only when `want_ds` (an additive mask needs it).
    #[allow(clippy::too_many_arguments)]
    fn attention_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        fwd: &AttentionForward,
        masks: AttentionMasks<'_>,
        scale: f64,
        dropout: Option<AttentionDropout>,
        g: &Tensor,
        want_ds: bool,
    ) -> Result<AttentionGrads>;
}
