//! Scaled dot-product attention on the CPU, forward and backward, one (batch, head) at a
//! time. Each head's scores live in one L×S buffer that stays in cache:
//! `gemm` writes `Q Kᵀ` into it, the masks and the softmax run over it in place, and `gemm`
//! multiplies it by `V`. Heads run in parallel, each gemm on one thread.

use super::float::Float;
use super::matmul::{gemm_into, MatRef};
use super::{data, raw, tensor, with_float, Cpu};
use crate::backend::attention::{AttentionDims, AttentionKernels, AttentionMasks};
use crate::backend::storage::CpuData;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};
use rayon::prelude::*;

impl AttentionKernels for Cpu {
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        masks: AttentionMasks<'_>,
        scale: f64,
        drop: Option<&Tensor>,
    ) -> Result<(Tensor, Tensor)> {
        const OP: &str = "scaled_dot_product_attention";
        let d = AttentionDims::of(q, k, v);
        let lead = &q.dims()[..q.rank() - 2];
        let keep_strides = masks.keep.map(|m| mask_strides(m, lead, d.l, d.s));
        let add_strides = masks.add.map(|m| mask_strides(m, lead, d.l, d.s));
        let keep_data = match masks.keep {
            Some(m) => match data(OP, m)? {
                CpuData::Bool(b) => Some(b.as_slice()),
                _ => return Err(Error::invalid(OP, "the keep-mask must be bool")),
            },
            None => None,
        };
        with_float!(OP, q.dtype(), |T| {
            let f = |t| super::slice::<T>(OP, t);
            let (qs, ks, vs) = (f(q)?, f(k)?, f(v)?);
            let ds = drop.map(f).transpose()?;
            let add_data = masks.add.map(|m| raw::<T>(OP, m)).transpose()?;
            let m = Masks {
                causal: masks.causal,
                keep: keep_strides
                    .as_ref()
                    .zip(keep_data)
                    .map(|(st, b)| view(st, b)),
                add: add_strides
                    .as_ref()
                    .zip(add_data)
                    .map(|(st, a)| view(st, a)),
            };
            let (o, p) = forward(&qs, &ks, &vs, d, T::from_f64(scale), m, ds.as_deref());
            Ok((
                tensor(o, with_last(lead, [d.l, d.ev])),
                tensor(p, with_last(lead, [d.l, d.s])),
            ))
        })
    }

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
    ) -> Result<(Tensor, Tensor, Tensor, Option<Tensor>)> {
        const OP: &str = "scaled_dot_product_attention";
        let d = AttentionDims::of(q, k, v);
        with_float!(OP, q.dtype(), |T| {
            let f = |t| super::slice::<T>(OP, t);
            let (qs, ks, vs, ps, gs) = (f(q)?, f(k)?, f(v)?, f(p)?, f(g)?);
            let dr = drop.map(f).transpose()?;
            let (dq, dk, dv, ds) = backward(
                &qs,
                &ks,
                &vs,
                &ps,
                &gs,
                d,
                T::from_f64(scale),
                dr.as_deref(),
                causal,
                want_ds,
            );
            Ok((
                tensor(dq, q.shape().clone()),
                tensor(dk, k.shape().clone()),
                tensor(dv, v.shape().clone()),
                ds.map(|ds| tensor(ds, p.shape().clone())),
            ))
        })
    }
}

/// A mask's data read through the strides `mask_strides` computed.
fn view<'a, U>(
    (offsets, rs, cs): &'a (Vec<usize>, usize, usize),
    data: &'a [U],
) -> MaskView<'a, U> {
    MaskView {
        data,
        offsets,
        row_stride: *rs,
        col_stride: *cs,
    }
}

/// `lead + last`, as a shape.
fn with_last(lead: &[usize], last: [usize; 2]) -> Shape {
    let mut dims = lead.to_vec();
    dims.extend(last);
    Shape::new(&dims)
}

/// Per-head offsets and the row/column strides of `m` broadcast to `lead + [L, S]`.
fn mask_strides(m: &Tensor, lead: &[usize], l: usize, s: usize) -> (Vec<usize>, usize, usize) {
    let full = with_last(lead, [l, s]);
    let view = m.broadcast_view(&full);
    let lay = view.layout();
    let st = &lay.strides;
    let r = full.rank();
    let n: usize = lead.iter().product();
    let offsets = (0..n)
        .map(|h| {
            let mut rest = h;
            let mut off = lay.offset;
            for ax in (0..r - 2).rev() {
                off += (rest % lead[ax]) * st[ax];
                rest /= lead[ax];
            }
            off
        })
        .collect();
    (offsets, st[r - 2], st[r - 1])
}

/// A mask read through strides, so that a broadcast mask (`[B, 1, 1, S]` key padding, or
/// one `[L, S]` for every head) is never expanded: head `n`'s entry `(i, j)` is
/// `data[offsets[n] + i·row_stride + j·col_stride]`.
#[derive(Clone, Copy)]
pub struct MaskView<'a, U> {
    pub data: &'a [U],
    pub offsets: &'a [usize],
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<U: Copy> MaskView<'_, U> {
    #[inline(always)]
    fn at(&self, n: usize, i: usize, j: usize) -> U {
        self.data[self.offsets[n] + i * self.row_stride + j * self.col_stride]
    }
}

