//! Linear randomized attention, LARA (Zheng, Wang, Kong, ICML 2022): softmax attention read as
//! an expectation over random features, `E_{p_n(ω)}[f(ω)]` with
//!
//! ```text
//! ξ(x, ω) = exp(ωᵀx̃ − |x̃|²/2),  x̃ = d^(−1/4)·x
//! p_n(ω) ∝ N(ω; 0, I) · ξ(q_n, ω) · Σ_m ξ(k_m, ω)
//! f(ω)   = Σ_m ξ(k_m, ω) v_m / Σ_m ξ(k_m, ω)
//! ```
//!
//! estimated by self-normalised multiple importance sampling from `C` Gaussian proposals
//! `N(μ_c, I)`, one sample each, where `μ_c = d^(−1/4)·(q̄_c + k̄_c)` and `q̄_c`, `k̄_c` are the
//! means of the queries and keys of the c-th of `C` contiguous segments. Query `n` weighs the
//! samples by
//!
//! ```text
//! w_nc ∝ α_nc · p̃_n(ω_c) / q_c(ω_c)          (softmax over c, in log space)
//! α_nc = q_c(ω_c) / Σ_c' q_c'(ω_c) + r_nc − (1/C) Σ_c' r_nc',   r_nc = softmax_c(q_n·q̄_c/√d)
//! y_n  = Σ_c w_nc f(ω_c)
//! ```
//!
//! (`q_c` relative to `N(0, I)`; `α` clamped at 10⁻⁸ before its log.) This follows the
//! paper's definitions; its reference code (HKUNLP/efficient-attention, `lara.py`) differs in
//! two places, both said here: it normalises `r` over queries instead of proposals, and scales
//! the cross term `ωᵀx` by `d^(−1/2)` where the definition's `ωᵀx̃` has `d^(−1/4)`. Bidirectional only, as LARA is (the
//! segment means see every token). The cost is `O(C·n·(d + e))`.

use crate::error::{Error, Result};
use crate::ops::Unary;
use crate::tensor::Tensor;

fn affine(x: &Tensor, scale: f64, shift: f64) -> Result<Tensor> {
    x.try_unary(Unary::Affine { scale, shift })
}

/// `log Σ exp(x)` along `axis`, kept: the maximum (no gradient, it cancels) taken out first.
fn logsumexp(x: &Tensor, axis: isize) -> Result<Tensor> {
    let m = x.try_max_axes(&[axis], true)?.detach();
    x.try_sub(&m)?
        .try_unary(Unary::Exp)?
        .try_sum_axes(&[axis], true)?
        .try_unary(Unary::Log)?
        .try_add(&m)
}

/// `[C, n]`: row `c` averages the tokens of the c-th contiguous segment (the first `n mod C`
/// segments one token longer).
fn segment_means(c: usize, n: usize) -> Tensor {
    let (base, extra) = (n / c, n % c);
    let mut m = vec![0.0f64; c * n];
    let mut start = 0;
    for (seg, row) in m.chunks_mut(n).enumerate() {
        let len = base + usize::from(seg < extra);
        row[start..start + len]
            .iter_mut()
            .for_each(|x| *x = 1.0 / len as f64);
        start += len;
    }
    Tensor::from_vec(m, [c, n])
}

