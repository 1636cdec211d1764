//! `--distributed`: the process group a training loop runs in. Without the flag, the group of
//! one process, so the loop has one code path; with it, the MPI world the process was launched
//! into by `mpirun -np N` (NCCL for the reductions when the model is on a CUDA GPU and the
//! example was built with the `nccl` feature).

use super::config::ConfigError;
use super::output::AnyResult;
use cubegrad::distributed::{DataParallel, ProcessGroup};
use cubegrad::Device;
use std::time::Duration;

/// The flags that shape a distributed run.
pub struct DistFlags {
    pub distributed: bool,
    /// Gradient bucket size in MiB.
    pub bucket_mib: f64,
    /// Seconds a collective may wait for the other ranks.
    pub timeout: f64,
}

/// The data-parallel group for a run; under `--distributed`, the device is also moved to this
/// rank's GPU (`cuda` becomes `cuda:<local rank>`: one GPU per process).
pub fn data_parallel(
    flags: &DistFlags,
    example: &str,
    device: Device,
) -> AnyResult<(DataParallel, Device)> {
    if !flags.distributed {
        return Ok((DataParallel::new(ProcessGroup::single()), device));
    }
    let (mut group, device) = launch(example, device)?;
    group.set_timeout(Duration::from_secs_f64(flags.timeout));
    Ok((
        DataParallel::new(group).bucket_mib(flags.bucket_mib),
        device,
    ))
}

#[cfg(feature = "mpi")]
fn launch(_example: &str, device: Device) -> AnyResult<(ProcessGroup, Device)> {
    let local = std::env::var("OMPI_COMM_WORLD_LOCAL_RANK")
        .ok()
        .and_then(|s| s.parse::<usize>().ok());
    match (device, local) {
        (Device::Cuda(0), Some(local)) => {
            #[cfg(feature = "nccl")]
            let group = ProcessGroup::nccl()?;
            #[cfg(not(feature = "nccl"))]
            let group = ProcessGroup::mpi()?;
            Ok((group, Device::Cuda(local)))
        }
        _ => Ok((ProcessGroup::mpi()?, device)),
    }
}

#[cfg(not(feature = "mpi"))]
fn launch(example: &str, _device: Device) -> AnyResult<(ProcessGroup, Device)> {
    Err(ConfigError(format!(
        "--distributed needs cubegrad's `mpi` feature: build with `cargo build --release \
         --features mpi --example {example}` and launch with `mpirun -np N \
         target/release/examples/{example} --distributed`"
    ))
    .into())
}

/// One line per rank at the start, so that a reader of `mpirun`'s output sees who is who.
pub fn announce(ddp: &DataParallel, device: Device, rows: std::ops::Range<usize>, batch: usize) {
    if ddp.world_size() == 1 {
        return;
    }
    println!(
        "[rank {}/{}] {} backend, pid {}, {device}: rows {}..{} of each batch of {batch}",
        ddp.rank(),
        ddp.world_size(),
        ddp.group().backend(),
        std::process::id(),
        rows.start,
        rows.end,
    );
}

/// `--batch-size` must split evenly over the ranks.
pub fn check_batch(
    ddp: &DataParallel,
    batch: usize,
) -> Result<std::ops::Range<usize>, ConfigError> {
    ddp.shard(batch).map_err(|_| {
        ConfigError(format!(
            "--batch-size {batch} must be divisible by the {} processes of --distributed",
            ddp.world_size()
        ))
    })
}
