//! Max and average pooling over the last two dims of `[planes, H, W]`, with PyTorch's
//! semantics (max pooling ignores the padding; average pooling divides by the window with or
//! without it, or by `divisor_override`; `ceil_mode` only changes `ho`, `wo`, as windows are
//! clipped to the image). One unit per output in the forward; in the backward one
//! unit per input element gathers from the windows that hold it, so no atomics are needed.
//! Max pooling records the flat in-plane index of each maximum (as i64, two u32 words) for its
//! backward, the first one on ties, and a NaN wins, as on the CPU.

use crate::common::{grid, u32s};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// A pooling window's geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolShape {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub ho: usize,
    pub wo: usize,
    /// Average pooling divides every window by this when it is not 0.
    pub divisor_override: usize,
}

impl PoolShape {
    fn packed(&self) -> [usize; 11] {
        [
            self.h,
            self.w,
            self.kernel.0,
            self.kernel.1,
            self.stride.0,
            self.stride.1,
            self.padding.0,
            self.padding.1,
            self.ho,
            self.wo,
            self.divisor_override,
        ]
    }
}

#[cube]
fn umax(a: u32, b: u32) -> u32 {
    let mut r = a;
    if b > a {
        r = b;
    }
    r
}

#[cube]
fn umin(a: u32, b: u32) -> u32 {
    let mut r = a;
    if b < a {
        r = b;
    }
    r
}

/// The window of output `(oy, ox)` clipped to the image, in padded coordinates.
#[cube]
fn window(oy: u32, ox: u32, geo: &Array<u32>) -> (u32, u32, u32, u32) {
    let (h, w, kh, kw) = (geo[0], geo[1], geo[2], geo[3]);
    let (ph, pw) = (geo[6], geo[7]);
    let y0 = oy * geo[4];
    let x0 = ox * geo[5];
    (
        umax(y0, ph),
        umin(y0 + kh, h + ph),
        umax(x0, pw),
        umin(x0 + kw, w + pw),
    )
}

/// Average pooling's divisor: the override, the window clipped to the padded image, or to
/// the image.
#[cube]
fn divisor<F: Float>(oy: u32, ox: u32, geo: &Array<u32>, include_pad: u32) -> F {
    let (h, w, kh, kw) = (geo[0], geo[1], geo[2], geo[3]);
    let (ph, pw) = (geo[6], geo[7]);
    let y0 = oy * geo[4];
    let x0 = ox * geo[5];
    let (r0, r1, c0, c1) = window(oy, ox, geo);
    let mut count = umax((r1 - r0) * (c1 - c0), 1u32);
    if include_pad == 1 {
        let y1 = umin(y0 + kh, h + 2 * ph);
        let x1 = umin(x0 + kw, w + 2 * pw);
        count = (y1 - y0) * (x1 - x0);
    }
    if geo[10] != 0 {
        count = geo[10];
    }
    F::cast_from(count)
}

#[cube(launch)]
#[allow(clippy::eq_op)]
fn max_pool_kernel<F: Float>(
    x: &Array<F>,
    y: &mut Array<F>,
    idx: &mut Array<u32>,
    geo: &Array<u32>,
) {
    let e = ABSOLUTE_POS as u32;
    if e < y.len() as u32 {
        let (h, w, ho, wo) = (geo[0], geo[1], geo[8], geo[9]);
        let (ph, pw) = (geo[6], geo[7]);
        let ox = e % wo;
        let oy = (e / wo) % ho;
        let p = e / (wo * ho);
        let (r0, r1, c0, c1) = window(oy, ox, geo);
        let base = p * h * w;
        let mut at = (r0 - ph) * w + c0 - pw;
        let mut best = x[(base + at) as usize];
        let mut r = r0;
        while r < r1 {
            let mut c = c0;
            while c < c1 {
                let i = (r - ph) * w + c - pw;
                let v = x[(base + i) as usize];
                if v > best || (v != v && best == best) {
                    best = v;
                    at = i;
                }
                c += 1;
            }
            r += 1;
        }
        y[e as usize] = best;
        idx[(2 * e) as usize] = at;
        idx[(2 * e + 1) as usize] = 0u32;
    }
}

/// The first and last output index (inclusive, as `lo, hi + 1`) whose window along one axis
/// holds padded position `t`.
#[cube]
// `div_ceil` is not among the functions a `#[cube]` body can call.
#[allow(clippy::manual_div_ceil)]
fn outputs_over(t: u32, k: u32, s: u32, n_out: u32) -> (u32, u32) {
    let mut lo = 0u32;
    if t + 1 > k {
        lo = (t + 1 - k + s - 1) / s;
    }
    let hi = umin(t / s + 1, n_out);
    (lo, hi)
}

