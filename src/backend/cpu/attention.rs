//! Scaled dot-product attention on the CPU as flash attention (Dao et al. 2022, the
//! FlashAttention-2 loop order), forward and backward, one (batch, head) per task.
//!
//! The forward walks each block of `BR` query rows over blocks of `BC` keys: the score tile
//! `S = scale · Q Kᵀ` lives in a small buffer that stays in L1/L2, the masks apply to it, and
//! an *online softmax* keeps each row's running maximum `m` and sum `l`, rescaling the output
//! rows already accumulated when the maximum grows. Causal attention skips every tile above
//! the diagonal. Only `O` and each row's log-sum-exp `m + ln l` are written: memory is O(n·d)
//! per head, never the n×n weights.
//!
//! The backward recomputes each tile's weights exactly as `P = exp(S − lse)` and accumulates
//! `dV`, `dQ` and `dK` tile by tile (formulas in `backend/attention.rs`). Dropout draws each
//! tile's mask from the Philox stream of its seed (`random.rs`), the same elements a whole
//! mask of the weights' shape would have.

use super::float::Float;
use super::lanes::{axpy, dot, max, sum_map};
use super::matmul::{gemm_into, MatRef};
use super::random::philox;
use super::simd::widest_fn;
use super::{data, raw, tensor, with_float, Cpu};
use crate::backend::attention::{
    AttentionDims, AttentionDropout, AttentionForward, AttentionGrads, AttentionKernels,
    AttentionMasks, AttentionPattern,
};
use crate::backend::random::keep_threshold;
use crate::backend::storage::CpuData;
use crate::error::{Error, Result};
use crate::tensor::{Shape, Tensor};
use rayon::prelude::*;

/// Query rows per block and keys per tile: a 64×64 score tile is 16 KB in f32.
const BR: usize = 64;
const BC: usize = 256;

const OP: &str = "scaled_dot_product_attention";

impl AttentionKernels for Cpu {
    fn attention(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        masks: AttentionMasks<'_>,
        scale: f64,
        dropout: Option<AttentionDropout>,
    ) -> Result<AttentionForward> {
        let d = AttentionDims::of(q, k, v);
        let lead = &q.dims()[..q.rank() - 2];
        let strides = MaskStrides::of(&masks, lead, d);
        with_float!(OP, q.dtype(), |T| {
            let f = |t| super::slice::<T>(OP, t);
            let (qs, ks, vs) = (f(q)?, f(k)?, f(v)?);
            let inputs = Inputs {
                q: &qs,
                k: &ks,
                v: &vs,
                d,
                scale: T::from_f64(scale),
                masks: strides.views::<T>(&masks)?,
                drop: dropout.map(Drop::new),
            };
            let (o, lse) = forward(&inputs);
            Ok(AttentionForward {
                o: tensor(o, with_last(lead, &[d.l, d.ev])),
                saved: tensor(lse, with_last(lead, &[d.l])),
            })
        })
    }

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
    ) -> Result<AttentionGrads> {
        let d = AttentionDims::of(q, k, v);
        let lead = &q.dims()[..q.rank() - 2];
        let strides = MaskStrides::of(&masks, lead, d);
        with_float!(OP, q.dtype(), |T| {
            let f = |t| super::slice::<T>(OP, t);
            let (qs, ks, vs, os, gs) = (f(q)?, f(k)?, f(v)?, f(&fwd.o)?, f(g)?);
            let lse = f(&fwd.saved)?;
            let inputs = Inputs {
                q: &qs,
                k: &ks,
                v: &vs,
                d,
                scale: T::from_f64(scale),
                masks: strides.views::<T>(&masks)?,
                drop: dropout.map(Drop::new),
            };
            let (dq, dk, dv, ds) = backward(&inputs, &os, &lse, &gs, want_ds);
            Ok(AttentionGrads {
                dq: tensor(dq, q.shape().clone()),
                dk: tensor(dk, k.shape().clone()),
                dv: tensor(dv, v.shape().clone()),
                ds: ds.map(|ds| tensor(ds, with_last(lead, &[d.l, d.s]))),
            })
        })
    }
}

