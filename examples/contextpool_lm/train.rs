//! Training one model: the corpus and its splits, bits per character on held-out text, and the
//! loop (AdamW with warm-up and cosine decay, periodic evaluation and checkpoints that
//! `--resume` continues exactly).

use super::common::{
    self, announce, check_batch, line_chart, progress, AnyResult, ConfigError, History,
    NonFiniteGuard, Series, TrainState, Verdict,
};
use super::model::{flops_per_token, CharLm, XlMemory};
use super::{Config, ModelKind};
use cubegrad::data::{
    lm_batch, lm_eval_batches, lm_stream_batch, lm_stream_segments, read_text, split_blocks,
    CharVocab, TextSplits,
};
use cubegrad::distributed::DataParallel;
use cubegrad::nn::Module;
use cubegrad::optim::{clip_grad_norm, Adam, AdamConfig, LrSchedule, Optimizer, WarmupCosine};
use cubegrad::{manual_seed, no_grad, Tensor};
use std::path::Path;

/// The corpus cut into characters and splits: 90% train, 5% validation, 5% test, dealt in
/// blocks of 20,000 characters by a seeded shuffle.
pub struct Corpus {
    pub vocab: CharVocab,
    pub splits: TextSplits,
}

/// Characters per block of the split.
const BLOCK: usize = 20_000;

pub fn load_corpus(path: &str, seed: u64) -> cubegrad::Result<Corpus> {
    let text = read_text(path)?;
    let vocab = CharVocab::from_text(&text);
    let ids = vocab.encode(&text)?;
    let splits = split_blocks(&ids, BLOCK, 0.05, 0.05, seed);
    Ok(Corpus { vocab, splits })
}

impl Corpus {
    /// Each split must hold one window of `seq_len + 1` characters. Validation and test get at
    /// least one block each, so a corpus needs two whole blocks and one window.
    pub fn check_fits(&self, path: &str, seq_len: usize) -> Result<(), ConfigError> {
        let s = &self.splits;
        let (train, valid, test) = (s.train.len(), s.valid.len(), s.test.len());
        if train.min(valid).min(test) > seq_len {
            return Ok(());
        }
        Err(ConfigError(format!(
            "{path}: {} characters are too few for --seq-len {seq_len}: the corpus is dealt in \
             blocks of {} characters to training, validation and test (train {}, validation {}, \
             test {} here), and each needs a window of {} characters, so at least {} are needed",
            common::thousands(train + valid + test),
            common::thousands(BLOCK),
            common::thousands(train),
            common::thousands(valid),
            common::thousands(test),
            seq_len + 1,
            common::thousands(2 * BLOCK.max(seq_len + 1) + seq_len + 1),
        )))
    }
}

/// Mean bits per character of `model` over the first `max_chars` characters of `ids`.
/// Transformer-XL reads them as `--batch-size` continuous streams, carrying its memory from
/// segment to segment; the other models read windows of `--seq-len` from scratch, the batches
/// dealt round the ranks of `ddp` (each rank evaluates every N-th, and the sums are added).
pub fn bits_per_char(
    model: &mut CharLm,
    ids: &[i64],
    cfg: &Config,
    max_chars: usize,
    ddp: &DataParallel,
) -> AnyResult<f64> {
    model.eval();
    let (mut total, mut count) = (0.0, 0usize);
    let mut add = |logits: Tensor, y: Tensor| {
        let (n, v) = (y.numel(), logits.dim(-1));
        let loss = logits
            .reshape(&[n, v])
            .cross_entropy(&y.reshape(&[n]).to_device(cfg.device));
        total += loss.item() * n as f64;
        count += n;
    };
    no_grad(|| {
        if model.xl_layers.is_empty() {
            let batches = lm_eval_batches(ids, cfg.batch_size, cfg.seq_len, Some(max_chars));
            for (i, (x, y)) in batches.into_iter().enumerate() {
                if i % ddp.world_size() == ddp.rank() {
                    add(model.forward(&x.to_device(cfg.device)), y);
                }
            }
            return;
        }
        let ids = &ids[..max_chars.min(ids.len())];
        // Fewer streams when the text is short, so that each holds one segment at least.
        let batch = cfg.batch_size.min((ids.len() - 1) / cfg.seq_len).max(1);
        let segments = lm_stream_segments(ids.len(), batch, cfg.seq_len).unwrap_or(0);
        let layers = model.xl_layers.len();
        let mut memory = XlMemory::new(layers, batch, cfg.mem_len, cfg.d_model);
        memory.states = memory.states.to_device(cfg.device);
        for t in 0..segments {
            let (x, y) = lm_stream_batch(ids, batch, cfg.seq_len, t).expect("sized above");
            let (logits, next) =
                model.forward_segment(&x.to_device(cfg.device), Some(&memory), cfg.mem_len);
            memory.store(&next);
            add(logits, y);
        }
    });
    model.train();
    let mut sums = [total, count as f64];
    if model.xl_layers.is_empty() {
        ddp.group().sum_f64(&mut sums)?;
    }
    Ok(sums[0] / sums[1].max(1.0) / std::f64::consts::LN_2)
}

