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
use crate::error::{Error, OrPanic, Result};
use crate::ops::{same_kind, sum_to_shape, UnaryKind};
use crate::tensor::{DType, Shape, Tensor};
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

/// Inputs: `q`, `k`, `v`, then the additive float mask when there is one.
struct Sdpa {
    scale: f64,
    /// Bool, broadcast to the scores' shape: where attention may look.
    keep: Option<Tensor>,
    /// Shape of the additive mask, when there is one (its gradient is summed back to it).
    add_shape: Option<Shape>,
    dropout_p: f64,
    /// Where `MultiheadAttention` wants the weights for `need_weights`.
    stash: Option<WeightsStash>,
}

fn t(x: &Tensor) -> Result<Tensor> {
    x.try_transpose(-2, -1)
}

fn scaled(x: &Tensor, s: f64) -> Result<Tensor> {
    if s == 1.0 {
        return Ok(x.clone());
    }
    x.try_unary(UnaryKind::Affine {
        scale: s,
        shift: 0.0,
    })
}

impl Op for Sdpa {
    fn name(&self) -> &'static str {
        "scaled_dot_product_attention"
    }

    /// Saves `q`, `k`, `v`, the weights `P` and, with dropout, the kept-and-rescaled mask.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (q, k, v) = (inputs[0], inputs[1], inputs[2]);
        let mut s = scaled(&q.try_matmul(&t(k)?)?, self.scale)?;
        if self.add_shape.is_some() {
            s = s.try_add(inputs[3])?;
        }
        let p = match &self.keep {
            Some(keep) => s.try_masked_softmax(keep, -1)?,
            None => s.try_softmax(-1)?,
        };
        let drop = (self.dropout_p > 0.0).then(|| {
            Tensor::bernoulli(p.shape().clone(), 1.0 - self.dropout_p)
                .to_dtype(p.dtype())
                .mul_scalar(1.0 / (1.0 - self.dropout_p))
        });
        let pd = match &drop {
            Some(m) => p.try_mul(m)?,
            None => p.clone(),
        };
        if let Some(stash) = &self.stash {
            *stash.borrow_mut() = Some(pd.clone());
        }
        let o = pd.try_matmul(v)?;
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
        let pd = match drop {
            Some(m) => p.try_mul(m)?,
            None => p.clone(),
        };
        // O = Pd V: dV = Pdᵀ G, dPd = G Vᵀ, and dP = dPd ⊙ mask.
        let dv = t(&pd)?.try_matmul(g)?;
        let mut dp = g.try_matmul(&t(v)?)?;
        if let Some(m) = drop {
            dp = dp.try_mul(m)?;
        }
        // Softmax backward: dS = P ⊙ (dP − Σ_j dP·P); masked weights are 0 so get nothing.
        let row = dp.try_mul(p)?.try_sum_axes(&[-1], true)?;
        let ds = p.try_mul(&dp.try_sub(&row)?)?;
        let dq = scaled(&ds.try_matmul(k)?, self.scale)?;
        let dk = scaled(&t(&ds)?.try_matmul(q)?, self.scale)?;
        let mut out = vec![
            Some(sum_to_shape(&dq, q.shape())?),
            Some(sum_to_shape(&dk, k.shape())?),
            Some(sum_to_shape(&dv, v.shape())?),
        ];
        if let Some(shape) = &self.add_shape {
            out.push(needs[3].then(|| sum_to_shape(&ds, shape)).transpose()?);
        }
        Ok(out)
    }
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
    let mut keep = keep;
    if opts.is_causal {
        keep = Some(and_masks(keep, causal_mask(l, s))?);
    }
    let keep = match keep {
        None => None,
        Some(m) => {
            let b = Shape::broadcast(OP, &score_shape, m.shape())?;
            if b != score_shape {
                return Err(Error::mismatch(
                    OP,
                    &score_shape,
                    m.shape(),
                    "the mask must broadcast to the scores [..., L, S]",
                ));
            }
            Some(m.try_broadcast_to(score_shape.clone())?.try_contiguous()?)
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
    let op = Sdpa {
        scale: opts.scale.unwrap_or(1.0 / (e as f64).sqrt()),
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
                m.try_eq(&Tensor::scalar(false))?
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
    pub fn try_forward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        valid_lens: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (l, s) = (q.dim(-2), k.dim(-2));
        let qh = self.w_q.try_forward(q)?.try_unsqueeze(2)?; // [B, L, 1, h]
        let kh = self.w_k.try_forward(k)?.try_unsqueeze(1)?; // [B, 1, S, h]
        let features = qh.try_add(&kh)?.try_unary(UnaryKind::Tanh)?;
        let scores = self.w_v.try_forward(&features)?.try_squeeze(-1)?; // [B, L, S]
        let p = match valid_lens {
            Some(vl) => scores.try_masked_softmax(&lens_mask(vl, l, s, false)?, -1)?,
            None => scores.try_softmax(-1)?,
        };
        *self.last.borrow_mut() = Some(p.detach());
        super::dropout(&p, self.dropout, self.training).try_matmul(v)
    }
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
