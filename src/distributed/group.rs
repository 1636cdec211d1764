//! The process group: who this process is among its peers, and the collective operations they
//! run together.
//!
//! A backend (one process, MPI, NCCL, or one of your own) implements [`Communicator`] on host
//! buffers; [`ProcessGroup`] wraps it with the operations a training loop uses on tensors, and
//! with the watchdog that turns a peer that died into an error. Every rank must call the same
//! collectives in the same order with buffers of the same length: that is the contract of
//! MPI and NCCL alike, and what [`DataParallel`](super::DataParallel) keeps by visiting the
//! model in its fixed order.

use super::watchdog::Watchdog;
use crate::error::{Error, Result};
use crate::tensor::{DType, Tensor};
use std::time::Duration;

/// How an all-reduce combines the ranks' values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    Sum,
    /// The sum divided by the world size (computed as a sum, then scaled on each rank).
    Mean,
}

/// A host buffer a collective reads and overwrites: floats for gradients and weights,
/// integers for counters (BatchNorm's `num_batches_tracked`).
pub enum Buffer<'a> {
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    I64(&'a mut [i64]),
}

impl Buffer<'_> {
    pub fn len(&self) -> usize {
        match self {
            Buffer::F32(b) => b.len(),
            Buffer::F64(b) => b.len(),
            Buffer::I64(b) => b.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Bytes on the wire.
    pub fn bytes(&self) -> usize {
        match self {
            Buffer::F32(b) => 4 * b.len(),
            Buffer::F64(b) => 8 * b.len(),
            Buffer::I64(b) => 8 * b.len(),
        }
    }
}

/// What a backend provides: the process's place in the group and three collectives on host
/// buffers, each in place. Implement it to bring another transport (Gloo, a TCP ring, shared
/// memory) to [`ProcessGroup::new`].
pub trait Communicator: Send {
    /// This process's index, `0..world_size()`.
    fn rank(&self) -> usize;
    fn world_size(&self) -> usize;
    /// A short name for messages: `"single"`, `"mpi"`, `"nccl"`.
    fn backend(&self) -> &'static str;
    /// Sums `buf` element by element over all ranks; every rank ends with the sums.
    fn all_reduce_sum(&self, buf: Buffer<'_>) -> Result<()>;
    /// Copies rank `root`'s `buf` into every other rank's.
    fn broadcast(&self, buf: Buffer<'_>, root: usize) -> Result<()>;
    /// Returns once every rank has called it.
    fn barrier(&self) -> Result<()>;
}

/// How long a collective waits for its peers before the watchdog ends the process (PyTorch's
/// NCCL default), unless `CUBEGRAD_DIST_TIMEOUT` (seconds) or
/// [`ProcessGroup::set_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// This process's place among the processes of one training run, and the collectives they run
/// together, on tensors (wherever they live: device tensors are staged through the host) and on
/// host buffers.
pub struct ProcessGroup {
    comm: Box<dyn Communicator>,
    watchdog: Watchdog,
}

impl ProcessGroup {
    /// A group over any backend.
    pub fn new(comm: Box<dyn Communicator>) -> Self {
        let timeout = std::env::var("CUBEGRAD_DIST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        let watchdog = Watchdog::new(comm.rank(), comm.world_size(), timeout);
        ProcessGroup { comm, watchdog }
    }
    /// The group of this process alone: every collective returns its input.
    pub fn single() -> Self {
        Self::new(Box::new(super::SingleProcess))
    }
    /// The MPI world this process was launched into (`mpirun -np N`).
    #[cfg(feature = "mpi")]
    pub fn mpi() -> Result<Self> {
        Ok(Self::new(Box::new(super::MpiGroup::init()?)))
    }
    /// The MPI world, with NCCL for the reductions (one GPU per rank, `cuda:<local rank>`).
    #[cfg(feature = "nccl")]
    pub fn nccl() -> Result<Self> {
        Ok(Self::new(Box::new(super::NcclGroup::init()?)))
    }

    pub fn rank(&self) -> usize {
        self.comm.rank()
    }
    pub fn world_size(&self) -> usize {
        self.comm.world_size()
    }
    /// Rank 0: the process that prints, writes files and checkpoints.
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }
    pub fn backend(&self) -> &'static str {
        self.comm.backend()
    }
    /// How long a collective may wait for the other ranks before this process stops with an
    /// error naming the collective (a rank that was killed never arrives).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.watchdog.set_timeout(timeout);
    }
    pub fn timeout(&self) -> Duration {
        self.watchdog.timeout()
    }

    /// [`Communicator::all_reduce_sum`], then the division for a mean, under the watchdog.
    pub fn all_reduce_buffer(&self, mut buf: Buffer<'_>, op: ReduceOp) -> Result<()> {
        if self.world_size() > 1 {
            let _armed = self.watchdog.arm("all_reduce");
            self.comm.all_reduce_sum(reborrow(&mut buf))?;
        }
        if op == ReduceOp::Mean {
            let n = self.world_size();
            match buf {
                Buffer::F32(b) => b.iter_mut().for_each(|x| *x /= n as f32),
                Buffer::F64(b) => b.iter_mut().for_each(|x| *x /= n as f64),
                Buffer::I64(_) => {
                    return Err(Error::Distributed {
                        op: "all_reduce",
                        detail: "the mean of integers is not an integer; use ReduceOp::Sum".into(),
                    })
                }
            }
        }
        Ok(())
    }
    /// Rank `root`'s values into `buf` on every rank, under the watchdog.
    pub fn broadcast_buffer(&self, buf: Buffer<'_>, root: usize) -> Result<()> {
        self.check_root("broadcast", root)?;
        if self.world_size() > 1 {
            let _armed = self.watchdog.arm("broadcast");
            self.comm.broadcast(buf, root)?;
        }
        Ok(())
    }
    /// Waits until every rank has arrived, under the watchdog.
    pub fn barrier(&self) -> Result<()> {
        if self.world_size() > 1 {
            let _armed = self.watchdog.arm("barrier");
            self.comm.barrier()?;
        }
        Ok(())
    }

    /// The sum (or mean) of `t` over the ranks, as a new tensor on `t`'s device without
    /// history. `t` must have the same shape and dtype on every rank.
    pub fn all_reduce(&self, t: &Tensor, op: ReduceOp) -> Result<Tensor> {
        self.through_host(t, "all_reduce", |buf| self.all_reduce_buffer(buf, op))
    }
    /// Rank `root`'s `t`, on every rank (a new tensor on `t`'s device, without history).
    pub fn broadcast(&self, t: &Tensor, root: usize) -> Result<Tensor> {
        self.through_host(t, "broadcast", |buf| self.broadcast_buffer(buf, root))
    }
    /// The mean over the ranks of a few host numbers (losses, counts): one small all-reduce.
    pub fn mean_f64(&self, values: &mut [f64]) -> Result<()> {
        self.all_reduce_buffer(Buffer::F64(values), ReduceOp::Mean)
    }
    /// The sum over the ranks of a few host numbers.
    pub fn sum_f64(&self, values: &mut [f64]) -> Result<()> {
        self.all_reduce_buffer(Buffer::F64(values), ReduceOp::Sum)
    }

    /// Runs `f` on `t`'s values on the host and returns them as a tensor of `t`'s shape, dtype
    /// and device.
    fn through_host(
        &self,
        t: &Tensor,
        op: &'static str,
        f: impl FnOnce(Buffer<'_>) -> Result<()>,
    ) -> Result<Tensor> {
        let shape = t.shape().clone();
        let out = match t.dtype() {
            DType::F32 => {
                let mut v = t.try_to_vec::<f32>()?;
                f(Buffer::F32(&mut v))?;
                Tensor::try_from_vec(v, shape)?
            }
            DType::F64 => {
                let mut v = t.try_to_vec::<f64>()?;
                f(Buffer::F64(&mut v))?;
                Tensor::try_from_vec(v, shape)?
            }
            DType::I64 => {
                let mut v = t.try_to_vec::<i64>()?;
                f(Buffer::I64(&mut v))?;
                Tensor::try_from_vec(v, shape)?
            }
            DType::Bool => {
                return Err(Error::Distributed {
                    op,
                    detail: format!(
                        "a bool tensor of shape {shape} cannot be sent; convert it to i64"
                    ),
                })
            }
        };
        out.try_to_device(t.device())
    }

    fn check_root(&self, op: &'static str, root: usize) -> Result<()> {
        if root >= self.world_size() {
            return Err(Error::Distributed {
                op,
                detail: format!(
                    "root {root} is not a rank of a world of {}",
                    self.world_size()
                ),
            });
        }
        Ok(())
    }
}

/// A shorter-lived view of the same buffer, so that it can be used again after the call.
fn reborrow<'b>(buf: &'b mut Buffer<'_>) -> Buffer<'b> {
    match buf {
        Buffer::F32(b) => Buffer::F32(b),
        Buffer::F64(b) => Buffer::F64(b),
        Buffer::I64(b) => Buffer::I64(b),
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ProcessGroup({} rank {} of {})",
            self.backend(),
            self.rank(),
            self.world_size()
        )
    }
}
