//! Random-feature linear attention (Performer's FAVOR+, Choromanski et al. 2021; RFA, Peng et
//! al. 2021): softmax attention's kernel `exp(q·k/√d)` replaced by a dot product of positive
//! random features, `φ(q)·φ(k)`, so that the sums over keys can be taken once and shared by
//! every query. Composed from tensor ops (the tape differentiates it), so it runs on every
//! backend; its cost is linear in the sequence length.
//!
//! With `ω₁..ω_m ~ N(0, I_d)` (the rows of `projection`) and `x` scaled by `d^(-1/4)`,
//!
//! ```text
//! φ(x) = exp(Ωx − |x|²/2) / √m,      E[φ(q)·φ(k)] = exp(q·k/√d)
//! out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j)
//! ```
//!
//! over all keys `j`, or `j ≤ i` when causal. Causal attention is computed by chunks (as in
//! FLASH's mixed chunk attention): inside a chunk of `chunk` tokens the `chunk × chunk` kernel
//! matrix is masked to the lower triangle, and the chunks before it contribute through running
//! sums of `φ(k)ᵀv` and `φ(k)`, an exclusive prefix sum over chunks. The work is
//! `O(n·(chunk + e)·m)` and the memory `O(n/chunk · m·e)` instead of the `O(n·m·e)` of one
//! running state per token.

use crate::error::{Error, Result};
use crate::ops::Unary;
use crate::tensor::Tensor;

/// Added to every feature after the stabiliser (Performer's `eps`).
pub const FEATURE_EPS: f64 = 1e-4;

/// How [`try_random_feature_attention`] attends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearAttentionOptions {
    /// Each query sees only itself and earlier keys.
    pub causal: bool,
    /// Tokens per chunk of the causal form (the quadratic part inside a chunk).
    pub chunk: usize,
}

impl Default for LinearAttentionOptions {
    fn default() -> Self {
        LinearAttentionOptions {
            causal: false,
            chunk: 64,
        }
    }
}

// ANCHOR: feature_map
/// `exp(Ωx − |x|²/2 − c) + ε` for `x` `[.., n, d]` already scaled by `d^(-1/4)`, `Ω`
/// `[m, d]`, as Performer computes it. The stabiliser `c` is the row's maximum for queries and
/// one maximum over all keys of a head for keys, so nothing overflows; alone it would cancel
/// between the numerator and the denominator, but keys far below the largest one would then
/// underflow to zero features, and a causal query whose keys all did would divide by almost
/// nothing (its gradient overflows). `ε = 10⁻⁴` keeps every feature positive, at the price of
/// making the stabilisers part of the function: they are differentiated (not detached), so
/// that the gradient is the exact one. Like Performer's reference code, the keys' maximum is
/// taken over the whole sequence even when causal, so through ε a past output depends, at
/// the 10⁻⁴ level, on the largest logit of a later key; a causal stabiliser (a running
/// maximum with the chunk states rescaled as it grows) would remove that. The `1/√m`
/// cancels and is left out.
fn positive_features(x: &Tensor, projection: &Tensor, per_row: bool) -> Result<Tensor> {
    let logits = x.try_matmul(&projection.try_transpose(0, 1)?)?.try_sub(
        &x.try_mul(x)?
            .try_sum_axes(&[-1], true)?
            .try_unary(Unary::Affine {
                scale: 0.5,
                shift: 0.0,
            })?,
    )?;
    let stabiliser = if per_row {
        logits.try_max_axes(&[-1], true)?
    } else {
        logits.try_max_axes(&[-2, -1], true)?
    };
    logits
        .try_sub(&stabiliser)?
        .try_unary(Unary::Exp)?
        .try_unary(Unary::Affine {
            scale: 1.0,
            shift: FEATURE_EPS,
        })
}
// ANCHOR_END: feature_map

/// Random-feature attention of `q`, `k` `[.., n, d]` and `v` `[.., n, e]` (the same leading
/// dims, e.g. `[B, heads]`), with the random directions `projection` `[m, d]`. Returns
/// `[.., n, e]`.
pub fn try_random_feature_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    projection: &Tensor,
    options: LinearAttentionOptions,
) -> Result<Tensor> {
    const OP: &str = "random_feature_attention";
    let rank = q.rank();
    let ok = rank >= 2
        && k.rank() == rank
        && v.rank() == rank
        && k.dims() == q.dims()
        && v.dims()[..rank - 1] == q.dims()[..rank - 1]
        && projection.rank() == 2
        && projection.dims()[1] == q.dims()[rank - 1];
    if !ok {
        return Err(Error::bad_shape(
            OP,
            q.shape(),
            format!(
                "needs q and k [.., n, d], v [.., n, e] and projection [m, d]; got k {:?}, v \
                 {:?}, projection {:?}",
                k.dims(),
                v.dims(),
                projection.dims()
            ),
        ));
    }
    if options.chunk == 0 {
        return Err(Error::invalid(OP, "chunk must be at least 1"));
    }
    let d = q.dims()[rank - 1] as f64;
    let scale = Unary::Affine {
        scale: d.powf(-0.25),
        shift: 0.0,
    };
    let fq = positive_features(&q.try_unary(scale)?, projection, true)?;
    let fk = positive_features(&k.try_unary(scale)?, projection, false)?;
    if options.causal {
        causal_chunks(&fq, &fk, v, options.chunk)
    } else {
        // Σ_j φ(k_j) v_jᵀ and Σ_j φ(k_j), once for all queries.
        let kv = fk.try_transpose(-2, -1)?.try_matmul(v)?;
        let ksum = fk.try_sum_axes(&[-2], true)?.try_transpose(-2, -1)?;
        fq.try_matmul(&kv)?.try_div(&fq.try_matmul(&ksum)?)
    }
}

