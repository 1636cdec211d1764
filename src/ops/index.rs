//! Indexing: index_select, gather, where / masked_fill, one_hot.
//!
//! Indices are i64 tensors. index_select and gather save nothing but their indices (kept in the
//! op): their backward scatters the gradient back, adding where an index repeats. `where`
//! keeps its condition; each branch's gradient is the output gradient where that branch was
//! chosen, zero elsewhere.

use super::{from_float, panicking, same_kind, sum_to_shape, with_float};
use crate::autograd::{apply, Forward, Op};
use crate::backend::cpu::{elementwise::select, layout};
use crate::backend::cube::ops::{
    self as cube,
    Pick::{Elements, Rows},
};
use crate::error::{Error, OrPanic, Result};
use crate::tensor::{contiguous_cow, CpuData, DType, Shape, Tensor};

fn split(dims: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        dims[..axis].iter().product(),
        dims[axis],
        dims[axis + 1..].iter().product(),
    )
}

fn checked_indices(op: &'static str, idx: &Tensor, size: usize) -> Result<Vec<usize>> {
    idx.i64_slice(op)?
        .iter()
        .map(|&i| {
            // Negative indices count from the end, as in PyTorch.
            let j = if i < 0 { i + size as i64 } else { i };
            if j < 0 || j >= size as i64 {
                Err(Error::IndexOutOfRange { op, index: i, size })
            } else {
                Ok(j as usize)
            }
        })
        .collect()
}

/// Where an index op's indices live. On the CPU they are checked (a typed error names the
/// bad index) and kept as `usize`. On a device they stay an i64 tensor read by the kernels:
/// checking them would cost a trip to the host, so an index out of range gives NaN there
/// instead. Indices from the host are checked before they are uploaded.
enum Indices {
    Host(Vec<usize>),
    Device(Tensor),
}

impl Indices {
    fn len(&self) -> usize {
        match self {
            Indices::Host(v) => v.len(),
            Indices::Device(t) => t.numel(),
        }
    }
    fn new(op: &'static str, x: &Tensor, idx: &Tensor, size: usize) -> Result<Indices> {
        if idx.dtype() != DType::I64 {
            return Err(Error::DType {
                op,
                got: idx.dtype(),
                expected: "i64",
            });
        }
        let checked = || checked_indices(op, idx, size);
        match (x.cube().is_some(), idx.cube().is_some()) {
            (false, false) => Ok(Indices::Host(checked()?)),
            (true, true) if idx.device() == x.device() => Ok(Indices::Device(idx.clone())),
            (true, false) => {
                checked()?;
                Ok(Indices::Device(idx.try_to_device(x.device())?))
            }
            _ => Err(Error::DeviceMismatch {
                op,
                lhs: x.device(),
                rhs: idx.device(),
            }),
        }
    }
}

// ----- index_select ---------------------------------------------------------------------------

struct IndexSelect {
    axis: usize,
    idx: Indices,
    from: Shape,
}

impl Op for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let (outer, r, inner) = split(x.dims(), self.axis);
        let mut shape = x.shape().clone();
        shape.0[self.axis] = self.idx.len();
        let idx = match &self.idx {
            Indices::Host(idx) => idx,
            Indices::Device(t) => {
                let out = cube::pick(
                    x,
                    t,
                    (outer, r, inner),
                    t.numel(),
                    Rows { backward: false },
                    shape,
                )?;
                return Ok(Forward::new(out, vec![]));
            }
        };
        let l = x.layout();
        let data = match x.raw_data("index_select")? {
            CpuData::F32(v) => CpuData::F32(layout::index_select(
                &contiguous_cow(v, l),
                outer,
                r,
                inner,
                idx,
            )),
            CpuData::F64(v) => CpuData::F64(layout::index_select(
                &contiguous_cow(v, l),
                outer,
                r,
                inner,
                idx,
            )),
            CpuData::I64(v) => CpuData::I64(layout::index_select(
                &contiguous_cow(v, l),
                outer,
                r,
                inner,
                idx,
            )),
            CpuData::Bool(v) => CpuData::Bool(layout::index_select(
                &contiguous_cow(v, l),
                outer,
                r,
                inner,
                idx,
            )),
        };
        Ok(Forward::new(Tensor::from_cpu(data, shape), vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (outer, r, inner) = split(self.from.dims(), self.axis);
        let idx = match &self.idx {
            Indices::Host(idx) => idx,
            Indices::Device(t) => {
                let from = self.from.clone();
                let gx = cube::pick(
                    g,
                    t,
                    (outer, r, inner),
                    t.numel(),
                    Rows { backward: true },
                    from,
                )?;
                return Ok(vec![Some(gx)]);
            }
        };
        let gx = with_float!("index_select", g.dtype(), |T| {
            let gs = g.float_slice::<T>("index_select")?;
            Ok(from_float(
                layout::index_add(&gs, outer, r, inner, idx),
                self.from.clone(),
            ))
        })?;
        Ok(vec![Some(gx)])
    }
}

