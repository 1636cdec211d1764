//! 2-D convolution on the CPU by im2col + gemm, and its backward. For each
//! sample and group, the input patches are unrolled into a `[C/g · kh · kw, Ho · Wo]`
//! matrix, so the convolution is one matrix product with the `[O/g, C/g · kh · kw]` weight;
//! the backward multiplies by the transposes and folds the patches back (col2im). Samples
//! run in parallel.

use super::float::Float;
use super::matmul::{gemm_into, MatRef};
use super::{tensor, with_float, Cpu};
use crate::backend::conv::{ConvGeometry, ConvGrads, ConvKernels};
use crate::error::Result;
use crate::tensor::Tensor;
use rayon::prelude::*;

impl ConvKernels for Cpu {
    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        g: &ConvGeometry,
    ) -> Result<Tensor> {
        let (ho, wo) = g.out_hw().expect("checked by the op");
        with_float!("conv2d", x.dtype(), |T| {
            let f = |t| super::slice::<T>("conv2d", t);
            let bias = b.map(f).transpose()?;
            let y = forward(&f(x)?, &f(w)?, bias.as_deref(), g);
            Ok(tensor(y, [g.n, g.o, ho, wo]))
        })
    }

    fn conv2d_backward(
        &self,
        x: &Tensor,
        w: &Tensor,
        gy: &Tensor,
        g: &ConvGeometry,
        need_x: bool,
    ) -> Result<ConvGrads> {
        with_float!("conv2d", x.dtype(), |T| {
            let f = |t| super::slice::<T>("conv2d", t);
            let (dx, dw, db) = backward(&f(x)?, &f(w)?, &f(gy)?, g, need_x);
            Ok(ConvGrads {
                dx: need_x.then(|| tensor(dx, x.shape().clone())),
                dw: tensor(dw, w.shape().clone()),
                db: tensor(db, [g.o]),
            })
        })
    }
}

/// The output columns `[lo, hi)` of `0..out` whose input column `ow · stride + off` falls
/// inside `0..width`; the others read the zero padding. Computing the range once keeps the
/// copies free of per-element bounds tests, so they vectorise.
fn inside(out: usize, stride: usize, off: isize, width: usize) -> (usize, usize) {
    let s = stride as isize;
    // Smallest ow with ow·s + off ≥ 0, and smallest with ow·s + off ≥ width.
    let first = |bound: isize| ((bound - off).max(0) + s - 1) / s;
    let lo = (first(0) as usize).min(out);
    let hi = (first(width as isize) as usize).clamp(lo, out);
    (lo, hi)
}

/// Unrolls group `gi` of one sample `x` (`[C, H, W]`) into `cols` (`[K, Ho·Wo]`).
fn im2col<T: Float>(x: &[T], g: &ConvGeometry, gi: usize, cols: &mut [T]) {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let (sh, sw) = g.stride;
    let (ph, pw) = g.padding;
    let (dh, dw) = g.dilation;
    for cl in 0..g.cg() {
        let ch = gi * g.cg() + cl;
        let plane = &x[ch * g.h * g.w..(ch + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = (cl * g.kh + i) * g.kw + j;
                let out = &mut cols[row * ho * wo..(row + 1) * ho * wo];
                for oh in 0..ho {
                    let y = (oh * sh + i * dh) as isize - ph as isize;
                    let dst = &mut out[oh * wo..(oh + 1) * wo];
                    if y < 0 || y >= g.h as isize {
                        dst.fill(T::zero());
                        continue;
                    }
                    let src = &plane[y as usize * g.w..(y as usize + 1) * g.w];
                    let off = (j * dw) as isize - pw as isize;
                    let (lo, hi) = inside(wo, sw, off, g.w);
                    dst[..lo].fill(T::zero());
                    dst[hi..].fill(T::zero());
                    if sw == 1 {
                        let at = (lo as isize + off) as usize;
                        dst[lo..hi].copy_from_slice(&src[at..at + hi - lo]);
                    } else {
                        for (ow, d) in (lo..hi).zip(&mut dst[lo..hi]) {
                            *d = src[(ow as isize * sw as isize + off) as usize];
                        }
                    }
                }
            }
        }
    }
}

