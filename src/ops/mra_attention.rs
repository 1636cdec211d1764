//! Multi-resolution attention, MRA (Zeng et al., ICML 2022, "Multi Resolution Analysis (MRA)
//! for Approximate Self-Attention"), in its two-level form: the attention matrix is seen in
//! blocks of `b × b`; every block gets a coarse value from the means of its queries and keys,
//! and the `refined` blocks of each query block with the largest coarse mass are computed
//! exactly. For query `i` in block `I`, with `s_ij = q_i·k_j/√d`,
//! `S̃_IJ = q̄_I·k̄_J/√d` and `|J|` the tokens of block `J`:
//!
//! ```text
//! out_i = [Σ_{J refined} Σ_{j∈J} e^{s_ij} v_j + Σ_{J coarse} e^{S̃_IJ} Σ_{j∈J} v_j]
//!       / [Σ_{J refined} Σ_{j∈J} e^{s_ij}     + Σ_{J coarse} |J| e^{S̃_IJ}]
//! ```
//!
//! The refined blocks are the `refined` largest `S̃_IJ + ln |J|` of each query block (chosen on
//! the host, no gradient through the choice). With every block refined it is exactly softmax
//! attention. Bidirectional; the cost is `O(n·(refined·b + n/b)·d)`. Composed from tensor
//! ops (the tape differentiates it).

use crate::error::{Error, Result};
use crate::ops::Unary;
use crate::tensor::{DType, Tensor};

/// How [`try_mra_attention`] attends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MraOptions {
    /// Tokens per block (`b`).
    pub block: usize,
    /// Blocks computed exactly per query block.
    pub refined: usize,
}