/// Everything that shapes the weights besides `Q`, `K`, `V`.
#[derive(Clone, Copy)]
pub struct Masks<'a, T> {
    /// Query `i` sees keys `j ≤ i` only.
    pub causal: bool,
    /// Where attention may look (false → weight 0).
    pub keep: Option<MaskView<'a, bool>>,
    /// Added to the scores.
    pub add: Option<MaskView<'a, T>>,
}

/// Softmax of one score row in place, over the keys that `masks` allow; a row with none
/// left is all zeros.
#[inline(always)]
fn softmax_row<T: Float>(row: &mut [T], n: usize, i: usize, masks: &Masks<'_, T>) {
    let s = row.len();
    let visible = if masks.causal { (i + 1).min(s) } else { s };
    if let Some(add) = &masks.add {
        for (j, v) in row[..visible].iter_mut().enumerate() {
            *v += add.at(n, i, j);
        }
    }
    if let Some(keep) = &masks.keep {
        for (j, v) in row[..visible].iter_mut().enumerate() {
            if !keep.at(n, i, j) {
                *v = T::neg_infinity();
            }
        }
    }
    let max = row[..visible]
        .iter()
        .fold(T::neg_infinity(), |m, &v| if v > m { v } else { m });
    if max == T::neg_infinity() {
        row.iter_mut().for_each(|v| *v = T::zero());
        return;
    }
    let mut sum = T::zero();
    for v in row[..visible].iter_mut() {
        *v = (*v - max).fast_exp();
        sum += *v;
    }
    let inv = T::one() / sum;
    row[..visible].iter_mut().for_each(|v| *v *= inv);
    row[visible..].iter_mut().for_each(|v| *v = T::zero());
}

/// Query rows in blocks: causal attention handles 64 rows at a time so that each block
/// multiplies only by the keys it can see; otherwise all rows at once.
fn row_blocks(l: usize, causal: bool) -> impl Iterator<Item = (usize, usize)> {
    let step = if causal { 64 } else { l.max(1) };
    (0..l).step_by(step).map(move |i0| (i0, (i0 + step).min(l)))
}

/// Row-major `[rows, cols]` block starting at `offset` of `data`.
fn rows<T>(data: &[T], offset: usize, cols: usize) -> MatRef<'_, T> {
    MatRef {
        data,
        offset,
        row_stride: cols,
        col_stride: 1,
    }
}

/// Its transpose, read in place.
fn transposed<T>(data: &[T], offset: usize, cols: usize) -> MatRef<'_, T> {
    MatRef {
        data,
        offset,
        row_stride: 1,
        col_stride: cols,
    }
}

/// Returns `(O, P)`: `P = softmax(scale · Q Kᵀ + masks)` (`[n, l, s]`) and `O = (P ⊙ drop) V`
/// (`[n, l, ev]`). `drop`, if given, is the dropout mask already divided by the keep
/// probability.
#[allow(clippy::too_many_arguments)]
pub fn forward<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    d: AttentionDims,
    scale: T,
    masks: Masks<'_, T>,
    drop: Option<&[T]>,
) -> (Vec<T>, Vec<T>) {
    let AttentionDims { n, l, s, e, ev } = d;
    let mut p = super::buffer_cache::filled(n * l * s, T::zero());
    let mut o = super::buffer_cache::filled(n * l * ev, T::zero());
    if l * s == 0 {
        return (o, p);
    }
    p.par_chunks_mut(l * s)
        .zip(o.par_chunks_mut(l * ev.max(1)))
        .enumerate()
        .for_each_init(Vec::new, |pd, (h, (ph, oh))| {
            let dh = drop.map(|m| &m[h * l * s..(h + 1) * l * s]);
            for (i0, i1) in row_blocks(l, masks.causal) {
                // Causal rows [i0, i1) see keys [0, i1) only: the rest of Q Kᵀ is skipped.
                let kv = if masks.causal { i1.min(s) } else { s };
                let rows_ = i1 - i0;
                gemm_into(
                    rows_,
                    kv,
                    e,
                    &mut ph[i0 * s..],
                    s,
                    false,
                    rows(q, (h * l + i0) * e, e),
                    transposed(k, h * s * e, e),
                    scale,
                );
                for (i, row) in ph[i0 * s..i1 * s].chunks_mut(s).enumerate() {
                    softmax_row(row, h, i0 + i, &masks);
                }
                let weights: &[T] = match dh {
                    Some(m) => {
                        pd.clear();
                        pd.extend(
                            ph[i0 * s..i1 * s]
                                .iter()
                                .zip(&m[i0 * s..i1 * s])
                                .map(|(&a, &b)| a * b),
                        );
                        pd
                    }
                    None => &ph[i0 * s..i1 * s],
                };
                gemm_into(
                    rows_,
                    ev,
                    kv,
                    &mut oh[i0 * ev..i1 * ev],
                    ev,
                    false,
                    rows(weights, 0, s),
                    rows(v, h * s * ev, ev),
                    T::one(),
                );
            }
        });
    (o, p)
}

