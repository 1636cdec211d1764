//! English → Spanish translation of short Bible verses: a GRU encoder–decoder with Bahdanau
//! attention, and a small transformer.
//!
//!     cargo run --release --example translate
//!
//! Pairs whose sides both have at most `--max-chars` characters are tokenized into lower-cased
//! words and punctuation, split 90/5/5 by seed, and each model is trained with teacher forcing.
//! Each reports corpus BLEU-4 (with the brevity penalty) on the held-out test split by greedy
//! decoding: the GRU carries its hidden state, the transformer keeps a KV cache per decoder
//! layer. The GRU's attention weights over one test sentence are drawn as an alignment heatmap.

mod common;

use clap::{Parser, ValueEnum};
use common::{
    heatmap, line_chart, out_dir, progress, write_json, AnyResult, History, Series, Table,
};
use cubegrad::data::{load_verse_pairs, split_indices, tokenize, WordVocab};
use cubegrad::io::{load_checkpoint, save_checkpoint, Metadata};
use cubegrad::metrics::corpus_bleu;
use cubegrad::nn::{
    sinusoidal_positions, AdditiveAttention, Embedding, EncoderOptions, Gru, KvCache, LayerNorm,
    Linear, Module, TransformerDecoderLayer, TransformerEncoderLayer,
};
use cubegrad::ops::CrossEntropyOptions;
use cubegrad::optim::{clip_grad_norm, AdamConfig, Optimizer};
use cubegrad::random::with_rng;
use cubegrad::{manual_seed, no_grad, Device, Tensor};
use rand::seq::SliceRandom;
use std::path::Path;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Which {
    Gru,
    Transformer,
    Both,
}

#[derive(Parser, Debug, Clone)]
#[command(about = "English to Spanish: GRU with Bahdanau attention, and a transformer; BLEU-4")]
pub struct Config {
    #[arg(long, default_value = "data/en_es_verses.tsv.gz")]
    pub data: String,
    /// Keep pairs whose sides both have at most this many characters
    #[arg(long, default_value_t = 80)]
    pub max_chars: usize,
    /// Tokens per sentence, counting the end mark (longer ones are cut)
    #[arg(long, default_value_t = 24)]
    pub max_tokens: usize,
    /// Words seen fewer times in training become <unk>
    #[arg(long, default_value_t = 2)]
    pub min_freq: usize,
    #[arg(long, value_enum, default_value_t = Which::Both)]
    pub model: Which,
    #[arg(long, default_value_t = 128)]
    pub hidden: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
    #[arg(long, default_value_t = 12)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// Test sentences decoded for BLEU (all when larger than the split)
    #[arg(long, default_value_t = 1000)]
    pub bleu_sentences: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, wgpu[:N] or cuda[:N]
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[arg(long, default_value = "runs/translate")]
    pub out: String,
    #[arg(long)]
    pub resume: bool,
    /// Stop after this epoch, as if interrupted
    #[arg(long, hide = true)]
    pub stop_at: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
}

// ---------------------------------------------------------------------------------------------
// Data

/// Sentences as padded id matrices: `src` `[N, T]` (tokens then `<eos>`), its valid lengths
/// `[N]`, and `tgt` `[N, T]` (tokens then `<eos>`, padded with `<pad>`).
#[derive(Clone)]
pub struct Pairs {
    pub src: Tensor,
    /// Stays on the CPU: both models read the lengths on the host to build their masks.
    pub src_len: Tensor,
    pub tgt: Tensor,
    /// The reference translations as tokens (uncut), for BLEU.
    pub references: Vec<Vec<String>>,
    pub sources: Vec<String>,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.references.len()
    }
    pub fn is_empty(&self) -> bool {
        self.references.is_empty()
    }
    fn rows(&self, idx: &[usize]) -> (Tensor, Tensor, Tensor) {
        let ids = Tensor::from_vec(
            idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            [idx.len()],
        );
        (
            self.src.index_select(0, &ids),
            self.src_len.index_select(0, &ids),
            self.tgt.index_select(0, &ids),
        )
    }
}

fn encode_padded(vocab: &WordVocab, tokens: &[String], t: usize) -> (Vec<i64>, i64) {
    let mut ids: Vec<i64> = vocab.encode(tokens);
    ids.truncate(t - 1);
    ids.push(WordVocab::EOS);
    let len = ids.len() as i64;
    ids.resize(t, WordVocab::PAD);
    (ids, len)
}