/// What one training run reports.
#[derive(Clone, Debug)]
pub struct Report {
    pub model: ModelKind,
    pub layers: usize,
    pub params: usize,
    pub flops_per_token: f64,
    /// Mean training bpc over the first and the last evaluation interval.
    pub first_train_bpc: f64,
    pub last_train_bpc: f64,
    pub valid_bpc: f64,
    pub test_bpc: f64,
    /// Wall time of the training loop, the periodic evaluations included.
    pub train_seconds: f64,
    pub tokens_per_second: f64,
    /// The most bytes of tensor data alive at once while training (activations, saved
    /// tensors, gradients, weights and optimizer state), in MiB; NaN on a device, which keeps
    /// no peak.
    pub peak_mib: f64,
    pub history: History,
    pub sample: Option<String>,
    /// False when `--stop-at` ended the run before its last step.
    pub finished: bool,
    /// Rank 0 (always, without `--distributed`): the rank that reports.
    pub main_rank: bool,
    /// Seconds this rank spent averaging gradients with the others (0 on one process).
    pub allreduce_seconds: f64,
    /// Steps skipped because their loss or gradients were not finite (`--skip-nonfinite`).
    pub skipped: usize,
}

/// Names the model and the settings that shape its weights and its steps, so that `--resume`
/// refuses a checkpoint of another run.
fn model_tag(cfg: &Config, kind: ModelKind, layers: usize) -> String {
    // What shapes the model besides the sizes: the variant and the sparse pattern.
    let variant = match kind {
        ModelKind::Contextpool => cfg.pool_variant(),
        ModelKind::Local => format!(" window={}", cfg.window),
        ModelKind::Strided => format!(" stride={}", cfg.stride),
        ModelKind::Fixed => format!(" stride={} summary={}", cfg.stride, cfg.summary),
        ModelKind::Performer => format!(
            " features={} chunk={} redraw={}",
            cfg.features, cfg.chunk, cfg.redraw_every
        ),
        ModelKind::Flash => format!(" chunk={}", cfg.chunk),
        ModelKind::TransformerXl => format!(" mem={}", cfg.mem_len),
        ModelKind::Reformer => format!(
            " chunk={} hashes={} buckets={}",
            cfg.chunk, cfg.n_hashes, cfg.buckets
        ),
        _ => String::new(),
    };
    format!(
        "{}{variant} layers={layers} d={} heads={} seq={} batch={} steps={}",
        kind.name(),
        cfg.d_model,
        cfg.heads,
        cfg.seq_len,
        cfg.batch_size,
        cfg.steps
    )
}

