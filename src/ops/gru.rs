//! The gated recurrent unit (Cho et al., 2014) as one fused op over a whole sequence, with
//! backpropagation through time written out by hand. Gates and names follow PyTorch's
//! `nn.GRU(batch_first=True)`: for each layer `k`, `weight_ih_l{k}` `[3H, I]`,
//! `weight_hh_l{k}` `[3H, H]`, `bias_ih_l{k}` and `bias_hh_l{k}` `[3H]`, rows in the order
//! reset `r`, update `z`, candidate `n`:
//!
//! ```text
//! r = σ(W_ir x + b_ir + W_hr h + b_hr)
//! z = σ(W_iz x + b_iz + W_hz h + b_hz)
//! n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! The op is written with tensor ops, so it runs on every device. The module (a stack of
//! layers) is `nn::Gru`.

use crate::autograd::{apply, Forward, Op};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// One GRU layer over a sequence. Inputs: `x` `[B, T, I]`, `h0` `[B, H]`, `w_ih`, `w_hh`,
/// `b_ih`, `b_hh`. Output: every hidden state, `[B, T, H]`.
struct GruLayerOp {
    hidden: usize,
}

impl Op for GruLayerOp {
    fn name(&self) -> &'static str {
        "gru"
    }

    /// The input projections of all steps are one matmul; the recurrence is a loop over time.
    /// Saves the inputs, every hidden state and, per step, the gates `r`, `z`, `n` and
    /// `W_hn h + b_hn` (the backward needs it for `∂n/∂r`): O(B·T·H) memory, no recomputation.
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (x, h0, w_ih, w_hh, b_ih, b_hh) = (
            inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5],
        );
        let hs = self.hidden;
        let t_len = x.dims()[1];
        let gi = x.try_matmul(&w_ih.t())?.try_add(b_ih)?; // [B, T, 3H]
        let w_hh_t = w_hh.t();
        let mut h = h0.clone();
        let (mut outs, mut rs, mut zs, mut ns, mut ghns) = (vec![], vec![], vec![], vec![], vec![]);
        // ANCHOR: gru_forward_loop
        for t in 0..t_len {
            let gi_t = gi.try_narrow(1, t, 1)?.try_squeeze(1)?; // [B, 3H]
            let gh = h.try_matmul(&w_hh_t)?.try_add(b_hh)?; // [B, 3H]
            let part = |g: &Tensor, k: usize| g.try_narrow(-1, k * hs, hs);
            let r = part(&gi_t, 0)?.try_add(&part(&gh, 0)?)?.sigmoid();
            let z = part(&gi_t, 1)?.try_add(&part(&gh, 1)?)?.sigmoid();
            let ghn = part(&gh, 2)?;
            let n = part(&gi_t, 2)?.try_add(&r.try_mul(&ghn)?)?.tanh();
            // h' = n + z ⊙ (h − n)
            h = n.try_add(&z.try_mul(&h.try_sub(&n)?)?)?;
            outs.push(h.clone());
            rs.push(r);
            zs.push(z);
            ns.push(n);
            ghns.push(ghn);
        }
        // ANCHOR_END: gru_forward_loop
        let stack = |v: &[Tensor]| Tensor::try_stack(&v.iter().collect::<Vec<_>>(), 1);
        let out = stack(&outs)?;
        let saved = vec![
            x.clone(),
            h0.clone(),
            w_ih.clone(),
            w_hh.clone(),
            out.clone(),
            stack(&rs)?,
            stack(&zs)?,
            stack(&ns)?,
            stack(&ghns)?,
        ];
        Ok(Forward::new(out, saved))
    }

    // ANCHOR: gru_backward_loop
    /// Backpropagation through time: walk the steps in reverse, carrying `∂L/∂h` into the
    /// previous step. Per step, with `dh` the gradient reaching `h'`:
    /// `dn = dh(1 − z)`, `dz = dh(h − n)`, `da_n = dn(1 − n²)`, `da_r = da_n ⊙ ghn ⊙ r(1 − r)`,
    /// `da_z = dz ⊙ z(1 − z)`; the input projection gets `[da_r, da_z, da_n]`, the hidden one
    /// `[da_r, da_z, da_n ⊙ r]`, and `∂L/∂h = dh ⊙ z + (hidden one) W_hh`. The weight
    /// gradients are then one matmul each over all steps.
    fn backward(
        &self,
        saved: &[Tensor],
        g: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let (x, h0, w_ih, w_hh, out) = (&saved[0], &saved[1], &saved[2], &saved[3], &saved[4]);
        let (rs, zs, ns, ghns) = (&saved[5], &saved[6], &saved[7], &saved[8]);
        let (b, t_len, hs) = (x.dims()[0], x.dims()[1], self.hidden);
        let step = |a: &Tensor, t: usize| a.try_narrow(1, t, 1)?.try_squeeze(1);
        let mut dh_next: Option<Tensor> = None;
        let mut dgi = vec![Tensor::scalar(0f32); t_len];
        let mut dgh = vec![Tensor::scalar(0f32); t_len];
        let mut h_prevs = vec![Tensor::scalar(0f32); t_len];
        for t in (0..t_len).rev() {
            let dh = match &dh_next {
                Some(d) => step(g, t)?.try_add(d)?,
                None => step(g, t)?,
            };
            let h_prev = if t == 0 {
                h0.clone()
            } else {
                step(out, t - 1)?
            };
            let (r, z, n, ghn) = (step(rs, t)?, step(zs, t)?, step(ns, t)?, step(ghns, t)?);
            let one_minus = |a: &Tensor| a.neg().add_scalar(1.0);
            let dn = dh.try_mul(&one_minus(&z))?;
            let dz = dh.try_mul(&h_prev.try_sub(&n)?)?;
            let da_n = dn.try_mul(&one_minus(&n.square()))?;
            let da_r = da_n.try_mul(&ghn)?.try_mul(&r.try_mul(&one_minus(&r))?)?;
            let da_z = dz.try_mul(&z.try_mul(&one_minus(&z))?)?;
            let d_ghn = da_n.try_mul(&r)?;
            let dgh_t = Tensor::try_concat(&[&da_r, &da_z, &d_ghn], -1)?; // [B, 3H]
            dh_next = Some(dh.try_mul(&z)?.try_add(&dgh_t.try_matmul(w_hh)?)?);
            dgi[t] = Tensor::try_concat(&[&da_r, &da_z, &da_n], -1)?;
            dgh[t] = dgh_t;
            h_prevs[t] = h_prev;
        }
        // ANCHOR_END: gru_backward_loop
        let stack = |v: &[Tensor]| Tensor::try_stack(&v.iter().collect::<Vec<_>>(), 1);
        let dgi = stack(&dgi)?.try_reshape(&[b * t_len, 3 * hs])?;
        let dgh = stack(&dgh)?.try_reshape(&[b * t_len, 3 * hs])?;
        let h_prev = stack(&h_prevs)?.try_reshape(&[b * t_len, hs])?;
        let in_size = x.dims()[2];
        let dx = needs[0]
            .then(|| dgi.try_matmul(w_ih)?.try_reshape(&[b, t_len, in_size]))
            .transpose()?;
        let dh0 = needs[1].then(|| dh_next.clone().expect("T > 0"));
        let dw_ih = needs[2]
            .then(|| dgi.t().try_matmul(&x.try_reshape(&[b * t_len, in_size])?))
            .transpose()?;
        let dw_hh = needs[3].then(|| dgh.t().try_matmul(&h_prev)).transpose()?;
        let db_ih = needs[4]
            .then(|| dgi.try_sum_axes(&[0], false))
            .transpose()?;
        let db_hh = needs[5]
            .then(|| dgh.try_sum_axes(&[0], false))
            .transpose()?;
        Ok(vec![dx, dh0, dw_ih, dw_hh, db_ih, db_hh])
    }
}

