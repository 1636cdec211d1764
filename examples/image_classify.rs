//! Fashion-MNIST: a small CNN with max pooling against the same CNN with ContextPool pooling,
//! and a small vision transformer with and without ContextPool.
//!
//!     cargo run --release --example image_classify
//!
//! The vendored 20,000 training images are split 90/10 into train and validation by seed; the
//! 10,000 test images are only used for the final accuracy. Each model trains with Adam for
//! `--epochs`; the table gives test accuracy, parameters, forward FLOPs per image and training
//! time. The pooling sizes ContextPool chose over one test image are drawn beside the image.

mod common;
pub use common::Placement;

use clap::{Parser, ValueEnum};
use common::{
    accuracy, announce, at_least, check_batch, data_parallel, heatmap, out_dir, positive, stop_at,
    train_classifier, write_json, AnyResult, Checked, ClassifierRun, ConfigError, DistFlags,
    Series, Table, Validate,
};
use cubegrad::data::{load_fashion_mnist, Dataset, FASHION_MNIST_CLASSES};
use cubegrad::nn::{
    AttentionKind, ContextPoolOptions, ConvBlock, EncoderOptions, LayerNorm, Linear, Module,
    PatchEmbedding, Pooling, TransformerEncoderLayer,
};
use cubegrad::{manual_seed, no_grad, Device, Tensor};
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    CnnMax,
    CnnContextpool,
    Vit,
    VitContextpool,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::CnnMax => "cnn-maxpool",
            ModelKind::CnnContextpool => "cnn-contextpool",
            ModelKind::Vit => "vit",
            ModelKind::VitContextpool => "vit-contextpool",
        }
    }
}

/// The ViT's attention (its vision-relevant variants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VitAttention {
    /// Softmax attention over all 50 tokens.
    Full,
    /// Random-feature linear attention (Performer's FAVOR+, 32 orthogonal features per head,
    /// drawn once).
    Performer,
    /// LARA: 8 importance-sampling proposals from segment means of the 50 tokens (1-D
    /// segments in patch order; the paper pools the 2-D grid), one sample each in training.
    Lara,
    /// MRA: blocks of 5 tokens, 3 of 10 refined per query block, the rest from block means.
    Mra,
}

