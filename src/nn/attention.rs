//! Scaled dot-product attention as one fused op, with PyTorch's
//! `F.scaled_dot_product_attention` semantics:
//!
//! ```text
//! S = Q Kᵀ · scale + additive_mask      scale = 1/√E by default
//! P = softmax(S) over keys, where `keep` is true (false → weight 0)
//! O = dropout(P) V
//! ```
//!
//! The op keeps `P` for its backward (the one n×n matrix per head the backward needs) and
//! not `S`. A fully masked row gives zeros, not NaN as in PyTorch (see `softmax`).

use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::attention as kernel;
use crate::error::{Error, OrPanic, Result};
use crate::ops::{from_float, same_kind, sum_to_shape, with_float, UnaryKind};
use crate::tensor::{CpuData, DType, Float, Shape, Tensor};
use std::cell::RefCell;
use std::rc::Rc;

/// Masks and options of [`try_scaled_dot_product_attention`].
#[derive(Clone, Default)]
pub struct SdpaOptions {
    /// As PyTorch's `attn_mask`: a bool mask (true = may attend) or a float mask added to
    /// the scores; either broadcasts to `[..., L, S]`. A float mask gets a gradient.
    pub attn_mask: Option<Tensor>,
    /// Query `i` attends to keys `j ≤ i` only (top-left aligned, as PyTorch).
    pub is_causal: bool,
    /// Probability of zeroing an attention weight (inverted dropout); 0 in evaluation.
    pub dropout_p: f64,
    /// Defaults to `1/√E`.
    pub scale: Option<f64>,
}

pub(crate) type WeightsStash = Rc<RefCell<Option<Tensor>>>;

/// Inputs: `q`, `k`, `v` (contiguous, with the same leading dims), then the additive float
/// mask when there is one.
struct Sdpa {
    scale: f64,
    causal: bool,
    /// Bool mask that broadcasts to the scores' shape: where attention may look.
    keep: Option<Tensor>,
    /// Shape of the additive mask, when there is one (its gradient is summed back to it).
    add_shape: Option<Shape>,
    dropout_p: f64,
    /// Where `MultiheadAttention` wants the weights for `need_weights`.
    stash: Option<WeightsStash>,
}

fn slice<T: Float>(t: &Tensor) -> Result<std::borrow::Cow<'_, [T]>> {
    t.float_slice::<T>("scaled_dot_product_attention")
}

/// The leading dims of `q` and the kernel's sizes.
fn dims_of(q: &Tensor, k: &Tensor, v: &Tensor) -> (Vec<usize>, kernel::Dims) {
    let r = q.rank();
    let lead = q.dims()[..r - 2].to_vec();
    let d = kernel::Dims {
        n: lead.iter().product(),
        l: q.dims()[r - 2],
        s: k.dims()[r - 2],
        e: q.dims()[r - 1],
        ev: v.dims()[r - 1],
    };
    (lead, d)
}