pub struct Corpus {
    pub src_vocab: WordVocab,
    pub tgt_vocab: WordVocab,
    pub train: Pairs,
    pub valid: Pairs,
    pub test: Pairs,
}

pub fn load_corpus(cfg: &Config) -> AnyResult<Corpus> {
    let pairs = load_verse_pairs(&cfg.data, cfg.max_chars)?;
    let tok: Vec<(Vec<String>, Vec<String>)> = pairs
        .iter()
        .map(|(e, s)| (tokenize(e), tokenize(s)))
        .collect();
    let parts = split_indices(tok.len(), &[0.9, 0.05, 0.05], cfg.seed);
    let src_vocab = WordVocab::build(parts[0].iter().map(|&i| tok[i].0.as_slice()), cfg.min_freq);
    let tgt_vocab = WordVocab::build(parts[0].iter().map(|&i| tok[i].1.as_slice()), cfg.min_freq);
    let make = |idx: &[usize]| {
        let t = cfg.max_tokens;
        let (mut src, mut lens, mut tgt) = (Vec::new(), Vec::new(), Vec::new());
        for &i in idx {
            let (s, l) = encode_padded(&src_vocab, &tok[i].0, t);
            src.extend(s);
            lens.push(l);
            tgt.extend(encode_padded(&tgt_vocab, &tok[i].1, t).0);
        }
        let n = idx.len();
        Pairs {
            src: Tensor::from_vec(src, [n, t]),
            src_len: Tensor::from_vec(lens, [n]),
            tgt: Tensor::from_vec(tgt, [n, t]),
            references: idx.iter().map(|&i| tok[i].1.clone()).collect(),
            sources: idx.iter().map(|&i| pairs[i].0.clone()).collect(),
        }
    };
    let corpus = Corpus {
        train: make(&parts[0]),
        valid: make(&parts[1]),
        test: make(&parts[2]),
        src_vocab,
        tgt_vocab,
    };
    if corpus.valid.is_empty() || corpus.test.is_empty() {
        return Err(format!(
            "{}: only {} pairs have both sides within {} characters, too few to split",
            cfg.data,
            pairs.len(),
            cfg.max_chars
        )
        .into());
    }
    Ok(corpus)
}

/// `<bos>` then the target without its last position: what the decoder reads under teacher
/// forcing. Built from the batch on the host, since device concatenation takes floats only.
fn decoder_input(tgt: &Tensor) -> Tensor {
    let (b, t) = (tgt.dims()[0], tgt.dims()[1]);
    let bos = Tensor::from_vec(vec![WordVocab::BOS; b], [b, 1]);
    Tensor::concat(&[&bos, &tgt.narrow(1, 0, t - 1)], 1)
}

// ---------------------------------------------------------------------------------------------
// Models

/// What both models offer to training and decoding.
pub trait Seq2Seq: Module {
    /// Teacher-forced logits `[B, T, V]`.
    fn logits(&self, src: &Tensor, src_len: &Tensor, dec_in: &Tensor) -> Tensor;
    /// Greedy decoding of `steps` tokens for a batch: ids `[B, steps]` and, where the model has
    /// them, the cross-attention weights of the first sentence per step.
    fn greedy(
        &self,
        src: &Tensor,
        src_len: &Tensor,
        steps: usize,
    ) -> (Vec<Vec<i64>>, Vec<Vec<f64>>);
}

/// The lecture's Seq2SeqAttentionDecoder: a GRU encoder; at each target step the decoder's top
/// hidden state queries the encoder outputs with additive attention, and the context is
/// concatenated with the embedded previous token as the GRU input.
pub struct GruSeq2Seq {
    pub src_embed: Embedding,
    pub encoder: Gru,
    pub tgt_embed: Embedding,
    pub attention: AdditiveAttention,
    pub decoder: Gru,
    pub dense: Linear,
}

impl GruSeq2Seq {
    pub fn new(
        src_vocab: usize,
        tgt_vocab: usize,
        hidden: usize,
        layers: usize,
        dropout: f64,
    ) -> Self {
        GruSeq2Seq {
            src_embed: Embedding::new(src_vocab, hidden),
            encoder: Gru::new(hidden, hidden, layers),
            tgt_embed: Embedding::new(tgt_vocab, hidden),
            attention: AdditiveAttention::new(hidden, hidden, hidden, dropout),
            decoder: Gru::new(2 * hidden, hidden, layers),
            dense: Linear::new(hidden, tgt_vocab, true),
        }
    }
    // ANCHOR: bahdanau_step
    fn step(&self, y: &Tensor, enc: &Tensor, src_len: &Tensor, state: &Tensor) -> (Tensor, Tensor) {
        let l = state.dims()[0];
        let query = state.narrow(0, l - 1, 1).squeeze(0).unsqueeze(1); // [B, 1, H]
        let context = self.attention.forward(&query, enc, enc, Some(src_len));
        let x = Tensor::concat(&[&context, &self.tgt_embed.forward(y)], -1);
        let (out, state) = self.decoder.forward(&x, Some(state));
        (self.dense.forward(&out), state)
    }
    // ANCHOR_END: bahdanau_step
}