/// MRA attention of `q`, `k` `[.., n, d]` over `v` `[.., n, e]`. Returns `[.., n, e]`.
pub fn try_mra_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    options: MraOptions,
) -> Result<Tensor> {
    const OP: &str = "mra_attention";
    let rank = q.rank();
    let ok = rank >= 2
        && k.dims() == q.dims()
        && v.rank() == rank
        && v.dims()[..rank - 1] == q.dims()[..rank - 1];
    if !ok {
        return Err(Error::bad_shape(
            OP,
            q.shape(),
            format!(
                "needs q and k [.., n, d] and v [.., n, e]; got k {:?}, v {:?}",
                k.dims(),
                v.dims()
            ),
        ));
    }
    let (b, refined) = (options.block, options.refined);
    if b == 0 || refined == 0 {
        return Err(Error::invalid(OP, "block and refined must be at least 1"));
    }
    let (n, d, e) = (q.dim(-2), q.dim(-1), v.dim(-1));
    let lead = q.dims()[..rank - 2].to_vec();
    let groups: usize = lead.iter().product();
    let nb = n.div_ceil(b);
    let r = refined.min(nb);
    let (dtype, device) = (q.dtype(), q.device());
    let constant = |data: Vec<f64>, dims: &[usize]| -> Result<Tensor> {
        Tensor::from_vec(data, dims)
            .try_to_dtype(dtype)?
            .try_to_device(device)
    };
    // [groups, nb, b, width], zeros after the last token.
    let blocks = |x: &Tensor| -> Result<Tensor> {
        let width = x.dim(-1);
        let x = x.try_reshape(&[groups, n, width])?;
        let x = if nb * b == n {
            x
        } else {
            let zeros = Tensor::full_on([groups, nb * b - n, width], 0.0, dtype, device);
            Tensor::try_concat(&[&x, &zeros], 1)?
        };
        x.try_reshape(&[groups, nb, b, width])
    };
    let (qb, kb, vb) = (blocks(q)?, blocks(k)?, blocks(v)?);
    let counts: Vec<f64> = (0..nb).map(|j| (n - j * b).min(b) as f64).collect();
    let scale = 1.0 / (d as f64).sqrt();

    // ANCHOR: mra_coarse
    // The coarse level: block means, their scores, and each block's summed values.
    let inverse_counts = constant(counts.iter().map(|c| 1.0 / c).collect(), &[nb, 1])?;
    let q_bar = qb.try_sum_axes(&[2], false)?.try_mul(&inverse_counts)?; // [g, nb, d]
    let k_bar = kb.try_sum_axes(&[2], false)?.try_mul(&inverse_counts)?;
    let coarse = q_bar
        .try_matmul(&k_bar.try_transpose(-2, -1)?)?
        .try_unary(Unary::Affine { scale, shift: 0.0 })?; // [g, nb, nb]
    let v_sum = vb.try_sum_axes(&[2], false)?; // [g, nb, e]
                                               // ANCHOR_END: mra_coarse

    // The refined blocks of each query block: the largest coarse masses.
    let coarse_host: Vec<f64> = coarse.detach().try_to_dtype(DType::F64)?.try_to_vec()?;
    let mut chosen: Vec<i64> = Vec::with_capacity(groups * nb * r);
    let mut keep_coarse = vec![1.0f64; groups * nb * nb];
    for gi in 0..groups * nb {
        let row = &coarse_host[gi * nb..(gi + 1) * nb];
        let mut order: Vec<usize> = (0..nb).collect();
        let mass = |j: usize| row[j] + counts[j].ln();
        order.sort_by(|&a, &c| mass(c).total_cmp(&mass(a)).then(a.cmp(&c)));
        let g = gi / nb;
        for &j in &order[..r] {
            chosen.push((g * nb + j) as i64);
            keep_coarse[gi * nb + j] = 0.0;
        }
    }
    let chosen = Tensor::from_vec(chosen, [groups * nb * r]).try_to_device(device)?;
    let pick = |x: &Tensor, width: usize| -> Result<Tensor> {
        x.try_reshape(&[groups * nb, b, width])?
            .try_index_select(0, &chosen)?
            .try_reshape(&[groups, nb, r, b, width])
    };
    // ANCHOR: mra_fine
    // The fine level on the refined blocks: exact scores, padded keys hidden.
    let (kf, vf) = (pick(&kb, d)?, pick(&vb, e)?);
    let pad: Vec<f64> = (0..groups * nb * b)
        .map(|j| if j % (nb * b) < n { 0.0 } else { -1e9 })
        .collect();
    let pad = constant(pad, &[groups * nb, b, 1])?;
    let pad = pick(&pad, 1)?.try_transpose(-2, -1)?; // [g, nb, r, 1, b]
    let fine = qb
        .try_unsqueeze(2)?
        .try_matmul(&kf.try_transpose(-2, -1)?)?
        .try_unary(Unary::Affine { scale, shift: 0.0 })?
        .try_add(&pad)?; // [g, nb, r, b (queries), b (keys)]
                         // One stabiliser per query (it cancels): the largest fine or coarse score it sees.
    let fine_max = fine.try_max_axes(&[-1], true)?.try_max_axes(&[2], false)?; // [g, nb, b, 1]
    let coarse_max = coarse.try_max_axes(&[-1], true)?.try_unsqueeze(-1)?; // [g, nb, 1, 1]
    let m = Tensor::try_stack(
        &[&fine_max, &coarse_max.try_broadcast_to(fine_max.dims())?],
        0,
    )?
    .try_max_axes(&[0], false)?
    .detach();
    let weights = fine.try_sub(&m.try_unsqueeze(2)?)?.try_unary(Unary::Exp)?;
    let num = weights.try_matmul(&vf)?.try_sum_axes(&[2], false)?; // [g, nb, b, e]
    let den = weights
        .try_sum_axes(&[-1], true)?
        .try_sum_axes(&[2], false)?; // [g, nb, b, 1]
                                     // ANCHOR_END: mra_fine
                                     // The coarse level on the other blocks.
    let keep = constant(keep_coarse, &[groups, nb, 1, nb])?;
    let approx = coarse
        .try_unsqueeze(2)?
        .try_sub(&m)?
        .try_unary(Unary::Exp)?
        .try_mul(&keep)?; // [g, nb, b, nb]
    let num = num.try_add(&approx.try_matmul(&v_sum.try_unsqueeze(1)?)?)?;
    let den = den.try_add(&approx.try_matmul(&constant(counts, &[nb, 1])?)?)?;
    let mut dims = lead;
    dims.extend([n, e]);
    num.try_div(&den)?
        .try_reshape(&[groups, nb * b, e])?
        .try_narrow(1, 0, n)?
        .try_reshape(&dims)
}
