//! MPI, through rsmpi (feature `mpi`): the transport of CPU clusters. Processes are started by
//! the MPI launcher (`mpirun -np N program …`), which tells each its rank; the collectives are
//! the library's own (Open MPI picks shared memory on one node, the network across nodes).

use super::group::{Buffer, Communicator};
use crate::error::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::topology::{Communicator as _, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};

pub struct MpiGroup {
    world: SimpleCommunicator,
    // Last: MPI is finalised when the universe drops, after the communicator.
    _universe: mpi::environment::Universe,
}

// rsmpi's handles are plain integers or pointers that MPI lets any thread use under the
// threading level it was initialised with; the group is used from one thread at a time
// (`ProcessGroup` is not `Sync`).
unsafe impl Send for MpiGroup {}

impl MpiGroup {
    /// Initialises MPI (once per process) and joins its world.
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| Error::Distributed {
            op: "init",
            detail: "MPI was already initialised in this process; make one ProcessGroup::mpi()"
                .into(),
        })?;
        let world = universe.world();
        Ok(MpiGroup {
            world,
            _universe: universe,
        })
    }
    /// The MPI world communicator, for the NCCL bootstrap.
    #[cfg(feature = "nccl")]
    pub(crate) fn world(&self) -> &SimpleCommunicator {
        &self.world
    }
}

impl Communicator for MpiGroup {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn world_size(&self) -> usize {
        self.world.size() as usize
    }
    fn backend(&self) -> &'static str {
        "mpi"
    }
    fn all_reduce_sum(&self, buf: Buffer<'_>) -> Result<()> {
        // MPI wants distinct send and receive buffers (MPI_IN_PLACE is not in rsmpi's safe
        // API): the copy costs one pass over memory, small beside the transfer.
        match buf {
            Buffer::F32(b) => {
                let send = b.to_vec();
                self.world
                    .all_reduce_into(&send[..], b, SystemOperation::sum());
            }
            Buffer::F64(b) => {
                let send = b.to_vec();
                self.world
                    .all_reduce_into(&send[..], b, SystemOperation::sum());
            }
            Buffer::I64(b) => {
                let send = b.to_vec();
                self.world
                    .all_reduce_into(&send[..], b, SystemOperation::sum());
            }
        }
        Ok(())
    }
    fn broadcast(&self, buf: Buffer<'_>, root: usize) -> Result<()> {
        let root = self.world.process_at_rank(root as i32);
        match buf {
            Buffer::F32(b) => root.broadcast_into(b),
            Buffer::F64(b) => root.broadcast_into(b),
            Buffer::I64(b) => root.broadcast_into(b),
        }
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }
}