/// `lead + last`, as a shape.
fn with_last(lead: &[usize], last: &[usize]) -> Shape {
    let mut dims = lead.to_vec();
    dims.extend_from_slice(last);
    Shape::new(&dims)
}

/// The strides of both masks broadcast to the scores `lead + [L, S]`.
struct MaskStrides {
    keep: Option<(Vec<usize>, usize, usize)>,
    add: Option<(Vec<usize>, usize, usize)>,
}

impl MaskStrides {
    fn of(masks: &AttentionMasks<'_>, lead: &[usize], d: AttentionDims) -> Self {
        MaskStrides {
            keep: masks.keep.map(|m| mask_strides(m, lead, d.l, d.s)),
            add: masks.add.map(|m| mask_strides(m, lead, d.l, d.s)),
        }
    }

    fn views<'a, T: Float>(&'a self, masks: &AttentionMasks<'a>) -> Result<Masks<'a, T>> {
        let keep = match masks.keep {
            Some(m) => match data(OP, m)? {
                CpuData::Bool(b) => Some(b.as_slice()),
                _ => return Err(Error::invalid(OP, "the keep-mask must be bool")),
            },
            None => None,
        };
        let add = masks.add.map(|m| raw::<T>(OP, m)).transpose()?;
        Ok(Masks {
            causal: masks.causal,
            pattern: masks.pattern,
            keep: self.keep.as_ref().zip(keep).map(|(st, b)| view(st, b)),
            add: self.add.as_ref().zip(add).map(|(st, a)| view(st, a)),
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

/// Per-head offsets and the row/column strides of `m` broadcast to `lead + [L, S]`.
fn mask_strides(m: &Tensor, lead: &[usize], l: usize, s: usize) -> (Vec<usize>, usize, usize) {
    let full = with_last(lead, &[l, s]);
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
    /// The sparse pattern: the tiles outside its band are skipped.
    pub pattern: AttentionPattern,
    /// Where attention may look (false → weight 0).
    pub keep: Option<MaskView<'a, bool>>,
    /// Added to the scores.
    pub add: Option<MaskView<'a, T>>,
}

/// Dropout as the tiles need it: the Philox seed, the keep threshold and the kept weights'
/// scale `1/(1 − p)`.
#[derive(Clone, Copy)]
pub struct Drop {
    seed: u64,
    threshold: u32,
    scale: f64,
}

impl Drop {
    fn new(d: AttentionDropout) -> Self {
        Drop {
            seed: d.seed,
            threshold: keep_threshold(d.p),
            scale: 1.0 / (1.0 - d.p),
        }
    }

    /// The mask values (`0` or `1/(1−p)`) of `out.len()` consecutive weights starting at flat
    /// element `first` of the weights `[n, l, s]`.
    fn fill<T: Float>(&self, first: usize, out: &mut [T]) {
        let scale = T::from_f64(self.scale);
        let mut block = usize::MAX;
        let mut words = [0u32; 4];
        for (x, o) in out.iter_mut().enumerate() {
            let idx = first + x;
            if idx / 4 != block {
                block = idx / 4;
                words = philox(block as u32, 0, self.seed);
            }
            *o = if (words[idx % 4] >> 8) < self.threshold {
                scale
            } else {
                T::zero()
            };
        }
    }
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

/// `[start, end)` blocks of `size` covering `lo..hi`.
fn blocks(lo: usize, hi: usize, size: usize) -> impl Iterator<Item = (usize, usize)> {
    (lo..hi).step_by(size).map(move |a| (a, (a + size).min(hi)))
}

/// What both passes read.
pub struct Inputs<'a, T> {
    pub q: &'a [T],
    pub k: &'a [T],
    pub v: &'a [T],
    pub d: AttentionDims,
    pub scale: T,
    pub masks: Masks<'a, T>,
    pub drop: Option<Drop>,
}

impl<T: Float> Inputs<'_, T> {
    /// The contiguous keys `[lo, hi)` that query rows `[i0, i1)` may see: causal rows stop
    /// at the diagonal, a banded pattern keeps the band around it.
    fn key_range(&self, i0: usize, i1: usize) -> (usize, usize) {
        let s = self.d.s;
        let hi = if self.masks.causal { i1.min(s) } else { s };
        match self.masks.pattern.band() {
            None => (0, hi),
            Some(b) => {
                let hi = if self.masks.causal {
                    hi
                } else {
                    (i1 + b).min(s)
                };
                (i0.saturating_sub(b).min(hi), hi)
            }
        }
    }

    /// The keys of query `i` beyond the band: the strided pattern's every `stride`-th key
    /// before it (and after it, unless causal), or the fixed pattern's summary keys of the
    /// other blocks. One concrete iterator for both (the other pattern's part is empty), so
    /// that no row allocates.
    fn extra_keys(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let (s, causal) = (self.d.s, self.masks.causal);
        let strided = match self.masks.pattern {
            AttentionPattern::Strided { stride } => Some(stride.max(1)),
            _ => None,
        };
        let fixed = match self.masks.pattern {
            AttentionPattern::Fixed { stride, summary } => {
                let l = stride.max(1);
                Some((l, summary.min(l)))
            }
            _ => None,
        };
        let strided_keys = strided.into_iter().flat_map(move |stride| {
            let before = (1..)
                .map(move |m| m * stride)
                .take_while(move |&d| d <= i)
                .map(move |d| i - d);
            let after = (1..)
                .map(move |m| i + m * stride)
                .take_while(move |&j| !causal && j < s);
            before.filter(move |&j| j < s).chain(after)
        });
        let end = if causal { (i + 1).min(s) } else { s };
        // Summary keys, block by block, outside the band |i − j| < l.
        let fixed_keys = fixed.into_iter().flat_map(move |(l, c)| {
            (0..end.div_ceil(l))
                .flat_map(move |b| (b * l + l - c)..(b * l + l))
                .filter(move |&j| j < end && i.abs_diff(j) >= l)
        });
        strided_keys.chain(fixed_keys)
    }

    /// The score of query `i` and key `j` alone (for the strided pattern's extra keys): −∞
    /// where a mask hides it.
    fn score(&self, h: usize, i: usize, j: usize) -> T {
        let AttentionDims { l, s, e, .. } = self.d;
        let (qi, kj) = (
            &self.q[(h * l + i) * e..(h * l + i + 1) * e],
            &self.k[(h * s + j) * e..(h * s + j + 1) * e],
        );
        let mut x = dot(qi, kj) * self.scale;
        if let Some(add) = &self.masks.add {
            x += add.at(h, i, j);
        }
        if let Some(keep) = &self.masks.keep {
            if !keep.at(h, i, j) {
                x = T::neg_infinity();
            }
        }
        x
    }

    /// The dropout factor of one weight (1 without dropout).
    fn drop_at(&self, h: usize, i: usize, j: usize) -> T {
        match &self.drop {
            Some(drop) => {
                let mut one = [T::zero()];
                drop.fill((h * self.d.l + i) * self.d.s + j, &mut one);
                one[0]
            }
            None => T::one(),
        }
    }

    /// The score tile of head `h`, query rows `[i0, i1)` and keys `[j0, j1)`, into `st`
    /// (row stride `j1 − j0`): `scale · Q Kᵀ`, plus the additive mask, with −∞ where a mask
    /// or causality hides a key.
    fn scores(&self, h: usize, (i0, i1): (usize, usize), (j0, j1): (usize, usize), st: &mut [T]) {
        let AttentionDims { l, s, e, .. } = self.d;
        let cols = j1 - j0;
        gemm_into(
            i1 - i0,
            cols,
            e,
            st,
            cols,
            false,
            rows(self.q, (h * l + i0) * e, e),
            transposed(self.k, (h * s + j0) * e, e),
            self.scale,
        );
        let m = &self.masks;
        for (r, row) in st[..(i1 - i0) * cols].chunks_mut(cols).enumerate() {
            let i = i0 + r;
            if let Some(add) = &m.add {
                for (c, x) in row.iter_mut().enumerate() {
                    *x += add.at(h, i, j0 + c);
                }
            }
            if let Some(keep) = &m.keep {
                for (c, x) in row.iter_mut().enumerate() {
                    if !keep.at(h, i, j0 + c) {
                        *x = T::neg_infinity();
                    }
                }
            }
            // Keys after the query (causal), or outside the band.
            let mut last = if m.causal { i + 1 } else { j1 };
            let mut first = j0;
            if let Some(b) = m.pattern.band() {
                last = last.min(i + b + 1);
                first = first.max(i.saturating_sub(b));
            }
            let (first, last) = (first.clamp(j0, j1) - j0, last.clamp(j0, j1) - j0);
            let last = last.max(first);
            row[..first].iter_mut().for_each(|x| *x = T::neg_infinity());
            row[last..].iter_mut().for_each(|x| *x = T::neg_infinity());
            // Inside the band, the fixed pattern sees its own block and the summaries only.
            if let AttentionPattern::Fixed { .. } = m.pattern {
                for (c, x) in row.iter_mut().enumerate().take(last).skip(first) {
                    if !m.pattern.allows(i, j0 + c, m.causal) {
                        *x = T::neg_infinity();
                    }
                }
            }
        }
    }

    /// The dropout mask of the tile, when dropout is on.
    fn drop_tile(
        &self,
        h: usize,
        (i0, i1): (usize, usize),
        (j0, j1): (usize, usize),
        out: &mut [T],
    ) {
        let Some(drop) = &self.drop else { return };
        let AttentionDims { l, s, .. } = self.d;
        let cols = j1 - j0;
        for (r, row) in out[..(i1 - i0) * cols].chunks_mut(cols).enumerate() {
            drop.fill((h * l + i0 + r) * s + j0, row);
        }
    }
}

/// Per-thread tiles: scores/weights, their gradient, the dropout mask.
struct Scratch<T> {
    st: Vec<T>,
    dp: Vec<T>,
    dm: Vec<T>,
    m: Vec<T>,
    sum: Vec<T>,
    /// The strided pattern's extra keys of one row and their scores.
    extra: Vec<(usize, T)>,
}

impl<T: Float> Scratch<T> {
    fn new() -> Self {
        Scratch {
            st: vec![T::zero(); BR * BC],
            dp: vec![T::zero(); BR * BC],
            dm: vec![T::zero(); BR * BC],
            m: vec![T::zero(); BR],
            sum: vec![T::zero(); BR],
            extra: Vec::new(),
        }
    }
}

/// Returns `(O, lse)`: `O` `[n, l, ev]` and each row's log-sum-exp of its scores `[n, l]`
/// (−∞ for a row every mask hides, whose output is 0).
pub fn forward<T: Float>(inputs: &Inputs<'_, T>) -> (Vec<T>, Vec<T>) {
    let AttentionDims { n, l, ev, .. } = inputs.d;
    // Zeroed: the output rows are the accumulators.
    let mut o = super::buffer_cache::filled(n * l * ev, T::zero());
    let mut lse = vec![T::neg_infinity(); n * l];
    if l == 0 || ev == 0 {
        return (o, lse);
    }
    o.par_chunks_mut(l * ev)
        .zip(lse.par_chunks_mut(l))
        .enumerate()
        .for_each_init(Scratch::new, |sc, (h, (oh, lh))| {
            forward_head_widest(inputs, h, oh, lh, sc)
        });
    (o, lse)
}

widest_fn!(fn forward_head_widest<T: Float>(
    x: &Inputs<'_, T>,
    h: usize,
    oh: &mut [T],
    lh: &mut [T],
    sc: &mut Scratch<T>,
) => forward_head);

#[inline(always)]
fn forward_head<T: Float>(
    x: &Inputs<'_, T>,
    h: usize,
    oh: &mut [T],
    lh: &mut [T],
    sc: &mut Scratch<T>,
) {
    let AttentionDims { s, ev, .. } = x.d;
    for (i0, i1) in blocks(0, x.d.l, BR) {
        let nr = i1 - i0;
        sc.m[..nr].fill(T::neg_infinity());
        sc.sum[..nr].fill(T::zero());
        let (lo, hi) = x.key_range(i0, i1);
        for (j0, j1) in blocks(lo, hi, BC) {
            let cols = j1 - j0;
            x.scores(h, (i0, i1), (j0, j1), &mut sc.st);
            x.drop_tile(h, (i0, i1), (j0, j1), &mut sc.dm);
            // ANCHOR: online_softmax
            for r in 0..nr {
                let row = &mut sc.st[r * cols..(r + 1) * cols];
                let new_m = max(row).max(sc.m[r]);
                if new_m == T::neg_infinity() {
                    // Nothing visible in this row yet: its weights here are 0.
                    row.fill(T::zero());
                    continue;
                }
                // Rescale what the row accumulated under its old maximum.
                let alpha = (sc.m[r] - new_m).fast_exp();
                for x in row.iter_mut() {
                    *x = (*x - new_m).fast_exp();
                }
                sc.sum[r] = sc.sum[r] * alpha + sum_map(row, |p| p);
                sc.m[r] = new_m;
                if alpha != T::one() {
                    let orow = &mut oh[(i0 + r) * ev..(i0 + r + 1) * ev];
                    orow.iter_mut().for_each(|o| *o *= alpha);
                }
                if x.drop.is_some() {
                    let mask = &sc.dm[r * cols..(r + 1) * cols];
                    row.iter_mut().zip(mask).for_each(|(p, &m)| *p *= m);
                }
            }
            // ANCHOR_END: online_softmax
            // O[i0..i1] += P V[j0..j1]
            gemm_into(
                nr,
                ev,
                cols,
                &mut oh[i0 * ev..i1 * ev],
                ev,
                true,
                rows(&sc.st, 0, cols),
                rows(x.v, (h * s + j0) * ev, ev),
                T::one(),
            );
        }
        if x.masks.pattern.has_far_keys() {
            for r in 0..nr {
                forward_extra(
                    x,
                    h,
                    i0 + r,
                    &mut oh[(i0 + r) * ev..(i0 + r + 1) * ev],
                    sc,
                    r,
                );
            }
        }
        for r in 0..nr {
            let total = sc.sum[r];
            let orow = &mut oh[(i0 + r) * ev..(i0 + r + 1) * ev];
            if total > T::zero() {
                let inv = T::one() / total;
                orow.iter_mut().for_each(|o| *o *= inv);
                lh[i0 + r] = sc.m[r] + total.ln();
            } else {
                orow.fill(T::zero());
                lh[i0 + r] = T::neg_infinity();
            }
        }
    }
}

/// Gradients `(dQ, dK, dV, dS)` from the output gradient `g` (`[n, l, ev]`), the forward's
/// output `o` and log-sum-exps `lse`; `dS` (`[n, l, s]`) only when `want_ds`.
pub fn backward<T: Float>(
    x: &Inputs<'_, T>,
    o: &[T],
    lse: &[T],
    g: &[T],
    want_ds: bool,
) -> (Vec<T>, Vec<T>, Vec<T>, Option<Vec<T>>) {
    let AttentionDims { n, l, s, e, ev } = x.d;
    // Zeroed: every tile adds into them.
    let mut dq = super::buffer_cache::filled(n * l * e, T::zero());
    let mut dk = super::buffer_cache::filled(n * s * e, T::zero());
    let mut dv = super::buffer_cache::filled(n * s * ev, T::zero());
    let mut ds_all = want_ds.then(|| vec![T::zero(); n * l * s]);
    if l * s == 0 {
        return (dq, dk, dv, ds_all);
    }
    let heads = dq
        .par_chunks_mut(l * e.max(1))
        .zip(dk.par_chunks_mut(s * e.max(1)))
        .zip(dv.par_chunks_mut(s * ev.max(1)))
        .enumerate();
    let run = |sc: &mut Scratch<T>, h, dqh: &mut [T], dkh: &mut [T], dvh: &mut [T], dsh| {
        backward_head_widest(x, o, lse, g, h, (dqh, dkh, dvh, dsh), sc)
    };
    match &mut ds_all {
        Some(ds) => heads
            .zip(ds.par_chunks_mut(l * s))
            .for_each_init(Scratch::new, |sc, ((h, ((dqh, dkh), dvh)), dsh)| {
                run(sc, h, dqh, dkh, dvh, Some(dsh))
            }),
        None => heads.for_each_init(Scratch::new, |sc, (h, ((dqh, dkh), dvh))| {
            run(sc, h, dqh, dkh, dvh, None)
        }),
    }
    (dq, dk, dv, ds_all)
}

type HeadGrads<'a, T> = (&'a mut [T], &'a mut [T], &'a mut [T], Option<&'a mut [T]>);

widest_fn!(fn backward_head_widest<T: Float>(
    x: &Inputs<'_, T>,
    o: &[T],
    lse: &[T],
    g: &[T],
    h: usize,
    grads: HeadGrads<'_, T>,
    sc: &mut Scratch<T>,
) => backward_head);

#[inline(always)]
fn backward_head<T: Float>(
    x: &Inputs<'_, T>,
    o: &[T],
    lse: &[T],
    g: &[T],
    h: usize,
    (dqh, dkh, dvh, mut dsh): HeadGrads<'_, T>,
    sc: &mut Scratch<T>,
) {
    let AttentionDims { l, s, e, ev, .. } = x.d;
    for (i0, i1) in blocks(0, l, BR) {
        let nr = i1 - i0;
        // rowsum(G ⊙ O) of each query row, and the shift that turns its scores into weights
        // (+∞ for a fully hidden row, whose weights are then all 0).
        for r in 0..nr {
            let at = (h * l + i0 + r) * ev;
            sc.sum[r] = dot(&g[at..at + ev], &o[at..at + ev]);
            let z = lse[h * l + i0 + r];
            sc.m[r] = if z == T::neg_infinity() {
                T::infinity()
            } else {
                z
            };
        }
        let g_rows = rows(g, (h * l + i0) * ev, ev);
        let (lo, hi) = x.key_range(i0, i1);
        for (j0, j1) in blocks(lo, hi, BC) {
            let cols = j1 - j0;
            x.scores(h, (i0, i1), (j0, j1), &mut sc.st);
            for r in 0..nr {
                let shift = sc.m[r];
                for p in sc.st[r * cols..(r + 1) * cols].iter_mut() {
                    *p = (*p - shift).fast_exp();
                }
            }
            let tile = nr * cols;
            // The dropped weights P ⊙ D go to dV; keep P itself for dS.
            let weights: &[T] = if x.drop.is_some() {
                x.drop_tile(h, (i0, i1), (j0, j1), &mut sc.dm);
                for (dp, (&p, &m)) in sc.dp[..tile].iter_mut().zip(sc.st.iter().zip(&sc.dm)) {
                    *dp = p * m;
                }
                &sc.dp
            } else {
                &sc.st
            };
            // dV[j0..j1] += (P ⊙ D)ᵀ G[i0..i1]
            gemm_into(
                cols,
                ev,
                nr,
                &mut dvh[j0 * ev..j1 * ev],
                ev,
                true,
                transposed(weights, 0, cols),
                g_rows,
                T::one(),
            );
            // dP = (G Vᵀ) ⊙ D, then dS = P ⊙ (dP − rowsum(G ⊙ O)), in place.
            gemm_into(
                nr,
                cols,
                ev,
                &mut sc.dp,
                cols,
                false,
                g_rows,
                transposed(x.v, (h * s + j0) * ev, ev),
                T::one(),
            );
            if x.drop.is_some() {
                for (a, &m) in sc.dp[..tile].iter_mut().zip(&sc.dm) {
                    *a *= m;
                }
            }
            for r in 0..nr {
                let c = sc.sum[r];
                let (dpr, pr) = (
                    &mut sc.dp[r * cols..(r + 1) * cols],
                    &sc.st[r * cols..(r + 1) * cols],
                );
                for (a, &p) in dpr.iter_mut().zip(pr) {
                    *a = p * (*a - c);
                }
                if let Some(ds) = dsh.as_deref_mut() {
                    ds[(i0 + r) * s + j0..(i0 + r) * s + j1].copy_from_slice(dpr);
                }
            }
            // dQ[i0..i1] += scale · dS K[j0..j1];  dK[j0..j1] += scale · dSᵀ Q[i0..i1]
            gemm_into(
                nr,
                e,
                cols,
                &mut dqh[i0 * e..i1 * e],
                e,
                true,
                rows(&sc.dp, 0, cols),
                rows(x.k, (h * s + j0) * e, e),
                x.scale,
            );
            gemm_into(
                cols,
                e,
                nr,
                &mut dkh[j0 * e..j1 * e],
                e,
                true,
                transposed(&sc.dp, 0, cols),
                rows(x.q, (h * l + i0) * e, e),
                x.scale,
            );
        }
        // After the tiles, whose dS rows (zeros outside the band) must not overwrite these.
        if x.masks.pattern.has_far_keys() {
            for r in 0..nr {
                let grads = (&mut *dqh, &mut *dkh, &mut *dvh, dsh.as_deref_mut());
                backward_extra(x, g, h, i0 + r, (sc.m[r], sc.sum[r]), grads);
            }
        }
    }
}

/// The strided pattern's keys beyond the band, for query `i` of head `h`: their scores join
/// the row's online softmax (`sc.m[r]`, `sc.sum[r]`) and their weighted values its output row.
fn forward_extra<T: Float>(
    x: &Inputs<'_, T>,
    h: usize,
    i: usize,
    orow: &mut [T],
    sc: &mut Scratch<T>,
    r: usize,
) {
    let AttentionDims { s, ev, .. } = x.d;
    sc.extra.clear();
    sc.extra
        .extend(x.extra_keys(i).map(|j| (j, x.score(h, i, j))));
    let top = sc
        .extra
        .iter()
        .fold(T::neg_infinity(), |m, &(_, v)| if v > m { v } else { m });
    let new_m = if top > sc.m[r] { top } else { sc.m[r] };
    if new_m == T::neg_infinity() {
        return;
    }
    let alpha = (sc.m[r] - new_m).fast_exp();
    orow.iter_mut().for_each(|o| *o *= alpha);
    let mut sum = sc.sum[r] * alpha;
    for &(j, v) in &sc.extra {
        let p = (v - new_m).fast_exp();
        sum += p;
        let pd = p * x.drop_at(h, i, j);
        axpy(pd, &x.v[(h * s + j) * ev..(h * s + j + 1) * ev], orow);
    }
    sc.sum[r] = sum;
    sc.m[r] = new_m;
}

/// The gradients through the strided pattern's extra keys of query `i`, given the row's
/// shift (its log-sum-exp, +∞ for a hidden row) and `rowsum(G ⊙ O)`.
fn backward_extra<T: Float>(
    x: &Inputs<'_, T>,
    g: &[T],
    h: usize,
    i: usize,
    (shift, d_i): (T, T),
    (dqh, dkh, dvh, mut dsh): HeadGrads<'_, T>,
) {
    let AttentionDims { l, s, e, ev, .. } = x.d;
    let gi = &g[(h * l + i) * ev..(h * l + i + 1) * ev];
    let qi = &x.q[(h * l + i) * e..(h * l + i + 1) * e];
    for j in x.extra_keys(i) {
        let p = (x.score(h, i, j) - shift).fast_exp();
        if p == T::zero() {
            continue;
        }
        let drop = x.drop_at(h, i, j);
        let vj = &x.v[(h * s + j) * ev..(h * s + j + 1) * ev];
        axpy(p * drop, gi, &mut dvh[j * ev..(j + 1) * ev]);
        let ds = p * (dot(gi, vj) * drop - d_i);
        if let Some(out) = dsh.as_deref_mut() {
            out[i * s + j] = ds;
        }
        let kj = &x.k[(h * s + j) * e..(h * s + j + 1) * e];
        axpy(x.scale * ds, kj, &mut dqh[i * e..(i + 1) * e]);
        axpy(x.scale * ds, qi, &mut dkh[j * e..(j + 1) * e]);
    }
}