/// Gradients `(dQ, dK, dV, dS)` from the output gradient `g` (`[n, l, ev]`) and the saved
/// weights `p`; `dS` (the gradient of the scores, i.e. of an additive mask) only when
/// `want_ds`. With `Pd = P ⊙ drop`:
/// `dV = Pdᵀ G`, `dP = (G Vᵀ) ⊙ drop`, `dS = P ⊙ (dP − rowsum(dP ⊙ P))`,
/// `dQ = scale · dS K`, `dK = scale · dSᵀ Q`.
#[allow(clippy::too_many_arguments)]
pub fn backward<T: Float>(
    q: &[T],
    k: &[T],
    v: &[T],
    p: &[T],
    g: &[T],
    d: AttentionDims,
    scale: T,
    drop: Option<&[T]>,
    causal: bool,
    want_ds: bool,
) -> (Vec<T>, Vec<T>, Vec<T>, Option<Vec<T>>) {
    let AttentionDims { n, l, s, e, ev } = d;
    let mut dq = super::buffer_cache::filled(n * l * e, T::zero());
    let mut dk = super::buffer_cache::filled(n * s * e, T::zero());
    let mut dv = super::buffer_cache::filled(n * s * ev, T::zero());
    let mut ds_all = want_ds.then(|| vec![T::zero(); n * l * s]);
    if l * s == 0 {
        return (dq, dk, dv, ds_all);
    }
    let body = |bufs: &mut (Vec<T>, Vec<T>),
                h: usize,
                dqh: &mut [T],
                dkh: &mut [T],
                dvh: &mut [T],
                ds_out: Option<&mut [T]>| {
        let (pd, dp) = bufs;
        let ph = &p[h * l * s..(h + 1) * l * s];
        let dh = drop.map(|m| &m[h * l * s..(h + 1) * l * s]);
        let weights: &[T] = match dh {
            Some(m) => {
                pd.clear();
                pd.extend(ph.iter().zip(m).map(|(&a, &b)| a * b));
                pd
            }
            None => ph,
        };
        dp.clear();
        dp.resize(l * s, T::zero());
        for (i0, i1) in row_blocks(l, causal) {
            let kv = if causal { i1.min(s) } else { s };
            let m_ = i1 - i0;
            let g_rows = rows(g, (h * l + i0) * ev, ev);
            // dV[0..kv] += Pd[i0..i1, 0..kv]ᵀ G[i0..i1]
            gemm_into(
                kv,
                ev,
                m_,
                dvh,
                ev,
                true,
                transposed(weights, i0 * s, s),
                g_rows,
                T::one(),
            );
            // dP = G Vᵀ (⊙ drop), then dS = P ⊙ (dP − rowsum(dP ⊙ P)).
            let dpb = &mut dp[i0 * s..i1 * s];
            gemm_into(
                m_,
                kv,
                ev,
                dpb,
                s,
                false,
                g_rows,
                transposed(v, h * s * ev, ev),
                T::one(),
            );
            if let Some(m) = dh {
                dpb.iter_mut()
                    .zip(&m[i0 * s..i1 * s])
                    .for_each(|(a, &b)| *a *= b);
            }
            for (dpr, pr) in dpb.chunks_mut(s).zip(ph[i0 * s..i1 * s].chunks(s)) {
                let c: T = dpr[..kv].iter().zip(pr).map(|(&a, &b)| a * b).sum();
                dpr[..kv]
                    .iter_mut()
                    .zip(pr)
                    .for_each(|(a, &b)| *a = b * (*a - c));
            }
            let ds = rows(&dp[..], i0 * s, s);
            gemm_into(
                m_,
                e,
                kv,
                &mut dqh[i0 * e..i1 * e],
                e,
                false,
                ds,
                rows(k, h * s * e, e),
                scale,
            );
            gemm_into(
                kv,
                e,
                m_,
                dkh,
                e,
                true,
                transposed(&dp[..], i0 * s, s),
                rows(q, (h * l + i0) * e, e),
                scale,
            );
        }
        if let Some(out) = ds_out {
            out.copy_from_slice(dp);
        }
    };
    let heads = dq
        .par_chunks_mut(l * e.max(1))
        .zip(dk.par_chunks_mut(s * e.max(1)))
        .zip(dv.par_chunks_mut(s * ev.max(1)))
        .enumerate();
    match &mut ds_all {
        Some(ds) => heads.zip(ds.par_chunks_mut(l * s)).for_each_init(
            || (Vec::new(), Vec::new()),
            |bufs, ((h, ((dqh, dkh), dvh)), dsh)| body(bufs, h, dqh, dkh, dvh, Some(dsh)),
        ),
        None => heads.for_each_init(
            || (Vec::new(), Vec::new()),
            |bufs, (h, ((dqh, dkh), dvh))| body(bufs, h, dqh, dkh, dvh, None),
        ),
    }
    (dq, dk, dv, ds_all)
}
