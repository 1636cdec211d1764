//! Scaled dot-product attention on a CubeCL device, written as device matmuls around the
//! masked-softmax kernel; it saves `P` for the backward (the CPU's flash loops recompute it).
//! The user's keep-mask and the causal or sparse pattern's are combined on the device; the
//! pattern's is built on the host (a small `[L, S]` of bools) and uploaded.

use super::Cube;
use crate::backend::attention::{
    AttentionDims, AttentionDropout, AttentionForward, AttentionGrads, AttentionKernels,
    AttentionMasks, AttentionPattern,
};
use crate::backend::elementwise::{Binary, Compare, ElementwiseKernels};
use crate::backend::layout::LayoutKernels;
use crate::backend::matmul::MatmulKernels;
use crate::backend::random::RandomKernels;
use crate::backend::softmax::SoftmaxKernels;
use crate::backend::storage::CpuData;
use crate::backend::unary::Unary;
use crate::backend::{host_tensor, transfer};
use crate::error::Result;
use crate::tensor::{DType, Shape, Tensor};

/// `lead + last`, as a shape.
fn with_last(lead: &[usize], last: [usize; 2]) -> Shape {
    let mut dims = lead.to_vec();
    dims.extend(last);
    Shape::new(&dims)
}

impl Cube {
    /// `a @ b` for operands with the leading dims `lead`.
    fn batched(&self, a: &Tensor, b: &Tensor, lead: &[usize]) -> Result<Tensor> {
        let (m, n) = (a.dims()[a.rank() - 2], b.dims()[b.rank() - 1]);
        self.matmul(a, b, &Shape::new(lead), &with_last(lead, [m, n]))
    }
    fn times(&self, t: &Tensor, scale: f64) -> Result<Tensor> {
        self.unary(Unary::Affine { scale, shift: 0.0 }, t)
    }

    /// Where the scores may look (bool, broadcast to `scores`), or `None` for everywhere.
    fn keep_mask(
        &self,
        masks: &AttentionMasks<'_>,
        d: AttentionDims,
        scores: &Shape,
        like: &Tensor,
    ) -> Result<Option<Tensor>> {
        let structural = masks.causal || masks.pattern != AttentionPattern::Full;
        let causal = if structural {
            let keep: Vec<bool> = (0..d.l * d.s)
                .map(|x| masks.pattern.allows(x / d.s, x % d.s, masks.causal))
                .collect();
            let host = host_tensor(CpuData::Bool(keep), Shape::new(&[d.l, d.s]));
            Some(transfer(&host, like.device())?)
        } else {
            None
        };
        let user = masks.keep.map(|m| transfer(m, like.device())).transpose()?;
        let keep = match (causal, user) {
            (Some(a), Some(b)) => {
                let both = Shape::broadcast("attention mask", a.shape(), b.shape())?;
                let (fa, fb) = (self.cast(&a, DType::F32)?, self.cast(&b, DType::F32)?);
                let product = self.binary(Binary::Mul, &fa, &fb, &both)?;
                let half = self.full(&Shape::scalar(), 0.5, DType::F32, like.device())?;
                Some(self.compare(Compare::Gt, &product, &half, &both)?)
            }
            (a, b) => a.or(b),
        };
        Ok(keep.map(|m| m.broadcast_view(scores)))
    }
}

impl Cube {
    /// The dropout mask of the weights' shape, drawn from the same Philox elements as the CPU
    /// draws tile by tile.
    fn attention_dropout(
        &self,
        dropout: Option<AttentionDropout>,
        p: &Tensor,
    ) -> Result<Option<Tensor>> {
        dropout
            .map(|d| self.dropout_mask(p.shape(), d.p, d.seed, p.dtype(), p.device()))
            .transpose()
    }
}

impl AttentionKernels for Cube {
    /// Saves `P` itself (the flash kernel of the GPU issue will save the log-sum-exps).
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
        let mut scores = self.times(&self.batched(q, &k.transpose_view(), lead)?, scale)?;
        if let Some(a) = masks.add {
            let shape = scores.shape().clone();
            scores = self.binary(Binary::Add, &scores, a, &shape)?;
        }
        let keep = self.keep_mask(&masks, d, &scores.shape().clone(), q)?;
        let p = self.softmax(&scores, keep.as_ref(), false)?;
        let weights = match self.attention_dropout(dropout, &p)? {
            Some(m) => self.binary(Binary::Mul, &p, &m, &p.shape().clone())?,
            None => p.clone(),
        };
        let o = self.batched(&weights, v, lead)?;
        Ok(AttentionForward { o, saved: p })
    }

    // ANCHOR: sdpa_backward
    /// `dV = P_dᵀ G`, `dP = (G Vᵀ)·drop`, `dS = P·(dP − Σ dP·P)` (the softmax kernel's
    /// backward), `dQ = scale·dS K`, `dK = scale·dSᵀ Q`; an additive mask gets `dS`.
    fn attention_backward(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        fwd: &AttentionForward,
        _masks: AttentionMasks<'_>,
        scale: f64,
        dropout: Option<AttentionDropout>,
        g: &Tensor,
        want_ds: bool,
    ) -> Result<AttentionGrads> {
        let lead = &q.dims()[..q.rank() - 2];
        let p = &fwd.saved;
        let drop = self.attention_dropout(dropout, p)?;
        let weights = match &drop {
            Some(m) => self.binary(Binary::Mul, p, m, &p.shape().clone())?,
            None => p.clone(),
        };
        let dv = self.batched(&weights.transpose_view(), g, lead)?;
        let mut dp = self.batched(g, &v.transpose_view(), lead)?;
        if let Some(m) = &drop {
            dp = self.binary(Binary::Mul, &dp, m, &dp.shape().clone())?;
        }
        // Masked weights are 0 in P, so their scores get no gradient: the causal and keep
        // masks need no second look here.
        let ds = self.softmax_backward(p, &dp, false)?;
        let dq = self.times(&self.batched(&ds, k, lead)?, scale)?;
        let dk = self.times(&self.batched(&ds.transpose_view(), q, lead)?, scale)?;
        Ok(AttentionGrads {
            dq,
            dk,
            dv,
            ds: want_ds.then_some(ds),
        })
    }
    // ANCHOR_END: sdpa_backward
}