/// LARA attention of `q`, `k` `[.., n, d]` over `v` `[.., n, e]` with `noise` `[.., C, d]`
/// (standard normal in training, zeros for the deterministic evaluation the reference code
/// uses): `C` proposals, one sample each. Returns `[.., n, e]`.
pub fn try_lara_attention(q: &Tensor, k: &Tensor, v: &Tensor, noise: &Tensor) -> Result<Tensor> {
    const OP: &str = "lara_attention";
    let rank = q.rank();
    let ok = rank >= 2
        && k.dims() == q.dims()
        && v.rank() == rank
        && v.dims()[..rank - 1] == q.dims()[..rank - 1]
        && noise.rank() == rank
        && noise.dims()[..rank - 2] == q.dims()[..rank - 2]
        && noise.dim(-1) == q.dim(-1);
    if !ok {
        return Err(Error::bad_shape(
            OP,
            q.shape(),
            format!(
                "needs q and k [.., n, d], v [.., n, e] and noise [.., C, d]; got k {:?}, v {:?}, \
                 noise {:?}",
                k.dims(),
                v.dims(),
                noise.dims()
            ),
        ));
    }
    let (n, d, c) = (q.dim(-2), q.dim(-1), noise.dim(-2));
    if c == 0 || c > n {
        return Err(Error::invalid(
            OP,
            format!("{c} proposals for {n} tokens: needs 1 ≤ C ≤ n"),
        ));
    }
    let scale = (d as f64).powf(-0.25);
    let means = segment_means(c, n)
        .try_to_dtype(q.dtype())?
        .try_to_device(q.device())?;
    // ANCHOR: lara_proposals
    let q_bar = means.try_matmul(q)?; // [.., C, d]
    let k_bar = means.try_matmul(k)?;
    let mu = affine(&q_bar.try_add(&k_bar)?, scale, 0.0)?;
    let omega = mu.try_add(noise)?; // one sample per proposal
                                    // log ξ(x, ω_c) for every token and sample: [.., n, C].
    let log_xi = |x: &Tensor| -> Result<Tensor> {
        let xs = affine(x, scale, 0.0)?;
        let half_sq = affine(&xs.try_mul(&xs)?.try_sum_axes(&[-1], true)?, 0.5, 0.0)?;
        xs.try_matmul(&omega.try_transpose(-2, -1)?)?
            .try_sub(&half_sq)
    };
    let (log_q, log_k) = (log_xi(q)?, log_xi(k)?);
    // ANCHOR_END: lara_proposals
    // ANCHOR: lara_estimate
    // f(ω_c): the values under the keys' weights for sample c, [.., C, e].
    let f = log_k
        .try_transpose(-2, -1)?
        .try_softmax(-1)?
        .try_matmul(v)?;
    // log p̃_n(ω_c) = log ξ(q_n, ω_c) + log Σ_m ξ(k_m, ω_c), [.., n, C].
    let log_target = log_q.try_add(&logsumexp(&log_k, -2)?)?;
    // log q_c'(ω_c) relative to N(0, I) = ω_c·μ_c' − |μ_c'|²/2, [.., C (sample), C' (proposal)].
    let mu_sq = affine(&mu.try_mul(&mu)?.try_sum_axes(&[-1], true)?, 0.5, 0.0)?;
    let log_prop = omega
        .try_matmul(&mu.try_transpose(-2, -1)?)?
        .try_sub(&mu_sq.try_transpose(-2, -1)?)?;
    let own = log_prop.try_mul(&eye(c, q)?)?.try_sum_axes(&[-1], false)?; // log q_c(ω_c), [.., C]
                                                                          // The balance heuristic, then each query's preference for the proposals near it.
    let balance = own
        .try_sub(&logsumexp(&log_prop, -1)?.try_squeeze(-1)?)?
        .try_unary(Unary::Exp)?
        .try_unsqueeze(-2)?; // [.., 1, C]
    let r = affine(
        &q.try_matmul(&q_bar.try_transpose(-2, -1)?)?,
        1.0 / (d as f64).sqrt(),
        0.0,
    )?
    .try_softmax(-1)?; // [.., n, C]
    let r_centred = r.try_sub(&r.try_mean_axes(&[-1], true)?)?;
    let alpha = balance.try_add(&r_centred)?;
    // log max(α, 1e-8), as relu(α − 1e-8) + 1e-8.
    let log_alpha = affine(
        &affine(&alpha, 1.0, -1e-8)?.try_unary(Unary::Relu)?,
        1.0,
        1e-8,
    )?
    .try_unary(Unary::Log)?;
    let weights = log_alpha
        .try_add(&log_target)?
        .try_sub(&own.try_unsqueeze(-2)?)?
        .try_softmax(-1)?; // [.., n, C]
    weights.try_matmul(&f)
    // ANCHOR_END: lara_estimate
}

/// The `C × C` identity in `like`'s dtype and device.
fn eye(c: usize, like: &Tensor) -> Result<Tensor> {
    let v: Vec<f64> = (0..c * c)
        .map(|i| if i / c == i % c { 1.0 } else { 0.0 })
        .collect();
    Tensor::from_vec(v, [c, c])
        .try_to_dtype(like.dtype())?
        .try_to_device(like.device())
}
