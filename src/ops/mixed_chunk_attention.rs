//! FLASH's mixed chunk attention (Hua et al. 2022, "Transformer Quality in Linear Time"): the
//! sequence is cut into chunks of `C` tokens; inside a chunk, queries attend quadratically
//! with the squared-ReLU kernel of the gated attention unit, and across chunks, linearly
//! (no feature map, no softmax). Composed from tensor ops (the tape differentiates it), so it
//! runs on every backend; the work is `O(n·C·(s + e) + n·s·e)`.
//!
//! For query `i` in chunk `g`, with `e` the value width and `s` the query/key width:
//!
//! ```text
//! quad_i = Σ_{j in chunk g, j ≤ i if causal} relu(q_i·k_j / C + b_{i−j})² v_j
//! lin_i  = Σ_{j in chunks before g} (q'_i·k'_j) v_j / (tokens in those chunks)     causal
//!        = Σ_{all j} (q'_i·k'_j) v_j / n                                            otherwise
//! out_i  = quad_i + lin_i
//! ```
//!
//! The linear part is a mean over the tokens a query sees outside its chunk, as the paper's
//! code normalises its chunk mask (lucidrains' FLASH-pytorch divides by `C` only, so its sum
//! grows along the sequence). Its causal form is an exclusive prefix sum over chunks: a chunk
//! sees only the chunks strictly before it (its own tokens are the quadratic part's).

use crate::error::{Error, Result};
use crate::ops::Unary;
use crate::tensor::Tensor;

/// How [`try_mixed_chunk_attention`] attends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixedChunkOptions {
    pub causal: bool,
    /// Tokens per chunk (`C`; the paper uses 256 on long sequences).
    pub chunk: usize,
}

/// `quad_q`, `quad_k`, `lin_q`, `lin_k` `[.., n, s]` and `v` `[.., n, e]` with the same leading
/// dims; `bias` `[C, C]` is added to the scaled scores inside a chunk (FLASH's relative
/// position bias, `b[i][j] = w[j − i + C − 1]`), or nothing. Returns `[.., n, e]`.
pub fn try_mixed_chunk_attention(
    quad_q: &Tensor,
    quad_k: &Tensor,
    lin_q: &Tensor,
    lin_k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
    options: MixedChunkOptions,
) -> Result<Tensor> {
    const OP: &str = "mixed_chunk_attention";
    let rank = quad_q.rank();
    let c = options.chunk;
    let same = [quad_k, lin_q, lin_k]
        .iter()
        .all(|t| t.dims() == quad_q.dims());
    let ok = rank >= 2
        && same
        && v.rank() == rank
        && v.dims()[..rank - 1] == quad_q.dims()[..rank - 1]
        && bias.is_none_or(|b| b.dims() == [c, c]);
    if !ok {
        return Err(Error::bad_shape(
            OP,
            quad_q.shape(),
            format!(
                "needs queries and keys [.., n, s], v [.., n, e] and bias [chunk, chunk] = [{c}, \
                 {c}]; got quad_k {:?}, lin_q {:?}, lin_k {:?}, v {:?}, bias {:?}",
                quad_k.dims(),
                lin_q.dims(),
                lin_k.dims(),
                v.dims(),
                bias.map(|b| b.dims().to_vec())
            ),
        ));
    }
    if c == 0 {
        return Err(Error::invalid(OP, "chunk must be at least 1"));
    }
    let lead = &quad_q.dims()[..rank - 2];
    let (n, e) = (quad_q.dim(-2), v.dim(-1));
    let chunks = n.div_ceil(c);
    let (dtype, device) = (quad_q.dtype(), quad_q.device());
    // Zeros after the last token, `[.., chunks, C, width]`; the padded keys are masked below
    // and the padded queries' outputs cut off at the end.
    let chunked = |x: &Tensor| -> Result<Tensor> {
        let extra = chunks * c - n;
        let x = if extra == 0 {
            x.clone()
        } else {
            let mut dims = x.dims().to_vec();
            dims[rank - 2] = extra;
            let zeros = Tensor::full_on(dims, 0.0, dtype, device);
            Tensor::try_concat(&[x, &zeros], -2)?
        };
        let mut dims = lead.to_vec();
        dims.extend([chunks, c, x.dim(-1)]);
        x.try_reshape(&dims)
    };
    let (qq, qk, lq, lk, v) = (
        chunked(quad_q)?,
        chunked(quad_k)?,
        chunked(lin_q)?,
        chunked(lin_k)?,
        chunked(v)?,
    );

    // ANCHOR: quadratic
    // Inside each chunk: relu(q·k / C + b)², keys after the query (causal) or past the end
    // zeroed after the square.
    let keep: Vec<f64> = (0..chunks * c * c)
        .map(|x| {
            let (g, i, j) = (x / (c * c), (x / c) % c, x % c);
            let real = g * c + j < n;
            let seen = !options.causal || j <= i;
            if real && seen {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let keep = Tensor::from_vec(keep, [chunks, c, c])
        .try_to_dtype(dtype)?
        .try_to_device(device)?;
    let mut scores = qq
        .try_matmul(&qk.try_transpose(-2, -1)?)?
        .try_unary(Unary::Affine {
            scale: 1.0 / c as f64,
            shift: 0.0,
        })?;
    if let Some(b) = bias {
        scores = scores.try_add(b)?;
    }
    let kernel = scores
        .try_unary(Unary::Relu)?
        .try_unary(Unary::Powf(2.0))?
        .try_mul(&keep)?;
    let quad = kernel.try_matmul(&v)?;
    // ANCHOR_END: quadratic

    // ANCHOR: linear
    // Across chunks: each chunk's Σ k'vᵀ `[.., chunks, s, e]`.
    let states = lk.try_transpose(-2, -1)?.try_matmul(&v)?;
    let chunk_axis = rank as isize - 2;
    let state = if options.causal {
        // The chunks strictly before each one, averaged over their tokens.
        let sums = states.try_cumsum(chunk_axis)?;
        let earlier = if chunks == 1 {
            // Nothing before the only chunk; zeros that keep the linear keys in the graph (a
            // zero gradient, not none).
            sums.try_unary(Unary::Affine {
                scale: 0.0,
                shift: 0.0,
            })?
        } else {
            let mut dims = sums.dims().to_vec();
            dims[rank - 2] = 1;
            let zeros = Tensor::full_on(dims, 0.0, dtype, device);
            Tensor::try_concat(
                &[&zeros, &sums.try_narrow(chunk_axis, 0, chunks - 1)?],
                chunk_axis,
            )?
        };
        let counts: Vec<f64> = (0..chunks)
            .map(|g| if g == 0 { 0.0 } else { 1.0 / (g * c) as f64 })
            .collect();
        let counts = Tensor::from_vec(counts, [chunks, 1, 1])
            .try_to_dtype(dtype)?
            .try_to_device(device)?;
        earlier.try_mul(&counts)?
    } else {
        // Every token, once for all chunks.
        states
            .try_sum_axes(&[chunk_axis], true)?
            .try_unary(Unary::Affine {
                scale: 1.0 / n as f64,
                shift: 0.0,
            })?
    };
    let lin = lq.try_matmul(&state)?;
    // ANCHOR_END: linear

    let mut dims = lead.to_vec();
    dims.extend([chunks * c, e]);
    quad.try_add(&lin)?.try_reshape(&dims)?.try_narrow(-2, 0, n)
}