/// Adds the patch gradients `cols` (`[K, Ho·Wo]`) of group `gi` back into `dx` (`[C, H, W]`).
fn col2im<T: Float>(cols: &[T], g: &ConvGeometry, gi: usize, dx: &mut [T]) {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let (sh, sw) = g.stride;
    let (ph, pw) = g.padding;
    let (dh, dw) = g.dilation;
    for cl in 0..g.cg() {
        let ch = gi * g.cg() + cl;
        let plane = &mut dx[ch * g.h * g.w..(ch + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = (cl * g.kh + i) * g.kw + j;
                let src = &cols[row * ho * wo..(row + 1) * ho * wo];
                for oh in 0..ho {
                    let y = (oh * sh + i * dh) as isize - ph as isize;
                    if y < 0 || y >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[y as usize * g.w..(y as usize + 1) * g.w];
                    let row = &src[oh * wo..(oh + 1) * wo];
                    let off = (j * dw) as isize - pw as isize;
                    let (lo, hi) = inside(wo, sw, off, g.w);
                    if sw == 1 {
                        let at = (lo as isize + off) as usize;
                        let d = &mut dst[at..at + hi - lo];
                        d.iter_mut().zip(&row[lo..hi]).for_each(|(a, &v)| *a += v);
                    } else {
                        for (ow, &v) in (lo..hi).zip(&row[lo..hi]) {
                            dst[(ow as isize * sw as isize + off) as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

fn mat<T>(data: &[T], offset: usize, row_stride: usize, col_stride: usize) -> MatRef<'_, T> {
    MatRef {
        data,
        offset,
        row_stride,
        col_stride,
    }
}

/// `y = conv2d(x, w) + b`: `x` `[N, C, H, W]`, `w` `[O, C/g, kh, kw]`, `b` `[O]`.
pub fn forward<T: Float>(x: &[T], w: &[T], b: Option<&[T]>, g: &ConvGeometry) -> Vec<T> {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let (hw, k, og) = (ho * wo, g.k(), g.og());
    let mut y = super::buffer_cache::filled(g.n * g.o * hw, T::zero());
    y.par_chunks_mut(g.o * hw)
        .enumerate()
        .for_each_init(Vec::new, |cols, (s, ys)| {
            cols.resize(k * hw, T::zero());
            let xs = &x[s * g.c * g.h * g.w..(s + 1) * g.c * g.h * g.w];
            for gi in 0..g.groups {
                im2col(xs, g, gi, cols);
                let out = &mut ys[gi * og * hw..(gi + 1) * og * hw];
                gemm_into(
                    og,
                    hw,
                    k,
                    out,
                    hw,
                    false,
                    mat(w, gi * og * k, k, 1),
                    mat(cols, 0, hw, 1),
                    T::one(),
                );
            }
            if let Some(b) = b {
                for (oc, plane) in ys.chunks_mut(hw).enumerate() {
                    plane.iter_mut().for_each(|v| *v += b[oc]);
                }
            }
        });
    y
}

/// Gradients `(dx, dw, db)` given the output gradient `gy` (`[N, O, Ho, Wo]`).
pub fn backward<T: Float>(
    x: &[T],
    w: &[T],
    gy: &[T],
    g: &ConvGeometry,
    need_x: bool,
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (ho, wo) = g.out_hw().expect("checked by the op");
    let (hw, k, og) = (ho * wo, g.k(), g.og());
    let sample = g.c * g.h * g.w;
    let mut dx = super::buffer_cache::filled(if need_x { g.n * sample } else { 0 }, T::zero());
    let zeros = || (vec![T::zero(); g.o * k], vec![T::zero(); g.o]);
    let one =
        |(dw, db): &mut (Vec<T>, Vec<T>), cols: &mut Vec<T>, s: usize, dxs: Option<&mut [T]>| {
            let xs = &x[s * sample..(s + 1) * sample];
            let gs = &gy[s * g.o * hw..(s + 1) * g.o * hw];
            cols.resize(k * hw, T::zero());
            let mut dxs = dxs;
            for gi in 0..g.groups {
                im2col(xs, g, gi, cols);
                // dW_g += G_g colsᵀ
                gemm_into(
                    og,
                    k,
                    hw,
                    &mut dw[gi * og * k..(gi + 1) * og * k],
                    k,
                    true,
                    mat(gs, gi * og * hw, hw, 1),
                    mat(cols, 0, 1, hw),
                    T::one(),
                );
                if let Some(dxs) = dxs.as_deref_mut() {
                    // dcols = W_gᵀ G_g, folded back into dx.
                    gemm_into(
                        k,
                        hw,
                        og,
                        cols,
                        hw,
                        false,
                        mat(w, gi * og * k, 1, k),
                        mat(gs, gi * og * hw, hw, 1),
                        T::one(),
                    );
                    col2im(cols, g, gi, dxs);
                }
            }
            for (oc, plane) in gs.chunks(hw).enumerate() {
                db[oc] += plane.iter().copied().sum::<T>();
            }
        };
    let (dw, db) = if need_x {
        dx.par_chunks_mut(sample)
            .enumerate()
            .fold(
                || (zeros(), Vec::new()),
                |(mut acc, mut cols), (s, dxs)| {
                    one(&mut acc, &mut cols, s, Some(dxs));
                    (acc, cols)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(zeros, add_pair)
    } else {
        (0..g.n)
            .into_par_iter()
            .fold(
                || (zeros(), Vec::new()),
                |(mut acc, mut cols), s| {
                    one(&mut acc, &mut cols, s, None);
                    (acc, cols)
                },
            )
            .map(|(acc, _)| acc)
            .reduce(zeros, add_pair)
    };
    (dx, dw, db)
}

fn add_pair<T: Float>(mut a: (Vec<T>, Vec<T>), b: (Vec<T>, Vec<T>)) -> (Vec<T>, Vec<T>) {
    a.0.iter_mut().zip(&b.0).for_each(|(p, &q)| *p += q);
    a.1.iter_mut().zip(&b.1).for_each(|(p, &q)| *p += q);
    a
}
