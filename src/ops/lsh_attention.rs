//! Reformer's LSH attention (Kitaev, Kaiser, Levskaya 2020, section 2): queries and keys are
//! one projection (shared-QK), hashed with random rotations so that similar vectors share a
//! bucket; each hashing round sorts the tokens by bucket, cuts the sorted sequence into chunks
//! and lets each chunk attend to itself and to the chunk before it. Composed from tensor ops
//! (the tape differentiates through the gathers); the hashing, sorting and masks are integer
//! work done on the host.
//!
//! Per round `r`, for query `i` and each key `j` in its window (`n_hashes` windows of
//! `2·chunk` keys):
//!
//! ```text
//! s_ij = q_i · k̂_j,   k̂_j = q_j / |q_j|           (shared-QK: keys are unit queries)
//! s_ii −= 10⁵                                       (a token attends to itself only when
//!                                                    nothing else is there)
//! s_ij = −∞ for j after i                            (causal)
//! s_ij −= log(times j appears in i's windows)        (a key found by several rounds counts once)
//! ```
//!
//! Each round's output is a softmax over its window; the rounds are combined by the softmax of
//! their log-sum-exps, which makes the whole the softmax over the union of the windows. The
//! cost is `O(n_hashes · n · chunk)`.

use crate::error::{Error, Result};
use crate::ops::Unary;
use crate::tensor::{DType, Tensor};
use rayon::prelude::*;

/// How [`try_lsh_attention`] attends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LshOptions {
    /// Tokens per chunk of the sorted sequence; `n` must be a multiple of it (as in Reformer).
    pub chunk: usize,
    pub causal: bool,
}

/// The score that keeps a token from attending to itself unless it must (Reformer's value).
pub const SELF_PENALTY: f64 = 1e5;
/// The score of a key after its query (causal): far below anything real, finite so that
/// `−∞ − (−∞)` never appears.
const MASKED: f64 = -1e9;

/// Buckets of every token in every round: `[groups][rounds][n]`, from `rotated`
/// `[groups, rounds, n, buckets/2]`: `argmax([x·R; −x·R])`.
fn buckets(rotated: &[f64], groups: usize, rounds: usize, n: usize, half: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(groups * rounds * n);
    for row in rotated.chunks(half).take(groups * rounds * n) {
        let mut best = (f64::NEG_INFINITY, 0);
        for (b, &x) in row.iter().enumerate() {
            if x > best.0 {
                best = (x, b);
            }
        }
        for (b, &x) in row.iter().enumerate() {
            if -x > best.0 {
                best = (-x, half + b);
            }
        }
        out.push(best.1);
    }
    out
}