impl Seq2Seq for GruSeq2Seq {
    fn logits(&self, src: &Tensor, src_len: &Tensor, dec_in: &Tensor) -> Tensor {
        let (enc, mut state) = self.encoder.forward(&self.src_embed.forward(src), None);
        let mut outs = Vec::new();
        for t in 0..dec_in.dims()[1] {
            let (o, s) = self.step(&dec_in.narrow(1, t, 1), &enc, src_len, &state);
            outs.push(o);
            state = s;
        }
        Tensor::concat(&outs.iter().collect::<Vec<_>>(), 1)
    }
    fn greedy(
        &self,
        src: &Tensor,
        src_len: &Tensor,
        steps: usize,
    ) -> (Vec<Vec<i64>>, Vec<Vec<f64>>) {
        let b = src.dims()[0];
        let (enc, mut state) = self.encoder.forward(&self.src_embed.forward(src), None);
        let mut y = Tensor::from_vec(vec![WordVocab::BOS; b], [b, 1]).to_device(src.device());
        let (mut out, mut weights) = (vec![Vec::new(); b], Vec::new());
        for _ in 0..steps {
            let (o, s) = self.step(&y, &enc, src_len, &state);
            state = s;
            y = o.argmax(-1, false);
            for (i, id) in y.to_vec::<i64>().into_iter().enumerate() {
                out[i].push(id);
            }
            let w = self.attention.last_weights().expect("set by forward");
            let s_len = w.dims()[2];
            weights.push(
                w.narrow(0, 0, 1)
                    .to_vec::<f32>()
                    .iter()
                    .take(s_len)
                    .map(|&v| v as f64)
                    .collect(),
            );
        }
        (out, weights)
    }
}

impl Module for GruSeq2Seq {
    cubegrad::module_tensors! {
        child "src_embed" src_embed;
        child "encoder" encoder;
        child "tgt_embed" tgt_embed;
        child "attention" attention;
        child "decoder" decoder;
        child "dense" dense;
    }
}

/// A pre-norm transformer encoder–decoder with sinusoidal positions.
pub struct TransformerSeq2Seq {
    pub src_embed: Embedding,
    pub tgt_embed: Embedding,
    pub encoder: Vec<TransformerEncoderLayer>,
    pub decoder: Vec<TransformerDecoderLayer>,
    pub enc_norm: LayerNorm,
    pub dec_norm: LayerNorm,
    pub dense: Linear,
    d: usize,
}

impl TransformerSeq2Seq {
    pub fn new(src_vocab: usize, tgt_vocab: usize, cfg: &Config) -> Self {
        let d = cfg.hidden;
        let mut enc = EncoderOptions::new(d, cfg.heads);
        enc.dropout = cfg.dropout;
        TransformerSeq2Seq {
            src_embed: Embedding::new(src_vocab, d),
            tgt_embed: Embedding::new(tgt_vocab, d),
            encoder: (0..cfg.layers)
                .map(|_| TransformerEncoderLayer::new(enc))
                .collect(),
            decoder: (0..cfg.layers)
                .map(|_| TransformerDecoderLayer::new(d, cfg.heads, 4 * d, cfg.dropout))
                .collect(),
            enc_norm: LayerNorm::new(&[d]),
            dec_norm: LayerNorm::new(&[d]),
            dense: Linear::new(d, tgt_vocab, true),
            d,
        }
    }
    fn embed(&self, e: &Embedding, ids: &Tensor, offset: usize) -> Tensor {
        let pos = sinusoidal_positions(ids.dims()[1], self.d, offset).to_device(ids.device());
        e.forward(ids).add(&pos)
    }
    /// Memory `[B, S, d]` and its key padding mask `[B, S]` (true = padding).
    fn encode(&self, src: &Tensor, src_len: &Tensor) -> (Tensor, Tensor) {
        let (b, s) = (src.dims()[0], src.dims()[1]);
        let lens = src_len.to_vec::<i64>();
        let pad: Vec<bool> = (0..b * s).map(|i| (i % s) as i64 >= lens[i / s]).collect();
        let pad = Tensor::from_vec(pad, [b, s]).to_device(src.device());
        let mut h = self.embed(&self.src_embed, src, 0);
        for l in &self.encoder {
            h = l.forward(&h, Some(&pad));
        }
        (self.enc_norm.forward(&h), pad)
    }
}

