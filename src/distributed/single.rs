//! The group of one process: rank 0 of 1, where every collective leaves its buffer as it is.
//! A training loop written for many processes runs unchanged on one.

use super::group::{Buffer, Communicator};
use crate::error::Result;

#[derive(Clone, Copy, Debug, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn backend(&self) -> &'static str {
        "single"
    }
    fn all_reduce_sum(&self, _buf: Buffer<'_>) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _buf: Buffer<'_>, _root: usize) -> Result<()> {
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}
