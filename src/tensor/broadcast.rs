//! The rules that can reject a shape: resolving an axis (negative counts from the end) and
//! NumPy broadcasting. They return the crate's typed errors, so they sit above `error.rs`,
//! while `shape.rs` below it holds only plain values.

use super::shape::{Dims, Shape};
use crate::error::{Error, Result};

impl Shape {
    /// Turns a possibly negative axis (`-1` is the last) into an index, or says why not.
    pub fn axis(&self, op: &'static str, axis: isize) -> Result<usize> {
        let rank = self.rank() as isize;
        let a = if axis < 0 { axis + rank } else { axis };
        if a < 0 || a >= rank.max(1) || (rank == 0) {
            return Err(Error::bad_shape(
                op,
                self,
                format!("axis {axis} is out of range for rank {rank}"),
            ));
        }
        Ok(a as usize)
    }

    /// Sorted, de-duplicated axes; an empty list means every axis.
    pub fn axes(&self, op: &'static str, axes: &[isize]) -> Result<Dims> {
        if axes.is_empty() {
            return Ok((0..self.rank()).collect());
        }
        let mut out = Dims::new();
        for &a in axes {
            let a = self.axis(op, a)?;
            if out.contains(&a) {
                return Err(Error::bad_shape(
                    op,
                    self,
                    format!("axis {a} is given twice"),
                ));
            }
            out.push(a);
        }
        out.sort_unstable();
        Ok(out)
    }

    // ANCHOR: broadcast
    /// NumPy broadcasting: align trailing dimensions; sizes must match or one of them be 1.
    pub fn broadcast(op: &'static str, lhs: &Shape, rhs: &Shape) -> Result<Shape> {
        let rank = lhs.rank().max(rhs.rank());
        let mut out = Dims::from_elem(0, rank);
        for i in 0..rank {
            let l = dim_from_end(lhs, rank - 1 - i);
            let r = dim_from_end(rhs, rank - 1 - i);
            out[i] = match (l, r) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                (a, b) => {
                    let axis = i as isize - rank as isize;
                    return Err(Error::mismatch(
                        op,
                        lhs,
                        rhs,
                        format!(
                            "cannot broadcast: dim {axis} is {a} on the left and {b} on the right"
                        ),
                    ));
                }
            };
        }
        Ok(Shape(out))
    }
    // ANCHOR_END: broadcast
}

fn dim_from_end(s: &Shape, k: usize) -> usize {
    if k < s.rank() {
        s.0[s.rank() - 1 - k]
    } else {
        1
    }
}
