//! Reversible residual layers (Gomez et al. 2017, used by Reformer): the input is two halves,
//! and each block computes
//!
//! ```text
//! y1 = x1 + F(x2)          x2 = y2 − G(y1)
//! y2 = x2 + G(y1)          x1 = y1 − F(x2)
//! ```
//!
//! so a block's input can be recomputed from its output. A whole stack of blocks is one op
//! that saves only the stack's output: its backward walks the blocks from the last, recomputes
//! each block's input from its output, and differentiates `F` and `G` on the spot (recording
//! them with [`enable_grad`] and calling their backward), so the activations kept for the
//! backward do not grow with depth. The price is one more forward of every block.

use crate::autograd::{apply, enable_grad, Forward, Op};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::sync::Arc;

/// A residual function of a block: `f(x, params)`, with its parameters passed explicitly so
/// that the backward can differentiate it with respect to them. It must be deterministic
/// (draw any randomness before and capture it), since the backward runs it again.
pub type BlockFn = Arc<dyn Fn(&Tensor, &[Tensor]) -> Result<Tensor>>;

/// One reversible block: `F` and `G` with their parameters.
#[derive(Clone)]
pub struct ReversibleBlock {
    pub f: BlockFn,
    pub f_params: Vec<Tensor>,
    pub g: BlockFn,
    pub g_params: Vec<Tensor>,
}

struct ReversibleStack {
    /// `(F, its parameter count, G, its parameter count)` per block.
    blocks: Vec<(BlockFn, usize, BlockFn, usize)>,
}

fn halves(x: &Tensor) -> Result<(Tensor, Tensor)> {
    let d = x.dim(-1) / 2;
    Ok((x.try_narrow(-1, 0, d)?, x.try_narrow(-1, d, d)?))
}

/// `f(x)` recorded from a fresh leaf, and the vector–Jacobian product with `cotangent`: the
/// output, the gradient of `x`, and those of `params`.
fn vjp(
    f: &BlockFn,
    x: &Tensor,
    params: &[Tensor],
    cotangent: &Tensor,
) -> Result<(Tensor, Tensor, Vec<Option<Tensor>>)> {
    enable_grad(|| {
        let x = x.detach().with_grad();
        let leaves: Vec<Tensor> = params.iter().map(|p| p.detach().with_grad()).collect();
        let out = f(&x, &leaves)?;
        let grads = out.try_backward_with(cotangent)?;
        let dx = grads
            .get(&x)
            .cloned()
            .unwrap_or_else(|| Tensor::zeros_like(&x));
        let dp = leaves.iter().map(|p| grads.get(p).cloned()).collect();
        Ok((out.detach(), dx, dp))
    })
}

impl Op for ReversibleStack {
    fn name(&self) -> &'static str {
        "reversible"
    }

    // ANCHOR: reversible_forward
    /// Inputs: `x` (both halves side by side on the last axis), then every block's `F` and `G`
    /// parameters in order. Saves the output and the parameters (alive anyway as weights).
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (mut x1, mut x2) = halves(inputs[0])?;
        let mut at = 1;
        for (f, nf, g, ng) in &self.blocks {
            let fp: Vec<Tensor> = inputs[at..at + nf].iter().map(|t| (*t).clone()).collect();
            let gp: Vec<Tensor> = inputs[at + nf..at + nf + ng]
                .iter()
                .map(|t| (*t).clone())
                .collect();
            at += nf + ng;
            let y1 = x1.try_add(&f(&x2, &fp)?)?;
            let y2 = x2.try_add(&g(&y1, &gp)?)?;
            (x1, x2) = (y1, y2);
        }
        let out = Tensor::try_concat(&[&x1, &x2], -1)?;
        let mut saved = vec![out.clone()];
        saved.extend(inputs[1..].iter().map(|t| (*t).clone()));
        Ok(Forward::new(out, saved))
    }
    // ANCHOR_END: reversible_forward

    // ANCHOR: reversible_backward
    fn backward(
        &self,
        saved: &[Tensor],
        grad_output: &Tensor,
        _needs_grad: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let params = &saved[1..];
        let (mut y1, mut y2) = halves(&saved[0])?;
        let (mut dy1, mut dy2) = halves(grad_output)?;
        let mut param_grads: Vec<Option<Tensor>> = vec![None; params.len()];
        let mut end = params.len();
        for (f, nf, g, ng) in self.blocks.iter().rev() {
            let (g_at, f_at) = (end - ng, end - ng - nf);
            // G's input y1 is known: its gradient, then x2 = y2 − G(y1).
            let (g_out, dg_y1, dg_params) = vjp(g, &y1, &params[g_at..end], &dy2)?;
            let x2 = y2.try_sub(&g_out)?;
            let dy1_total = dy1.try_add(&dg_y1)?;
            // F's input x2 is now known: its gradient, then x1 = y1 − F(x2).
            let (f_out, df_x2, df_params) = vjp(f, &x2, &params[f_at..g_at], &dy1_total)?;
            let x1 = y1.try_sub(&f_out)?;
            for (slot, g) in param_grads[f_at..end]
                .iter_mut()
                .zip(df_params.into_iter().chain(dg_params))
            {
                *slot = g;
            }
            (dy1, dy2) = (dy1_total, dy2.try_add(&df_x2)?);
            (y1, y2) = (x1, x2);
            end = f_at;
        }
        let mut grads = vec![Some(Tensor::try_concat(&[&dy1, &dy2], -1)?)];
        grads.extend(param_grads);
        Ok(grads)
    }
    // ANCHOR_END: reversible_backward
}

/// Runs `blocks` reversibly on `x` `[.., 2·d]` (the halves `x1`, `x2` side by side) and returns
/// `[.., 2·d]` (`y1`, `y2`).
pub fn try_reversible(x: &Tensor, blocks: &[ReversibleBlock]) -> Result<Tensor> {
    if x.rank() == 0 || x.dim(-1) % 2 != 0 {
        return Err(Error::bad_shape(
            "reversible",
            x.shape(),
            "needs an even last axis: the two halves side by side",
        ));
    }
    let mut inputs: Vec<&Tensor> = vec![x];
    for b in blocks {
        inputs.extend(b.f_params.iter());
        inputs.extend(b.g_params.iter());
    }
    let op = ReversibleStack {
        blocks: blocks
            .iter()
            .map(|b| (b.f.clone(), b.f_params.len(), b.g.clone(), b.g_params.len()))
            .collect(),
    };
    apply(op, &inputs)
}