/// One GRU layer over `x` `[B, T, I]` from `h0` `[B, H]`: every hidden state `[B, T, H]`.
pub fn try_gru_layer(
    x: &Tensor,
    h0: &Tensor,
    w_ih: &Tensor,
    w_hh: &Tensor,
    b_ih: &Tensor,
    b_hh: &Tensor,
) -> Result<Tensor> {
    const OP: &str = "gru";
    let hs = w_hh.dims().get(1).copied().unwrap_or(0);
    let ok = x.rank() == 3
        && x.dims()[1] > 0
        && w_ih.dims() == [3 * hs, x.dims()[2]]
        && w_hh.dims() == [3 * hs, hs]
        && b_ih.dims() == [3 * hs]
        && b_hh.dims() == [3 * hs]
        && h0.dims() == [x.dims()[0], hs];
    if !ok {
        return Err(Error::invalid(
            OP,
            format!(
                "x {} (needs [B, T ≥ 1, I]), h0 {}, weight_ih {}, weight_hh {}, bias_ih {}, \
                 bias_hh {}: need weight_ih [3H, I], weight_hh [3H, H], biases [3H], h0 [B, H]",
                x.shape(),
                h0.shape(),
                w_ih.shape(),
                w_hh.shape(),
                b_ih.shape(),
                b_hh.shape()
            ),
        ));
    }
    apply(GruLayerOp { hidden: hs }, &[x, h0, w_ih, w_hh, b_ih, b_hh])
}
