//! Scaled dot-product attention as one fused op, with PyTorch's
//! `F.scaled_dot_product_attention` semantics:
//!
//! ```text
//! S = Q Kᵀ · scale + additive_mask      scale = 1/√E by default
//! P = softmax(S) over keys, where `keep` is true (false → weight 0)
//! O = dropout(P) V
//! ```
//!
//! The forward and backward formulas are in `backend/attention.rs`. On the CPU it runs as
//! flash attention: `P` is never stored whole, so memory stays O(n·d) per head. A fully
//! masked row gives zeros, not NaN as in PyTorch (see `softmax`). The dropout mask is drawn
//! where the tensors live from a counter-based generator, by its seed (`ops::dropout`), so
//! the backward draws the same one again instead of keeping it.

use super::dropout::draw_seed;
use super::masks::pattern_mask;
use super::{same_kind, sum_to_shape};
use crate::autograd::{apply, Forward, Op};
use crate::backend;
pub use crate::backend::attention::AttentionPattern;
use crate::backend::attention::{AttentionDropout, AttentionForward, AttentionMasks};
use crate::error::{Error, OrPanic, Result};
use crate::tensor::{DType, Device, Shape, Tensor};
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
    /// A sparse pattern of keys (local window, strided), which the CPU kernel skips by instead
    /// of masking: the same weights as the keep-mask `local_mask`/`strided_mask` would give,
    /// at the pattern's cost. Not a PyTorch option.
    pub pattern: AttentionPattern,
}

pub(crate) type WeightsStash = Rc<RefCell<Option<Tensor>>>;

/// Inputs: `q`, `k`, `v` (contiguous, with the same leading dims), then the additive float
/// mask when there is one.
struct Sdpa {
    scale: f64,
    causal: bool,
    pattern: AttentionPattern,
    /// Bool mask that broadcasts to the scores' shape: where attention may look.
    keep: Option<Tensor>,
    /// Shape of the additive mask, when there is one (its gradient is summed back to it).
    add_shape: Option<Shape>,
    /// Drawn when the op is built, so the backward drops the same weights as the forward.
    dropout: Option<AttentionDropout>,
    /// Where `MultiheadAttention` wants the weights for `need_weights`.
    stash: Option<WeightsStash>,
}

impl Sdpa {
    /// The masks as the backend takes them, with the keep-mask on `q`'s device.
    fn masks<'a>(&self, keep: &'a Option<Tensor>, add: Option<&'a Tensor>) -> AttentionMasks<'a> {
        AttentionMasks {
            causal: self.causal,
            pattern: self.pattern,
            keep: keep.as_ref(),
            add,
        }
    }

    /// The keep-mask where the scores live: a mask given on the host follows them.
    fn keep_on(&self, q: &Tensor) -> Result<Option<Tensor>> {
        self.keep
            .as_ref()
            .map(|m| m.try_to_device(q.device()))
            .transpose()
    }

    /// The attention weights `P ⊙ D` themselves, for `need_weights`: composed from tensor ops,
    /// since the fused kernel need not keep them.
    fn weights(
        &self,
        q: &Tensor,
        k: &Tensor,
        keep: Option<&Tensor>,
        add: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (l, s) = (q.dim(-2), k.dim(-2));
        let mut scores = q
            .try_matmul(&k.try_transpose(-2, -1)?)?
            .mul_scalar(self.scale);
        if let Some(a) = add {
            scores = scores.try_add(a)?;
        }
        let causal = (self.causal || self.pattern != AttentionPattern::Full)
            .then(|| pattern_mask(l, s, self.pattern, self.causal));
        let keep = match (keep.cloned(), causal) {
            (Some(a), Some(c)) => Some(and_masks(Some(a.try_to_device(Device::Cpu)?), c)?),
            (a, c) => a.or(c),
        };
        let p = match keep {
            Some(m) => scores.try_masked_softmax(&m.try_to_device(q.device())?, -1)?,
            None => scores.try_softmax(-1)?,
        };
        match self.dropout {
            Some(AttentionDropout { p: prob, seed }) => {
                let mask =
                    backend::of(q).dropout_mask(p.shape(), prob, seed, p.dtype(), p.device())?;
                p.try_mul(&mask)
            }
            None => Ok(p),
        }
    }
}

impl Op for Sdpa {
    fn name(&self) -> &'static str {
        "scaled_dot_product_attention"
    }

    /// Saves `q`, `k`, `v`, the output `O` and what the backend asks to keep (the rows'
    /// log-sum-exps on the CPU, O(n) per head; `P` on a device), and the additive mask. The
    /// dropout mask is not saved: the backward draws it again from its seed.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
        let add = inputs.get(3).copied();
        let keep = self.keep_on(q)?;
        let fwd =
            backend::of(q).attention(q, k, v, self.masks(&keep, add), self.scale, self.dropout)?;
        if let Some(stash) = &self.stash {
            *stash.borrow_mut() = Some(self.weights(q, k, keep.as_ref(), add)?);
        }
        let mut saved = vec![q.clone(), k.clone(), v.clone(), fwd.o.clone(), fwd.saved];
        saved.extend(add.cloned());
        Ok(Forward::new(fwd.o, saved))
    }

    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (q, k, v) = (&saved[0], &saved[1], &saved[2]);
        let fwd = AttentionForward {
            o: saved[3].clone(),
            saved: saved[4].clone(),
        };
        let add = saved.get(5);
        let keep = self.keep_on(q)?;
        let g = g.try_contiguous()?;
        let want_ds = self.add_shape.is_some() && needs.get(3).copied().unwrap_or(false);
        let grads = backend::of(q).attention_backward(
            q,
            k,
            v,
            &fwd,
            self.masks(&keep, add),
            self.scale,
            self.dropout,
            &g,
            want_ds,
        )?;
        let mut out = vec![Some(grads.dq), Some(grads.dk), Some(grads.dv)];
        if let Some(shape) = &self.add_shape {
            out.push(grads.ds.map(|ds| sum_to_shape(&ds, shape)).transpose()?);
        }
        Ok(out)
    }
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
        pattern: opts.pattern,
        keep,
        add_shape: add.as_ref().map(|a| a.shape().clone()),
        dropout: (opts.dropout_p > 0.0).then(|| AttentionDropout {
            p: opts.dropout_p,
            seed: draw_seed(),
        }),
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
