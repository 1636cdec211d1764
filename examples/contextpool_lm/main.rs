//! A character-level language model on 233 State of the Union addresses, with ContextPool.
//!
//!     cargo run --release --example contextpool_lm
//!     cargo run --release --example contextpool_lm -- --compare
//!     cargo run --release --example contextpool_lm -- --help
//!
//! The default trains a small causal transformer in which each attention head pools the
//! recent context of every key and value (ContextPool per head, the best placement of the
//! ContextPool study), reports bits per character (bpc) on held-out text,
//! and then writes a sample with the KV cache. `--compare` trains the paper's comparison on one
//! budget of steps: a deeper plain transformer, a shallower ContextPool one, adaptive attention
//! span and local attention. Everything lands in `--out` (default `runs/contextpool_lm`):
//! metrics as CSV/JSON, learning curves, the pooling sizes over a passage, an attention map, and
//! a checkpoint that `--resume` continues exactly.
//!
//! The files: `main.rs` (the flags, the single run and the comparison), `model.rs` (the model,
//! its FLOPs, and sampling with the KV cache), `train.rs` (the corpus, the training loop and
//! its report) and `figures.rs` (pooling sizes and attention over a passage). What every
//! example shares is in `examples/common/`.

// The shared code sits beside this folder, in examples/common (public for the tests).
#[path = "../common/mod.rs"]
pub mod common;
mod figures;
mod model;
mod study;
mod train;

use clap::{Parser, ValueEnum};
use common::DistFlags;
use common::{
    at_least, at_least_for, divisible, out_dir, positive, stop_at, AnyResult, Checked, ConfigError,
    Table, Validate,
};
pub use common::{Features, Placement};
use cubegrad::distributed::DataParallel;
use cubegrad::nn::{ContextPoolOptions, PoolFeatures};
use cubegrad::Device;
use figures::passage_figures;
use model::generate;
use std::path::PathBuf;
use study::{run_variants, write_results, Variant};
use train::{load_corpus, train_one, Report};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// Plain causal self-attention.
    Baseline,
    /// ContextPool before attention (the paper's model).
    Contextpool,
    /// Adaptive attention span (Sukhbaatar et al., 2019).
    AdaptiveSpan,
    /// Each token attends to a fixed window of recent tokens.
    Local,
    /// Sparse Transformer, strided pattern (Child et al., 2019): the last --stride tokens
    /// and every --stride-th one before them.
    Strided,
    /// Sparse Transformer, fixed pattern (Child et al., 2019): blocks of --stride tokens, each
    /// token sees its block so far and the last --summary tokens of every earlier block.
    Fixed,
    /// Random-feature linear attention (Performer's FAVOR+, Choromanski et al., 2021):
    /// --features positive orthogonal random features per head, causal by chunks of --chunk.
    Performer,
    /// FLASH (Hua et al., 2022): gated attention units with mixed chunk attention (quadratic
    /// inside chunks of --chunk, linear across them); two units per transformer layer.
    Flash,
    /// Transformer-XL (Dai et al., 2019): relative positions, and a memory of the previous
    /// --mem-len positions of each layer carried across segments of one continuous text per
    /// batch row, in training and evaluation.
    TransformerXl,
    /// Reformer (Kitaev et al., 2020): LSH attention (--n-hashes rounds of --buckets buckets,
    /// chunks of --chunk) in reversible layers that recompute activations in the backward.
    Reformer,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Baseline => "baseline",
            ModelKind::Contextpool => "contextpool",
            ModelKind::AdaptiveSpan => "adaptive-span",
            ModelKind::Local => "local",
            ModelKind::Strided => "strided",
            ModelKind::Fixed => "fixed",
            ModelKind::Performer => "performer",
            ModelKind::Flash => "flash",
            ModelKind::TransformerXl => "transformer-xl",
            ModelKind::Reformer => "reformer",
        }
    }
    /// The depth each model gets unless `--layers` says otherwise: ContextPool's claim is that
    /// it matches a deeper plain model, so it gets half the layers. A gated attention unit
    /// replaces attention and feed-forward with about 7·d² weights against 12·d², so FLASH
    /// stacks two per layer, as its paper does.
    pub fn default_layers(self) -> usize {
        match self {
            ModelKind::Contextpool => 2,
            ModelKind::Flash => 8,
            _ => 4,
        }
    }
}

