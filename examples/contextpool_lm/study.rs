//! Comparing models with seeds, and the ContextPool study.
//!
//! A *variant* is one model with its settings (a kind, a depth, ContextPool's placement and
//! options); `--compare` and `--study` train each variant `--seeds` times (seeds `--seed`,
//! `--seed + 1`, …) and report the mean and the standard deviation over the seeds. A variant
//! whose mean is within the larger of its own spread and the best variant's of the best is a
//! *tie*: with a few seeds, smaller differences cannot be told from the noise of one run.

use super::common::{self, line_chart, out_dir, AnyResult, Series, Table};
use super::figures::passage_figures;
use super::train::{load_corpus, report_json, train_one, Corpus, Report};
use super::{Config, Features, ModelKind, Placement};
use cubegrad::distributed::DataParallel;
use std::path::Path;
use std::time::Instant;

/// One model of a comparison, and the settings it trains with.
#[derive(Clone)]
pub struct Variant {
    /// Its name in tables and folders (`contextpool kv`, `baseline-2layers`).
    pub label: String,
    pub kind: ModelKind,
    pub layers: usize,
    /// The run's settings with this variant's flags set.
    pub cfg: Config,
}

impl Variant {
    /// `kind` at `layers` with the settings of `cfg` (its ContextPool flags included).
    pub fn new(cfg: &Config, kind: ModelKind, layers: usize) -> Self {
        let mut label = kind.name().to_string();
        if layers != kind.default_layers() {
            label += &format!("-{layers}layers");
        }
        if kind == ModelKind::Contextpool {
            label += &cfg.pool_variant();
        }
        Variant {
            label,
            kind,
            layers,
            cfg: Config {
                model: kind,
                ..cfg.clone()
            },
        }
    }
    /// A ContextPool variant: `cfg`'s settings changed by `set`.
    pub fn contextpool(cfg: &Config, set: impl FnOnce(&mut Config)) -> Self {
        let mut c = cfg.clone();
        set(&mut c);
        Variant::new(
            &c,
            ModelKind::Contextpool,
            ModelKind::Contextpool.default_layers(),
        )
    }
}