/// Per-head offsets and the row/column strides of `m` broadcast to `lead + [L, S]`.
fn mask_strides(m: &Tensor, lead: &[usize], l: usize, s: usize) -> (Vec<usize>, usize, usize) {
    let mut full = lead.to_vec();
    full.extend([l, s]);
    let view = m.broadcast_view(&Shape::new(&full));
    let lay = view.layout();
    let st = &lay.strides;
    let r = full.len();
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

impl Op for Sdpa {
    fn name(&self) -> &'static str {
        "scaled_dot_product_attention"
    }

    /// Saves `q`, `k`, `v`, the weights `P` and, with dropout, the rescaled dropout mask:
    /// `P` is the one n×n matrix per head that the backward needs (the scores are not kept).
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
        let (lead, d) = dims_of(q, k, v);
        let drop = (self.dropout_p > 0.0).then(|| {
            let mut shape = lead.clone();
            shape.extend([d.l, d.s]);
            Tensor::bernoulli(shape, 1.0 - self.dropout_p)
                .to_dtype(q.dtype())
                .mul_scalar(1.0 / (1.0 - self.dropout_p))
        });
        let add = inputs.get(3);
        if q.cube().is_some() {
            return self.forward_on_device(q, k, v, add.copied(), drop, &lead, d);
        }
        let keep_strides = self.keep.as_ref().map(|m| mask_strides(m, &lead, d.l, d.s));
        let add_strides = add.map(|m| mask_strides(m, &lead, d.l, d.s));
        let (o, p) = with_float!("scaled_dot_product_attention", q.dtype(), |T| {
            let f = slice::<T>;
            let (qs, ks, vs) = (f(q)?, f(k)?, f(v)?);
            let ds = drop.as_ref().map(f).transpose()?;
            let keep_data = match &self.keep {
                Some(m) => match m.raw_data("scaled_dot_product_attention")? {
                    CpuData::Bool(b) => Some(b.as_slice()),
                    _ => unreachable!("keep masks are bool"),
                },
                None => None,
            };
            let add_data = add
                .map(|m| m.raw::<T>("scaled_dot_product_attention"))
                .transpose()?;
            let masks = kernel::Masks {
                causal: self.causal,
                keep: keep_strides
                    .as_ref()
                    .zip(keep_data)
                    .map(|((o, rs, cs), data)| kernel::MaskView {
                        data,
                        offsets: o,
                        row_stride: *rs,
                        col_stride: *cs,
                    }),
                add: add_strides
                    .as_ref()
                    .zip(add_data)
                    .map(|((o, rs, cs), data)| kernel::MaskView {
                        data,
                        offsets: o,
                        row_stride: *rs,
                        col_stride: *cs,
                    }),
            };
            let (o, p) = kernel::forward(
                &qs,
                &ks,
                &vs,
                d,
                T::from_f64(self.scale),
                masks,
                ds.as_deref(),
            );
            let mut os = lead.clone();
            os.extend([d.l, d.ev]);
            let mut ps = lead.clone();
            ps.extend([d.l, d.s]);
            Ok((from_float(o, os.into()), from_float(p, ps.into())))
        })?;
        if let Some(stash) = &self.stash {
            let w = match &drop {
                Some(m) => p.try_mul(m)?,
                None => p.clone(),
            };
            *stash.borrow_mut() = Some(w);
        }
        let mut saved = vec![q.clone(), k.clone(), v.clone(), p];
        saved.extend(drop);
        Ok(Forward::new(o, saved))
    }

    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (q, k, v, p) = (&saved[0], &saved[1], &saved[2], &saved[3]);
        let drop = saved.get(4);
        let g = g.try_contiguous()?;
        let (lead, d) = dims_of(q, k, v);
        let want_ds = self.add_shape.is_some() && needs.get(3).copied().unwrap_or(false);
        if q.cube().is_some() {
            return self.backward_on_device(q, k, v, p, drop, &g, want_ds);
        }
        with_float!("scaled_dot_product_attention", q.dtype(), |T| {
            let f = slice::<T>;
            let (qs, ks, vs, ps, gs) = (f(q)?, f(k)?, f(v)?, f(p)?, f(&g)?);
            let dr = drop.map(f).transpose()?;
            let (dq, dk, dv, ds) = kernel::backward(
                &qs,
                &ks,
                &vs,
                &ps,
                &gs,
                d,
                T::from_f64(self.scale),
                dr.as_deref(),
                self.causal,
                want_ds,
            );
            let mut out = vec![
                Some(from_float(dq, q.shape().clone())),
                Some(from_float(dk, k.shape().clone())),
                Some(from_float(dv, v.shape().clone())),
            ];
            if let Some(shape) = &self.add_shape {
                let grad = match ds {
                    Some(ds) => {
                        let mut full = lead.clone();
                        full.extend([d.l, d.s]);
                        Some(sum_to_shape(&from_float(ds, full.into()), shape)?)
                    }
                    None => None,
                };
                out.push(grad);
            }
            Ok(out)
        })
    }
}

/// On a CubeCL device the op runs as device matmuls around the masked-softmax kernel, with
/// the same math, the same saved tensors and the same hand-written backward as the CPU loops.
/// The masks are small next to the scores: a CPU one is uploaded, the causal one is built on
/// the host, and the dropout mask is drawn on the host and uploaded.
impl Sdpa {
    #[allow(clippy::too_many_arguments)]
    fn forward_on_device(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        add: Option<&Tensor>,
        drop: Option<Tensor>,
        lead: &[usize],
        d: kernel::Dims,
    ) -> Result<Forward> {
        let device = q.device();
        let mut scores = q
            .try_matmul(&k.try_transpose(-2, -1)?)?
            .try_unary(UnaryKind::Affine {
                scale: self.scale,
                shift: 0.0,
            })?;
        if let Some(a) = add {
            scores = scores.try_add(a)?;
        }
        let keep = self.device_keep(scores.shape(), d, device)?;
        let p = crate::backend::cube::ops::softmax_rows(&scores, keep.as_ref(), false)?;
        let drop = drop.map(|m| m.try_to_device(device)).transpose()?;
        let weights = match &drop {
            Some(m) => p.try_mul(m)?,
            None => p.clone(),
        };
        let o = weights.try_matmul(v)?;
        if let Some(stash) = &self.stash {
            *stash.borrow_mut() = Some(weights);
        }
        debug_assert_eq!(&o.dims()[..lead.len()], lead);
        let mut saved = vec![q.clone(), k.clone(), v.clone(), p];
        saved.extend(drop);
        Ok(Forward::new(o, saved))
    }

