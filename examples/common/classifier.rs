//! The epoch loop the classifiers share (image_classify, custom_layer, custom_kernel): Adam on
//! cross-entropy, the validation accuracy after each epoch, and a checkpoint then; on one
//! process or, with a process group of several, data-parallel.

use super::guard::{NonFiniteGuard, Verdict};
use super::history::History;
use super::output::{progress, AnyResult};
use super::resume::TrainState;
use cubegrad::distributed::DataParallel;
use std::path::Path;
use std::time::Instant;

/// How [`train_classifier`] runs.
pub struct ClassifierRun<'a> {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub device: cubegrad::Device,
    /// Folder of the checkpoint and metrics.
    pub dir: &'a Path,
    /// Identifies the model in its checkpoint, so that `--resume` refuses a different one.
    pub tag: String,
    pub resume: bool,
    /// Stop after this epoch, as if interrupted.
    pub stop_at: Option<usize>,
    pub quiet: bool,
    /// Skip a batch whose loss or gradients are not finite instead of stopping.
    pub skip_nonfinite: bool,
}

/// Fraction of `data` classified correctly, in evaluation mode, `batch` examples at a time.
pub fn accuracy<M: cubegrad::nn::Module>(
    model: &mut M,
    forward: &mut dyn FnMut(&mut M, &cubegrad::Tensor) -> cubegrad::Tensor,
    data: &cubegrad::data::Dataset,
    batch: usize,
    device: cubegrad::Device,
) -> f64 {
    model.eval();
    let mut correct = 0usize;
    cubegrad::no_grad(|| {
        for (x, y) in data.batches(batch, false) {
            let pred = forward(model, &x.to_device(device))
                .argmax(-1, false)
                .to_vec::<i64>();
            correct += pred
                .iter()
                .zip(y.to_vec::<i64>())
                .filter(|(p, t)| **p == *t)
                .count();
        }
    });
    model.train();
    correct as f64 / data.len().max(1) as f64
}

/// Trains a classifier with Adam by epochs: cross-entropy on shuffled batches (the order comes
/// from the seeded RNG that checkpoints save), the validation accuracy after each epoch, and a
/// checkpoint then, which `resume` continues exactly. A batch whose loss or gradients are not
/// finite stops the run before anything is saved, or is skipped (`skip_nonfinite`). Returns the history (epoch, train loss,
/// validation accuracy, seconds) and whether every epoch ran.
///
/// With `ddp` over several processes, each trains on its rows of every batch and the gradients
/// are averaged before the step; BatchNorm's running statistics follow rank 0's, as in
/// PyTorch's DDP. A last batch too short to split evenly over the ranks is left out of the
/// epoch (one process keeps it), and each rank evaluates the whole validation set.
pub fn train_classifier<M: cubegrad::nn::Module>(
    model: &mut M,
    forward: &mut dyn FnMut(&mut M, &cubegrad::Tensor) -> cubegrad::Tensor,
    train: &cubegrad::data::Dataset,
    valid: &cubegrad::data::Dataset,
    run: &ClassifierRun,
    ddp: &mut DataParallel,
) -> AnyResult<(History, bool)> {
    use cubegrad::optim::{clip_grad_norm, AdamConfig, Optimizer};
    let guard = NonFiniteGuard::new(run.skip_nonfinite);
    let mut opt = AdamConfig::adam().lr(run.lr).init();
    let mut state = TrainState::start(
        run.dir,
        &run.tag,
        "epoch",
        &["epoch", "train_loss", "valid_accuracy", "seconds"],
        run.resume,
        model,
        &mut opt,
    )?;
    ddp.broadcast_module(model)?;
    let quiet = run.quiet || !ddp.is_main();
    let steps_per_epoch = train.len().div_ceil(run.batch_size);
    let bar = progress(run.epochs * steps_per_epoch, quiet);
    bar.set_position((state.done * steps_per_epoch) as u64);
    // Throughput counts this process's images only, so it has a clock of its own.
    let started = Instant::now();
    let end = run.stop_at.map_or(run.epochs, |s| s.min(run.epochs));
    while state.done < end {
        let (mut total, mut batches, mut seen) = (0.0, 0usize, 0usize);
        for (b, (x, y)) in train.batches(run.batch_size, true).enumerate() {
            // Every rank shuffles alike (one seed) and keeps its rows of each batch.
            let Ok(rows) = ddp.shard(y.numel()) else {
                bar.inc(1);
                continue;
            };
            let (x, y) = if ddp.world_size() > 1 {
                (
                    x.slice(0, rows.start, rows.end),
                    y.slice(0, rows.start, rows.end),
                )
            } else {
                (x, y)
            };
            let (x, y) = (x.to_device(run.device), y.to_device(run.device));
            ddp.broadcast_buffers(model)?;
            let loss = forward(model, &x).cross_entropy(&y);
            let mut grads = loss.backward();
            ddp.all_reduce_gradients(model, &mut grads)?;
            // The norm without clipping (an infinite bound), to find a non-finite gradient.
            let norm = clip_grad_norm(model, &mut grads, f64::INFINITY);
            let at = format!("epoch {}, batch {}", state.done + 1, b + 1);
            let mut value = [loss.item()];
            ddp.group().mean_f64(&mut value)?;
            let value = value[0];
            if guard.check(&at, value, norm, model, &grads, &mut state)? == Verdict::Step {
                opt.step(model, &grads)?;
                total += value;
                batches += 1;
            }
            seen += y.numel();
            bar.inc(1);
            let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "loss {:.3}, {rate:.0} images/s",
                total / batches as f64
            ));
        }
        state.done += 1;
        let epoch = state.done;
        let acc = accuracy(model, forward, valid, 256, run.device);
        let seconds = state.seconds();
        state
            .history
            .push(vec![epoch as f64, total / batches as f64, acc, seconds]);
        bar.println(format!(
            "[{}] epoch {epoch}: train loss {:.4}, validation accuracy {:.2}%",
            run.tag,
            total / batches as f64,
            100.0 * acc
        ));
        if ddp.is_main() {
            state.save(model, &opt)?;
        }
    }
    bar.finish_and_clear();
    if ddp.is_main() {
        state.history.write_csv(&run.dir.join("metrics.csv"))?;
    }
    Ok((state.history, state.done >= run.epochs))
}
