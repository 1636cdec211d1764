//! Finite-difference gradient check, in f64.
//!
//! The function's output is contracted with a random cotangent `r` into the scalar
//! `L(x) = Σ f(x) · r`. The analytic gradient of `L` comes from one backward pass seeded with
//! `r`; the numeric one from central differences `(L(x + ε) − L(x − ε)) / 2ε`, element by element.
//! A random `r` (rather than `f(x).sum()`, i.e. all ones) catches backward passes that permute or
//! transpose their result: with all-ones cotangents those errors cancel out.

use crate::autograd::no_grad;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use rand::{Rng, SeedableRng};
use std::fmt;

#[derive(Clone, Debug)]
pub struct GradcheckOptions {
    /// Step of the central difference.
    pub eps: f64,
    /// Largest accepted error `|analytic − numeric| / max(|analytic|, |numeric|, 1)`: relative
    /// for gradients above 1 in size, absolute below (where a relative error means nothing).
    pub tol: f64,
    /// Inputs with more elements than this are checked on a seeded sample of this many.
    pub max_elements: usize,
    pub seed: u64,
}

impl Default for GradcheckOptions {
    fn default() -> Self {
        GradcheckOptions {
            eps: 1e-6,
            tol: 1e-6,
            max_elements: 4096,
            seed: 0,
        }
    }
}

/// The worst disagreement found, and where.
#[derive(Clone, Debug)]
pub struct GradcheckReport {
    pub max_error: f64,
    pub max_abs_error: f64,
    /// Input and flat element index of the worst error, with both values there.
    pub worst: Option<(usize, usize, f64, f64)>,
    pub checked: usize,
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "max error {:.3e} (max abs {:.3e}) over {} elements",
            self.max_error, self.max_abs_error, self.checked
        )?;
        if let Some((i, j, a, n)) = self.worst {
            write!(
                f,
                "; worst at input {i}, element {j}: analytic {a:.10e}, numeric {n:.10e}"
            )?;
        }
        Ok(())
    }
}

/// Checks the backward pass of `f` against central differences on every input that requires
/// grad. Inputs must be f64. Returns the report, or an error that contains it.
pub fn gradcheck(
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
    inputs: &[Tensor],
    opts: &GradcheckOptions,
) -> Result<GradcheckReport> {
    for (i, x) in inputs.iter().enumerate() {
        if x.requires_grad() && x.dtype() != DType::F64 {
            return Err(Error::invalid(
                "gradcheck",
                format!("input {i} is {}; gradcheck needs f64 inputs", x.dtype()),
            ));
        }
    }
    if !inputs.iter().any(|x| x.requires_grad()) {
        return Err(Error::invalid(
            "gradcheck",
            "no input requires grad; mark them with with_grad()",
        ));
    }
    // ANCHOR: gradcheck_core
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let out = f(inputs)?;
    let r: Vec<f64> = (0..out.numel()).map(|_| rng.gen_range(-1.0..1.0)).collect();
    let grads = out.try_backward_with(&Tensor::from_vec(r.clone(), out.shape().clone()))?;

    // L(x) with input `which` replaced by `x`, computed without recording.
    let contracted = |which: usize, x: Tensor| -> Result<f64> {
        no_grad(|| {
            let mut xs: Vec<Tensor> = inputs.iter().map(|t| t.detach()).collect();
            xs[which] = x;
            let y = f(&xs)?;
            let y: Vec<f64> = y.to_vec();
            Ok(y.iter().zip(&r).map(|(a, b)| a * b).sum())
        })
    };

    let mut report = GradcheckReport {
        max_error: 0.0,
        max_abs_error: 0.0,
        worst: None,
        checked: 0,
    };
    for (i, x) in inputs.iter().enumerate() {
        if !x.requires_grad() {
            continue;
        }
        let base: Vec<f64> = x.to_vec();
        let analytic: Vec<f64> = match grads.get(x) {
            Some(g) => g.to_vec(),
            None => vec![0.0; base.len()],
        };
        let elements: Vec<usize> = if base.len() <= opts.max_elements {
            (0..base.len()).collect()
        } else {
            (0..opts.max_elements)
                .map(|_| rng.gen_range(0..base.len()))
                .collect()
        };
        for j in elements {
            let mut plus = base.clone();
            plus[j] += opts.eps;
            let mut minus = base.clone();
            minus[j] -= opts.eps;
            let lp = contracted(i, Tensor::from_vec(plus, x.shape().clone()))?;
            let lm = contracted(i, Tensor::from_vec(minus, x.shape().clone()))?;
            let numeric = (lp - lm) / (2.0 * opts.eps);
            let a = analytic[j];
            let abs = (a - numeric).abs();
            let err = abs / a.abs().max(numeric.abs()).max(1.0);
            report.checked += 1;
            report.max_abs_error = report.max_abs_error.max(abs);
            if err > report.max_error || report.worst.is_none() || !err.is_finite() {
                report.max_error = if err.is_finite() { err } else { f64::INFINITY };
                report.worst = Some((i, j, a, numeric));
            }
        }
    }
    // ANCHOR_END: gradcheck_core
    if report.max_error > opts.tol {
        return Err(Error::Autograd(format!(
            "gradcheck failed (tolerance {:.1e}): {report}",
            opts.tol
        )));
    }
    Ok(report)
}