/// Trains one model and writes its metrics, figures and checkpoint into `dir`.
pub fn train_one(
    cfg: &Config,
    corpus: &Corpus,
    kind: ModelKind,
    layers: usize,
    dir: &Path,
    ddp: &mut DataParallel,
) -> AnyResult<(Report, CharLm)> {
    manual_seed(cfg.seed);
    let vocab = corpus.vocab.len();
    let mut model = CharLm::new(cfg, kind, layers, vocab);
    model.try_to_device(cfg.device)?;
    let mut opt: Adam = AdamConfig::adamw().lr(cfg.lr).weight_decay(0.01).init();
    let schedule = WarmupCosine {
        base: cfg.lr,
        min: cfg.lr / 10.0,
        warmup: (cfg.steps / 20).max(1),
        total: cfg.steps,
    };
    let mut state = TrainState::start(
        dir,
        &model_tag(cfg, kind, layers),
        "step",
        &["step", "train_bpc", "valid_bpc", "lr", "seconds"],
        cfg.resume,
        &mut model,
        &mut opt,
    )?;
    // The ranks start from rank 0's weights (equal already, from one seed: this makes it so
    // whatever the seed), and each takes its rows of every batch.
    ddp.broadcast_module(&mut model)?;
    let rows = check_batch(ddp, cfg.batch_size)?;
    announce(ddp, cfg.device, rows.clone(), cfg.batch_size);
    let sharded = ddp.world_size() > 1;
    let reduce_before = ddp.reduce_seconds();
    let params = model.num_params();
    let end = cfg.stop_at.map_or(cfg.steps, |s| s.min(cfg.steps));
    let bar = progress(cfg.steps, cfg.quiet);
    bar.set_position(state.done as u64);
    let (mut sum_bpc, mut n_bpc) = (0.0, 0usize);
    let guard = NonFiniteGuard::new(cfg.skip_nonfinite);
    cubegrad::backend::reset_peak_memory(cfg.device);
    let xl = kind == ModelKind::TransformerXl;
    while state.done < end {
        let (x, y) = if xl {
            // One continuous text per row; a new pass over the streams starts afresh.
            let train = &corpus.splits.train;
            let segment =
                state.done % lm_stream_segments(train.len(), cfg.batch_size, cfg.seq_len)?;
            if segment == 0 {
                model
                    .memory
                    .as_mut()
                    .expect("an XL model has memory")
                    .clear();
            }
            lm_stream_batch(train, cfg.batch_size, cfg.seq_len, segment)?
        } else {
            lm_batch(&corpus.splits.train, cfg.batch_size, cfg.seq_len)?
        };
        // Every rank draws the same global batch (one seed, the same draws) and keeps its rows.
        let (x, y) = if sharded {
            let (a, b) = (rows.start, rows.end);
            (x.slice(0, a, b), y.slice(0, a, b))
        } else {
            (x, y)
        };
        let (x, y) = (x.to_device(cfg.device), y.to_device(cfg.device));
        let n = y.numel();
        let lr = schedule.lr(state.done);
        opt.set_lr(lr);
        let logits = if xl {
            let (logits, next) = model.forward_segment(&x, model.memory.as_ref(), cfg.mem_len);
            model
                .memory
                .as_mut()
                .expect("an XL model has memory")
                .store(&next);
            logits
        } else {
            model.forward(&x)
        };
        let ce = logits.reshape(&[n, vocab]).cross_entropy(&y.reshape(&[n]));
        let mut loss = ce.clone();
        for l in &model.layers {
            if let Some(span) = &l.adaptive_span {
                // The L1 pull on the spans, as in the adaptive-span paper (per head, in tokens).
                loss = loss.add(&span.span_penalty(2e-6 * cfg.seq_len as f64)?);
            }
        }
        let mut grads = loss.backward();
        // The mean over the ranks: every rank then clips, checks and steps alike.
        ddp.all_reduce_gradients(&model, &mut grads)?;
        let norm = clip_grad_norm(&model, &mut grads, 1.0);
        // One read of the loss: the span penalty, when there is one, reaches the gradient norm,
        // which the guard checks too. Averaged over the ranks, it is the global batch's loss.
        let mut ce_value = [ce.item()];
        ddp.group().mean_f64(&mut ce_value)?;
        let ce_value = ce_value[0];
        let bpc = ce_value / std::f64::consts::LN_2;
        let step = state.done + 1;
        let at = format!("step {step}");
        if guard.check(&at, ce_value, norm, &model, &grads, &mut state)? == Verdict::Step {
            opt.step(&mut model, &grads)?;
            for l in &mut model.layers {
                if let Some(span) = &mut l.adaptive_span {
                    span.clamp_spans();
                }
            }
            sum_bpc += bpc;
            n_bpc += 1;
        }
        state.done = step;
        if cfg.redraw_every > 0 && step % cfg.redraw_every == 0 {
            for (i, l) in model.layers.iter_mut().enumerate() {
                if let Some(rf) = &mut l.random_features {
                    // Seeded by the step and the layer: a resumed run redraws the same.
                    rf.redraw(cfg.seed ^ ((step as u64) << 16) ^ i as u64);
                }
            }
        }
        let tps = (step * cfg.batch_size * cfg.seq_len) as f64 / state.seconds().max(1e-9);
        bar.set_position(step as u64);
        bar.set_message(format!("{bpc:.3} bpc, {tps:.0} chars/s"));
        if step % cfg.eval_every == 0 || step == cfg.steps {
            let valid = bits_per_char(&mut model, &corpus.splits.valid, cfg, cfg.eval_chars, ddp)?;
            // NaN when every step of the interval was skipped.
            let train = sum_bpc / n_bpc as f64;
            let seconds = state.seconds();
            state
                .history
                .push(vec![step as f64, train, valid, lr, seconds]);
            (sum_bpc, n_bpc) = (0.0, 0);
            bar.println(format!(
                "[{}] step {step:5}  train {train:.3} bpc  valid {valid:.3} bpc",
                kind.name(),
            ));
            // Rank 0 writes the checkpoint that every rank resumes from.
            if ddp.is_main() {
                state.save(&model, &opt)?;
            }
        }
    }
    bar.finish_and_clear();
    let peak_mib = cubegrad::backend::peak_memory(cfg.device)
        .map_or(f64::NAN, |b| b as f64 / (1024.0 * 1024.0));
    let (step, skipped, history) = (state.done, state.skipped, state.history);
    let train_seconds = history.rows.last().map_or(0.0, |r| r[4]);
    let finished = step >= cfg.steps;
    let test_bpc = if finished {
        bits_per_char(&mut model, &corpus.splits.test, cfg, cfg.test_chars, ddp)?
    } else {
        f64::NAN
    };
    let report = Report {
        model: kind,
        layers,
        params,
        flops_per_token: flops_per_token(cfg, kind, layers, vocab),
        first_train_bpc: history.rows.first().map_or(f64::NAN, |r| r[1]),
        last_train_bpc: history.rows.last().map_or(f64::NAN, |r| r[1]),
        valid_bpc: history.rows.last().map_or(f64::NAN, |r| r[2]),
        test_bpc,
        train_seconds,
        tokens_per_second: (step * cfg.batch_size * cfg.seq_len) as f64 / train_seconds.max(1e-9),
        peak_mib,
        history,
        sample: None,
        finished,
        skipped,
        main_rank: ddp.is_main(),
        allreduce_seconds: ddp.reduce_seconds() - reduce_before,
    };
    if !ddp.is_main() {
        return Ok((report, model));
    }
    report.history.write_csv(&dir.join("metrics.csv"))?;
    common::write_json(&dir.join("metrics.json"), &report_json(&report))?;
    line_chart(
        &dir.join("learning_curve.svg"),
        &format!("{} ({layers} layers)", kind.name()),
        "step",
        "bits per character",
        &[
            Series::line("train", report.history.points("step", "train_bpc")),
            Series::line("validation", report.history.points("step", "valid_bpc")),
        ],
    )?;
    Ok((report, model))
}

/// A report as JSON: `metrics.json`, and one entry of the comparison's `results.json`.
pub fn report_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "model": r.model.name(),
        "layers": r.layers,
        "params": r.params,
        "flops_per_token": r.flops_per_token,
        "first_train_bpc": r.first_train_bpc,
        "last_train_bpc": r.last_train_bpc,
        "valid_bpc": r.valid_bpc,
        "test_bpc": r.test_bpc,
        "train_seconds": r.train_seconds,
        "tokens_per_second": r.tokens_per_second,
        "peak_mib": r.peak_mib,
        "finished": r.finished,
        "skipped_steps": r.skipped,
        "allreduce_seconds": r.allreduce_seconds,
    })
}
