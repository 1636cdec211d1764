//! Making and moving data on the CPU: fill, cast, contiguous copies, concatenation and the
//! backward of `narrow`. The copies are generic over any `Copy` element, so indices and masks
//! use them too.

use super::{buffer_cache, data, tensor, with_float, wrap, Cpu};
use crate::backend::layout::LayoutKernels;
use crate::backend::storage::{contiguous_cow, CpuData, HostElem};
use crate::error::{Error, Result};
use crate::tensor::{DType, Device, Shape, Tensor};

impl LayoutKernels for Cpu {
    fn full(&self, shape: &Shape, value: f64, dtype: DType, _device: Device) -> Result<Tensor> {
        let n = shape.numel();
        let data = match dtype {
            DType::F32 => CpuData::F32(buffer_cache::filled(n, value as f32)),
            DType::F64 => CpuData::F64(buffer_cache::filled(n, value)),
            DType::I64 => CpuData::I64(vec![value as i64; n]),
            DType::Bool => CpuData::Bool(vec![value != 0.0; n]),
        };
        Ok(wrap(data, shape.clone()))
    }

    fn cast(&self, x: &Tensor, dtype: DType) -> Result<Tensor> {
        let (d, l) = (data("to_dtype", x)?, x.layout());
        let out = match dtype {
            DType::F32 => CpuData::F32(f32::collect(d, l)),
            DType::F64 => CpuData::F64(f64::collect(d, l)),
            DType::I64 => CpuData::I64(i64::collect(d, l)),
            DType::Bool => CpuData::Bool(bool::collect(d, l)),
        };
        Ok(wrap(out, x.shape().clone()))
    }

    fn contiguous(&self, x: &Tensor) -> Result<Tensor> {
        self.contiguous_copy("contiguous", x)
    }

    fn concat(&self, parts: &[&Tensor], axis: usize) -> Result<Tensor> {
        let d = parts[0].dims();
        let (outer, inner): (usize, usize) =
            (d[..axis].iter().product(), d[axis + 1..].iter().product());
        let mut shape = parts[0].shape().clone();
        shape.0[axis] = parts.iter().map(|p| p.dims()[axis]).sum();
        macro_rules! cat {
            ($variant:ident) => {{
                let cows: Vec<_> = parts
                    .iter()
                    .map(|p| match data("concat", p)? {
                        CpuData::$variant(v) => Ok(contiguous_cow(v, p.layout())),
                        other => Err(Error::invalid(
                            "concat",
                            format!("dtypes differ: {} and {}", parts[0].dtype(), other.dtype()),
                        )),
                    })
                    .collect::<Result<_>>()?;
                let refs: Vec<(&[_], usize)> = cows
                    .iter()
                    .zip(parts)
                    .map(|(c, p)| (c.as_ref(), p.dims()[axis]))
                    .collect();
                CpuData::$variant(concat(&refs, outer, inner))
            }};
        }
        let out = match data("concat", parts[0])? {
            CpuData::F32(_) => cat!(F32),
            CpuData::F64(_) => cat!(F64),
            CpuData::I64(_) => cat!(I64),
            CpuData::Bool(_) => cat!(Bool),
        };
        Ok(wrap(out, shape))
    }

    fn pad_axis(&self, g: &Tensor, from: &Shape, axis: usize, start: usize) -> Result<Tensor> {
        let d = from.dims();
        let (outer, r, inner) = (
            d[..axis].iter().product(),
            d[axis],
            d[axis + 1..].iter().product(),
        );
        with_float!("narrow", g.dtype(), |T| {
            let gs = super::slice::<T>("narrow", g)?;
            Ok(tensor(
                pad_axis(&gs, outer, r, inner, start, g.dims()[axis]),
                from.clone(),
            ))
        })
    }
}

/// Concatenates contiguous parts along `axis`. Every part is `[outer, part_len, inner]`.
pub fn concat<T: Copy + 'static>(parts: &[(&[T], usize)], outer: usize, inner: usize) -> Vec<T> {
    let total: usize = parts.iter().map(|p| p.1).sum();
    let mut out = buffer_cache::take(outer * total * inner);
    for o in 0..outer {
        for (data, len) in parts {
            out.extend_from_slice(&data[o * len * inner..(o + 1) * len * inner]);
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
    let mut out = buffer_cache::filled(outer * r * inner, T::default());
    for o in 0..outer {
        let src = &part[o * len * inner..(o + 1) * len * inner];
        out[(o * r + start) * inner..(o * r + start + len) * inner].copy_from_slice(src);
    }
    out
}