    /// The keep-mask (bool, the scores' shape) on `device`: the user's mask and the causal
    /// one, combined with a product when both are given.
    fn device_keep(
        &self,
        scores: &Shape,
        d: kernel::Dims,
        device: crate::tensor::Device,
    ) -> Result<Option<Tensor>> {
        let causal = self
            .causal
            .then(|| causal_mask(d.l, d.s).try_to_device(device))
            .transpose()?;
        let user = self
            .keep
            .as_ref()
            .map(|m| m.try_to_device(device))
            .transpose()?;
        let keep = match (causal, user) {
            (Some(a), Some(b)) => {
                let product = a.to_dtype(DType::F32).try_mul(&b.to_dtype(DType::F32))?;
                Some(product.try_gt(&Tensor::scalar(0.5f32).try_to_device(device)?)?)
            }
            (a, b) => a.or(b),
        };
        keep.map(|m| m.try_broadcast_to(scores.clone())).transpose()
    }

    /// `dV = P_dᵀ G`, `dP = (G Vᵀ)·drop`, `dS = P·(dP − Σ dP·P)` (the softmax kernel's
    /// backward), `dQ = scale·dS K`, `dK = scale·dSᵀ Q`; the additive mask gets `dS`.
    #[allow(clippy::too_many_arguments)]
    // ANCHOR: sdpa_backward
    fn backward_on_device(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        p: &Tensor,
        drop: Option<&Tensor>,
        g: &Tensor,
        want_ds: bool,
    ) -> Result<Vec<Option<Tensor>>> {
        let weights = match drop {
            Some(m) => p.try_mul(m)?,
            None => p.clone(),
        };
        let dv = weights.try_transpose(-2, -1)?.try_matmul(g)?;
        let mut dp = g.try_matmul(&v.try_transpose(-2, -1)?)?;
        if let Some(m) = drop {
            dp = dp.try_mul(m)?;
        }
        let ds = crate::backend::cube::ops::softmax_rows_backward(p, &dp, false)?;
        let scaled = |t: Tensor| {
            t.try_unary(UnaryKind::Affine {
                scale: self.scale,
                shift: 0.0,
            })
        };
        let dq = scaled(ds.try_matmul(k)?)?;
        let dk = scaled(ds.try_transpose(-2, -1)?.try_matmul(q)?)?;
        let mut out = vec![Some(dq), Some(dk), Some(dv)];
        if let Some(shape) = &self.add_shape {
            out.push(if want_ds {
                Some(sum_to_shape(&ds, shape)?)
            } else {
                None
            });
        }
        Ok(out)
    }
    // ANCHOR_END: sdpa_backward
}

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

