//! Training on many processes: a process group (rank, world size, broadcast, all-reduce,
//! barrier) and data parallelism on top of it.
//!
//! Each process holds a whole copy of the model and trains it on its own slice of every batch.
//! After the backward pass the processes average their gradients (an *all-reduce*), so every
//! copy takes the same step and the copies never drift apart: the run is the single-process
//! run with the same global batch, up to the order in which floating-point sums are taken.
//!
//! - `group.rs`: [`ProcessGroup`], the collective operations on tensors and host buffers, and
//!   [`Communicator`], the trait a backend implements;
//! - `single.rs`: the group of one process (no library needed; what a run without
//!   `--distributed` uses, so a training loop has one code path);
//! - `mpi.rs`: MPI through rsmpi (feature `mpi`), for CPU clusters;
//! - `nccl.rs`: NCCL through cudarc (feature `nccl`), for GPUs, bootstrapped over MPI;
//! - `watchdog.rs`: a collective that waits too long for a rank that died ends the process
//!   with a clear error instead of hanging;
//! - `data_parallel.rs`: [`DataParallel`], in the spirit of PyTorch's
//!   `DistributedDataParallel`: broadcast the model from rank 0, all-reduce the gradients in
//!   buckets, shard each batch by rank.
//!
//! ```
//! use cubegrad::distributed::{DataParallel, ProcessGroup};
//! use cubegrad::nn::{Linear, Module};
//! use cubegrad::optim::{AdamConfig, Optimizer};
//! use cubegrad::Tensor;
//!
//! // Under `mpirun`, `ProcessGroup::mpi()` (feature `mpi`); here, one process.
//! let mut ddp = DataParallel::new(ProcessGroup::single());
//! let mut model = Linear::new(4, 2, true);
//! ddp.broadcast_module(&mut model).unwrap(); // every rank starts from rank 0's weights
//! let mut opt = AdamConfig::adam().lr(1e-2).init();
//! let (x, y) = (Tensor::randn([8, 4], 0.0, 1.0), Tensor::from_vec(vec![0i64, 1, 0, 1, 0, 1, 0, 1], [8]));
//! let rows = ddp.shard(8).unwrap(); // this rank's rows of the global batch
//! let loss = model.forward(&x.slice(0, rows.start, rows.end)).cross_entropy(&y.slice(0, rows.start, rows.end));
//! let mut grads = loss.backward();
//! ddp.all_reduce_gradients(&model, &mut grads).unwrap(); // the mean over ranks
//! opt.step(&mut model, &grads).unwrap();
//! ```

mod data_parallel;
mod group;
#[cfg(feature = "mpi")]
mod mpi;
#[cfg(feature = "nccl")]
mod nccl;
mod single;
mod watchdog;

pub use data_parallel::{shard_range, DataParallel, DEFAULT_BUCKET_MIB};
pub use group::{Buffer, Communicator, ProcessGroup, ReduceOp, DEFAULT_TIMEOUT};
#[cfg(feature = "mpi")]
pub use mpi::MpiGroup;
#[cfg(feature = "nccl")]
pub use nccl::NcclGroup;
pub use single::SingleProcess;
