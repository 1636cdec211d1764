//! Layout ops: reshape, permute/transpose, narrow, broadcast, squeeze/unsqueeze (concat and
//! stack are in `concat.rs`).
//!
//! Reshape (of a contiguous tensor), permute, narrow and broadcast are views: they build a new
//! layout over the same storage and copy nothing. Their backward passes are the inverse layout
//! change (or, for broadcast, a sum). None of them saves a tensor; the op keeps the shapes.

use super::{panicking, sum_to_shape};
use crate::autograd::{apply, Forward, Op};
use crate::backend;
use crate::error::{Error, OrPanic, Result};
use crate::tensor::{Dims, Layout, Shape, Tensor};

// ----- reshape --------------------------------------------------------------------------------

struct Reshape {
    from: Shape,
    to: Shape,
}

impl Op for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let x = inputs[0];
        let x = if x.is_contiguous() {
            x.clone()
        } else {
            backend::of(x).contiguous(x)?
        };
        let layout = Layout {
            strides: self.to.contiguous_strides(),
            shape: self.to.clone(),
            offset: x.layout().offset,
        };
        Ok(Forward::new(x.view_with(layout), vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.try_reshape(self.from.dims())?)])
    }
}

// ----- permute --------------------------------------------------------------------------------

struct Permute {
    perm: Dims,
}

impl Op for Permute {
    fn name(&self) -> &'static str {
        "permute"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Ok(Forward::new(inputs[0].permute_view(&self.perm), vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let mut inverse = vec![0isize; self.perm.len()];
        for (i, &p) in self.perm.iter().enumerate() {
            inverse[p] = i as isize;
        }
        Ok(vec![Some(g.try_permute(&inverse)?)])
    }
}

// ----- narrow ---------------------------------------------------------------------------------

struct Narrow {
    axis: usize,
    start: usize,
    len: usize,
    from: Shape,
}

impl Op for Narrow {
    fn name(&self) -> &'static str {
        "narrow"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        let l = inputs[0].layout();
        let mut layout = l.clone();
        layout.offset += self.start * l.strides[self.axis];
        layout.shape.0[self.axis] = self.len;
        Ok(Forward::new(inputs[0].view_with(layout), vec![]))
    }
    /// The gradient goes back into the slice it came from; the rest of the input gets zeros.
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        let gx = backend::of(g).pad_axis(g, &self.from, self.axis, self.start)?;
        Ok(vec![Some(gx)])
    }
}

// ----- broadcast ------------------------------------------------------------------------------

struct BroadcastTo {
    from: Shape,
    to: Shape,
}

impl Op for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Ok(Forward::new(inputs[0].broadcast_view(&self.to), vec![]))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(sum_to_shape(g, &self.from)?)])
    }
}

// ----- contiguous -----------------------------------------------------------------------------

struct Contiguous;

impl Op for Contiguous {
    fn name(&self) -> &'static str {
        "contiguous"
    }
    fn forward(&self, inputs: &[&Tensor]) -> Result<Forward> {
        Ok(Forward::new(
            backend::of(inputs[0]).contiguous(inputs[0])?,
            vec![],
        ))
    }
    fn backward(&self, _: &[Tensor], g: &Tensor, _: &[bool]) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.clone())])
    }
}