#[derive(Parser, Debug, Clone)]
#[command(
    about = "Fashion-MNIST: CNN with max pooling vs ContextPool, ViT with and without ContextPool"
)]
pub struct Config {
    #[arg(long, default_value = "data/fashion-mnist")]
    pub data: String,
    /// Which models to train (default: all four)
    #[arg(long, value_enum, value_delimiter = ',')]
    pub models: Vec<ModelKind>,
    #[arg(long, default_value_t = 3)]
    pub epochs: usize,
    /// Use only this many of the training images (0: all 18,000 after the validation cut)
    #[arg(long, default_value_t = 0)]
    pub train_images: usize,
    /// Use only this many test images (0: all 10,000)
    #[arg(long, default_value_t = 0)]
    pub test_images: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    /// ViT width
    #[arg(long, default_value_t = 64)]
    pub d_model: usize,
    #[arg(long, default_value_t = 2)]
    pub vit_layers: usize,
    /// The attention of the ViTs (with and without ContextPool)
    #[arg(long, value_enum, default_value_t = VitAttention::Full)]
    pub vit_attention: VitAttention,
    /// Where the ViT's ContextPool sits (input: before attention, pooling queries, keys and
    /// values; kv: keys and values only; after-block: the block's output tokens; per-head:
    /// each head's keys and values); several, comma-separated, train one ViT each
    #[arg(long, value_enum, value_delimiter = ',', default_value = "input")]
    pub vit_pool_placement: Vec<Placement>,
    /// Train every model this many times (seeds --seed, --seed + 1, …) and report the mean and
    /// standard deviation of its accuracy
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, wgpu[:N] or cuda[:N]
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    #[arg(long, default_value = "runs/image_classify")]
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

/// Attention heads of the ViT.
const VIT_HEADS: usize = 4;
/// Random features per head of `--vit-attention performer`.
const VIT_FEATURES: usize = 32;
/// Blocks of `--vit-attention mra`: 50 tokens in 10 blocks of 5, 3 refined per query block.
const MRA_BLOCK: usize = 5;
const MRA_REFINED: usize = 3;
/// Proposals (and samples) per head of `--vit-attention lara`.
const VIT_PROPOSALS: usize = 8;

impl Config {
    /// The ViT's ContextPool placement (the first of `--vit-pool-placement`; one run trains
    /// one ViT per placement, each with its own copy of the settings).
    pub fn placement(&self) -> Placement {
        self.vit_pool_placement
            .first()
            .copied()
            .unwrap_or(Placement::Input)
    }
}

impl Validate for Config {
    fn validate(&self) -> Checked {
        at_least("epochs", self.epochs, 1)?;
        at_least("batch-size", self.batch_size, 1)?;
        at_least("seeds", self.seeds, 1)?;
        positive("lr", self.lr)?;
        positive("bucket-mib", self.bucket_mib)?;
        positive("dist-timeout", self.dist_timeout)?;
        at_least("d-model", self.d_model, 1)?;
        if self.d_model % VIT_HEADS != 0 {
            return Err(ConfigError(format!(
                "--d-model {} must be divisible by the ViT's {VIT_HEADS} heads",
                self.d_model
            )));
        }
        at_least("vit-layers", self.vit_layers, 1)?;
        stop_at(self.stop_at)
    }
}

/// The model's name in tables and checkpoints: the ViTs carry their attention when it is not
/// the default.
pub fn label(cfg: &Config, kind: ModelKind) -> String {
    let vit = matches!(kind, ModelKind::Vit | ModelKind::VitContextpool);
    let mut name = match cfg.vit_attention {
        VitAttention::Performer if vit => format!("{} (performer)", kind.name()),
        VitAttention::Lara if vit => format!("{} (lara)", kind.name()),
        VitAttention::Mra if vit => format!("{} (mra)", kind.name()),
        _ => kind.name().to_string(),
    };
    let placement = cfg.placement();
    if kind == ModelKind::VitContextpool && placement != Placement::Input {
        name += &format!(" ({})", placement.name());
    }
    name
}

/// Two blocks `pool(relu(bn(conv3×3)))` (1 → 16 → 32 channels, 28 → 14 → 7) and a linear
/// classifier on the flattened 32×7×7 features.
pub struct Cnn {
    pub blocks: Vec<ConvBlock>,
    pub fc: Linear,
}

impl Cnn {
    pub fn new(pool: &str) -> cubegrad::Result<Self> {
        Ok(Cnn {
            blocks: vec![ConvBlock::new(1, 16, pool)?, ConvBlock::new(16, 32, pool)?],
            fc: Linear::new(32 * 7 * 7, 10, true),
        })
    }
    pub fn forward(&mut self, x: &Tensor) -> Tensor {
        let mut h = x.clone();
        for b in &mut self.blocks {
            h = b.forward(&h);
        }
        let n = h.dims()[0];
        self.fc.forward(&h.reshape(&[n, 32 * 7 * 7]))
    }
}

impl Module for Cnn {
    cubegrad::module_tensors! {
        list "blocks" blocks;
        child "fc" fc;
    }
}

/// 4×4 patches (a 7×7 grid plus the class token), pre-norm encoder layers, and a linear head
/// on the class token. With ContextPool, each layer pools over the 2-D patch grid first.
pub struct Vit {
    pub patch: PatchEmbedding,
    pub layers: Vec<TransformerEncoderLayer>,
    pub norm: LayerNorm,
    pub head: Linear,
}

pub fn vit_options(cfg: &Config, context_pool: bool) -> EncoderOptions {
    let mut o = EncoderOptions::new(cfg.d_model, VIT_HEADS);
    o.dim_feedforward = 2 * cfg.d_model;
    o.dropout = 0.0;
    if cfg.vit_attention == VitAttention::Performer {
        // Not causal: the chunk plays no part.
        o.attention = AttentionKind::RandomFeatures {
            features: VIT_FEATURES,
            chunk: 64,
        };
    }
    if cfg.vit_attention == VitAttention::Mra {
        o.attention = AttentionKind::Mra {
            block: MRA_BLOCK,
            refined: MRA_REFINED,
        };
    }
    if cfg.vit_attention == VitAttention::Lara {
        o.attention = AttentionKind::Lara {
            proposals: VIT_PROPOSALS,
        };
    }
    if context_pool {
        o.context_pool = Some(ContextPoolOptions {
            s_max: 2.0,
            ..Default::default()
        });
        o.pool_grid = Some((7, 7, true));
        o.pool_placement = cfg.placement().layer();
    }
    o
}

impl Vit {
    pub fn new(cfg: &Config, context_pool: bool) -> Self {
        let o = vit_options(cfg, context_pool);
        Vit {
            patch: PatchEmbedding::new(1, (28, 28), 4, cfg.d_model),
            layers: (0..cfg.vit_layers)
                .map(|_| TransformerEncoderLayer::new(o))
                .collect(),
            norm: LayerNorm::new(&[cfg.d_model]),
            head: Linear::new(cfg.d_model, 10, true),
        }
    }
    pub fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = self.patch.forward(x);
        for l in &self.layers {
            h = l.forward(&h, None);
        }
        let cls = self.norm.forward(&h).narrow(1, 0, 1).squeeze(1);
        self.head.forward(&cls)
    }
}

