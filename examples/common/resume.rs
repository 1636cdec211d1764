//! Start fresh or resume from the checkpoint, and save it: what every training loop with
//! `--resume` shares.
//!
//! `cubegrad::io` checkpoints hold the model, the optimizer and the RNG's position, so a resumed
//! run draws the same batches and takes the same steps as one that was never interrupted. What
//! the loop itself needs to continue (how far it got, the time it spent, the curves so far)
//! travels in the checkpoint's header, under four keys: `"model"` (a tag naming the model and
//! the settings that shape it), the counter (`"step"` or `"epoch"`), `"seconds"` and
//! `"history"` (as JSON).

use super::history::History;
use super::output::AnyResult;
use cubegrad::io::{load_checkpoint, save_checkpoint, Metadata};
use cubegrad::nn::Module;
use cubegrad::optim::Optimizer;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The checkpoint's file name in a run's output folder.
pub const CHECKPOINT: &str = "checkpoint.safetensors";

/// Where a training run stands: the steps or epochs done, the training time, and the learning
/// curves. [`TrainState::start`] begins a run or resumes one; [`TrainState::save`] writes the
/// checkpoint that a later `--resume` continues from.
pub struct TrainState {
    /// Steps or epochs done so far (0 on a fresh run); the loop counts it up.
    pub done: usize,
    /// Training seconds spent before this process took over (0 on a fresh run).
    pub seconds_before: f64,
    /// The metrics so far, one row per log point; the loop pushes its rows here.
    pub history: History,
    /// Steps skipped because their loss or gradients were not finite (`--skip-nonfinite`).
    pub skipped: usize,
    /// The counter's value in the checkpoint on disk, if one was written or resumed from.
    pub saved: Option<usize>,
    /// The checkpoint's key for `done`: `"step"` or `"epoch"`.
    counter: &'static str,
    /// Names the model, so that `--resume` refuses a checkpoint of another one.
    tag: String,
    path: PathBuf,
    started: Instant,
}

impl TrainState {
    /// A fresh run, with an empty history of `columns` and the clock started; or, with
    /// `resume`, the run whose checkpoint is in `dir`: `model`, `opt` and the RNG are restored,
    /// and the counter, the seconds and the history read back. A checkpoint saved under
    /// another `tag` is refused, naming both.
    pub fn start(
        dir: &Path,
        tag: &str,
        counter: &'static str,
        columns: &[&str],
        resume: bool,
        model: &mut dyn Module,
        opt: &mut dyn Optimizer,
    ) -> AnyResult<Self> {
        let mut state = TrainState {
            done: 0,
            seconds_before: 0.0,
            history: History::new(columns),
            skipped: 0,
            saved: None,
            counter,
            tag: tag.to_string(),
            path: dir.join(CHECKPOINT),
            started: Instant::now(),
        };
        if resume {
            let ck = load_checkpoint(&state.path, model, opt)?;
            let saved = ck.extra.get("model").cloned().unwrap_or_default();
            if saved != tag {
                return Err(format!(
                    "{}: the checkpoint is of \"{saved}\", this run is \"{tag}\"",
                    state.path.display()
                )
                .into());
            }
            state.done = ck
                .get(counter)
                .ok_or_else(|| format!("checkpoint lacks \"{counter}\""))?;
            state.seconds_before = ck.get("seconds").unwrap_or(0.0);
            state.skipped = ck.get("skipped").unwrap_or(0);
            state.saved = Some(state.done);
            state.history = ck
                .extra
                .get("history")
                .and_then(|h| History::from_json(h))
                .ok_or("checkpoint lacks a readable \"history\"")?;
        }
        // The clock starts once the checkpoint is read, as the training loop begins.
        state.started = Instant::now();
        Ok(state)
    }

    /// Training seconds so far: those before this process and those since [`TrainState::start`].
    pub fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    /// The checkpoint's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the counter counts: `"step"` or `"epoch"`.
    pub fn counter(&self) -> &'static str {
        self.counter
    }

    /// Saves `model`, `opt` and the RNG with the tag, the counter, the seconds so far, the
    /// skipped steps and the history, so that `--resume` continues from here.
    pub fn save(&mut self, model: &dyn Module, opt: &dyn Optimizer) -> AnyResult<()> {
        let mut extra = Metadata::new();
        extra.insert("model".into(), self.tag.clone());
        extra.insert(self.counter.into(), self.done.to_string());
        extra.insert("seconds".into(), self.seconds().to_string());
        extra.insert("skipped".into(), self.skipped.to_string());
        extra.insert("history".into(), self.history.to_json());
        save_checkpoint(&self.path, model, opt, &extra)?;
        self.saved = Some(self.done);
        Ok(())
    }
}
