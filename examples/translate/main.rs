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
//!
//! The files: `main.rs` (the flags, and the run over both models), `data.rs` (tokens,
//! vocabularies and padded batches), `models.rs` (the two models) and `train.rs` (the training
//! loop, greedy decoding and BLEU). What every example shares is in `examples/common/`.

// The shared code sits beside this folder, in examples/common.
#[path = "../common/mod.rs"]
mod common;
mod data;
mod models;
mod train;

use clap::{Parser, ValueEnum};
use common::{
    at_least, divisible, out_dir, positive, probability, stop_at, AnyResult, Checked, Table,
    Validate,
};
use cubegrad::nn::Module;
use cubegrad::{manual_seed, Device};
use data::load_corpus;
use models::{GruSeq2Seq, TransformerSeq2Seq};
use train::{train_model, ModelReport};

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
    /// Skip a batch whose loss or gradients are not finite instead of stopping the run
    #[arg(long)]
    pub skip_nonfinite: bool,
}

impl Validate for Config {
    fn validate(&self) -> Checked {
        at_least("max-chars", self.max_chars, 1)?;
        // A word and the end mark.
        at_least("max-tokens", self.max_tokens, 2)?;
        at_least("min-freq", self.min_freq, 1)?;
        at_least("hidden", self.hidden, 1)?;
        at_least("layers", self.layers, 1)?;
        divisible("hidden", self.hidden, "heads", self.heads)?;
        probability("dropout", self.dropout)?;
        at_least("epochs", self.epochs, 1)?;
        at_least("batch-size", self.batch_size, 1)?;
        positive("lr", self.lr)?;
        at_least("bleu-sentences", self.bleu_sentences, 1)?;
        stop_at(self.stop_at)
    }
}

pub fn run(cfg: &Config) -> AnyResult<Vec<ModelReport>> {
    cfg.validate()?;
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
    common::main(run, |cfg: &Config, _: &Vec<ModelReport>| {
        println!("figures and metrics in {}", cfg.out)
    });
}