impl Module for Vit {
    cubegrad::module_tensors! {
        child "patch" patch;
        list "layers" layers;
        child "norm" norm;
        child "head" head;
    }
}

/// Forward FLOPs per image (a multiply-add counts 2): convolutions, ContextPool's projections
/// and windows, attention's projections, scores and feed-forward, and the classifiers.
/// Batch norm, activations and softmax are left out (a few per element).
pub fn flops_per_image(cfg: &Config, kind: ModelKind) -> f64 {
    let conv = |cin: f64, cout: f64, hw: f64| 2.0 * cin * 9.0 * cout * hw;
    // ContextPool2d with s_max = 2: radius 6, a 13×13 window per output and channel, plus the
    // weight (at every input) and size (at every output) projections.
    let cp2d = |c: f64, hw_in: f64, hw_out: f64| {
        let r = ContextPoolOptions {
            s_max: 2.0,
            ..Default::default()
        }
        .radius() as f64;
        2.0 * c * hw_in + 2.0 * c * hw_out + 2.0 * (2.0 * r + 1.0).powi(2) * c * hw_out
    };
    match kind {
        ModelKind::CnnMax | ModelKind::CnnContextpool => {
            let mut f = conv(1.0, 16.0, 784.0) + conv(16.0, 32.0, 196.0) + 2.0 * 1568.0 * 10.0;
            if kind == ModelKind::CnnContextpool {
                f += cp2d(16.0, 784.0, 196.0) + cp2d(32.0, 196.0, 49.0);
            }
            f
        }
        ModelKind::Vit | ModelKind::VitContextpool => {
            let d = cfg.d_model as f64;
            let n = 50.0;
            let attention = match cfg.vit_attention {
                // Scores and the weighted sum over all n keys.
                VitAttention::Full => 2.0 * 2.0 * n * n * d,
                // Per token: φ(q) and φ(k) (m features per head), φ(k)vᵀ into the state, and
                // φ(q) against the state and the normaliser.
                // Per token and head: φ(q) and φ(k) (m features each), φ(k)vᵀ into the state
                // and φ(q) against it: 8·m·e, so 8·m·d over the heads.
                VitAttention::Performer => n * 8.0 * VIT_FEATURES as f64 * d,
                // Per token and head: log ξ of q and k against the C samples, the values'
                // average per sample and the query's mixture of the C averages, plus its
                // similarity to the C segment means: about 8·C·e, so 8·C·d.
                VitAttention::Lara => n * 8.0 * VIT_PROPOSALS as f64 * d,
                // Per token: the refined blocks' keys exactly (scores and values), and the
                // coarse score and summed values of every block.
                VitAttention::Mra => {
                    let blocks = (n / MRA_BLOCK as f64).ceil();
                    n * 2.0 * 2.0 * d * (MRA_REFINED * MRA_BLOCK) as f64
                        + n * 2.0 * 2.0 * d * blocks
                }
            };
            let mut layer = n * (2.0 * 4.0 * d * d + 2.0 * 2.0 * d * 2.0 * d) + attention;
            if kind == ModelKind::VitContextpool {
                // Per head, the heads' keys and values side by side: 2·d features in all.
                let f = if cfg.placement() == Placement::PerHead {
                    2.0 * d
                } else {
                    d
                };
                layer += cp2d(f, 49.0, 49.0);
            }
            2.0 * 16.0 * d * 49.0 + cfg.vit_layers as f64 * layer + 2.0 * d * 10.0
        }
    }
}

