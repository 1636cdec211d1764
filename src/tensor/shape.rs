//! Shapes, row-major strides and layouts: plain values with no failure modes (the rules that
//! can reject a shape, axis lookup and broadcasting, are in `broadcast.rs`).

use smallvec::SmallVec;
use std::fmt;

/// Dimension sizes; six inline slots cover every layer in this crate without a heap allocation.
pub type Dims = SmallVec<[usize; 6]>;

#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Dims);

impl Shape {
    pub fn new(dims: &[usize]) -> Self {
        Shape(Dims::from_slice(dims))
    }
    pub fn scalar() -> Self {
        Shape(Dims::new())
    }
    pub fn dims(&self) -> &[usize] {
        &self.0
    }
    pub fn rank(&self) -> usize {
        self.0.len()
    }
    pub fn numel(&self) -> usize {
        self.0.iter().product()
    }
    /// Row-major (C-order) strides, in elements.
    pub fn contiguous_strides(&self) -> Dims {
        let mut strides = Dims::from_elem(1, self.rank());
        for i in (0..self.rank().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * self.0[i + 1];
        }
        strides
    }

    /// Strides that read `self` as if it had shape `target` (0 on broadcast axes).
    pub fn broadcast_strides(&self, strides: &[usize], target: &Shape) -> Dims {
        let offset = target.rank() - self.rank();
        let mut out = Dims::from_elem(0, target.rank());
        for i in 0..self.rank() {
            if self.0[i] != 1 || target.0[i + offset] == 1 {
                out[i + offset] = strides[i];
            }
        }
        out
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_slice())
    }
}
impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0.as_slice())
    }
}

impl From<&[usize]> for Shape {
    fn from(d: &[usize]) -> Self {
        Shape::new(d)
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(d: [usize; N]) -> Self {
        Shape::new(&d)
    }
}
impl<const N: usize> From<&[usize; N]> for Shape {
    fn from(d: &[usize; N]) -> Self {
        Shape::new(d)
    }
}
impl From<Vec<usize>> for Shape {
    fn from(d: Vec<usize>) -> Self {
        Shape::new(&d)
    }
}
impl From<&Shape> for Shape {
    fn from(s: &Shape) -> Self {
        s.clone()
    }
}

/// Where a tensor's elements sit in its storage: shape, strides (in elements) and offset.
/// Views (transpose, narrow, broadcast) change only the layout, never the data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub shape: Shape,
    pub strides: Dims,
    pub offset: usize,
}

impl Layout {
    pub fn contiguous(shape: Shape) -> Self {
        let strides = shape.contiguous_strides();
        Layout {
            shape,
            strides,
            offset: 0,
        }
    }
    /// True when the elements are in row-major order with no gaps (size-1 dims ignored).
    pub fn is_contiguous(&self) -> bool {
        let mut expected = 1;
        for i in (0..self.shape.rank()).rev() {
            let d = self.shape.0[i];
            if d != 1 && self.strides[i] != expected {
                return false;
            }
            expected *= d;
        }
        true
    }
    /// Storage index of every element in row-major order; used to gather strided views.
    pub fn for_each_index(&self, mut f: impl FnMut(usize)) {
        let inner_stride = self.strides.last().copied().unwrap_or(1);
        self.for_each_row(|base| {
            let inner = self.shape.0.last().copied().unwrap_or(1);
            for k in 0..inner {
                f(base + k * inner_stride);
            }
        });
    }
    /// Storage index of the first element of every innermost row (all indices but the
    /// last), in row-major order; a rank-0 layout has one row of one element.
    pub fn for_each_row(&self, mut f: impl FnMut(usize)) {
        let rank = self.shape.rank();
        if self.shape.numel() == 0 {
            return;
        }
        if rank == 0 {
            f(self.offset);
            return;
        }
        let mut idx = Dims::from_elem(0, rank);
        let mut base = self.offset;
        loop {
            f(base);
            // Advance the odometer over all but the last dimension.
            let mut d = rank - 1;
            loop {
                if d == 0 {
                    return;
                }
                d -= 1;
                idx[d] += 1;
                base += self.strides[d];
                if idx[d] < self.shape.0[d] {
                    break;
                }
                base -= self.strides[d] * self.shape.0[d];
                idx[d] = 0;
            }
        }
    }
}