impl Seq2Seq for TransformerSeq2Seq {
    fn logits(&self, src: &Tensor, src_len: &Tensor, dec_in: &Tensor) -> Tensor {
        let (memory, pad) = self.encode(src, src_len);
        let mut h = self.embed(&self.tgt_embed, dec_in, 0);
        for l in &self.decoder {
            h = l
                .try_forward(&h, &memory, Some(&pad))
                .expect("decoder layer");
        }
        self.dense.forward(&self.dec_norm.forward(&h))
    }
    fn greedy(
        &self,
        src: &Tensor,
        src_len: &Tensor,
        steps: usize,
    ) -> (Vec<Vec<i64>>, Vec<Vec<f64>>) {
        let b = src.dims()[0];
        let (memory, pad) = self.encode(src, src_len);
        let mut caches = vec![KvCache::default(); self.decoder.len()];
        let mut y = Tensor::from_vec(vec![WordVocab::BOS; b], [b, 1]).to_device(src.device());
        let mut out = vec![Vec::new(); b];
        for t in 0..steps {
            let mut h = self.embed(&self.tgt_embed, &y, t);
            for (l, c) in self.decoder.iter().zip(caches.iter_mut()) {
                h = l
                    .try_forward_cached(&h, &memory, Some(&pad), c)
                    .expect("cached decoder layer");
            }
            y = self
                .dense
                .forward(&self.dec_norm.forward(&h))
                .argmax(-1, false);
            for (i, id) in y.to_vec::<i64>().into_iter().enumerate() {
                out[i].push(id);
            }
        }
        (out, Vec::new())
    }
}

impl Module for TransformerSeq2Seq {
    cubegrad::module_tensors! {
        child "src_embed" src_embed;
        child "tgt_embed" tgt_embed;
        list "encoder" encoder;
        list "decoder" decoder;
        child "enc_norm" enc_norm;
        child "dec_norm" dec_norm;
        child "dense" dense;
    }
}

// ---------------------------------------------------------------------------------------------
// Training and evaluation

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

pub struct ModelReport {
    pub name: String,
    pub params: usize,
    pub first_loss: f64,
    pub last_loss: f64,
    pub valid_loss: f64,
    pub test_bleu: f64,
    pub seconds: f64,
    pub examples: Vec<(String, String, String)>,
    pub finished: bool,
}