pub struct Report {
    pub kind: ModelKind,
    /// The model's name in tables (the kind, with the ViT's attention and placement).
    pub label: String,
    pub seed: u64,
    pub params: usize,
    pub flops: f64,
    pub first_loss: f64,
    pub last_loss: f64,
    pub valid_accuracy: f64,
    pub test_accuracy: f64,
    pub seconds: f64,
    pub finished: bool,
}

fn subset(d: &Dataset, n: usize) -> Dataset {
    if n == 0 || n >= d.len() {
        return d.clone();
    }
    d.select(&(0..n).collect::<Vec<_>>())
}

/// One test image and the pooling sizes ContextPool chose over it, as heatmaps.
fn pooling_figure(
    sizes: &Tensor,
    image: &[f32],
    dir: &Path,
    name: &str,
    title: &str,
) -> AnyResult<()> {
    let dims = sizes.dims().to_vec();
    let (h, w) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    let s = sizes.to_device(Device::Cpu).to_vec::<f32>();
    let rows: Vec<Vec<f64>> = (0..h)
        .map(|i| (0..w).map(|j| s[i * w + j] as f64).collect())
        .collect();
    heatmap(&dir.join(format!("{name}.svg")), title, &rows, &[], &[])?;
    let img: Vec<Vec<f64>> = (0..28)
        .map(|i| (0..28).map(|j| image[i * 28 + j] as f64).collect())
        .collect();
    heatmap(
        &dir.join("test_image.svg"),
        "The test image",
        &img,
        &[],
        &[],
    )
}