// ----- gather ---------------------------------------------------------------------------------

struct Gather {
    axis: usize,
    idx: Indices,
    q: usize,
    from: Shape,
}

impl Op for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let (outer, r, inner) = split(x.dims(), self.axis);
        let mut shape = x.shape().clone();
        shape.0[self.axis] = self.q;
        let idx = match &self.idx {
            Indices::Host(idx) => idx,
            Indices::Device(t) => {
                let out = cube::pick(
                    x,
                    t,
                    (outer, r, inner),
                    self.q,
                    Elements { backward: false },
                    shape,
                )?;
                return Ok(Forward::new(out, vec![]));
            }
        };
        let out = with_float!("gather", x.dtype(), |T| {
            let xs = x.float_slice::<T>("gather")?;
            Ok(from_float(
                layout::gather(&xs, outer, r, inner, idx, self.q),
                shape,
            ))
        })?;
        Ok(Forward::new(out, vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let (outer, r, inner) = split(self.from.dims(), self.axis);
        let idx = match &self.idx {
            Indices::Host(idx) => idx,
            Indices::Device(t) => {
                let from = self.from.clone();
                let gx = cube::pick(
                    g,
                    t,
                    (outer, r, inner),
                    self.q,
                    Elements { backward: true },
                    from,
                )?;
                return Ok(vec![Some(gx)]);
            }
        };
        let gx = with_float!("gather", g.dtype(), |T| {
            let gs = g.float_slice::<T>("gather")?;
            Ok(from_float(
                layout::scatter_add(&gs, outer, r, inner, idx, self.q),
                self.from.clone(),
            ))
        })?;
        Ok(vec![Some(gx)])
    }
}

// ----- where ----------------------------------------------------------------------------------

struct Where {
    cond: Tensor,
    lhs: Shape,
    rhs: Shape,
}

