//! `cubegrad::distributed` without MPI: the shards, and data parallelism over a stand-in for a
//! second rank (a `Communicator` that adds a known other rank's values), which checks the
//! buckets, the mean, the tensor-count check and the error messages. The real transport runs
//! under `mpirun` in `tests/distributed.rs`.

use cubegrad::distributed::{
    shard_range, Buffer, Communicator, DataParallel, ProcessGroup, ReduceOp,
};
use cubegrad::nn::{Linear, Module};
use cubegrad::{Error, Result, Tensor};
use std::sync::{Arc, Mutex};

/// Rank 0 of two, where the other rank holds `other` in every element and one gradient tensor
/// fewer than this one when `fewer` is set. Records the length of every message.
struct TwoRanks {
    other: f64,
    fewer: bool,
    sent: Arc<Mutex<Vec<usize>>>,
}

impl Communicator for TwoRanks {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn backend(&self) -> &'static str {
        "two-ranks-stand-in"
    }
    fn all_reduce_sum(&self, buf: Buffer<'_>) -> Result<()> {
        self.sent.lock().unwrap().push(buf.len());
        match buf {
            Buffer::F32(b) => {
                let n = b.len();
                // The last element is the bucket's tensor count (see DataParallel).
                for (i, x) in b.iter_mut().enumerate() {
                    let count_slot = i == n - 1;
                    *x += match (count_slot, self.fewer) {
                        (true, false) => *x,
                        (true, true) => *x - 1.0,
                        (false, _) => self.other as f32,
                    };
                }
            }
            Buffer::F64(b) => b.iter_mut().for_each(|x| *x += self.other),
            Buffer::I64(b) => b.iter_mut().for_each(|x| *x += self.other as i64),
        }
        Ok(())
    }
    fn broadcast(&self, buf: Buffer<'_>, _root: usize) -> Result<()> {
        // Rank 0 is the root: its buffer is what everyone gets.
        self.sent.lock().unwrap().push(buf.len());
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

fn two_ranks(other: f64, fewer: bool) -> (ProcessGroup, Arc<Mutex<Vec<usize>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let comm = TwoRanks {
        other,
        fewer,
        sent: Arc::clone(&sent),
    };
    (ProcessGroup::new(Box::new(comm)), sent)
}

#[test]
fn shards_split_a_batch_evenly_and_refuse_the_rest() {
    assert_eq!(shard_range(8, 0, 2).unwrap(), 0..4);
    assert_eq!(shard_range(8, 1, 2).unwrap(), 4..8);
    assert_eq!(shard_range(9, 2, 3).unwrap(), 6..9);
    let err = shard_range(9, 0, 2).unwrap_err().to_string();
    assert_eq!(
        err,
        "distributed shard: a global batch of 9 rows cannot be split evenly over 2 ranks; \
         make the batch size a multiple of the number of processes"
    );
    let err = shard_range(8, 2, 2).unwrap_err().to_string();
    assert!(
        err.contains("rank 2 is not a rank of a world of 2"),
        "{err}"
    );
}

fn model_and_grads() -> (Linear, cubegrad::Gradients) {
    cubegrad::manual_seed(5);
    let model = Linear::new(5, 3, true);
    let x = Tensor::randn([4, 5], 0.0, 1.0);
    let grads = model.forward(&x).sum().backward();
    (model, grads)
}

#[test]
fn gradients_become_the_mean_over_ranks_bucket_by_bucket() {
    let (model, grads) = model_and_grads();
    let before: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|(_, p)| grads.get(p).unwrap().to_vec::<f32>())
        .collect();
    // One bucket (default size), then one per tensor (a bucket smaller than any gradient).
    for (mib, messages) in [(25.0, vec![15 + 3 + 1]), (1e-6, vec![15 + 1, 3 + 1])] {
        let (group, sent) = two_ranks(1.0, false);
        let mut ddp = DataParallel::new(group).bucket_mib(mib);
        let mut g = grads.clone();
        ddp.all_reduce_gradients(&model, &mut g).unwrap();
        assert_eq!(*sent.lock().unwrap(), messages, "bucket of {mib} MiB");
        for ((name, p), mine) in model.parameters().iter().zip(&before) {
            let got = g.get(p).unwrap().to_vec::<f32>();
            // The other rank's gradient is 1 everywhere: the mean is (g + 1) / 2.
            let want: Vec<f32> = mine.iter().map(|x| (x + 1.0) / 2.0).collect();
            assert_eq!(got, want, "{name}");
        }
        assert!(ddp.reduce_seconds() > 0.0);
    }
}

#[test]
fn ranks_with_different_gradients_get_an_error_naming_the_bucket() {
    let (model, mut grads) = model_and_grads();
    let (group, _) = two_ranks(0.0, true);
    let mut ddp = DataParallel::new(group);
    let err = ddp
        .all_reduce_gradients(&model, &mut grads)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "distributed all_reduce_gradients: the ranks hold gradients for different \
             parameters: bucket 0 has 2 tensors here and 3 over 2 ranks"
        ),
        "{err}"
    );
}

#[test]
fn broadcast_sends_each_tensor_once_and_keeps_it_trainable() {
    let (group, sent) = two_ranks(0.0, false);
    let ddp = DataParallel::new(group);
    let mut model = Linear::new(4, 2, true);
    let before: Vec<Vec<f32>> = model
        .parameters()
        .iter()
        .map(|(_, p)| p.to_vec::<f32>())
        .collect();
    ddp.broadcast_module(&mut model).unwrap();
    assert_eq!(*sent.lock().unwrap(), vec![8, 2]);
    for ((name, p), b) in model.parameters().iter().zip(&before) {
        assert!(p.requires_grad(), "{name} lost requires_grad");
        assert_eq!(&p.to_vec::<f32>(), b, "{name}");
    }
}

#[test]
fn tensor_collectives_keep_shape_dtype_and_refuse_integer_means() {
    let (group, _) = two_ranks(2.0, false);
    let t = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], [2, 2]);
    let mean = group.all_reduce(&t, ReduceOp::Mean).unwrap();
    assert_eq!(mean.shape().dims(), &[2, 2]);
    assert_eq!(mean.to_vec::<f64>(), vec![1.5, 2.0, 2.5, 3.0]);
    let counts = Tensor::from_vec(vec![3i64, 4], [2]);
    let sum = group.all_reduce(&counts, ReduceOp::Sum).unwrap();
    assert_eq!(sum.to_vec::<i64>(), vec![5, 6]);
    let err = group.all_reduce(&counts, ReduceOp::Mean).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Distributed {
                op: "all_reduce",
                ..
            }
        ),
        "{err}"
    );
    let err = group.broadcast(&t, 2).unwrap_err().to_string();
    assert_eq!(
        err,
        "distributed broadcast: root 2 is not a rank of a world of 2"
    );
}

#[test]
fn one_process_group_leaves_everything_as_it_is() {
    let (model, grads) = model_and_grads();
    let mut ddp = DataParallel::new(ProcessGroup::single());
    assert_eq!((ddp.rank(), ddp.world_size(), ddp.is_main()), (0, 1, true));
    let mut g = grads.clone();
    ddp.all_reduce_gradients(&model, &mut g).unwrap();
    for (_, p) in model.parameters() {
        assert_eq!(
            g.get(&p).unwrap().to_vec::<f32>(),
            grads.get(&p).unwrap().to_vec::<f32>()
        );
    }
    let mut v = [3.0, 4.0];
    ddp.group().mean_f64(&mut v).unwrap();
    assert_eq!(v, [3.0, 4.0]);
}
