//! Attention patterns as keep-masks (bool, true = may attend) for `[..., L, S]` scores:
//! causal, valid lengths (d2l's `valid_lens`), sliding windows and the strided sparse pattern.
//! They are built on the host: a mask is small next to the scores it selects from.

use crate::backend::attention::AttentionPattern;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Where the scores `[..., L, S]` of a causal attention may look: `j ≤ i`.
pub fn causal_mask(l: usize, s: usize) -> Tensor {
    let keep: Vec<bool> = (0..l * s).map(|x| x % s <= x / s).collect();
    Tensor::from_vec(keep, [l, s])
}

/// d2l's valid lengths as a keep-mask for scores `[B, (h,) L, S]`: `valid_lens` is `[B]`
/// (one length per sequence) or `[B, L]` (one per query); keys at `j >= len` are masked.
/// The result is `[B, 1, L, S]` when `with_heads`, else `[B, L, S]`.
pub fn lens_mask(valid_lens: &Tensor, l: usize, s: usize, with_heads: bool) -> Result<Tensor> {
    let lens = valid_lens.to_vec::<i64>();
    let b = valid_lens.dims().first().copied().unwrap_or(1);
    let per_query = match valid_lens.dims() {
        [_] => false,
        [_, lq] if *lq == l => true,
        _ => {
            return Err(Error::bad_shape(
                "lens_mask",
                valid_lens.shape(),
                format!("valid_lens must be [batch] or [batch, {l}]"),
            ))
        }
    };
    let mut keep = Vec::with_capacity(b * l * s);
    for bi in 0..b {
        for i in 0..l {
            let len = if per_query {
                lens[bi * l + i]
            } else {
                lens[bi]
            };
            keep.extend((0..s).map(|j| (j as i64) < len));
        }
    }
    let dims: Vec<usize> = if with_heads {
        vec![b, 1, l, s]
    } else {
        vec![b, l, s]
    };
    Tensor::try_from_vec(keep, dims)
}

/// Where a pattern (and causality) lets the scores `[L, S]` look.
pub fn pattern_mask(l: usize, s: usize, pattern: AttentionPattern, causal: bool) -> Tensor {
    let keep: Vec<bool> = (0..l * s)
        .map(|x| pattern.allows(x / s, x % s, causal))
        .collect();
    Tensor::from_vec(keep, [l, s])
}

/// Sliding-window (local) attention's keep-mask: query `i` sees keys with `|i − j| ≤ window`
/// (`0 ≤ i − j ≤ window` when causal). Attention runs the same pattern without building a
/// mask when given `SdpaOptions::pattern`.
// ANCHOR: local_mask
pub fn local_mask(l: usize, s: usize, window: usize, causal: bool) -> Tensor {
    pattern_mask(l, s, AttentionPattern::Local { window }, causal)
}
// ANCHOR_END: local_mask

/// Strided sparse attention's keep-mask (Child et al. 2019, the "strided" pattern): query
/// `i` sees the previous `stride` keys and every `stride`-th key before them, i.e. keys with
/// `|i − j| < stride` or `(i − j) mod stride = 0` (only `j ≤ i` when causal).
pub fn strided_mask(l: usize, s: usize, stride: usize, causal: bool) -> Tensor {
    pattern_mask(l, s, AttentionPattern::Strided { stride }, causal)
}

/// The fixed sparse pattern's keep-mask (Child et al. 2019): blocks of `stride` keys; query
/// `i` sees its own block and the last `summary` keys of every block (only `j ≤ i` when
/// causal). Attention runs the same pattern without a mask through `SdpaOptions::pattern`.
pub fn fixed_mask(l: usize, s: usize, stride: usize, summary: usize, causal: bool) -> Tensor {
    pattern_mask(l, s, AttentionPattern::Fixed { stride, summary }, causal)
}