impl Op for Where {
    fn name(&self) -> &'static str {
        "where"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let (a, b) = (inputs[0], inputs[1]);
        let shape = self.cond.shape().clone();
        if a.cube().is_some() {
            let out = cube::select(&self.cond, a, b, &shape)?;
            return Ok(Forward::new(out, vec![]));
        }
        let c = self.cond.bool_slice("where")?;
        let out = with_float!("where", a.dtype(), |T| {
            // Inputs already of the output's shape are read in place; broadcast ones are gathered.
            let (va, vb) = (a.broadcast_view(&shape), b.broadcast_view(&shape));
            let av = va.float_slice::<T>("where")?;
            let bv = vb.float_slice::<T>("where")?;
            Ok(from_float(select(&c, &av, &bv), shape.clone()))
        })?;
        Ok(Forward::new(out, vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, needs: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let zero = Tensor::zeros_like(g);
        let ga = if needs[0] {
            Some(sum_to_shape(
                &Tensor::try_where(&self.cond, g, &zero)?,
                &self.lhs,
            )?)
        } else {
            None
        };
        let gb = if needs[1] {
            Some(sum_to_shape(
                &Tensor::try_where(&self.cond, &zero, g)?,
                &self.rhs,
            )?)
        } else {
            None
        };
        Ok(vec![ga, gb])
    }
}

impl Tensor {
    /// Picks entries along `axis` by a 1-D i64 index tensor (`torch.index_select`); an
    /// embedding lookup is `weight.index_select(0, ids)`.
    pub fn try_index_select(&self, axis: isize, indices: &Tensor) -> Result<Tensor> {
        let a = self.shape().axis("index_select", axis)?;
        if indices.rank() != 1 {
            return Err(Error::bad_shape(
                "index_select",
                indices.shape(),
                "indices must be 1-D",
            ));
        }
        let idx = Indices::new("index_select", self, indices, self.dims()[a])?;
        apply(
            IndexSelect {
                axis: a,
                idx,
                from: self.shape().clone(),
            },
            &[self],
        )
    }
    /// `out[..., i, ...] = self[..., index[..., i, ...], ...]` along `axis` (`torch.gather`);
    /// `index` has the input's shape except along `axis`.
    pub fn try_gather(&self, axis: isize, index: &Tensor) -> Result<Tensor> {
        let a = self.shape().axis("gather", axis)?;
        let ok = index.rank() == self.rank()
            && index
                .dims()
                .iter()
                .zip(self.dims())
                .enumerate()
                .all(|(i, (x, y))| i == a || x == y);
        if !ok {
            return Err(Error::mismatch(
                "gather",
                self.shape(),
                index.shape(),
                format!("index must match the input in every dim but {a}"),
            ));
        }
        let idx = Indices::new("gather", self, index, self.dims()[a])?;
        apply(
            Gather {
                axis: a,
                idx,
                q: index.dims()[a],
                from: self.shape().clone(),
            },
            &[self],
        )
    }
    /// `cond ? a : b` element-wise, all three broadcast together (`torch.where`).
    pub fn try_where(cond: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor> {
        same_kind("where", a, b)?;
        if cond.dtype() != DType::Bool {
            return Err(Error::DType {
                op: "where",
                got: cond.dtype(),
                expected: "bool",
            });
        }
        if cond.device() != a.device() {
            return Err(Error::DeviceMismatch {
                op: "where",
                lhs: a.device(),
                rhs: cond.device(),
            });
        }
        let shape = Shape::broadcast(
            "where",
            &Shape::broadcast("where", a.shape(), b.shape())?,
            cond.shape(),
        )?;
        let cond = cond.broadcast_view(&shape).try_contiguous_copy()?;
        apply(
            Where {
                cond,
                lhs: a.shape().clone(),
                rhs: b.shape().clone(),
            },
            &[a, b],
        )
    }
    #[track_caller]
    pub fn where_(cond: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
        Tensor::try_where(cond, a, b).or_panic()
    }
    /// `value` where `mask` is true, `self` elsewhere (`Tensor.masked_fill`).
    pub fn try_masked_fill(&self, mask: &Tensor, value: f64) -> Result<Tensor> {
        let v = Tensor::full_on([1usize; 0], value, self.dtype(), self.device());
        Tensor::try_where(mask, &v, self)
    }
    /// One-hot rows for i64 labels: shape `labels.shape + [num_classes]`, f32.
    /// On a device, a label out of range gives a NaN row instead of an error (see `Indices`).
    pub fn try_one_hot(&self, num_classes: usize) -> Result<Tensor> {
        let mut shape = self.shape().clone();
        shape.0.push(num_classes);
        if self.cube().is_some() {
            if self.dtype() != DType::I64 {
                return Err(Error::DType {
                    op: "one_hot",
                    got: self.dtype(),
                    expected: "i64",
                });
            }
            return cube::one_hot(self, num_classes, shape);
        }
        let idx = checked_indices("one_hot", self, num_classes)?;
        let mut v = vec![0f32; idx.len() * num_classes];
        for (row, &c) in idx.iter().enumerate() {
            v[row * num_classes + c] = 1.0;
        }
        Ok(Tensor::from_cpu(CpuData::F32(v), shape))
    }

    panicking!(index_select => try_index_select(axis: isize, indices: &Tensor) -> Tensor);
    panicking!(gather => try_gather(axis: isize, index: &Tensor) -> Tensor);
    panicking!(masked_fill => try_masked_fill(mask: &Tensor, value: f64) -> Tensor);
    panicking!(one_hot => try_one_hot(num_classes: usize) -> Tensor);
}