/// A variant's runs, one per seed.
pub struct Summary {
    pub variant: Variant,
    pub reports: Vec<Report>,
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

impl Summary {
    pub fn test_bpc(&self) -> (f64, f64) {
        mean_std(&self.reports.iter().map(|r| r.test_bpc).collect::<Vec<_>>())
    }
    pub fn valid_bpc(&self) -> (f64, f64) {
        mean_std(&self.reports.iter().map(|r| r.valid_bpc).collect::<Vec<_>>())
    }
    /// Wall milliseconds per training step (the periodic evaluations included).
    pub fn ms_per_step(&self) -> (f64, f64) {
        let steps = self.variant.cfg.steps as f64;
        let ms: Vec<f64> = self
            .reports
            .iter()
            .map(|r| 1000.0 * r.train_seconds / steps)
            .collect();
        mean_std(&ms)
    }
}

/// Trains every variant with every seed, in `dir/<label>` (`dir/<label>/seed-<s>` with
/// several seeds), and returns their summaries.
pub fn run_variants(
    corpus: &Corpus,
    variants: &[Variant],
    seeds: usize,
    dir: &Path,
    ddp: &mut DataParallel,
) -> AnyResult<Vec<Summary>> {
    let mut out = Vec::new();
    for v in variants {
        let mut reports = Vec::new();
        for k in 0..seeds {
            let cfg = Config {
                seed: v.cfg.seed + k as u64,
                ..v.cfg.clone()
            };
            let folder = v.label.replace(' ', "_");
            let sub = if seeds == 1 {
                out_dir(&format!("{}/{folder}", dir.display()))?
            } else {
                out_dir(&format!("{}/{folder}/seed-{}", dir.display(), cfg.seed))?
            };
            let (report, mut model) = train_one(&cfg, corpus, v.kind, v.layers, &sub, ddp)?;
            if report.finished && ddp.is_main() && k == 0 {
                passage_figures(&mut model, corpus, &cfg, &sub)?;
            }
            reports.push(report);
        }
        out.push(Summary {
            variant: v.clone(),
            reports,
        });
    }
    Ok(out)
}

/// `x ± s` with three decimals, or `x` alone for one seed.
fn pm(x: (f64, f64), seeds: usize, decimals: usize) -> String {
    if seeds > 1 {
        format!("{:.*} ± {:.*}", decimals, x.0, decimals, x.1)
    } else {
        format!("{:.*}", decimals, x.0)
    }
}

/// How a variant compares with the best (lowest mean test bpc): `best`, `tie` when the
/// difference is within the larger spread (with several seeds), or the difference.
pub fn verdict(s: &Summary, best: &Summary, seeds: usize) -> String {
    let (m, sd) = s.test_bpc();
    let (bm, bsd) = best.test_bpc();
    if std::ptr::eq(s, best) {
        "best".into()
    } else if seeds > 1 && m - bm <= sd.max(bsd) {
        "tie".into()
    } else {
        format!("+{:.3}", m - bm)
    }
}

/// The results table: one row per variant, means ± spreads over the seeds.
pub fn summary_table(summaries: &[Summary], seeds: usize) -> Table {
    let test = if seeds > 1 {
        format!("test bpc (mean ± sd, {seeds} seeds)")
    } else {
        "test bpc".to_string()
    };
    let mut table = Table::new(&[
        "model",
        "layers",
        "params",
        "FLOPs/char (fwd)",
        &test,
        "vs best",
        "valid bpc",
        "ms/step",
        "peak MiB",
    ]);
    let best = summaries
        .iter()
        .min_by(|a, b| a.test_bpc().0.total_cmp(&b.test_bpc().0));
    for s in summaries {
        let r = &s.reports[0];
        table.push(vec![
            s.variant.label.clone(),
            s.variant.layers.to_string(),
            common::thousands(r.params),
            format!("{:.2} M", r.flops_per_token / 1e6),
            pm(s.test_bpc(), seeds, 3),
            best.map_or(String::new(), |b| verdict(s, b, seeds)),
            pm(s.valid_bpc(), seeds, 3),
            pm(s.ms_per_step(), seeds, 0),
            format!("{:.0}", r.peak_mib),
        ]);
    }
    table
}

/// The mean validation curve of each variant over its seeds.
fn curves(summaries: &[Summary]) -> Vec<Series> {
    summaries
        .iter()
        .map(|s| {
            let per_seed: Vec<Vec<(f64, f64)>> = s
                .reports
                .iter()
                .map(|r| r.history.points("step", "valid_bpc"))
                .collect();
            let n = per_seed.iter().map(Vec::len).min().unwrap_or(0);
            let mean: Vec<(f64, f64)> = (0..n)
                .map(|i| {
                    let ys: Vec<f64> = per_seed.iter().map(|p| p[i].1).collect();
                    (per_seed[0][i].0, mean_std(&ys).0)
                })
                .collect();
            Series::line(&s.variant.label, mean)
        })
        .collect()
}

/// Writes `stem.md`/`.csv`, `stem.json` (every run) and the mean validation curves, `figure`,
/// into `dir`.
pub fn write_results(
    dir: &Path,
    stem: &str,
    figure: &str,
    title: &str,
    summaries: &[Summary],
    seeds: usize,
) -> AnyResult<Table> {
    let table = summary_table(summaries, seeds);
    table.write(dir, stem)?;
    line_chart(
        &dir.join(figure),
        title,
        "step",
        "validation bits per character",
        &curves(summaries),
    )?;
    let runs: Vec<serde_json::Value> = summaries
        .iter()
        .flat_map(|s| {
            s.reports.iter().zip(0..).map(move |(r, k)| {
                let mut j = report_json(r);
                j["label"] = s.variant.label.clone().into();
                j["seed"] = (s.variant.cfg.seed + k).into();
                j
            })
        })
        .collect();
    common::write_json(
        &dir.join(format!("{stem}.json")),
        &serde_json::Value::Array(runs),
    )?;
    Ok(table)
}

/// The ContextPool study (`--study`): on `--data` and on `--study-data`, the plain model at 4
/// and at 2 layers and the 2-layer ContextPool model in each placement; on `--data` also the
/// open choices (initial size, size range, normalisation, raw features, on the keys-and-values
/// placement) and the other ways to cheapen attention the paper compares with (adaptive span,
/// local and strided attention). Each variant `--seeds` times; one table per part, the learning
/// curves, and the wall time, in `--out` (default `runs/contextpool_study`).
pub fn study(cfg: &Config, ddp: &mut DataParallel) -> AnyResult<Vec<Table>> {
    let started = Instant::now();
    let dir = out_dir(&cfg.out)?;
    let placements = |c: &Config| -> Vec<Variant> {
        let mut v = vec![
            Variant::new(c, ModelKind::Baseline, 4),
            Variant::new(c, ModelKind::Baseline, 2),
        ];
        for p in [
            Placement::Input,
            Placement::Kv,
            Placement::AfterBlock,
            Placement::PerHead,
        ] {
            v.push(Variant::contextpool(c, |c| c.pool_placement = p));
        }
        v
    };
    let mut parts: Vec<(String, String, Vec<Variant>)> = Vec::new();
    for (i, data) in [&cfg.data, &cfg.study_data].into_iter().enumerate() {
        let c = Config {
            data: data.clone(),
            ..cfg.clone()
        };
        parts.push((
            format!("placements_{}", i + 1),
            data.clone(),
            placements(&c),
        ));
    }
    let kv = |set: fn(&mut Config)| {
        Variant::contextpool(cfg, |c| {
            c.pool_placement = Placement::Kv;
            set(c)
        })
    };
    parts.push((
        "options".into(),
        cfg.data.clone(),
        vec![
            kv(|_| {}),
            kv(|c| c.pool_init_size = c.pool_s_min),
            kv(|c| c.pool_s_max = 16.0),
            kv(|c| c.pool_unnormalized = true),
            kv(|c| c.pool_features = Features::Raw),
        ],
    ));
    parts.push((
        "alternatives".into(),
        cfg.data.clone(),
        vec![
            Variant::new(cfg, ModelKind::AdaptiveSpan, 4),
            Variant::new(cfg, ModelKind::Local, 4),
            Variant::new(cfg, ModelKind::Strided, 4),
        ],
    ));
    let mut tables = Vec::new();
    let mut md = String::new();
    for (stem, data, variants) in &parts {
        let corpus = load_corpus(data, cfg.seed)?;
        corpus.check_fits(data, cfg.seq_len)?;
        let sub = out_dir(&format!("{}/{stem}", cfg.out))?;
        let summaries = run_variants(&corpus, variants, cfg.seeds, &sub, ddp)?;
        if !ddp.is_main() {
            continue;
        }
        let title = format!("{stem} on {data}");
        let figure = format!("{stem}_valid_bpc.svg");
        let table = write_results(&dir, stem, &figure, &title, &summaries, cfg.seeds)?;
        md += &format!("## {title}\n\n{}\n", table.markdown());
        if !cfg.quiet {
            println!("{title}\n{}", table.markdown());
        }
        tables.push(table);
    }
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    md += &format!(
        "{} steps of batch {} × {} characters, {} seed(s) per variant; wall time {minutes:.0} \
         minutes\n",
        cfg.steps, cfg.batch_size, cfg.seq_len, cfg.seeds
    );
    if ddp.is_main() {
        common::write_file(&dir.join("study.md"), &md)?;
    }
    Ok(tables)
}
