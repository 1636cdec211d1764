//! Transformer-XL's attention with relative positions (Dai et al. 2019, section 3.3): the
//! queries of the current segment attend causally to the cached memory and to the segment,
//! and a key is scored by its content and by its distance to the query, never by its absolute
//! position, so that cached states keep their meaning in the next segment:
//!
//! ```text
//! score(i, j) = ((q_i + u)·k_j + (q_i + v)·r_{i−j}) / √d_head,     j ≤ i (+ memory)
//! ```
//!
//! `u` and `v` are learned per head (the paper's `r_w_bias` and `r_r_bias`), `r_δ` is the
//! projected sinusoid of distance `δ`. The second term is computed for every query against
//! every distance at once, `(q + v)·Rᵀ`, and then shifted so that row `i` lines distance
//! `i − j` up under key `j` (the "relative shift" of the reference code). The content term
//! runs in the fused attention kernel, with the shifted position term (and the causal reach
//! over the memory) as its additive mask, whose gradient the kernel returns; the rest is
//! composed from tensor ops. The cost is that of full attention over `M + L` keys plus the
//! position term's `[L, M + L]` scores per head.

use crate::error::{Error, Result};
use crate::ops::attention::{try_scaled_dot_product_attention, SdpaOptions};
use crate::ops::Unary;
use crate::tensor::Tensor;

// ANCHOR: rel_shift
/// `x` `[.., L, K]` with column `t` holding distance `K − 1 − t` for every row; returns `y`
/// with `y[i][j] = x[i][j + L − 1 − i]`, the score of distance `(K − L + i) − j` under key
/// `j`. Entries for keys after the query (`j > K − L + i`, masked by the caller) hold other
/// scores. Done by layout alone: a zero column in front, the rows re-cut one longer, the
/// first dropped.
pub fn rel_shift(x: &Tensor) -> Result<Tensor> {
    let rank = x.rank();
    let (l, k) = (x.dim(-2), x.dim(-1));
    let mut zdims = x.dims().to_vec();
    zdims[rank - 1] = 1;
    let zeros = Tensor::full_on(zdims, 0.0, x.dtype(), x.device());
    let padded = Tensor::try_concat(&[&zeros, x], -1)?; // [.., L, K + 1]
    let mut dims = x.dims()[..rank - 2].to_vec();
    dims.extend([k + 1, l]);
    // Read as [.., K + 1, L], drop the first row, read the rest as [.., L, K] (the last
    // `L·(K + 1) − K·L − L = 0` elements line up exactly).
    let cut = padded.try_reshape(&dims)?.try_narrow(-2, 1, k)?;
    let mut back = x.dims()[..rank - 2].to_vec();
    back.extend([l, k]);
    cut.try_reshape(&back)
}
// ANCHOR_END: rel_shift

/// Relative-position attention of the segment's queries `q` `[.., h, L, e]` over keys and
/// values `k`, `v` `[.., h, K, e]` (the memory's `K − L` positions first, then the segment's),
/// with `r` `[h, K, e]` the projected encodings of distances `K − 1, K − 2, …, 0` and the
/// biases `u`, `v_bias` `[h, e]`. Query `i` sees keys `j ≤ K − L + i`. Returns `[.., h, L, e]`.
pub fn try_relative_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    r: &Tensor,
    u: &Tensor,
    v_bias: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "relative_attention";
    let rank = q.rank();
    let ok = rank >= 3
        && k.rank() == rank
        && v.dims() == k.dims()
        && k.dims()[..rank - 2] == q.dims()[..rank - 2]
        && k.dim(-1) == q.dim(-1)
        && k.dim(-2) >= q.dim(-2);
    if !ok {
        return Err(Error::bad_shape(
            OP,
            q.shape(),
            format!(
                "needs q [.., h, L, e] and k, v [.., h, K ≥ L, e]; got k {:?}, v {:?}",
                k.dims(),
                v.dims()
            ),
        ));
    }
    let (h, l, e, kl) = (q.dims()[rank - 3], q.dim(-2), q.dim(-1), k.dim(-2));
    if r.dims() != [h, kl, e] || u.dims() != [h, e] || v_bias.dims() != [h, e] {
        return Err(Error::bad_shape(
            OP,
            r.shape(),
            format!(
                "needs r [h, K, e] = [{h}, {kl}, {e}] and u, v_bias [{h}, {e}]; got r {:?}, u \
                 {:?}, v_bias {:?}",
                r.dims(),
                u.dims(),
                v_bias.dims()
            ),
        ));
    }
    let per_head = |b: &Tensor| b.try_reshape(&[h, 1, e]);
    let scale = 1.0 / (e as f64).sqrt();
    // ANCHOR: scores
    // The position term, shifted under its keys and scaled, with the keys after each query
    // hidden: an additive mask for the fused attention, which scores the content term
    // `(q + u)·k` itself and never stores the weights.
    let mem = kl - l;
    let hidden: Vec<f64> = (0..l * kl)
        .map(|x| if x % kl <= mem + x / kl { 0.0 } else { -1e9 })
        .collect();
    let hidden = Tensor::from_vec(hidden, [l, kl])
        .try_to_dtype(q.dtype())?
        .try_to_device(q.device())?;
    let position = rel_shift(
        &q.try_add(&per_head(v_bias)?)?
            .try_matmul(&r.try_transpose(-2, -1)?)?,
    )?
    .try_unary(Unary::Affine { scale, shift: 0.0 })?
    .try_add(&hidden)?;
    let opts = SdpaOptions {
        attn_mask: Some(position),
        ..Default::default()
    };
    try_scaled_dot_product_attention(&q.try_add(&per_head(u)?)?, k, v, &opts)
    // ANCHOR_END: scores
}

/// The sinusoids of distances `K − 1, …, 0`, `[K, d]` (the reference code's `pos_seq`, with
/// its layout: the sines in the first half of the features, the cosines in the second).
pub fn relative_positions(k: usize, d: usize) -> Tensor {
    let half = d / 2;
    let mut out = Vec::with_capacity(k * d);
    for t in 0..k {
        let dist = (k - 1 - t) as f64;
        let angle = |c: usize| dist / 10000f64.powf(2.0 * c as f64 / d as f64);
        out.extend((0..half).map(|c| angle(c).sin() as f32));
        out.extend((0..half).map(|c| angle(c).cos() as f32));
        if d % 2 == 1 {
            out.push(0.0);
        }
    }
    Tensor::from_vec(out, [k, d])
}
