//! Training and evaluation: teacher-forced cross-entropy, greedy decoding scored by BLEU-4, and
//! the epoch loop with checkpoints that `--resume` continues exactly.

use super::common::{
    heatmap, line_chart, progress, write_json, AnyResult, NonFiniteGuard, Series, TrainState,
    Verdict,
};
use super::data::{decoder_input, Corpus, Pairs};
use super::models::Seq2Seq;
use super::Config;
use cubegrad::data::{tokenize, WordVocab};
use cubegrad::metrics::corpus_bleu;
use cubegrad::ops::CrossEntropyOptions;
use cubegrad::optim::{clip_grad_norm, AdamConfig, Optimizer};
use cubegrad::random::with_rng;
use cubegrad::{no_grad, Device, Tensor};
use rand::seq::SliceRandom;
use std::path::Path;
use std::time::Instant;

/// Teacher-forced cross-entropy of a host batch (`src_len` stays on the host) on `device`.
fn loss_of(
    model: &dyn Seq2Seq,
    src: &Tensor,
    src_len: &Tensor,
    tgt: &Tensor,
    device: Device,
) -> Tensor {
    let dec_in = decoder_input(tgt).to_device(device);
    let tgt = tgt.to_device(device);
    let logits = model.logits(&src.to_device(device), src_len, &dec_in);
    let (b, t, v) = (logits.dims()[0], logits.dims()[1], logits.dims()[2]);
    logits.reshape(&[b * t, v]).cross_entropy_with(
        &tgt.reshape(&[b * t]),
        CrossEntropyOptions {
            ignore_index: Some(WordVocab::PAD),
            ..Default::default()
        },
    )
}

fn mean_loss(model: &mut dyn Seq2Seq, data: &Pairs, cfg: &Config) -> f64 {
    model.eval();
    let idx: Vec<usize> = (0..data.len()).collect();
    let (mut total, mut n) = (0.0, 0usize);
    no_grad(|| {
        for chunk in idx.chunks(256) {
            let (s, l, t) = data.rows(chunk);
            let d = cfg.device;
            total += loss_of(model, &s, &l, &t, d).item() * chunk.len() as f64;
            n += chunk.len();
        }
    });
    model.train();
    total / n.max(1) as f64
}

/// Greedy translations of the first `max` sentences of `data` (tokens up to `<eos>`), their
/// BLEU-4 against the references, and the first sentence's attention weights per output token.
pub fn translate_and_score(
    model: &mut dyn Seq2Seq,
    data: &Pairs,
    vocab: &WordVocab,
    cfg: &Config,
    max: usize,
) -> (f64, Vec<Vec<String>>, Vec<Vec<f64>>) {
    model.eval();
    let n = max.min(data.len());
    let idx: Vec<usize> = (0..n).collect();
    let mut hyps = Vec::new();
    let mut first_weights = Vec::new();
    no_grad(|| {
        for chunk in idx.chunks(256) {
            let (s, l, _) = data.rows(chunk);
            let (ids, w) = model.greedy(&s.to_device(cfg.device), &l, cfg.max_tokens);
            if first_weights.is_empty() {
                first_weights = w;
            }
            for row in ids {
                let words: Vec<String> = row
                    .iter()
                    .take_while(|&&id| id != WordVocab::EOS)
                    .map(|&id| vocab.token(id).to_string())
                    .collect();
                hyps.push(words);
            }
        }
    });
    model.train();
    (
        corpus_bleu(&hyps, &data.references[..n]),
        hyps,
        first_weights,
    )
}

/// What training one model reports.
pub struct ModelReport {
    pub name: String,
    pub params: usize,
    pub first_loss: f64,
    pub last_loss: f64,
    pub valid_loss: f64,
    pub test_bleu: f64,
    pub seconds: f64,
    /// Source, reference and output of the first test sentences.
    pub examples: Vec<(String, String, String)>,
    pub finished: bool,
}