const DEFAULT_OUT: &str = "runs/contextpool_lm";

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Character-level language model with ContextPool on the State of the Union addresses"
)]
pub struct Config {
    /// Any UTF-8 text file (gzipped if it ends in .gz)
    #[arg(long, default_value = "data/sotu.txt.gz")]
    pub data: String,
    #[arg(long, value_enum, default_value_t = ModelKind::Contextpool)]
    pub model: ModelKind,
    /// Number of layers (default: 2 for contextpool, 4 for the others)
    #[arg(long)]
    pub layers: Option<usize>,
    /// Train baseline (4 and 2 layers), contextpool, adaptive-span and local on one budget
    #[arg(long)]
    pub compare: bool,
    /// With --compare: train these models instead (comma-separated, each at its default depth
    /// unless --layers is given)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Vec<ModelKind>,
    #[arg(long, default_value_t = 128)]
    pub d_model: usize,
    #[arg(long, default_value_t = 4)]
    pub heads: usize,
    /// Context length in characters
    #[arg(long, default_value_t = 128)]
    pub seq_len: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Training steps (the budget; with --compare, for each model)
    #[arg(long, default_value_t = 1500)]
    pub steps: usize,
    /// Peak learning rate (AdamW, linear warm-up then cosine decay to a tenth)
    #[arg(long, default_value_t = 3e-3)]
    pub lr: f64,
    /// Evaluate (and checkpoint) every this many steps
    #[arg(long, default_value_t = 100)]
    pub eval_every: usize,
    /// Characters of the validation split used at each evaluation
    #[arg(long, default_value_t = 32768)]
    pub eval_chars: usize,
    /// Characters of the test split used for the final bpc
    #[arg(long, default_value_t = 131072)]
    pub test_chars: usize,
    /// ContextPool: where it sits (input: before attention, pooling queries, keys and values;
    /// kv: keys and values only; after-block: the block's output tokens; per-head: each
    /// head's keys and values after their projections). The default is the ContextPool study's
    /// best variant (README, "Does ContextPool help?")
    #[arg(long, value_enum, default_value_t = Placement::PerHead)]
    pub pool_placement: Placement,
    /// ContextPool before attention: pool the layer-normalised tokens, or the raw residual
    /// stream (normalised after pooling)
    #[arg(long, value_enum, default_value_t = Features::Normalized)]
    pub pool_features: Features,
    /// ContextPool: the size every token starts at (clamped just inside the size range)
    #[arg(long, default_value_t = 1.0)]
    pub pool_init_size: f64,
    /// ContextPool: the smallest pooling size
    #[arg(long, default_value_t = 0.5)]
    pub pool_s_min: f64,
    /// ContextPool: the largest pooling size (the window reaches 3 times as far)
    #[arg(long, default_value_t = 8.0)]
    pub pool_s_max: f64,
    /// ContextPool: a weighted sum instead of a weighted mean (no division by the weights)
    #[arg(long)]
    pub pool_unnormalized: bool,
    /// Local attention: keys this far back
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Strided and fixed sparse attention: the stride (the fixed pattern's block length)
    #[arg(long, default_value_t = 16)]
    pub stride: usize,
    /// Fixed sparse attention: the summary tokens at the end of each block
    #[arg(long, default_value_t = 2)]
    pub summary: usize,
    /// Performer: random features per head
    #[arg(long, default_value_t = 64)]
    pub features: usize,
    /// Performer, FLASH and Reformer: tokens per chunk (quadratic inside a chunk; Reformer
    /// needs --seq-len to be a multiple of it)
    #[arg(long, default_value_t = 32)]
    pub chunk: usize,
    /// Performer: draw fresh random features every this many steps (0: never), as
    /// performer-pytorch's feature_redraw_interval
    #[arg(long, default_value_t = 1000)]
    pub redraw_every: usize,
    /// Reformer: hashing rounds
    #[arg(long, default_value_t = 2)]
    pub n_hashes: usize,
    /// Reformer: buckets per hashing round (even)
    #[arg(long, default_value_t = 8)]
    pub buckets: usize,
    /// Transformer-XL: positions of memory each layer keeps from the previous segments
    #[arg(long, default_value_t = 128)]
    pub mem_len: usize,
    /// With --compare or --study: train every model this many times (seeds --seed,
    /// --seed + 1, …) and report the mean and standard deviation
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// The ContextPool study: placements on --data and --study-data, ContextPool's options,
    /// and the alternatives the paper compares with, each --seeds times (see the README)
    #[arg(long)]
    pub study: bool,
    /// --study: the second corpus
    #[arg(long, default_value = "data/shakespeare.txt.gz")]
    pub study_data: String,
    /// Characters to generate after training (0: none)
    #[arg(long, default_value_t = 400)]
    pub sample_chars: usize,
    #[arg(long, default_value = "The Congress")]
    pub prompt: String,
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, wgpu[:N] or cuda[:N]
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// Output folder (with --compare, the default is runs/contextpool_lm_compare)
    #[arg(long, default_value = DEFAULT_OUT)]
    pub out: String,
    /// Continue from the checkpoint in --out
    #[arg(long)]
    pub resume: bool,
    /// Stop once this step is reached, as if interrupted (resume continues the same run)
    #[arg(long, hide = true)]
    pub stop_at: Option<usize>,
    /// No progress bar or sample
    #[arg(long)]
    pub quiet: bool,
    /// Skip a step whose loss or gradient norm is not finite (counted in the metrics) instead
    /// of stopping the run
    #[arg(long)]
    pub skip_nonfinite: bool,
    /// Data-parallel training over the processes of `mpirun -np N` (needs the `mpi` feature):
    /// each rank trains on its rows of every --batch-size batch, gradients are averaged
    #[arg(long)]
    pub distributed: bool,
    /// --distributed: gradient bucket size in MiB (one all-reduce per bucket)
    #[arg(long, default_value_t = cubegrad::distributed::DEFAULT_BUCKET_MIB)]
    pub bucket_mib: f64,
    /// --distributed: seconds a collective waits for the other ranks before this process
    /// stops with an error (a rank that died never arrives)
    #[arg(long, default_value_t = 600.0)]
    pub dist_timeout: f64,
}

impl Validate for Config {
    fn validate(&self) -> Checked {
        at_least("seq-len", self.seq_len, 1)?;
        at_least("batch-size", self.batch_size, 1)?;
        at_least("steps", self.steps, 1)?;
        at_least("d-model", self.d_model, 1)?;
        divisible("d-model", self.d_model, "heads", self.heads)?;
        if let Some(layers) = self.layers {
            at_least("layers", layers, 1)?;
        }
        positive("lr", self.lr)?;
        at_least("eval-every", self.eval_every, 1)?;
        // An evaluation reads whole windows of --seq-len + 1 characters.
        let window = format!("one window of --seq-len {} + 1", self.seq_len);
        at_least_for("eval-chars", self.eval_chars, self.seq_len + 1, &window)?;
        at_least_for("test-chars", self.test_chars, self.seq_len + 1, &window)?;
        at_least("window", self.window, 1)?;
        at_least("stride", self.stride, 1)?;
        at_least("summary", self.summary, 1)?;
        at_least("features", self.features, 1)?;
        at_least("chunk", self.chunk, 1)?;
        at_least("mem-len", self.mem_len, 1)?;
        at_least("n-hashes", self.n_hashes, 1)?;
        at_least("buckets", self.buckets, 2)?;
        if self.buckets % 2 != 0 {
            return Err(ConfigError(format!(
                "--buckets {} must be even (a bucket per direction of each rotation)",
                self.buckets
            )));
        }
        let reformer =
            self.model == ModelKind::Reformer || self.models.contains(&ModelKind::Reformer);
        if reformer && self.seq_len % self.chunk != 0 {
            return Err(ConfigError(format!(
                "--seq-len {} must be a multiple of --chunk {} for the reformer model",
                self.seq_len, self.chunk
            )));
        }
        if self.summary > self.stride {
            return Err(ConfigError(format!(
                "--summary {} must be at most --stride {}",
                self.summary, self.stride
            )));
        }
        if self.sample_chars > 0 {
            positive("temperature", self.temperature)?;
            if self.prompt.is_empty() {
                return Err(ConfigError(
                    "--prompt \"\" must not be empty when --sample-chars is above 0".into(),
                ));
            }
        }
        positive("pool-init-size", self.pool_init_size)?;
        positive("pool-s-min", self.pool_s_min)?;
        positive("pool-s-max", self.pool_s_max)?;
        if self.pool_s_max < self.pool_s_min {
            return Err(ConfigError(format!(
                "--pool-s-max {} must be at least --pool-s-min {}",
                self.pool_s_max, self.pool_s_min
            )));
        }
        at_least("seeds", self.seeds, 1)?;
        positive("bucket-mib", self.bucket_mib)?;
        positive("dist-timeout", self.dist_timeout)?;
        if self.distributed
            && (self.model == ModelKind::TransformerXl
                || self.models.contains(&ModelKind::TransformerXl))
        {
            return Err(ConfigError(
                "--distributed does not support the transformer-xl model: its memory belongs \
                 to the batch rows, which the ranks split"
                    .into(),
            ));
        }
        stop_at(self.stop_at)
    }
}

impl Config {
    pub fn layers(&self) -> usize {
        self.layers.unwrap_or(self.model.default_layers())
    }
    /// The ContextPool options the `--pool-*` flags give (causal: every model here is).
    pub fn pool_options(&self) -> ContextPoolOptions {
        ContextPoolOptions {
            causal: true,
            s_min: self.pool_s_min,
            s_max: self.pool_s_max,
            normalize: !self.pool_unnormalized,
            init_size: self.pool_init_size,
            ..Default::default()
        }
    }
    pub fn pool_features(&self) -> PoolFeatures {
        self.pool_features.layer()
    }
    /// The ContextPool variant, as a name suffix: empty for the paper's placement (the
    /// attention input) with the layer's default options, else what differs (` per-head`,
    /// ` kv`, ` init=0.5`, …), so that runs and checkpoints of variants differ and a table
    /// names the placement of every row but the paper's.
    pub fn pool_variant(&self) -> String {
        let d = ContextPoolOptions::default();
        let mut v = String::new();
        if self.pool_placement != Placement::Input {
            v += &format!(" {}", self.pool_placement.name());
        }
        if self.pool_features == Features::Raw {
            v += " raw";
        }
        if self.pool_init_size != d.init_size {
            v += &format!(" init={}", self.pool_init_size);
        }
        if (self.pool_s_min, self.pool_s_max) != (d.s_min, d.s_max) {
            v += &format!(" s=[{},{}]", self.pool_s_min, self.pool_s_max);
        }
        if self.pool_unnormalized {
            v += " unnormalized";
        }
        v
    }
    /// The process group of this run (one process unless `--distributed`), and the device
    /// this rank trains on.
    pub fn data_parallel(&self) -> AnyResult<(DataParallel, Device)> {
        let flags = DistFlags {
            distributed: self.distributed,
            bucket_mib: self.bucket_mib,
            timeout: self.dist_timeout,
        };
        common::data_parallel(&flags, "contextpool_lm", self.device)
    }
}

/// The single-model run: train, figures, sample.
pub fn run(cfg: &Config) -> AnyResult<Report> {
    cfg.validate()?;
    let (mut ddp, device) = cfg.data_parallel()?;
    // Rank 0 prints and writes; the others train quietly beside it.
    let cfg = &Config {
        device,
        quiet: cfg.quiet || !ddp.is_main(),
        ..cfg.clone()
    };
    let corpus = load_corpus(&cfg.data, cfg.seed)?;
    corpus.check_fits(&cfg.data, cfg.seq_len)?;
    let dir = out_dir(&cfg.out)?;
    if !cfg.quiet {
        println!(
            "{}: {} characters ({} distinct); train {}, valid {}, test {}",
            cfg.data,
            common::thousands(
                corpus.splits.train.len() + corpus.splits.valid.len() + corpus.splits.test.len()
            ),
            corpus.vocab.len(),
            common::thousands(corpus.splits.train.len()),
            common::thousands(corpus.splits.valid.len()),
            common::thousands(corpus.splits.test.len()),
        );
    }
    let (mut report, mut model) = train_one(cfg, &corpus, cfg.model, cfg.layers(), &dir, &mut ddp)?;
    if report.finished && ddp.is_main() {
        passage_figures(&mut model, &corpus, cfg, &dir)?;
        if cfg.sample_chars > 0 {
            let s = generate(&mut model, &corpus.vocab, cfg, cfg.sample_chars)?;
            common::write_file(&dir.join("sample.txt"), &s)?;
            report.sample = Some(s);
        }
    }
    Ok(report)
}

/// The comparison: each model on the same steps, batch and context, then one table.
pub fn compare(cfg: &Config) -> AnyResult<Vec<Report>> {
    cfg.validate()?;
    let (mut ddp, device) = cfg.data_parallel()?;
    let cfg = &Config {
        device,
        quiet: cfg.quiet || !ddp.is_main(),
        ..cfg.clone()
    };
    let corpus = load_corpus(&cfg.data, cfg.seed)?;
    corpus.check_fits(&cfg.data, cfg.seq_len)?;
    // Beside, not inside, the single run's folder.
    let base = if cfg.out == DEFAULT_OUT {
        "runs/contextpool_lm_compare".to_string()
    } else {
        cfg.out.clone()
    };
    let cfg = &Config {
        out: base,
        ..cfg.clone()
    };
    let dir = out_dir(&cfg.out)?;
    // The paper's comparison, plus the plain model at ContextPool's depth, which tells a
    // reader whether pooling helps at equal depth (without --layers, which sets every depth).
    let default_set = cfg.models.is_empty();
    let mut runs: Vec<(ModelKind, usize)> = vec![
        (ModelKind::Baseline, ModelKind::Baseline.default_layers()),
        (
            ModelKind::Contextpool,
            ModelKind::Contextpool.default_layers(),
        ),
    ];
    if cfg.layers.is_none() {
        runs.push((ModelKind::Baseline, ModelKind::Contextpool.default_layers()));
    }
    runs.push((
        ModelKind::AdaptiveSpan,
        ModelKind::AdaptiveSpan.default_layers(),
    ));
    runs.push((ModelKind::Local, ModelKind::Local.default_layers()));
    if !default_set {
        runs = cfg
            .models
            .iter()
            .map(|&k| (k, k.default_layers()))
            .collect();
    }
    let variants: Vec<Variant> = runs
        .into_iter()
        .map(|(kind, default_layers)| Variant::new(cfg, kind, cfg.layers.unwrap_or(default_layers)))
        .collect();
    let summaries = run_variants(&corpus, &variants, cfg.seeds, &dir, &mut ddp)?;
    if ddp.is_main() {
        let title = "Validation bits per character on one budget";
        let figure = "compare_valid_bpc.svg";
        let table = write_results(&dir, "results", figure, title, &summaries, cfg.seeds)?;
        if !cfg.quiet {
            println!("{}", table.markdown());
        }
    }
    Ok(summaries.into_iter().flat_map(|s| s.reports).collect())
}

/// The ContextPool study (`--study`), in `--out` (default `runs/contextpool_study`).
pub fn run_study(cfg: &Config) -> AnyResult<Vec<Table>> {
    cfg.validate()?;
    let (mut ddp, device) = cfg.data_parallel()?;
    let out = if cfg.out == DEFAULT_OUT {
        "runs/contextpool_study".to_string()
    } else {
        cfg.out.clone()
    };
    let cfg = &Config {
        device,
        out,
        quiet: cfg.quiet || !ddp.is_main(),
        ..cfg.clone()
    };
    study::study(cfg, &mut ddp)
}

#[allow(dead_code)]
fn main() {
    // `--compare` runs the comparison, which prints its own table; otherwise the single run,
    // summed up in a line and followed by its sample.
    let run_or_compare = |cfg: &Config| {
        if cfg.study {
            run_study(cfg).map(|_| None)
        } else if cfg.compare {
            compare(cfg).map(|_| None)
        } else {
            run(cfg).map(Some)
        }
    };
    common::main(run_or_compare, |cfg: &Config, report: &Option<Report>| {
        // Under --distributed, rank 0 sums up; the others have said who they are.
        let Some(r) = report.as_ref().filter(|r| r.main_rank) else {
            return;
        };
        if !r.finished {
            println!(
                "stopped at step {} of {}; continue with --resume",
                r.history.rows.last().map_or(0.0, |x| x[0]),
                cfg.steps
            );
            return;
        }
        println!(
            "{} ({} layers, {} parameters): test {:.3} bpc (validation {:.3}), {:.0} s, {:.0} chars/s",
            r.model.name(),
            r.layers,
            common::thousands(r.params),
            r.test_bpc,
            r.valid_bpc,
            r.train_seconds,
            r.tokens_per_second
        );
        if let Some(s) = &r.sample {
            println!("\nsample:\n{s}\n");
        }
        println!(
            "figures and metrics in {}",
            PathBuf::from(&cfg.out).display()
        );
    });
}
