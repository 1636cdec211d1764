//! NCCL, through cudarc (feature `nccl`): the transport of GPUs (NVLink inside a node,
//! InfiniBand or RoCE across nodes). One process per GPU, launched by `mpirun`; MPI carries
//! NCCL's unique id from rank 0 to the others (NCCL's own bootstrap), then NCCL does the
//! reductions and MPI only the barrier.
//!
//! Host-staged: cubegrad's device tensors live in CubeCL's memory pools, and CubeCL 0.10 gives
//! no way to order a foreign CUDA stream after the kernels it has queued, so a bucket is read to
//! the host (which waits for CubeCL's work), copied into a CUDA buffer of this group, reduced
//! there by NCCL, and copied back. The README says so; the transfers cost two PCIe copies per
//! bucket on top of NCCL's own time.

use super::group::{Buffer, Communicator};
use super::mpi::MpiGroup;
use crate::error::{Error, Result};
use cudarc::driver::{CudaContext, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};
use mpi::topology::Communicator as _;
use mpi::traits::Root;
use std::sync::Arc;

pub struct NcclGroup {
    mpi: MpiGroup,
    comm: Comm,
    stream: Arc<CudaStream>,
}

// cudarc's communicator holds raw NCCL and CUDA handles; the group is used from one thread at
// a time (`ProcessGroup` is not `Sync`), which is what NCCL asks of a communicator.
unsafe impl Send for NcclGroup {}

fn nccl_error(op: &'static str, e: impl std::fmt::Debug) -> Error {
    Error::Distributed {
        op,
        detail: format!("NCCL: {e:?}"),
    }
}

/// cudarc panics on the first NCCL call when `libnccl.so` cannot be loaded: look first, and
/// say where it comes from.
fn nccl_library_present() -> bool {
    cudarc::get_lib_name_candidates("nccl").iter().any(|name| {
        let Ok(c) = std::ffi::CString::new(name.as_str()) else {
            return false;
        };
        // Safety: dlopen with a valid C string; the handle is kept open (cudarc opens it again).
        !unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_LAZY) }.is_null()
    })
}

impl NcclGroup {
    /// Joins the MPI world, picks the GPU of this rank's place on its node
    /// (`OMPI_COMM_WORLD_LOCAL_RANK`, else the rank modulo the GPUs), and builds the NCCL
    /// communicator from rank 0's unique id.
    pub fn init() -> Result<Self> {
        let mpi = MpiGroup::init()?;
        if !nccl_library_present() {
            return Err(Error::Distributed {
                op: "init",
                detail: "libnccl.so was not found on the library path (it comes with NVIDIA's \
                         NCCL packages, or PyTorch's `nvidia-nccl-cu13` wheel: add its lib \
                         folder to LD_LIBRARY_PATH)"
                    .into(),
            });
        }
        let (rank, world) = (mpi.rank(), mpi.world_size());
        let gpus = CudaContext::device_count().map_err(|e| nccl_error("init", e))? as usize;
        if gpus == 0 {
            return Err(Error::Distributed {
                op: "init",
                detail: "the nccl backend needs a CUDA GPU per rank, and none was found".into(),
            });
        }
        let local = std::env::var("OMPI_COMM_WORLD_LOCAL_RANK")
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .unwrap_or(rank);
        let ctx = CudaContext::new(local % gpus).map_err(|e| nccl_error("init", e))?;
        let stream = ctx.default_stream();
        // Rank 0 makes the id; MPI carries its 128 bytes to the others.
        let mut bytes: [std::ffi::c_char; 128] = [0; 128];
        if rank == 0 {
            bytes = *Id::new().map_err(|e| nccl_error("init", e))?.internal();
        }
        mpi.world()
            .process_at_rank(0)
            .broadcast_into(&mut bytes[..]);
        let id = Id::uninit(bytes);
        let comm =
            Comm::from_rank(stream.clone(), rank, world, id).map_err(|e| nccl_error("init", e))?;
        Ok(NcclGroup { mpi, comm, stream })
    }

    fn reduce<T>(&self, host: &mut [T]) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::NcclType + Copy,
    {
        let op = "all_reduce";
        let mut dev = self
            .stream
            .clone_htod(&*host)
            .map_err(|e| nccl_error(op, e))?;
        self.comm
            .all_reduce_in_place(&mut dev, &ReduceOp::Sum)
            .map_err(|e| nccl_error(op, e))?;
        self.stream
            .memcpy_dtoh(&dev, host)
            .map_err(|e| nccl_error(op, e))?;
        self.stream.synchronize().map_err(|e| nccl_error(op, e))
    }
    fn bcast<T>(&self, host: &mut [T], root: usize) -> Result<()>
    where
        T: cudarc::driver::DeviceRepr + cudarc::nccl::NcclType + Copy,
    {
        let op = "broadcast";
        let mut dev = self
            .stream
            .clone_htod(&*host)
            .map_err(|e| nccl_error(op, e))?;
        self.comm
            .broadcast_in_place(&mut dev, root as i32)
            .map_err(|e| nccl_error(op, e))?;
        self.stream
            .memcpy_dtoh(&dev, host)
            .map_err(|e| nccl_error(op, e))?;
        self.stream.synchronize().map_err(|e| nccl_error(op, e))
    }
}

impl Communicator for NcclGroup {
    fn rank(&self) -> usize {
        self.comm.rank()
    }
    fn world_size(&self) -> usize {
        self.comm.world_size()
    }
    fn backend(&self) -> &'static str {
        "nccl"
    }
    fn all_reduce_sum(&self, buf: Buffer<'_>) -> Result<()> {
        match buf {
            Buffer::F32(b) => self.reduce(b),
            Buffer::F64(b) => self.reduce(b),
            Buffer::I64(b) => self.reduce(b),
        }
    }
    fn broadcast(&self, buf: Buffer<'_>, root: usize) -> Result<()> {
        match buf {
            Buffer::F32(b) => self.bcast(b, root),
            Buffer::F64(b) => self.bcast(b, root),
            Buffer::I64(b) => self.bcast(b, root),
        }
    }
    fn barrier(&self) -> Result<()> {
        self.mpi.barrier()
    }
}