pub fn run(cfg: &Config) -> AnyResult<Vec<Report>> {
    cfg.validate()?;
    let flags = DistFlags {
        distributed: cfg.distributed,
        bucket_mib: cfg.bucket_mib,
        timeout: cfg.dist_timeout,
    };
    let (mut ddp, device) = data_parallel(&flags, "image_classify", cfg.device)?;
    // Rank 0 prints and writes; the others train quietly beside it.
    let cfg = &Config {
        device,
        quiet: cfg.quiet || !ddp.is_main(),
        ..cfg.clone()
    };
    let rows = check_batch(&ddp, cfg.batch_size)?;
    announce(&ddp, cfg.device, rows, cfg.batch_size);
    let (train_all, test) = load_fashion_mnist(&cfg.data)?;
    let parts = train_all.split(&[0.9, 0.1], cfg.seed);
    let train = subset(&parts[0], cfg.train_images);
    let valid = &parts[1];
    let test = subset(&test, cfg.test_images);
    let dir = out_dir(&cfg.out)?;
    let kinds = if cfg.models.is_empty() {
        vec![
            ModelKind::CnnMax,
            ModelKind::CnnContextpool,
            ModelKind::Vit,
            ModelKind::VitContextpool,
        ]
    } else {
        cfg.models.clone()
    };
    if !cfg.quiet {
        println!(
            "Fashion-MNIST: train {}, validation {}, test {} images",
            train.len(),
            valid.len(),
            test.len()
        );
    }
    let image0 = test.x.narrow(0, 0, 1);
    let label0 = test.y.to_vec::<i64>()[0] as usize;
    let pixels0 = image0.to_vec::<f32>();
    let mut reports = Vec::new();
    let mut curves = Vec::new();
    let base = cfg;
    // One ViT with ContextPool per placement asked for; every model once per seed.
    let mut runs = Vec::new();
    for &kind in &kinds {
        let placements = if kind == ModelKind::VitContextpool {
            base.vit_pool_placement.clone()
        } else {
            vec![base.placement()]
        };
        for p in placements {
            for k in 0..base.seeds as u64 {
                runs.push((kind, p, k));
            }
        }
    }
    for (kind, placement, k) in runs {
        // Each seed draws its own weights and batch order; the data split stays the same.
        let cfg = &Config {
            seed: base.seed + k,
            vit_pool_placement: vec![placement],
            ..base.clone()
        };
        manual_seed(cfg.seed);
        let folder = label(cfg, kind).replace([' ', '(', ')'], "_");
        let sub = if base.seeds == 1 {
            out_dir(&format!("{}/{}", cfg.out, kind.name()))?
        } else {
            out_dir(&format!("{}/{folder}/seed-{}", cfg.out, cfg.seed))?
        };
        let run = ClassifierRun {
            epochs: cfg.epochs,
            batch_size: cfg.batch_size,
            lr: cfg.lr,
            device: cfg.device,
            dir: &sub,
            tag: format!(
                "{} d={} layers={}",
                label(cfg, kind),
                cfg.d_model,
                cfg.vit_layers
            ),
            resume: cfg.resume,
            stop_at: cfg.stop_at,
            quiet: cfg.quiet,
            skip_nonfinite: cfg.skip_nonfinite,
        };
        let (history, finished, test_acc, params) = match kind {
            ModelKind::CnnMax | ModelKind::CnnContextpool => {
                let pool = if kind == ModelKind::CnnMax {
                    "max"
                } else {
                    "contextpool"
                };
                let mut m = Cnn::new(pool)?;
                m.try_to_device(cfg.device)?;
                let mut fwd = |m: &mut Cnn, x: &Tensor| m.forward(x);
                let (h, done) = train_classifier(&mut m, &mut fwd, &train, valid, &run, &mut ddp)?;
                let acc = accuracy(&mut m, &mut fwd, &test, 256, cfg.device);
                if kind == ModelKind::CnnContextpool && ddp.is_main() && k == 0 {
                    m.eval();
                    no_grad(|| m.forward(&image0.to_device(cfg.device)));
                    let Pooling::ContextPool(p) = &m.blocks[0].pool else {
                        unreachable!("built with contextpool")
                    };
                    let s = p.last_stats().ok_or("no ContextPool statistics")?;
                    pooling_figure(
                        &s.sizes,
                        &pixels0,
                        &sub,
                        "pool_sizes_block1",
                        &format!(
                            "Pooling sizes s of block 1 (14×14) on a test {}",
                            FASHION_MNIST_CLASSES[label0]
                        ),
                    )?;
                }
                (h, done, acc, m.num_params())
            }
            ModelKind::Vit | ModelKind::VitContextpool => {
                let mut m = Vit::new(cfg, kind == ModelKind::VitContextpool);
                m.try_to_device(cfg.device)?;
                let mut fwd = |m: &mut Vit, x: &Tensor| m.forward(x);
                let (h, done) = train_classifier(&mut m, &mut fwd, &train, valid, &run, &mut ddp)?;
                let acc = accuracy(&mut m, &mut fwd, &test, 256, cfg.device);
                let first = m.layers[0].context_pool.is_some() && k == 0;
                if kind == ModelKind::VitContextpool && ddp.is_main() && first {
                    m.eval();
                    no_grad(|| m.forward(&image0.to_device(cfg.device)));
                    let cp = m.layers[0]
                        .context_pool
                        .as_ref()
                        .expect("built with ContextPool");
                    let s = cp.last_stats().ok_or("no ContextPool statistics")?;
                    pooling_figure(
                        &s.sizes,
                        &pixels0,
                        &sub,
                        "pool_sizes_layer1",
                        &format!(
                            "Pooling sizes s of layer 1 over the 7×7 patches of a test {}",
                            FASHION_MNIST_CLASSES[label0]
                        ),
                    )?;
                }
                (h, done, acc, m.num_params())
            }
        };
        let losses = history.column("train_loss");
        if k == 0 {
            // The first seed's curve: the table has the spread.
            curves.push(Series::line(
                &label(cfg, kind),
                history.points("epoch", "valid_accuracy"),
            ));
        }
        reports.push(Report {
            kind,
            label: label(cfg, kind),
            seed: cfg.seed,
            params,
            flops: flops_per_image(cfg, kind),
            first_loss: losses.first().copied().unwrap_or(f64::NAN),
            last_loss: losses.last().copied().unwrap_or(f64::NAN),
            valid_accuracy: history.rows.last().map_or(f64::NAN, |r| r[2]),
            test_accuracy: test_acc,
            seconds: history.rows.last().map_or(0.0, |r| r[3]),
            finished,
        });
    }
    // Under --distributed, rank 0 reports; the others return nothing to sum up.
    if !ddp.is_main() {
        return Ok(Vec::new());
    }
    let table = results_table(cfg, &reports);
    table.write(&dir, "results")?;
    common::line_chart(
        &dir.join("valid_accuracy.svg"),
        "Fashion-MNIST validation accuracy",
        "epoch",
        "accuracy",
        &curves,
    )?;
    write_json(
        &dir.join("results.json"),
        &serde_json::Value::Array(
            reports
                .iter()
                .map(|r| serde_json::json!({
                    "model": r.label, "seed": r.seed, "params": r.params, "flops_per_image": r.flops,
                    "valid_accuracy": r.valid_accuracy, "test_accuracy": r.test_accuracy,
                    "train_seconds": r.seconds, "first_epoch_loss": r.first_loss, "last_epoch_loss": r.last_loss,
                }))
                .collect(),
        ),
    )?;
    if !cfg.quiet {
        println!("{}", table.markdown());
    }
    Ok(reports)
}

