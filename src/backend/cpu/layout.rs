//! Copies that move data between layouts: concatenation, index selection, gather and their
//! scatter-add backward passes. Generic over any `Copy` element, so indices and masks use them
//! too.

/// Concatenates contiguous parts along `axis`. Every part is `[outer, part_len, inner]`.
pub fn concat<T: Copy + 'static>(parts: &[(&[T], usize)], outer: usize, inner: usize) -> Vec<T> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut out = super::pool::take(outer * total * inner);
    for o in 0..outer {
        for (data, len) in parts {
            out.extend_from_slice(&data[o * len * inner..(o + 1) * len * inner]);
        }
    }
    out
}

/// `out[o, i, :] = x[o, idx[i], :]` for `x` of shape `[outer, r, inner]`.
pub fn index_select<T: Copy + 'static>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = super::pool::take(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in idx {
            let s = (o * r + i) * inner;
            out.extend_from_slice(&x[s..s + inner]);
        }
    }
    out
}

/// Backward of `index_select`: `out[o, idx[i], :] += g[o, i, :]`.
pub fn index_add<T: Copy + std::ops::AddAssign + Default + 'static>(
    g: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
) -> Vec<T> {
    let mut out = super::pool::filled(outer * r * inner, T::default());
    for o in 0..outer {
        for (i, &j) in idx.iter().enumerate() {
            let src = &g[(o * idx.len() + i) * inner..(o * idx.len() + i + 1) * inner];
            let dst = &mut out[(o * r + j) * inner..(o * r + j + 1) * inner];
            dst.iter_mut().zip(src).for_each(|(d, &s)| *d += s);
        }
    }
    out
}

/// `out[o, i, j] = x[o, idx[o, i, j], j]`: PyTorch's `gather` with `x` seen as
/// `[outer, r, inner]` and `idx` as `[outer, q, inner]`.
pub fn gather<T: Copy + 'static>(
    x: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
    q: usize,
) -> Vec<T> {
    let mut out = super::pool::take(outer * q * inner);
    for o in 0..outer {
        for i in 0..q {
            for j in 0..inner {
                out.push(x[(o * r + idx[(o * q + i) * inner + j]) * inner + j]);
            }
        }
    }
    out
}

/// Backward of `gather`: `out[o, idx[o, i, j], j] += g[o, i, j]`.
pub fn scatter_add<T: Copy + std::ops::AddAssign + Default + 'static>(
    g: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    idx: &[usize],
    q: usize,
) -> Vec<T> {
    let mut out = super::pool::filled(outer * r * inner, T::default());
    for o in 0..outer {
        for i in 0..q {
            for j in 0..inner {
                let p = (o * q + i) * inner + j;
                out[(o * r + idx[p]) * inner + j] += g[p];
            }
        }
    }
    out
}

/// Writes contiguous `part` (`[outer, len, inner]`) at `start` along the middle axis of a zero
/// array `[outer, r, inner]`: the backward of `narrow`.
pub fn pad_axis<T: Copy + Default + 'static>(
    part: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    start: usize,
    len: usize,
) -> Vec<T> {
    let mut out = super::pool::filled(outer * r * inner, T::default());
    for o in 0..outer {
        let src = &part[o * len * inner..(o + 1) * len * inner];
        out[(o * r + start) * inner..(o * r + start + len) * inner].copy_from_slice(src);
    }
    out
}