/// Both kinds of mask a caller may give, before they are merged.
pub(crate) fn sdpa_with(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    keep: Option<Tensor>,
    add: Option<Tensor>,
    opts: &SdpaOptions,
    stash: Option<WeightsStash>,
) -> Result<Tensor> {
    const OP: &str = "scaled_dot_product_attention";
    same_kind(OP, q, k)?;
    same_kind(OP, q, v)?;
    if q.rank() < 2 || k.rank() < 2 || v.rank() < 2 {
        return Err(Error::bad_shape(
            OP,
            q.shape(),
            "q, k, v need [..., len, features]",
        ));
    }
    let (l, e) = (q.dim(-2), q.dim(-1));
    let (s, ek, sv) = (k.dim(-2), k.dim(-1), v.dim(-2));
    if e != ek {
        return Err(Error::mismatch(
            OP,
            q.shape(),
            k.shape(),
            "q and k need the same feature size",
        ));
    }
    if s != sv {
        return Err(Error::mismatch(
            OP,
            k.shape(),
            v.shape(),
            "k and v need the same length",
        ));
    }
    if !(0.0..1.0).contains(&opts.dropout_p) {
        return Err(Error::invalid(
            OP,
            format!("dropout_p = {} must be in [0, 1)", opts.dropout_p),
        ));
    }
    // The scores' shape: broadcast batch dims, then [L, S].
    let qb = &q.dims()[..q.rank() - 2];
    let kb = &k.dims()[..k.rank() - 2];
    let mut score_dims = Shape::broadcast(OP, &Shape::new(qb), &Shape::new(kb))?
        .dims()
        .to_vec();
    score_dims.extend([l, s]);
    let score_shape = Shape::new(&score_dims);
    let keep = match keep {
        None => None,
        Some(m) => {
            if Shape::broadcast(OP, &score_shape, m.shape())? != score_shape {
                return Err(Error::mismatch(
                    OP,
                    &score_shape,
                    m.shape(),
                    "the mask must broadcast to the scores [..., L, S]",
                ));
            }
            Some(m)
        }
    };
    if let Some(a) = &add {
        same_kind(OP, q, a)?;
        if Shape::broadcast(OP, &score_shape, a.shape())? != score_shape {
            return Err(Error::mismatch(
                OP,
                &score_shape,
                a.shape(),
                "the mask must broadcast to the scores [..., L, S]",
            ));
        }
    }
    if e == 0 || v.dim(-1) == 0 {
        return Err(Error::bad_shape(
            OP,
            q.shape(),
            "q, k and v need at least one feature",
        ));
    }
    // The kernel wants q, k, v with the scores' leading dims, contiguous; broadcasting here
    // (recorded) sums their gradients back.
    let lead = &score_dims[..score_dims.len() - 2];
    let expand = |x: &Tensor| -> Result<Tensor> {
        let mut dims = lead.to_vec();
        dims.extend_from_slice(&x.dims()[x.rank() - 2..]);
        if x.dims() == dims.as_slice() {
            x.try_contiguous()
        } else {
            x.try_broadcast_to(dims)?.try_contiguous()
        }
    };
    let (q, k, v) = (&expand(q)?, &expand(k)?, &expand(v)?);
    let op = Sdpa {
        scale: opts.scale.unwrap_or(1.0 / (e as f64).sqrt()),
        causal: opts.is_causal,
        keep,
        add_shape: add.as_ref().map(|a| a.shape().clone()),
        dropout_p: opts.dropout_p,
        stash,
    };
    let mut inputs = vec![q, k, v];
    inputs.extend(add.as_ref());
    let out = apply(op, &inputs)?;
    Ok(out)
}

/// Logical and of two bool masks that broadcast together (built on the host: masks are
/// small next to the scores).
pub(crate) fn and_masks(a: Option<Tensor>, b: Tensor) -> Result<Tensor> {
    let Some(a) = a else { return Ok(b) };
    let shape = Shape::broadcast("attention mask", a.shape(), b.shape())?;
    let av = a
        .try_broadcast_to(shape.clone())?
        .try_contiguous()?
        .to_vec::<bool>();
    let bv = b
        .try_broadcast_to(shape.clone())?
        .try_contiguous()?
        .to_vec::<bool>();
    let both: Vec<bool> = av.iter().zip(&bv).map(|(&x, &y)| x && y).collect();
    Tensor::try_from_vec(both, shape)
}

/// `F.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, scale)`:
/// `q` `[..., L, E]`, `k` `[..., S, E]`, `v` `[..., S, Ev]` → `[..., L, Ev]`.
pub fn try_scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &SdpaOptions,
) -> Result<Tensor> {
    let (keep, add) = split_mask(opts.attn_mask.clone(), false)?;
    sdpa_with(q, k, v, keep, add, opts, None)
}

#[track_caller]
pub fn scaled_dot_product_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    opts: &SdpaOptions,
) -> Tensor {
    try_scaled_dot_product_attention(q, k, v, opts).or_panic()
}

/// Sorts a mask into a keep-mask (bool) or an additive one (float). `true_means_masked`
/// flips a bool mask: PyTorch's `nn.MultiheadAttention` marks the positions to *ignore*.
pub(crate) fn split_mask(
    m: Option<Tensor>,
    true_means_masked: bool,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    match m {
        None => Ok((None, None)),
        Some(m) if m.dtype() == DType::Bool => {
            let m = if true_means_masked {
                // The constant goes where the mask lives: a padding mask may be on a device.
                m.try_eq(&Tensor::scalar(false).try_to_device(m.device())?)?
            } else {
                m
            };
            Ok((Some(m), None))
        }
        Some(m) if m.dtype().is_float() => Ok((None, Some(m))),
        Some(m) => Err(Error::DType {
            op: "attention mask",
            got: m.dtype(),
            expected: "bool or float",
        }),
    }
}

