//! Data parallelism, in the spirit of PyTorch's `DistributedDataParallel`: every rank holds the
//! whole model, starts from rank 0's weights, trains on its own rows of each global batch, and
//! averages the gradients with the others before the optimizer step.
//!
//! Why the mean: with equal shards, the mean over ranks of each rank's mean-loss gradient is
//! the gradient of the mean loss over the global batch, so N ranks take the step one process
//! would take on the whole batch.
//!
//! The gradients travel in *buckets*: consecutive parameters (in the model's visiting order,
//! the same on every rank) packed into one buffer of about `bucket_mib` MiB, one all-reduce per
//! bucket. Few large messages pay the network's latency a few times instead of once per tensor;
//! a bound on their size bounds the staging memory. PyTorch also overlaps each bucket's
//! all-reduce with the rest of the backward pass through hooks; here the reduction follows the
//! backward pass (the tape has no hooks), which the scaling model in the README accounts for.

use super::group::{Buffer, ProcessGroup, ReduceOp};
use crate::autograd::Gradients;
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::tensor::{DType, Tensor, TensorId};
use std::ops::Range;
use std::time::Instant;

/// PyTorch's `bucket_cap_mb`.
pub const DEFAULT_BUCKET_MIB: f64 = 25.0;

/// Rank `rank`'s rows of a global batch of `len` rows split over `world` ranks: the `rank`-th
/// of `world` equal, contiguous shards. Equal shards keep the mean of the ranks' mean losses
/// equal to the global batch's mean loss, so an uneven split is refused.
pub fn shard_range(len: usize, rank: usize, world: usize) -> Result<Range<usize>> {
    if world == 0 || rank >= world {
        return Err(Error::Distributed {
            op: "shard",
            detail: format!("rank {rank} is not a rank of a world of {world}"),
        });
    }
    if len % world != 0 {
        return Err(Error::Distributed {
            op: "shard",
            detail: format!(
                "a global batch of {len} rows cannot be split evenly over {world} ranks; \
                 make the batch size a multiple of the number of processes"
            ),
        });
    }
    let per = len / world;
    Ok(rank * per..(rank + 1) * per)
}

/// A process group used for data parallelism. See the module's documentation.
pub struct DataParallel {
    group: ProcessGroup,
    bucket_bytes: usize,
    /// Seconds spent in gradient all-reduces (staging included), for the scaling report.
    reduce_seconds: f64,
}

impl DataParallel {
    pub fn new(group: ProcessGroup) -> Self {
        DataParallel {
            group,
            bucket_bytes: (DEFAULT_BUCKET_MIB * 1024.0 * 1024.0) as usize,
            reduce_seconds: 0.0,
        }
    }
    /// The size of a gradient bucket in MiB (at least one tensor goes in each bucket).
    pub fn bucket_mib(mut self, mib: f64) -> Self {
        self.bucket_bytes = (mib.max(0.0) * 1024.0 * 1024.0) as usize;
        self
    }
    pub fn group(&self) -> &ProcessGroup {
        &self.group
    }
    pub fn group_mut(&mut self) -> &mut ProcessGroup {
        &mut self.group
    }
    pub fn rank(&self) -> usize {
        self.group.rank()
    }
    pub fn world_size(&self) -> usize {
        self.group.world_size()
    }
    /// Rank 0, which prints, writes files and checkpoints.
    pub fn is_main(&self) -> bool {
        self.group.is_main()
    }
    /// This rank's rows of a global batch of `global` rows ([`shard_range`]).
    pub fn shard(&self, global: usize) -> Result<Range<usize>> {
        shard_range(global, self.rank(), self.world_size())
    }
    /// Seconds spent so far in [`all_reduce_gradients`](Self::all_reduce_gradients).
    pub fn reduce_seconds(&self) -> f64 {
        self.reduce_seconds
    }

    /// Copies rank 0's parameters and buffers into every rank's `model`, as PyTorch's DDP does
    /// when it wraps a model: the ranks start equal (and stay equal, since they take the same
    /// steps). A tensor shared by two layers is sent once and stays shared.
    pub fn broadcast_module(&self, model: &mut dyn Module) -> Result<()> {
        self.broadcast_tensors(model, true)
    }
    /// Copies rank 0's buffers (BatchNorm's running statistics) into every rank's `model`:
    /// each rank's statistics follow its own rows, and PyTorch's DDP broadcasts rank 0's
    /// before every forward pass (`broadcast_buffers=True`).
    pub fn broadcast_buffers(&self, model: &mut dyn Module) -> Result<()> {
        self.broadcast_tensors(model, false)
    }

    fn broadcast_tensors(&self, model: &mut dyn Module, params: bool) -> Result<()> {
        if self.world_size() == 1 {
            return Ok(());
        }
        let mut sent: Vec<(TensorId, Tensor)> = Vec::new();
        let mut result = Ok(());
        let mut replace = |t: &mut Tensor| {
            if result.is_err() {
                return;
            }
            if let Some((_, new)) = sent.iter().find(|(id, _)| *id == t.id()) {
                *t = new.clone();
                return;
            }
            match self.group.broadcast(t, 0) {
                Ok(new) => {
                    let new = new.set_requires_grad(t.requires_grad());
                    sent.push((t.id(), new.clone()));
                    *t = new;
                }
                Err(e) => result = Err(e),
            }
        };
        if params {
            model.visit_state_mut("", &mut |_, t| replace(t));
        } else {
            model.visit_buffers_mut("", &mut |_, t| replace(t));
        }
        result
    }