impl Tensor {
    pub fn try_reshape(&self, dims: &[usize]) -> Result<Tensor> {
        let to = Shape::new(dims);
        if to.numel() != self.numel() {
            return Err(Error::mismatch(
                "reshape",
                self.shape(),
                &to,
                format!(
                    "{} elements cannot be viewed as {}",
                    self.numel(),
                    to.numel()
                ),
            ));
        }
        if &to == self.shape() {
            return Ok(self.clone());
        }
        apply(
            Reshape {
                from: self.shape().clone(),
                to,
            },
            &[self],
        )
    }
    /// Reshape where one dimension may be `-1`, inferred from the others.
    pub fn try_reshape_infer(&self, dims: &[isize]) -> Result<Tensor> {
        let known: usize = dims
            .iter()
            .filter(|&&d| d >= 0)
            .map(|&d| d as usize)
            .product();
        let holes = dims.iter().filter(|&&d| d < 0).count();
        let bad = || {
            Error::bad_shape(
                "reshape",
                self.shape(),
                format!("cannot reshape to {dims:?}"),
            )
        };
        if holes > 1 || (holes == 1 && (known == 0 || self.numel() % known != 0)) {
            return Err(bad());
        }
        let resolved: Vec<usize> = dims
            .iter()
            .map(|&d| {
                if d < 0 {
                    self.numel() / known.max(1)
                } else {
                    d as usize
                }
            })
            .collect();
        self.try_reshape(&resolved)
    }
    pub fn try_permute(&self, perm: &[isize]) -> Result<Tensor> {
        if perm.len() != self.rank() {
            return Err(Error::bad_shape(
                "permute",
                self.shape(),
                format!(
                    "permutation {perm:?} has {} entries for rank {}",
                    perm.len(),
                    self.rank()
                ),
            ));
        }
        let mut seen = vec![false; self.rank()];
        let mut p = Dims::new();
        for &a in perm {
            let a = self.shape().axis("permute", a)?;
            if seen[a] {
                return Err(Error::bad_shape(
                    "permute",
                    self.shape(),
                    format!("{perm:?} is not a permutation"),
                ));
            }
            seen[a] = true;
            p.push(a);
        }
        if p.iter().enumerate().all(|(i, &a)| i == a) {
            return Ok(self.clone());
        }
        apply(Permute { perm: p }, &[self])
    }
    pub fn try_transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let (a, b) = (
            self.shape().axis("transpose", a)?,
            self.shape().axis("transpose", b)?,
        );
        let mut perm: Vec<isize> = (0..self.rank() as isize).collect();
        perm.swap(a, b);
        self.try_permute(&perm)
    }
    /// `len` elements of `axis` from `start` (a view), like `torch.narrow`.
    pub fn try_narrow(&self, axis: isize, start: usize, len: usize) -> Result<Tensor> {
        let a = self.shape().axis("narrow", axis)?;
        if start + len > self.dims()[a] {
            return Err(Error::bad_shape(
                "narrow",
                self.shape(),
                format!(
                    "range {start}..{} exceeds dim {a} of size {}",
                    start + len,
                    self.dims()[a]
                ),
            ));
        }
        if start == 0 && len == self.dims()[a] {
            return Ok(self.clone());
        }
        apply(
            Narrow {
                axis: a,
                start,
                len,
                from: self.shape().clone(),
            },
            &[self],
        )
    }
    /// Expands size-1 (or missing leading) dims to `shape` without copying.
    pub fn try_broadcast_to(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let to = shape.into();
        let b = Shape::broadcast("broadcast_to", self.shape(), &to)?;
        if b != to {
            return Err(Error::mismatch(
                "broadcast_to",
                self.shape(),
                &to,
                "the target must contain the input's shape",
            ));
        }
        if &to == self.shape() {
            return Ok(self.clone());
        }
        apply(
            BroadcastTo {
                from: self.shape().clone(),
                to,
            },
            &[self],
        )
    }
    /// Inserts a size-1 dimension at `axis` (which may equal the rank, or be negative).
    pub fn try_unsqueeze(&self, axis: isize) -> Result<Tensor> {
        let r = self.rank() as isize + 1;
        let a = if axis < 0 { axis + r } else { axis };
        if a < 0 || a >= r {
            return Err(Error::bad_shape(
                "unsqueeze",
                self.shape(),
                format!("axis {axis} out of range"),
            ));
        }
        let mut d: Vec<usize> = self.dims().to_vec();
        d.insert(a as usize, 1);
        self.try_reshape(&d)
    }
    /// Removes dimension `axis`, which must have size 1.
    pub fn try_squeeze(&self, axis: isize) -> Result<Tensor> {
        let a = self.shape().axis("squeeze", axis)?;
        if self.dims()[a] != 1 {
            return Err(Error::bad_shape(
                "squeeze",
                self.shape(),
                format!("dim {a} has size {}, not 1", self.dims()[a]),
            ));
        }
        let mut d: Vec<usize> = self.dims().to_vec();
        d.remove(a);
        self.try_reshape(&d)
    }
    /// Merges dims `start..=end` into one.
    pub fn try_flatten(&self, start: isize, end: isize) -> Result<Tensor> {
        if self.rank() == 0 {
            return self.try_reshape(&[1]);
        }
        let (s, e) = (
            self.shape().axis("flatten", start)?,
            self.shape().axis("flatten", end)?,
        );
        if s > e {
            return Err(Error::bad_shape(
                "flatten",
                self.shape(),
                format!("start {start} is after end {end}"),
            ));
        }
        let d = self.dims();
        let mut nd: Vec<usize> = d[..s].to_vec();
        nd.push(d[s..=e].iter().product());
        nd.extend_from_slice(&d[e + 1..]);
        self.try_reshape(&nd)
    }
    /// A row-major copy if this is a strided view; the tensor itself otherwise.
    pub fn try_contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        apply(Contiguous, &[self])
    }

    panicking!(
        /// The same elements in a new shape (a view when the tensor is contiguous).
        reshape => try_reshape(dims: &[usize]) -> Tensor);
    panicking!(reshape_infer => try_reshape_infer(dims: &[isize]) -> Tensor);
    panicking!(
        /// Reorders dimensions (a view).
        permute => try_permute(perm: &[isize]) -> Tensor);
    panicking!(
        /// Swaps two dimensions (a view).
        transpose => try_transpose(a: isize, b: isize) -> Tensor);
    panicking!(narrow => try_narrow(axis: isize, start: usize, len: usize) -> Tensor);
    panicking!(unsqueeze => try_unsqueeze(axis: isize) -> Tensor);
    panicking!(squeeze => try_squeeze(axis: isize) -> Tensor);
    panicking!(flatten => try_flatten(start: isize, end: isize) -> Tensor);
    panicking!(contiguous => try_contiguous() -> Tensor);
    /// Transpose of the last two dims (`.mT` in PyTorch).
    #[track_caller]
    pub fn t(&self) -> Tensor {
        self.transpose(-2, -1)
    }
    #[track_caller]
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Tensor {
        self.try_broadcast_to(shape).or_panic()
    }
    /// Alias of `narrow` with an end index, like `x[.., start..end]`.
    #[track_caller]
    pub fn slice(&self, axis: isize, start: usize, end: usize) -> Tensor {
        self.narrow(axis, start, end.saturating_sub(start))
    }
}