/// Trains one model with Adam by epochs (teacher forcing, shuffled batches from the seeded
/// RNG), evaluates it after each epoch and checkpoints it then, so that `--resume` continues
/// exactly; then scores the test split and writes the metrics and figures into `dir`.
pub fn train_model(
    name: &str,
    model: &mut dyn Seq2Seq,
    corpus: &Corpus,
    cfg: &Config,
    dir: &Path,
) -> AnyResult<ModelReport> {
    let mut opt = AdamConfig::adam().lr(cfg.lr).init();
    let tag = format!(
        "{name} hidden={} layers={} vocab={}/{}",
        cfg.hidden,
        cfg.layers,
        corpus.src_vocab.len(),
        corpus.tgt_vocab.len()
    );
    let mut state = TrainState::start(
        dir,
        &tag,
        "epoch",
        &["epoch", "train_loss", "valid_loss", "valid_bleu", "seconds"],
        cfg.resume,
        model,
        &mut opt,
    )?;
    let n = corpus.train.len();
    let per_epoch = n.div_ceil(cfg.batch_size);
    let bar = progress(cfg.epochs * per_epoch, cfg.quiet);
    bar.set_position((state.done * per_epoch) as u64);
    // Throughput counts this process's pairs only, so it has a clock of its own.
    let started = Instant::now();
    let end = cfg.stop_at.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    let d = cfg.device;
    let guard = NonFiniteGuard::new(cfg.skip_nonfinite);
    while state.done < end {
        let mut order: Vec<usize> = (0..n).collect();
        with_rng(|r| order.shuffle(r));
        let (mut total, mut batches) = (0.0, 0usize);
        for (b, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let (s, l, t) = corpus.train.rows(chunk);
            let loss = loss_of(model, &s, &l, &t, d);
            let mut grads = loss.backward();
            let norm = clip_grad_norm(model, &mut grads, 1.0);
            let at = format!("{name}: epoch {}, batch {}", state.done + 1, b + 1);
            let value = loss.item();
            if guard.check(&at, value, norm, model, &grads, &mut state)? == Verdict::Step {
                opt.step(model, &grads)?;
                total += value;
                batches += 1;
            }
            bar.inc(1);
            let rate =
                ((b + 1) * cfg.batch_size) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{name}: loss {:.3}, {rate:.0} pairs/s",
                total / batches as f64
            ));
        }
        state.done += 1;
        let epoch = state.done;
        let valid_loss = mean_loss(model, &corpus.valid, cfg);
        let (valid_bleu, _, _) =
            translate_and_score(model, &corpus.valid, &corpus.tgt_vocab, cfg, 200);
        let seconds = state.seconds();
        state.history.push(vec![
            epoch as f64,
            total / batches as f64,
            valid_loss,
            valid_bleu,
            seconds,
        ]);
        bar.println(format!(
            "[{name}] epoch {epoch}: train loss {:.3}, valid loss {valid_loss:.3}, valid BLEU {valid_bleu:.3}",
            total / batches as f64
        ));
        state.save(model, &opt)?;
    }
    bar.finish_and_clear();
    let (epoch, history) = (state.done, state.history);
    history.write_csv(&dir.join("metrics.csv"))?;
    line_chart(
        &dir.join("learning_curve.svg"),
        &format!("{name}: cross-entropy per target token"),
        "epoch",
        "loss",
        &[
            Series::line("train", history.points("epoch", "train_loss")),
            Series::line("validation", history.points("epoch", "valid_loss")),
        ],
    )?;
    let finished = epoch >= cfg.epochs;
    let (test_bleu, hyps, weights) = if finished {
        translate_and_score(
            model,
            &corpus.test,
            &corpus.tgt_vocab,
            cfg,
            cfg.bleu_sentences,
        )
    } else {
        (f64::NAN, Vec::new(), Vec::new())
    };
    if !weights.is_empty() {
        alignment_figure(
            &dir.join("alignment.svg"),
            &corpus.test.sources[0],
            &hyps[0],
            &weights,
            cfg.max_tokens,
        )?;
    }
    let examples = (0..hyps.len().min(5))
        .map(|i| {
            (
                corpus.test.sources[i].clone(),
                corpus.test.references[i].join(" "),
                hyps[i].join(" "),
            )
        })
        .collect();
    let losses = history.column("train_loss");
    let report = ModelReport {
        name: name.into(),
        params: model.num_params(),
        first_loss: losses.first().copied().unwrap_or(f64::NAN),
        last_loss: losses.last().copied().unwrap_or(f64::NAN),
        valid_loss: history.rows.last().map_or(f64::NAN, |r| r[2]),
        test_bleu,
        seconds: history.rows.last().map_or(0.0, |r| r[4]),
        examples,
        finished,
    };
    write_json(
        &dir.join("metrics.json"),
        &serde_json::json!({
            "model": name, "params": report.params, "test_bleu": report.test_bleu,
            "valid_loss": report.valid_loss, "train_seconds": report.seconds,
            "examples": report.examples.iter().map(|(s, r, h)| serde_json::json!({"source": s, "reference": r, "output": h})).collect::<Vec<_>>(),
        }),
    )?;
    Ok(report)
}

/// The alignment of one test sentence: the attention weights of each output token (rows) over
/// the source tokens (columns), up to `<eos>` on both sides.
fn alignment_figure(
    path: &Path,
    source: &str,
    output: &[String],
    weights: &[Vec<f64>],
    max_tokens: usize,
) -> AnyResult<()> {
    let src_tokens: Vec<String> = tokenize(source)
        .into_iter()
        .take(max_tokens - 1)
        .chain(["<eos>".to_string()])
        .collect();
    let out_tokens: Vec<String> = output
        .iter()
        .cloned()
        .chain(["<eos>".to_string()])
        .collect();
    let rows: Vec<Vec<f64>> = weights
        .iter()
        .take(out_tokens.len())
        .map(|w| w[..src_tokens.len().min(w.len())].to_vec())
        .collect();
    heatmap(
        path,
        "Bahdanau attention: output words (rows) over source words (columns)",
        &rows,
        &src_tokens,
        &out_tokens[..rows.len()],
    )
}