/// One row per model: its test accuracy (mean ± standard deviation over the seeds, and how it
/// compares with the best: a tie when the difference is within the larger spread), size,
/// FLOPs and training time.
fn results_table(cfg: &Config, reports: &[Report]) -> Table {
    let seeds = cfg.seeds;
    let mut labels: Vec<&str> = Vec::new();
    for r in reports {
        if !labels.contains(&r.label.as_str()) {
            labels.push(&r.label);
        }
    }
    let stats = |label: &str, f: fn(&Report) -> f64| {
        let xs: Vec<f64> = reports.iter().filter(|r| r.label == label).map(f).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (xs.len().max(2) - 1) as f64;
        (mean, var.sqrt())
    };
    let acc = |l: &str| stats(l, |r| 100.0 * r.test_accuracy);
    let best = labels
        .iter()
        .copied()
        .max_by(|a, b| acc(a).0.total_cmp(&acc(b).0));
    let accuracy = if seeds > 1 {
        format!("test accuracy (mean ± sd, {seeds} seeds)")
    } else {
        "test accuracy".to_string()
    };
    let mut table = Table::new(&[
        "model",
        &accuracy,
        "vs best",
        "params",
        "FLOPs/image (fwd)",
        "train time (s)",
    ]);
    for &l in &labels {
        let (m, sd) = acc(l);
        let r = reports
            .iter()
            .find(|r| r.label == l)
            .expect("listed from the reports");
        let vs = match best {
            Some(b) if b == l => "best".to_string(),
            Some(b) if seeds > 1 && acc(b).0 - m <= sd.max(acc(b).1) => "tie".to_string(),
            Some(b) => format!("{:.2}", m - acc(b).0),
            None => String::new(),
        };
        table.push(vec![
            l.to_string(),
            if seeds > 1 {
                format!("{m:.2}% ± {sd:.2}")
            } else {
                format!("{m:.2}%")
            },
            vs,
            common::thousands(r.params),
            format!("{:.2} M", r.flops / 1e6),
            format!("{:.0}", stats(l, |r| r.seconds).0),
        ]);
    }
    table
}

#[allow(dead_code)]
fn main() {
    common::main(run, |cfg: &Config, reports: &Vec<Report>| {
        if !reports.is_empty() {
            println!("figures and metrics in {}", cfg.out)
        }
    });
}