#[cube(launch)]
#[allow(clippy::too_many_arguments)]
fn pool_backward_kernel<F: Float>(
    gy: &Array<F>,
    idx: &Array<u32>,
    dx: &mut Array<F>,
    geo: &Array<u32>,
    include_pad: u32,
    #[comptime] max: bool,
) {
    let e = ABSOLUTE_POS as u32;
    if e < dx.len() as u32 {
        let (h, w, ho, wo) = (geo[0], geo[1], geo[8], geo[9]);
        let x = e % w;
        let y = (e / w) % h;
        let p = e / (w * h);
        let (ylo, yhi) = outputs_over(y + geo[6], geo[2], geo[4], ho);
        let (xlo, xhi) = outputs_over(x + geo[7], geo[3], geo[5], wo);
        let mut acc = F::new(0.0);
        let mut oy = ylo;
        while oy < yhi {
            let mut ox = xlo;
            while ox < xhi {
                let o = (p * ho + oy) * wo + ox;
                if comptime![max] {
                    if idx[(2 * o) as usize] == y * w + x {
                        acc += gy[o as usize];
                    }
                } else {
                    acc += gy[o as usize] / divisor::<F>(oy, ox, geo, include_pad);
                }
                ox += 1;
            }
            oy += 1;
        }
        dx[e as usize] = acc;
    }
}

#[cube(launch)]
fn avg_pool_kernel<F: Float>(x: &Array<F>, y: &mut Array<F>, geo: &Array<u32>, include_pad: u32) {
    let e = ABSOLUTE_POS as u32;
    if e < y.len() as u32 {
        let (h, w, ho, wo) = (geo[0], geo[1], geo[8], geo[9]);
        let (ph, pw) = (geo[6], geo[7]);
        let ox = e % wo;
        let oy = (e / wo) % ho;
        let p = e / (wo * ho);
        let (r0, r1, c0, c1) = window(oy, ox, geo);
        let mut sum = F::new(0.0);
        let mut r = r0;
        while r < r1 {
            let mut c = c0;
            while c < c1 {
                sum += x[(p * h * w + (r - ph) * w + c - pw) as usize];
                c += 1;
            }
            r += 1;
        }
        y[e as usize] = sum / divisor::<F>(oy, ox, geo, include_pad);
    }
}

/// Max pooling of the contiguous `x`: the outputs `[planes, Ho, Wo]` and the i64 in-plane
/// index of each maximum.
pub fn max_pool<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    s: &PoolShape,
) -> (Handle, Handle) {
    let len = s.planes * s.ho * s.wo;
    let y = client.empty(len.max(1) * std::mem::size_of::<F>());
    let idx = client.empty(len.max(1) * 8);
    if len == 0 {
        return (y, idx);
    }
    let (count, dim) = grid(len);
    // SAFETY: every window is non-empty (padding at most half the kernel) and inside the
    // image; y holds len elements and idx 2·len words.
    unsafe {
        max_pool_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), (s.planes * s.h * s.w).max(1)),
            ArrayArg::from_raw_parts(y.clone(), len),
            ArrayArg::from_raw_parts(idx.clone(), 2 * len),
            ArrayArg::from_raw_parts(u32s(client, &s.packed()), 11),
        );
    }
    (y, idx)
}

/// Average pooling of the contiguous `x` into `[planes, Ho, Wo]`.
pub fn avg_pool<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    s: &PoolShape,
    count_include_pad: bool,
) -> Handle {
    let len = s.planes * s.ho * s.wo;
    let y = client.empty(len.max(1) * std::mem::size_of::<F>());
    if len == 0 {
        return y;
    }
    let (count, dim) = grid(len);
    // SAFETY: as for max_pool.
    unsafe {
        avg_pool_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), (s.planes * s.h * s.w).max(1)),
            ArrayArg::from_raw_parts(y.clone(), len),
            ArrayArg::from_raw_parts(u32s(client, &s.packed()), 11),
            count_include_pad as u32,
        );
    }
    y
}

/// The backward of [`max_pool`] (`idx` its indices) or, with `idx` `None`, of [`avg_pool`]:
/// `gy` `[planes, Ho, Wo]` into `[planes, H, W]`.
pub fn pool_backward<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    gy: &Handle,
    idx: Option<&Handle>,
    s: &PoolShape,
    count_include_pad: bool,
) -> Handle {
    let len = s.planes * s.h * s.w;
    let out = s.planes * s.ho * s.wo;
    let dx = client.empty(len.max(1) * std::mem::size_of::<F>());
    if len == 0 {
        return dx;
    }
    let (count, dim) = grid(len);
    let (hi, li) = match idx {
        Some(h) => (h.clone(), 2 * out.max(1)),
        None => (gy.clone(), 1),
    };
    // SAFETY: gy and idx hold the outputs' elements (idx twice as many words), read only at
    // outputs in range; a missing idx is bound to gy and never read.
    unsafe {
        pool_backward_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(gy.clone(), out.max(1)),
            ArrayArg::from_raw_parts(hi, li),
            ArrayArg::from_raw_parts(dx.clone(), len),
            ArrayArg::from_raw_parts(u32s(client, &s.packed()), 11),
            count_include_pad as u32,
            idx.is_some(),
        );
    }
    dx
}