// ANCHOR: causal_chunks
/// The causal form over chunks of `c` tokens: `fq`, `fk` `[.., n, m]`, `v` `[.., n, e]`.
fn causal_chunks(fq: &Tensor, fk: &Tensor, v: &Tensor, c: usize) -> Result<Tensor> {
    let rank = fq.rank();
    let lead = &fq.dims()[..rank - 2];
    let (n, m, e) = (fq.dim(-2), fq.dim(-1), v.dim(-1));
    let chunks = n.div_ceil(c);
    // Rows after the last token: zero keys and values add nothing to any sum; the padded
    // queries are ones, not zeros, so that their denominators stay positive (0/0 would turn
    // their zero gradients into NaN), and their outputs are cut off at the end.
    let pad = |x: &Tensor, value: f64| -> Result<Tensor> {
        let extra = chunks * c - n;
        let x = if extra == 0 {
            x.clone()
        } else {
            let mut dims = x.dims().to_vec();
            dims[rank - 2] = extra;
            let fill = Tensor::full_on(dims, value, x.dtype(), x.device());
            Tensor::try_concat(&[x, &fill], -2)?
        };
        let mut dims = lead.to_vec();
        dims.extend([chunks, c, x.dim(-1)]);
        x.try_reshape(&dims)
    };
    let (fq, fk, v) = (pad(fq, 1.0)?, pad(fk, 0.0)?, pad(v, 0.0)?);
    // Inside a chunk: the kernel matrix, keys after the query zeroed.
    let lower: Vec<f64> = (0..c * c)
        .map(|x| if x % c <= x / c { 1.0 } else { 0.0 })
        .collect();
    let lower = Tensor::from_vec(lower, [c, c])
        .try_to_dtype(fq.dtype())?
        .try_to_device(fq.device())?;
    let a = fq.try_matmul(&fk.try_transpose(-2, -1)?)?.try_mul(&lower)?;
    let num = a.try_matmul(&v)?;
    let den = a.try_sum_axes(&[-1], true)?;
    // Across chunks: each chunk's Σ φ(k)vᵀ and Σ φ(k), summed over the chunks before it.
    let before = |x: &Tensor| -> Result<Tensor> {
        let axis = rank as isize - 2; // the chunk axis of [.., chunks, rows, cols]
        let sums = x.try_cumsum(axis)?;
        if chunks == 1 {
            return Ok(Tensor::zeros_like(&sums));
        }
        let mut dims = sums.dims().to_vec();
        dims[rank - 2] = 1;
        let zeros = Tensor::full_on(dims, 0.0, x.dtype(), x.device());
        Tensor::try_concat(&[&zeros, &sums.try_narrow(axis, 0, chunks - 1)?], axis)
    };
    let kv = before(&fk.try_transpose(-2, -1)?.try_matmul(&v)?)?; // [.., chunks, m, e]
    let ksum = before(&fk.try_sum_axes(&[-2], true)?.try_transpose(-2, -1)?)?; // [.., chunks, m, 1]
    let num = num.try_add(&fq.try_matmul(&kv)?)?;
    let den = den.try_add(&fq.try_matmul(&ksum)?)?;
    let out = num.try_div(&den)?;
    let mut dims = lead.to_vec();
    dims.extend([chunks * c, e]);
    debug_assert_eq!(m, fk.dim(-1));
    out.try_reshape(&dims)?.try_narrow(-2, 0, n)
}
// ANCHOR_END: causal_chunks

/// `m` random directions for heads of size `d`, orthogonal in blocks of `d` (Performer's
/// orthogonal random features: lower variance than independent ones), each row scaled to the
/// length of an independent `N(0, I_d)` draw so that it is marginally Gaussian. Drawn from
/// its own generator seeded by `seed`, so that a redraw at a given step is the same in a
/// resumed run.
pub fn orthogonal_random_features(m: usize, d: usize, seed: u64) -> Tensor {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut gauss = || -> f64 { StandardNormal.sample(&mut rng) };
    let mut rows: Vec<f32> = Vec::with_capacity(m * d);
    while rows.len() < m * d {
        // Gram–Schmidt on a block of d Gaussian rows.
        let mut block: Vec<Vec<f64>> = Vec::with_capacity(d);
        for _ in 0..d {
            let mut row: Vec<f64> = (0..d).map(|_| gauss()).collect();
            for b in &block {
                let dot: f64 = row.iter().zip(b).map(|(x, y)| x * y).sum();
                row.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
            }
            let norm = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            row.iter_mut().for_each(|x| *x /= norm);
            block.push(row);
        }
        for row in block {
            // The length of an independent Gaussian vector (chi with d degrees of freedom).
            let len = (0..d).map(|_| gauss().powi(2)).sum::<f64>().sqrt();
            if rows.len() < m * d {
                rows.extend(row.iter().map(|x| (x * len) as f32));
            }
        }
    }
    Tensor::from_vec(rows, [m, d])
}