pub fn train_model(
    name: &str,
    model: &mut dyn Seq2Seq,
    corpus: &Corpus,
    cfg: &Config,
    dir: &Path,
) -> AnyResult<ModelReport> {
    let mut opt = AdamConfig::adam().lr(cfg.lr).init();
    let ckpt = dir.join("checkpoint.safetensors");
    let tag = format!(
        "{name} hidden={} layers={} vocab={}/{}",
        cfg.hidden,
        cfg.layers,
        corpus.src_vocab.len(),
        corpus.tgt_vocab.len()
    );
    let mut history = History::new(&["epoch", "train_loss", "valid_loss", "valid_bleu", "seconds"]);
    let (mut epoch, mut seconds_before) = (0usize, 0.0);
    if cfg.resume {
        let ck = load_checkpoint(&ckpt, model, &mut opt)?;
        if ck.extra.get("model") != Some(&tag) {
            return Err(format!(
                "{}: the checkpoint is of another model than \"{tag}\"",
                ckpt.display()
            )
            .into());
        }
        epoch = ck.get("epoch").ok_or("checkpoint lacks \"epoch\"")?;
        seconds_before = ck.get("seconds").unwrap_or(0.0);
        history = ck
            .extra
            .get("history")
            .and_then(|h| History::from_json(h))
            .ok_or("checkpoint lacks a readable \"history\"")?;
    }
    let n = corpus.train.len();
    let per_epoch = n.div_ceil(cfg.batch_size);
    let bar = progress(cfg.epochs * per_epoch, cfg.quiet);
    bar.set_position((epoch * per_epoch) as u64);
    let started = Instant::now();
    let end = cfg.stop_at.map_or(cfg.epochs, |s| s.min(cfg.epochs));
    let d = cfg.device;
    while epoch < end {
        let mut order: Vec<usize> = (0..n).collect();
        with_rng(|r| order.shuffle(r));
        let (mut total, mut batches) = (0.0, 0usize);
        for chunk in order.chunks(cfg.batch_size) {
            let (s, l, t) = corpus.train.rows(chunk);
            let loss = loss_of(model, &s, &l, &t, d);
            let mut grads = loss.backward();
            clip_grad_norm(model, &mut grads, 1.0);
            opt.step(model, &grads)?;
            total += loss.item();
            batches += 1;
            bar.inc(1);
            let rate =
                (batches * cfg.batch_size) as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{name}: loss {:.3}, {rate:.0} pairs/s",
                total / batches as f64
            ));
        }
        epoch += 1;
        let valid_loss = mean_loss(model, &corpus.valid, cfg);
        let (valid_bleu, _, _) =
            translate_and_score(model, &corpus.valid, &corpus.tgt_vocab, cfg, 200);
        let seconds = seconds_before + started.elapsed().as_secs_f64();
        history.push(vec![
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
        let mut extra = Metadata::new();
        extra.insert("model".into(), tag.clone());
        extra.insert("epoch".into(), epoch.to_string());
        extra.insert("seconds".into(), seconds.to_string());
        extra.insert("history".into(), history.to_json());
        save_checkpoint(&ckpt, model, &opt, &extra)?;
    }
    bar.finish_and_clear();
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
        // The alignment of the first test sentence: output tokens (rows) against its source
        // tokens (columns), up to <eos> on both sides.
        let src_tokens: Vec<String> = tokenize(&corpus.test.sources[0])
            .into_iter()
            .take(cfg.max_tokens - 1)
            .chain(["<eos>".to_string()])
            .collect();
        let out_tokens: Vec<String> = hyps[0]
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
            &dir.join("alignment.svg"),
            "Bahdanau attention: output words (rows) over source words (columns)",
            &rows,
            &src_tokens,
            &out_tokens[..rows.len()],
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

pub fn run(cfg: &Config) -> AnyResult<Vec<ModelReport>> {
    let corpus = load_corpus(cfg)?;
    let dir = out_dir(&cfg.out)?;
    if !cfg.quiet {
        println!(
            "{} pairs (≤ {} characters a side): train {}, valid {}, test {}; vocabularies: English {}, Spanish {}",
            corpus.train.len() + corpus.valid.len() + corpus.test.len(),
            cfg.max_chars,
            corpus.train.len(),
            corpus.valid.len(),
            corpus.test.len(),
            corpus.src_vocab.len(),
            corpus.tgt_vocab.len()
        );
    }
    let mut reports = Vec::new();
    if cfg.model != Which::Transformer {
        manual_seed(cfg.seed);
        let mut m = GruSeq2Seq::new(
            corpus.src_vocab.len(),
            corpus.tgt_vocab.len(),
            cfg.hidden,
            cfg.layers,
            cfg.dropout,
        );
        m.try_to_device(cfg.device)?;
        reports.push(train_model(
            "gru-bahdanau",
            &mut m,
            &corpus,
            cfg,
            &out_dir(&format!("{}/gru", cfg.out))?,
        )?);
    }
    if cfg.model != Which::Gru {
        manual_seed(cfg.seed);
        let mut m = TransformerSeq2Seq::new(corpus.src_vocab.len(), corpus.tgt_vocab.len(), cfg);
        m.try_to_device(cfg.device)?;
        reports.push(train_model(
            "transformer",
            &mut m,
            &corpus,
            cfg,
            &out_dir(&format!("{}/transformer", cfg.out))?,
        )?);
    }
    let mut table = Table::new(&[
        "model",
        "params",
        "valid loss",
        "test BLEU-4",
        "train time (s)",
    ]);
    for r in &reports {
        table.push(vec![
            r.name.clone(),
            common::thousands(r.params),
            format!("{:.3}", r.valid_loss),
            format!("{:.3}", r.test_bleu),
            format!("{:.0}", r.seconds),
        ]);
    }
    table.write(&dir, "results")?;
    if !cfg.quiet {
        println!("{}", table.markdown());
        for r in &reports {
            for (s, refr, h) in &r.examples {
                println!(
                    "[{}] {s}\n    reference: {refr}\n    output:    {h}",
                    r.name
                );
            }
        }
    }
    Ok(reports)
}

#[allow(dead_code)]
fn main() {
    let cfg = Config::parse();
    if let Err(e) = run(&cfg) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