    // ANCHOR: all_reduce_gradients
    /// Replaces each gradient of `model`'s parameters in `grads` by its mean over the ranks,
    /// bucket by bucket in the model's visiting order. Every rank must hold gradients for the
    /// same parameters (each bucket carries its tensor count, and ranks that disagree get an
    /// error naming the bucket).
    pub fn all_reduce_gradients(
        &mut self,
        model: &dyn Module,
        grads: &mut Gradients,
    ) -> Result<()> {
        if self.world_size() == 1 {
            return Ok(());
        }
        let started = Instant::now();
        let mut params: Vec<Tensor> = Vec::new();
        model.visit_params("", &mut |_, p| {
            if grads.get(p).is_some() && !params.iter().any(|q| q.id() == p.id()) {
                params.push(p.clone());
            }
        });
        for (index, bucket) in self.buckets(&params, grads)?.iter().enumerate() {
            self.reduce_bucket(index, bucket, grads)?;
        }
        self.reduce_seconds += started.elapsed().as_secs_f64();
        Ok(())
    }
    // ANCHOR_END: all_reduce_gradients

    /// Consecutive parameters of one dtype, up to the bucket size.
    fn buckets(&self, params: &[Tensor], grads: &Gradients) -> Result<Vec<Vec<Tensor>>> {
        let mut buckets: Vec<Vec<Tensor>> = Vec::new();
        let mut bytes = 0usize;
        for p in params {
            let g = grads.get(p).expect("listed with a gradient");
            if !g.dtype().is_float() {
                return Err(Error::Distributed {
                    op: "all_reduce_gradients",
                    detail: format!("a gradient of dtype {} is not a float", g.dtype()),
                });
            }
            let size = g.numel() * g.dtype().size_in_bytes();
            let same_dtype = buckets
                .last()
                .and_then(|b| b.last())
                .is_some_and(|q| grads.get(q).expect("listed").dtype() == g.dtype());
            if !same_dtype || bytes + size > self.bucket_bytes.max(1) && bytes > 0 {
                buckets.push(Vec::new());
                bytes = 0;
            }
            buckets.last_mut().expect("pushed above").push(p.clone());
            bytes += size;
        }
        Ok(buckets)
    }

    fn reduce_bucket(&self, index: usize, bucket: &[Tensor], grads: &mut Gradients) -> Result<()> {
        let gs: Vec<Tensor> = bucket
            .iter()
            .map(|p| grads.get(p).expect("listed").clone())
            .collect();
        let n = self.world_size();
        // The bucket's tensor count rides along as one more element: summed, it is n times
        // this rank's count exactly when every rank packed the same tensors.
        let check = |total: f64| {
            if total != (n * gs.len()) as f64 {
                return Err(Error::Distributed {
                    op: "all_reduce_gradients",
                    detail: format!(
                        "the ranks hold gradients for different parameters: bucket {index} has \
                         {} tensors here and {total} over {n} ranks (every rank must run the \
                         same model on the same shapes)",
                        gs.len()
                    ),
                });
            }
            Ok(())
        };
        let parts: Vec<Tensor> = match gs[0].dtype() {
            DType::F64 => {
                let mut flat: Vec<f64> = Vec::new();
                for g in &gs {
                    flat.extend(g.try_to_vec::<f64>()?);
                }
                flat.push(gs.len() as f64);
                self.group
                    .all_reduce_buffer(Buffer::F64(&mut flat), ReduceOp::Sum)?;
                check(flat.pop().expect("pushed"))?;
                split(flat, &gs, |x| x / n as f64)?
            }
            _ => {
                let mut flat: Vec<f32> = Vec::new();
                for g in &gs {
                    flat.extend(g.try_to_vec::<f32>()?);
                }
                flat.push(gs.len() as f32);
                self.group
                    .all_reduce_buffer(Buffer::F32(&mut flat), ReduceOp::Sum)?;
                check(flat.pop().expect("pushed") as f64)?;
                split(flat, &gs, |x| x / n as f32)?
            }
        };
        for (p, g) in bucket.iter().zip(parts) {
            grads.insert(p, g);
        }
        Ok(())
    }
}

/// Cuts the reduced bucket back into tensors shaped and placed as `like`, scaling each value.
fn split<T: crate::backend::storage::HostElem + Copy>(
    flat: Vec<T>,
    like: &[Tensor],
    scale: impl Fn(T) -> T,
) -> Result<Vec<Tensor>> {
    let mut out = Vec::with_capacity(like.len());
    let mut at = 0;
    for g in like {
        let n = g.numel();
        let values: Vec<T> = flat[at..at + n].iter().map(|&x| scale(x)).collect();
        at += n;
        out.push(Tensor::try_from_vec(values, g.shape().clone())?.try_to_device(g.device())?);
    }
    Ok(out)
}