/// Additive (Bahdanau) attention: `score(q, k) = w_vᵀ tanh(W_q q + W_k k)`, then a
/// (masked) softmax over keys and a weighted sum of values. `q` `[B, L, Dq]`, `k` `[B, S, Dk]`,
/// `v` `[B, S, Dv]`; `valid_lens` as in [`lens_mask`]. Parameters follow d2l's
/// `AdditiveAttention`: `W_q` (`[h, Dq]`), `W_k` (`[h, Dk]`), `w_v` (`[1, h]`), no biases.
pub struct AdditiveAttention {
    pub w_q: super::Linear,
    pub w_k: super::Linear,
    pub w_v: super::Linear,
    pub dropout: f64,
    training: bool,
    last: WeightsStash,
}

impl AdditiveAttention {
    pub fn new(query_size: usize, key_size: usize, num_hiddens: usize, dropout: f64) -> Self {
        AdditiveAttention {
            w_q: super::Linear::new(query_size, num_hiddens, false),
            w_k: super::Linear::new(key_size, num_hiddens, false),
            w_v: super::Linear::new(num_hiddens, 1, false),
            dropout,
            training: true,
            last: Rc::default(),
        }
    }
    // ANCHOR: additive_forward
    pub fn try_forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        valid_lens: Option<&Tensor>,
    ) -> Result<Tensor> {
        let qh = self.w_q.try_forward(q)?.try_unsqueeze(2)?; // [B, L, 1, h]
        let kh = self.w_k.try_forward(k)?.try_unsqueeze(1)?; // [B, 1, S, h]
        let features = qh.try_add(&kh)?.try_unary(UnaryKind::Tanh)?;
        let scores = self.w_v.try_forward(&features)?.try_squeeze(-1)?; // [B, L, S]
        let p = match valid_lens {
            // Builds the mask where the scores live (a device needs it there too).
            Some(vl) => scores.try_masked_softmax_lens(vl)?,
            None => scores.try_softmax(-1)?,
        };
        *self.last.borrow_mut() = Some(p.detach());
        super::dropout(&p, self.dropout, self.training).try_matmul(v)
    }
    // ANCHOR_END: additive_forward
    #[track_caller]
    pub fn forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        valid_lens: Option<&Tensor>,
    ) -> Tensor {
        self.try_forward(q, k, v, valid_lens).or_panic()
    }
    /// The attention weights `[B, L, S]` of the last forward (before dropout).
    pub fn last_weights(&self) -> Option<Tensor> {
        self.last.borrow().clone()
    }
}

impl super::Module for AdditiveAttention {
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Tensor)) {
        use super::child_name;
        self.w_q.visit_params(&child_name(prefix, "W_q"), f);
        self.w_k.visit_params(&child_name(prefix, "W_k"), f);
        self.w_v.visit_params(&child_name(prefix, "w_v"), f);
    }
    fn visit_params_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Tensor)) {
        use super::child_name;
        self.w_q.visit_params_mut(&child_name(prefix, "W_q"), f);
        self.w_k.visit_params_mut(&child_name(prefix, "W_k"), f);
        self.w_v.visit_params_mut(&child_name(prefix, "w_v"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.training = training;
    }
}

/// Sliding-window (local) attention's keep-mask: query `i` sees keys with `|i − j| ≤ window`
/// (`0 ≤ i − j ≤ window` when causal).
// ANCHOR: local_mask
pub fn local_mask(l: usize, s: usize, window: usize, causal: bool) -> Tensor {
    let keep: Vec<bool> = (0..l * s)
        .map(|x| {
            let (i, j) = (x / s, x % s);
            if causal {
                j <= i && i - j <= window
            } else {
                i.abs_diff(j) <= window
            }
        })
        .collect();
    Tensor::from_vec(keep, [l, s])
}
// ANCHOR_END: local_mask

/// Strided sparse attention's keep-mask (Child et al. 2019, the "strided" pattern): query
/// `i` sees the previous `stride` keys and every `stride`-th key before them, i.e. keys with
/// `|i − j| < stride` or `(i − j) mod stride = 0` (only `j ≤ i` when causal).
pub fn strided_mask(l: usize, s: usize, stride: usize, causal: bool) -> Tensor {
    let stride = stride.max(1);
    let keep: Vec<bool> = (0..l * s)
        .map(|x| {
            let (i, j) = (x / s, x % s);
            let d = i.abs_diff(j);
            (!causal || j <= i) && (d < stride || d % stride == 0)
        })
        .collect();
    Tensor::from_vec(keep, [l, s])
}
