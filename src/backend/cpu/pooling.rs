//! Max and average pooling on the CPU, over the last two dims of `[planes, H, W]`. Windows that reach into the padding see −∞ (max) or zeros (average).
//! Planes run in parallel.

use super::float::Float;
use super::{i64s, tensor, with_float, wrap, Cpu};
use crate::backend::pooling::{PoolGeometry, PoolKind, PoolingKernels};
use crate::backend::storage::CpuData;
use crate::error::Result;
use crate::tensor::{Shape, Tensor};
use rayon::prelude::*;

impl PoolingKernels for Cpu {
    fn pool2d(
        &self,
        x: &Tensor,
        geo: &PoolGeometry,
        planes: usize,
        kind: PoolKind,
        out: &Shape,
    ) -> Result<(Tensor, Option<Tensor>)> {
        with_float!("pool2d", x.dtype(), |T| {
            let xs = super::slice::<T>("pool2d", x)?;
            Ok(match kind {
                PoolKind::Max => {
                    let (y, idx) = max_forward(&xs, planes, geo);
                    let idx = idx.into_iter().map(|i| i as i64).collect();
                    (
                        tensor(y, out.clone()),
                        Some(wrap(CpuData::I64(idx), out.clone())),
                    )
                }
                PoolKind::Avg {
                    count_include_pad,
                    divisor_override,
                } => (
                    tensor(
                        avg_forward(&xs, planes, geo, (count_include_pad, divisor_override)),
                        out.clone(),
                    ),
                    None,
                ),
            })
        })
    }

    fn pool2d_backward(
        &self,
        gy: &Tensor,
        argmax: Option<&Tensor>,
        geo: &PoolGeometry,
        planes: usize,
        kind: PoolKind,
        from: &Shape,
    ) -> Result<Tensor> {
        with_float!("pool2d", gy.dtype(), |T| {
            let gs = super::slice::<T>("pool2d", gy)?;
            let dx = match (kind, argmax) {
                (PoolKind::Max, Some(idx)) => {
                    let idx: Vec<usize> = i64s("max_pool2d", idx)?
                        .iter()
                        .map(|&i| i as usize)
                        .collect();
                    max_backward(&gs, &idx, planes, geo.h, geo.w)
                }
                (
                    PoolKind::Avg {
                        count_include_pad,
                        divisor_override,
                    },
                    _,
                ) => avg_backward(&gs, planes, geo, (count_include_pad, divisor_override)),
                (PoolKind::Max, None) => unreachable!("max pooling saves its indices"),
            };
            Ok(tensor(dx, from.clone()))
        })
    }
}

/// Max pooling: the outputs and, for the backward, the flat in-plane index of each maximum
/// (the first one on ties, as PyTorch).
pub fn max_forward<T: Float>(x: &[T], planes: usize, g: &PoolGeometry) -> (Vec<T>, Vec<usize>) {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let mut y = vec![T::zero(); planes * ho * wo];
    let mut idx = vec![0usize; planes * ho * wo];
    y.par_chunks_mut(ho * wo)
        .zip(idx.par_chunks_mut(ho * wo))
        .enumerate()
        .for_each(|(p, (yp, ip))| {
            let xp = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
            for oh in 0..ho {
                for ow in 0..wo {
                    let (r0, r1, c0, c1) = g.window(oh, ow);
                    let (mut best, mut at) = (T::neg_infinity(), r0 * g.w + c0);
                    for r in r0..r1 {
                        for c in c0..c1 {
                            let v = xp[r * g.w + c];
                            // `!(v <= best)` also picks a NaN, which then propagates.
                            if v > best || v.is_nan() && !best.is_nan() {
                                best = v;
                                at = r * g.w + c;
                            }
                        }
                    }
                    yp[oh * wo + ow] = best;
                    ip[oh * wo + ow] = at;
                }
            }
        });
    (y, idx)
}

/// Backward of max pooling: each output's gradient goes to its maximum.
pub fn max_backward<T: Float>(
    gy: &[T],
    idx: &[usize],
    planes: usize,
    h: usize,
    w: usize,
) -> Vec<T> {
    let out = gy.len() / planes.max(1);
    let mut dx = vec![T::zero(); planes * h * w];
    dx.par_chunks_mut(h * w).enumerate().for_each(|(p, dp)| {
        for (&gv, &i) in gy[p * out..(p + 1) * out]
            .iter()
            .zip(&idx[p * out..(p + 1) * out])
        {
            dp[i] += gv;
        }
    });
    dx
}

/// Average pooling's `(count_include_pad, divisor_override)`.
type Avg = (bool, Option<usize>);

/// The divisor of output `(oh, ow)`: the override, the full window, or only its part inside
/// the image.
#[inline]
fn divisor(g: &PoolGeometry, oh: usize, ow: usize, avg: Avg) -> f64 {
    let (count_include_pad, divisor_override) = avg;
    if let Some(d) = divisor_override {
        d as f64
    } else if count_include_pad {
        // PyTorch counts the padding but not what lies beyond it.
        let y0 = (oh * g.stride.0) as isize - g.padding.0 as isize;
        let x0 = (ow * g.stride.1) as isize - g.padding.1 as isize;
        let y1 = (y0 + g.kernel.0 as isize).min((g.h + g.padding.0) as isize);
        let x1 = (x0 + g.kernel.1 as isize).min((g.w + g.padding.1) as isize);
        ((y1 - y0) * (x1 - x0)) as f64
    } else {
        let (r0, r1, c0, c1) = g.window(oh, ow);
        ((r1 - r0) * (c1 - c0)).max(1) as f64
    }
}

pub fn avg_forward<T: Float>(x: &[T], planes: usize, g: &PoolGeometry, avg: Avg) -> Vec<T> {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let mut y = vec![T::zero(); planes * ho * wo];
    y.par_chunks_mut(ho * wo).enumerate().for_each(|(p, yp)| {
        let xp = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
        for oh in 0..ho {
            for ow in 0..wo {
                let (r0, r1, c0, c1) = g.window(oh, ow);
                let mut sum = T::zero();
                for r in r0..r1 {
                    sum += xp[r * g.w + c0..r * g.w + c1].iter().copied().sum::<T>();
                }
                yp[oh * wo + ow] = sum / T::from_f64(divisor(g, oh, ow, avg));
            }
        }
    });
    y
}

pub fn avg_backward<T: Float>(gy: &[T], planes: usize, g: &PoolGeometry, avg: Avg) -> Vec<T> {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let mut dx = vec![T::zero(); planes * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .for_each(|(p, dp)| {
            let gp = &gy[p * ho * wo..(p + 1) * ho * wo];
            for oh in 0..ho {
                for ow in 0..wo {
                    let (r0, r1, c0, c1) = g.window(oh, ow);
                    let v = gp[oh * wo + ow] / T::from_f64(divisor(g, oh, ow, avg));
                    for r in r0..r1 {
                        dp[r * g.w + c0..r * g.w + c1]
                            .iter_mut()
                            .for_each(|d| *d += v);
                    }
                }
            }
        });
    dx
}
