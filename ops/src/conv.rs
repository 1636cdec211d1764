//! Convolution as im2col + matmul, as on the CPU: `im2col` unrolls each sample's patches into
//! a `[N, G, K, L]` buffer (`K = C/G·kh·kw` patch rows per group, `L = Ho·Wo` output
//! positions), the backend multiplies it by the weights with the matmul kernels, and
//! `col2im` is the backward: each input element gathers the patch gradients that read it
//! (at most kh·kw of them), so no two units write the same element and no atomics are needed.
//!
//! Positions are computed in padded coordinates (`y + pad`), which keeps the arithmetic in
//! unsigned integers: a padded position is inside the image when `pad ≤ y' < H + pad`.

use crate::common::{grid, u32s};
use cubecl::prelude::*;
use cubecl::server::Handle;

/// The geometry of a 2-D convolution (PyTorch's `NCHW` and `[O, C/groups, kh, kw]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub groups: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
    pub ho: usize,
    pub wo: usize,
}

impl ConvShape {
    /// `[c, h, w, groups, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo]`, as the kernels read it.
    fn packed(&self) -> [usize; 14] {
        [
            self.c,
            self.h,
            self.w,
            self.groups,
            self.kh,
            self.kw,
            self.stride.0,
            self.stride.1,
            self.padding.0,
            self.padding.1,
            self.dilation.0,
            self.dilation.1,
            self.ho,
            self.wo,
        ]
    }
    /// Elements of the patch buffer `[N, G, K, L]`.
    pub fn cols_len(&self) -> usize {
        self.n * self.c * self.kh * self.kw * self.ho * self.wo
    }
}

/// `cols[n, g, (cl, i, j), (oy, ox)] = x[n, g·C/G + cl, oy·sh + i·dh − ph, ox·sw + j·dw − pw]`,
/// zero in the padding.
#[cube(launch)]
fn im2col_kernel<F: Float>(x: &Array<F>, cols: &mut Array<F>, geo: &Array<u32>) {
    let e = ABSOLUTE_POS as u32;
    if e < cols.len() as u32 {
        let (c, h, w) = (geo[0], geo[1], geo[2]);
        let (kh, kw) = (geo[4], geo[5]);
        let (ho, wo) = (geo[12], geo[13]);
        let l = ho * wo;
        let ox = e % wo;
        let oy = (e / wo) % ho;
        let row = (e / l) % (c * kh * kw);
        let n = e / (l * c * kh * kw);
        // Rows run over the groups' channels in order, so (group, channel in group) is just
        // the channel.
        let j = row % kw;
        let i = (row / kw) % kh;
        let ch = row / (kw * kh);
        let yp = oy * geo[6] + i * geo[10];
        let xp = ox * geo[7] + j * geo[11];
        let (ph, pw) = (geo[8], geo[9]);
        let mut v = F::new(0.0);
        if yp >= ph && yp < h + ph && xp >= pw && xp < w + pw {
            v = x[(((n * c + ch) * h + yp - ph) * w + xp - pw) as usize];
        }
        cols[e as usize] = v;
    }
}

/// `dx[n, ch, y, x] = Σ_{i, j} dcols[n, g, (cl, i, j), (oy, ox)]` over the output positions
/// `(oy, ox)` whose patch reads `(y, x)` through kernel tap `(i, j)`.
#[cube(launch)]
// `is_multiple_of` is not among the functions a `#[cube]` body can call.
#[allow(clippy::manual_is_multiple_of)]
fn col2im_kernel<F: Float>(dcols: &Array<F>, dx: &mut Array<F>, geo: &Array<u32>) {
    let e = ABSOLUTE_POS as u32;
    if e < dx.len() as u32 {
        let (c, h, w) = (geo[0], geo[1], geo[2]);
        let (kh, kw) = (geo[4], geo[5]);
        let (sh, sw, ph, pw, dh, dw) = (geo[6], geo[7], geo[8], geo[9], geo[10], geo[11]);
        let (ho, wo) = (geo[12], geo[13]);
        let l = ho * wo;
        let x = e % w;
        let y = (e / w) % h;
        let ch = (e / (w * h)) % c;
        let n = e / (w * h * c);
        let (yp, xp) = (y + ph, x + pw);
        let mut acc = F::new(0.0);
        let mut i = 0u32;
        while i < kh {
            let ti = i * dh;
            if ti <= yp && (yp - ti) % sh == 0 && (yp - ti) / sh < ho {
                let oy = (yp - ti) / sh;
                let mut j = 0u32;
                while j < kw {
                    let tj = j * dw;
                    if tj <= xp && (xp - tj) % sw == 0 && (xp - tj) / sw < wo {
                        let ox = (xp - tj) / sw;
                        let row = (ch * kh + i) * kw + j;
                        acc += dcols[(((n * c * kh * kw) + row) * l + oy * wo + ox) as usize];
                    }
                    j += 1;
                }
            }
            i += 1;
        }
        dx[e as usize] = acc;
    }
}

/// The patch buffer `[N, G, K, L]` of the contiguous input `x` `[N, C, H, W]`.
pub fn im2col<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    x: &Handle,
    s: &ConvShape,
) -> Handle {
    let len = s.cols_len();
    let cols = client.empty(len.max(1) * std::mem::size_of::<F>());
    if len == 0 {
        return cols;
    }
    let (count, dim) = grid(len);
    // SAFETY: x holds n·c·h·w elements and every read is checked against the image; cols
    // holds len.
    unsafe {
        im2col_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(x.clone(), (s.n * s.c * s.h * s.w).max(1)),
            ArrayArg::from_raw_parts(cols.clone(), len),
            ArrayArg::from_raw_parts(u32s(client, &s.packed()), 14),
        );
    }
    cols
}

/// The backward of [`im2col`]: patch gradients `[N, G, K, L]` summed into `[N, C, H, W]`.
pub fn col2im<R: Runtime, F: Float + CubeElement>(
    client: &ComputeClient<R>,
    dcols: &Handle,
    s: &ConvShape,
) -> Handle {
    let len = s.n * s.c * s.h * s.w;
    let dx = client.empty(len.max(1) * std::mem::size_of::<F>());
    if len == 0 {
        return dx;
    }
    let (count, dim) = grid(len);
    // SAFETY: dcols holds cols_len elements, and (oy, ox) are checked against (ho, wo).
    unsafe {
        col2im_kernel::launch::<F, R>(
            client,
            count,
            dim,
            ArrayArg::from_raw_parts(dcols.clone(), s.cols_len().max(1)),
            ArrayArg::from_raw_parts(dx.clone(), len),
            ArrayArg::from_raw_parts(u32s(client, &s.packed()), 14),
        );
    }
    dx
}
