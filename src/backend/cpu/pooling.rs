//! Max and average pooling over the last two dims of `[planes, H, W]` (the ops are in
//! `nn::conv`). Windows that reach into the padding see −∞ (max) or zeros (average).
//! Planes run in parallel.

use crate::tensor::Float;
use rayon::prelude::*;

/// Window size, stride and padding, per axis (height, width).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolGeometry {
    pub h: usize,
    pub w: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
}

impl PoolGeometry {
    /// `floor((H + 2p − k) / s) + 1` per axis (PyTorch's `ceil_mode = False`); `None` when
    /// the window does not fit.
    pub fn out_hw(&self) -> Option<(usize, usize)> {
        let (ph, pw) = (self.h + 2 * self.padding.0, self.w + 2 * self.padding.1);
        if ph < self.kernel.0 || pw < self.kernel.1 || self.stride.0 == 0 || self.stride.1 == 0 {
            return None;
        }
        Some((
            (ph - self.kernel.0) / self.stride.0 + 1,
            (pw - self.kernel.1) / self.stride.1 + 1,
        ))
    }
    /// The window of output `(oh, ow)` clipped to the image: rows `r0..r1`, cols `c0..c1`.
    #[inline]
    fn window(&self, oh: usize, ow: usize) -> (usize, usize, usize, usize) {
        let y0 = (oh * self.stride.0) as isize - self.padding.0 as isize;
        let x0 = (ow * self.stride.1) as isize - self.padding.1 as isize;
        let clip = |v: isize, hi: usize| v.clamp(0, hi as isize) as usize;
        (
            clip(y0, self.h),
            clip(y0 + self.kernel.0 as isize, self.h),
            clip(x0, self.w),
            clip(x0 + self.kernel.1 as isize, self.w),
        )
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

/// The divisor of output `(oh, ow)`: the full window, or only its part inside the image.
#[inline]
fn divisor(g: &PoolGeometry, oh: usize, ow: usize, count_include_pad: bool) -> f64 {
    if count_include_pad {
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

pub fn avg_forward<T: Float>(
    x: &[T],
    planes: usize,
    g: &PoolGeometry,
    count_include_pad: bool,
) -> Vec<T> {
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
                yp[oh * wo + ow] = sum / T::from_f64(divisor(g, oh, ow, count_include_pad));
            }
        }
    });
    y
}

pub fn avg_backward<T: Float>(
    gy: &[T],
    planes: usize,
    g: &PoolGeometry,
    count_include_pad: bool,
) -> Vec<T> {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let mut dx = vec![T::zero(); planes * g.h * g.w];
    dx.par_chunks_mut(g.h * g.w)
        .enumerate()
        .for_each(|(p, dp)| {
            let gp = &gy[p * ho * wo..(p + 1) * ho * wo];
            for oh in 0..ho {
                for ow in 0..wo {
                    let (r0, r1, c0, c1) = g.window(oh, ow);
                    let v = gp[oh * wo + ow] / T::from_f64(divisor(g, oh, ow, count_include_pad));
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