/// LSH self-attention of `qk` `[.., n, d]` (queries, and keys once normalised) over `v`
/// `[.., n, e]`, hashed with `rotations` `[n_hashes, d, buckets / 2]`. Returns `[.., n, e]`.
pub fn try_lsh_attention(
    qk: &Tensor,
    v: &Tensor,
    rotations: &Tensor,
    options: LshOptions,
) -> Result<Tensor> {
    const OP: &str = "lsh_attention";
    let rank = qk.rank();
    let ok = rank >= 2
        && v.rank() == rank
        && v.dims()[..rank - 1] == qk.dims()[..rank - 1]
        && rotations.rank() == 3
        && rotations.dims()[1] == qk.dim(-1);
    if !ok {
        return Err(Error::bad_shape(
            OP,
            qk.shape(),
            format!(
                "needs qk [.., n, d], v [.., n, e] and rotations [n_hashes, d, buckets/2]; got v \
                 {:?}, rotations {:?}",
                v.dims(),
                rotations.dims()
            ),
        ));
    }
    let (n, d, e) = (qk.dim(-2), qk.dim(-1), v.dim(-1));
    let c = options.chunk;
    if c == 0 || n % c != 0 {
        return Err(Error::bad_shape(
            OP,
            qk.shape(),
            format!("the length {n} must be a multiple of the chunk {c} (Reformer's rule)"),
        ));
    }
    let lead = qk.dims()[..rank - 2].to_vec();
    let groups: usize = lead.iter().product();
    let (rounds, half) = (rotations.dims()[0], rotations.dims()[2]);
    let chunks = n / c;
    let (dtype, device) = (qk.dtype(), qk.device());

    // ANCHOR: hash_and_sort
    // Hash every token in every round (no gradient: the buckets are integers), then sort each
    // round by (bucket, position).
    let rotated = qk
        .detach()
        .try_reshape(&[groups, 1, n, d])?
        .try_matmul(&rotations.detach().try_to_dtype(dtype)?)?; // [groups, rounds, n, half]
    let rotated: Vec<f64> = rotated.try_to_dtype(DType::F64)?.try_to_vec()?;
    let bucket = buckets(&rotated, groups, rounds, n, half);
    // order[(g·rounds + r)·n + s]: the position at sorted slot s.
    let mut order: Vec<usize> = Vec::with_capacity(groups * rounds * n);
    for gr in 0..groups * rounds {
        let mut slots: Vec<usize> = (0..n).collect();
        slots.sort_by_key(|&p| (bucket[gr * n + p], p));
        order.extend(slots);
    }
    // ANCHOR_END: hash_and_sort

    // The additive mask of every (query slot, key slot) of every window: causal, the self
    // penalty, and −log(count) for keys that several windows of the query hold.
    let window = 2 * c;
    let key_pos = |gr: usize, ch: usize, t: usize| -> usize {
        // Slot t of the window of chunk ch: its own chunk, then the chunk before (cyclic).
        let from = if t < c {
            ch
        } else {
            (ch + chunks - 1) % chunks
        };
        order[gr * n + from * c + t % c]
    };
    // Groups are independent: built in parallel, in the dtype of the scores (f64 keeps
    // −ln(count) exact for the f64 checks).
    let fill = |g: usize, out: &mut [f64]| {
        // The slot of each position in each round; then, per query, the keys of all its
        // windows are counted before its biases are written.
        let mut slot_of: Vec<usize> = vec![0; rounds * n];
        for r in 0..rounds {
            for s in 0..n {
                slot_of[r * n + order[(g * rounds + r) * n + s]] = s;
            }
        }
        let mut counts: Vec<u32> = vec![0; n];
        for pos in 0..n {
            let windows = (0..rounds).flat_map(|r| {
                let ch = slot_of[r * n + pos] / c;
                (0..window).map(move |t| (r, t, key_pos(g * rounds + r, ch, t)))
            });
            windows.clone().for_each(|(_, _, k)| counts[k] += 1);
            for (r, t, k) in windows.clone() {
                let s = slot_of[r * n + pos];
                out[(r * n + s) * window + t] = if options.causal && k > pos {
                    MASKED
                } else {
                    -(counts[k] as f64).ln() - if k == pos { SELF_PENALTY } else { 0.0 }
                };
            }
            windows.for_each(|(_, _, k)| counts[k] = 0);
        }
    };
    let per_group = rounds * n * window;
    let dims = [groups, rounds, chunks, c, window];
    let bias = if dtype == DType::F32 {
        let mut v = vec![0.0f32; groups * per_group];
        v.par_chunks_mut(per_group)
            .enumerate()
            .for_each(|(g, out)| {
                let mut wide = vec![0.0f64; per_group];
                fill(g, &mut wide);
                out.iter_mut().zip(wide).for_each(|(o, w)| *o = w as f32);
            });
        Tensor::from_vec(v, dims)
    } else {
        let mut v = vec![0.0f64; groups * per_group];
        v.par_chunks_mut(per_group)
            .enumerate()
            .for_each(|(g, out)| fill(g, out));
        Tensor::from_vec(v, dims).try_to_dtype(dtype)?
    }
    .try_to_device(device)?;

    // ANCHOR: chunked_scores
    // Gather the sorted rows of every round: [groups, rounds, chunks, c, width].
    let gather = |x: &Tensor, width: usize| -> Result<Tensor> {
        let idx: Vec<i64> = order
            .iter()
            .enumerate()
            .map(|(at, &p)| ((at / (rounds * n)) * n + p) as i64)
            .collect();
        let idx = Tensor::from_vec(idx, [groups * rounds * n]).try_to_device(device)?;
        x.try_reshape(&[groups * n, width])?
            .try_index_select(0, &idx)?
            .try_reshape(&[groups, rounds, chunks, c, width])
    };
    let (sq, sv) = (gather(qk, d)?, gather(v, e)?);
    let norm = sq
        .try_mul(&sq)?
        .try_sum_axes(&[-1], true)?
        .try_unary(Unary::Sqrt)?;
    let sk = sq.try_div(&norm)?;
    // Each chunk's keys, then the previous chunk's (the first chunk looks back to the last).
    let look_back = |x: &Tensor| -> Result<Tensor> {
        let prev = if chunks == 1 {
            x.clone()
        } else {
            Tensor::try_concat(
                &[
                    &x.try_narrow(2, chunks - 1, 1)?,
                    &x.try_narrow(2, 0, chunks - 1)?,
                ],
                2,
            )?
        };
        Tensor::try_concat(&[x, &prev], 3)
    };
    let (keys, values) = (look_back(&sk)?, look_back(&sv)?); // [.., chunks, 2c, width]
    let scores = sq
        .try_matmul(&keys.try_transpose(-2, -1)?)?
        .try_add(&bias)?; // [groups, rounds, chunks, c, 2c]
    let max = scores.try_max_axes(&[-1], true)?.detach();
    let lse = scores
        .try_sub(&max)?
        .try_unary(Unary::Exp)?
        .try_sum_axes(&[-1], true)?
        .try_unary(Unary::Log)?
        .try_add(&max)?; // [.., c, 1]
    let out = scores
        .try_sub(&lse)?
        .try_unary(Unary::Exp)?
        .try_matmul(&values)?; // [.., c, e]
                               // ANCHOR_END: chunked_scores

    // Back to positions: the inverse of each round's order.
    let mut inverse = vec![0i64; groups * rounds * n];
    for (at, &p) in order.iter().enumerate() {
        let gr = at / n;
        inverse[gr * n + p] = at as i64;
    }
    let inverse = Tensor::from_vec(inverse, [groups * rounds * n]).try_to_device(device)?;
    let unsort = |x: &Tensor, width: usize| -> Result<Tensor> {
        x.try_reshape(&[groups * rounds * n, width])?
            .try_index_select(0, &inverse)?
            .try_reshape(&[groups, rounds, n, width])
    };
    let (out, lse) = (unsort(&out, e)?, unsort(&lse, 1)?);
    // Rounds weighted by their share of the total mass.
    let weights = lse.try_softmax(1)?;
    let mut dims = lead;
    dims.extend([n, e]);
    out.try_mul(&weights)?
        .try_sum_axes(&[1], false)?
        .try_reshape(&dims)
}
