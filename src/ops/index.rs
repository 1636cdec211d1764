//! Indexing: index_select, gather, where / masked_fill, one_hot.
//!
//! Indices are i64 tensors, placed once on the data's device (checked there when they come
//! from the host: `backend::index::place_indices`) and kept in the op. index_select and gather
//! save nothing else: their backward scatters the gradient back, adding where an index
//! repeats. `where` keeps its condition; each branch's gradient is the output gradient where
//! that branch was chosen, zero elsewhere.

use super::{panicking, same_kind, sum_to_shape};
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::backend::index::{place_indices, AxisSplit};
use crate::error::{Error, OrPanic, Result};
use crate::tensor::{DType, Shape, Tensor};

// ----- index_select ---------------------------------------------------------------------------

struct IndexSelect {
    axis: usize,
    idx: Tensor,
    from: Shape,
}

impl Op for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let mut shape = x.shape().clone();
        shape.0[self.axis] = self.idx.numel();
        let split = AxisSplit::of(x.dims(), self.axis);
        let out = backend::of(x).index_select(x, &self.idx, split, &shape)?;
        Ok(Forward::new(out, vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let split = AxisSplit::of(self.from.dims(), self.axis);
        let gx = backend::of(g).index_add(g, &self.idx, split, &self.from)?;
        Ok(vec![Some(gx)])
    }
}

// ----- gather ---------------------------------------------------------------------------------

struct Gather {
    axis: usize,
    idx: Tensor,
    q: usize,
    from: Shape,
}

impl Op for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let mut shape = x.shape().clone();
        shape.0[self.axis] = self.q;
        let split = AxisSplit::of(x.dims(), self.axis);
        let out = backend::of(x).gather(x, &self.idx, split, self.q, &shape)?;
        Ok(Forward::new(out, vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let split = AxisSplit::of(self.from.dims(), self.axis);
        let gx = backend::of(g).scatter_add(g, &self.idx, split, self.q, &self.from)?;
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
        let out = backend::of(a).select(&self.cond, a, b, &shape)?;
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
        let idx = place_indices("index_select", self, indices, self.dims()[a])?;
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
        let idx = place_indices("gather", self, index, self.dims()[a])?;
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
        let view = cond.broadcast_view(&shape);
        let cond = backend::of(&view).contiguous(&view)?;
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
    /// One-hot rows for i64 labels: shape `labels.shape + [num_classes]`, f32. A label out
    /// of range is an error on the CPU, a NaN row on a device (see `backend::index`).
    pub fn try_one_hot(&self, num_classes: usize) -> Result<Tensor> {
        let mut shape = self.shape().clone();
        shape.0.push(num_classes);
        let labels = place_indices("one_hot", self, self, num_classes)?;
        backend::of(&labels).one_hot(&labels, num_classes, &shape)
    }

    panicking!(index_select => try_index_select(axis: isize, indices: &Tensor) -> Tensor);
    panicking!(gather => try_gather(axis: isize, index: &Tensor) -> Tensor);
    panicking!(masked_fill => try_masked_fill(mask: &Tensor, value: f64) -> Tensor);
    panicking!(one_hot => try_one_hot(num_classes: usize) -> Tensor);
}
