//! Every example, run with a tiny configuration on the vendored data: it trains (the loss
//! drops), writes its metrics and figures, and where it checkpoints, resuming an interrupted
//! run gives the same numbers as the uninterrupted one.

#[path = "../../examples/attention_pooling.rs"]
mod attention_pooling;
#[path = "../../examples/contextpool_lm/main.rs"]
mod contextpool_lm;
#[path = "../../examples/custom_kernel.rs"]
mod custom_kernel;
#[path = "../../examples/custom_layer.rs"]
mod custom_layer;
#[path = "../../examples/image_classify.rs"]
mod image_classify;
#[path = "../../examples/translate/main.rs"]
mod translate;

use cubegrad::Device;
use std::path::PathBuf;

fn data(file: &str) -> String {
    format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// A fresh output folder under the target directory.
fn out(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("examples-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_string_lossy().into_owned()
}

fn exists(dir: &str, files: &[&str]) {
    for f in files {
        let p = PathBuf::from(dir).join(f);
        let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        assert!(len > 0, "{} is missing or empty", p.display());
    }
}

fn lm_config(out: String) -> contextpool_lm::Config {
    contextpool_lm::Config {
        data: data("sotu.txt.gz"),
        model: contextpool_lm::ModelKind::Contextpool,
        layers: Some(1),
        compare: false,
        models: Vec::new(),
        d_model: 32,
        heads: 2,
        seq_len: 32,
        batch_size: 8,
        steps: 40,
        lr: 3e-3,
        eval_every: 10,
        eval_chars: 2048,
        test_chars: 2048,
        pool_placement: contextpool_lm::Placement::Input,
        pool_features: contextpool_lm::Features::Normalized,
        pool_init_size: 1.0,
        pool_s_min: 0.5,
        pool_s_max: 8.0,
        pool_unnormalized: false,
        seeds: 1,
        study: false,
        study_data: String::new(),
        window: 8,
        stride: 16,
        summary: 2,
        features: 16,
        chunk: 8,
        redraw_every: 1000,
        mem_len: 16,
        n_hashes: 2,
        buckets: 4,
        sample_chars: 40,
        prompt: "The Congress".into(),
        temperature: 0.8,
        seed: 1,
        device: Device::Cpu,
        out,
        resume: false,
        stop_at: None,
        quiet: true,
        skip_nonfinite: false,
        distributed: false,
        bucket_mib: 25.0,
        dist_timeout: 600.0,
    }
}

#[test]
fn contextpool_lm_trains_samples_and_resumes_exactly() {
    let cfg = lm_config(out("lm"));
    let full = contextpool_lm::run(&cfg).unwrap();
    assert!(full.finished);
    // A uniform guess over 99 characters is log2(99) = 6.63 bpc.
    assert!(
        full.last_train_bpc < full.first_train_bpc - 1.0,
        "train bpc {} -> {}",
        full.first_train_bpc,
        full.last_train_bpc
    );
    assert!(
        full.valid_bpc < 5.0 && full.test_bpc < 5.0,
        "{} {}",
        full.valid_bpc,
        full.test_bpc
    );
    let sample = full.sample.as_deref().unwrap();
    assert!(sample.starts_with("The Congress") && sample.chars().count() == 12 + 40);
    exists(
        &cfg.out,
        &[
            "metrics.csv",
            "metrics.json",
            "learning_curve.svg",
            "pool_sizes_layer1.svg",
            "pool_sizes.csv",
            "attention_layer1_head1.svg",
            "sample.txt",
            "checkpoint.safetensors",
        ],
    );

    // Interrupted at step 20, then resumed: the same curve as the run above.
    let mut cut = lm_config(out("lm-resume"));
    cut.stop_at = Some(20);
    assert!(!contextpool_lm::run(&cut).unwrap().finished);
    cut.stop_at = None;
    cut.resume = true;
    let resumed = contextpool_lm::run(&cut).unwrap();
    assert_eq!(resumed.history.rows.len(), full.history.rows.len());
    for (a, b) in resumed.history.rows.iter().zip(&full.history.rows) {
        assert_eq!(a[0], b[0]);
        assert_eq!(a[1], b[1], "train bpc at step {}", a[0]);
        assert!(
            (a[2] - b[2]).abs() < 1e-9,
            "valid bpc at step {}: {} vs {}",
            a[0],
            a[2],
            b[2]
        );
    }
    assert!((resumed.test_bpc - full.test_bpc).abs() < 1e-9);

    // A checkpoint of another model is refused, naming the file and what differs.
    let mut other = lm_config(cut.out.clone());
    other.model = contextpool_lm::ModelKind::Baseline;
    other.resume = true;
    let err = contextpool_lm::run(&other).unwrap_err().to_string();
    assert!(
        err.contains("checkpoint.safetensors") && err.contains("does not match"),
        "{err}"
    );
}

#[test]
fn contextpool_lm_compare_tabulates_every_model() {
    let mut cfg = lm_config(out("lm-compare"));
    cfg.compare = true;
    cfg.layers = None;
    cfg.steps = 12;
    cfg.eval_every = 6;
    let reports = contextpool_lm::compare(&cfg).unwrap();
    let runs: Vec<(&str, usize)> = reports.iter().map(|r| (r.model.name(), r.layers)).collect();
    assert_eq!(
        runs,
        [
            ("baseline", 4),
            ("contextpool", 2),
            ("baseline", 2),
            ("adaptive-span", 4),
            ("local", 4)
        ]
    );
    for r in &reports {
        assert!(r.test_bpc.is_finite() && r.params > 0 && r.flops_per_token > 0.0);
        assert!(r.last_train_bpc < r.first_train_bpc, "{}", r.model.name());
    }
    exists(
        &cfg.out,
        &[
            "results.md",
            "results.csv",
            "results.json",
            "compare_valid_bpc.svg",
        ],
    );
    let md = std::fs::read_to_string(PathBuf::from(&cfg.out).join("results.md")).unwrap();
    assert_eq!(md.lines().count(), 2 + 5, "{md}");
    // Every CSV row has the header's 9 fields; "818,787" is one quoted field.
    let csv = std::fs::read_to_string(PathBuf::from(&cfg.out).join("results.csv")).unwrap();
    for line in csv.lines() {
        let mut quoted = false;
        let fields = 1 + line
            .chars()
            .filter(|&c| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .count();
        assert_eq!(fields, 9, "{line}");
    }

    // --models picks the compared set.
    cfg.models = vec![
        contextpool_lm::ModelKind::Fixed,
        contextpool_lm::ModelKind::Strided,
    ];
    cfg.out = out("lm-compare-models");
    let reports = contextpool_lm::compare(&cfg).unwrap();
    let runs: Vec<(&str, usize)> = reports.iter().map(|r| (r.model.name(), r.layers)).collect();
    assert_eq!(runs, [("fixed", 4), ("strided", 4)]);
}

/// Built without the `mpi` feature (as `cargo test --workspace` builds), `--distributed` says
/// how to build and launch it; under `mpi`, `tests/distributed.rs` runs it.
#[cfg(not(feature = "mpi"))]
#[test]
fn distributed_without_the_mpi_feature_says_how_to_get_it() {
    let mut cfg = lm_config(out("lm-distributed"));
    cfg.distributed = true;
    let err = contextpool_lm::run(&cfg).unwrap_err();
    assert_eq!(contextpool_lm::common::exit_status(err.as_ref()), 2);
    assert!(
        err.to_string().starts_with(
            "--distributed needs cubegrad's `mpi` feature: build with `cargo build --release \
             --features mpi --example contextpool_lm`"
        ),
        "{err}"
    );
    let mut cfg = lm_config(out("lm-distributed-xl"));
    cfg.distributed = true;
    cfg.model = contextpool_lm::ModelKind::TransformerXl;
    let err = contextpool_lm::run(&cfg).unwrap_err().to_string();
    assert!(
        err.contains("--distributed does not support the transformer-xl model"),
        "{err}"
    );
}

/// `--study` on small sizes: every part's table, each variant with its seeds' spread, one
/// best per table, and the placements on both corpora.
#[test]
fn contextpool_lm_study_writes_every_table_with_seeds() {
    let mut cfg = lm_config(out("lm-study"));
    cfg.study = true;
    cfg.study_data = data("shakespeare.txt.gz");
    (cfg.steps, cfg.seeds, cfg.eval_every) = (4, 2, 2);
    (cfg.eval_chars, cfg.test_chars, cfg.batch_size) = (512, 512, 4);
    let tables = contextpool_lm::run_study(&cfg).unwrap();
    assert_eq!(tables.len(), 4);
    let study = std::fs::read_to_string(format!("{}/study.md", cfg.out)).unwrap();
    assert!(study.contains("placements_2 on") && study.contains("shakespeare.txt.gz"));
    for (stem, rows) in [
        ("placements_1", 6),
        ("placements_2", 6),
        ("options", 5),
        ("alternatives", 3),
    ] {
        let md = std::fs::read_to_string(format!("{}/{stem}.md", cfg.out)).unwrap();
        let body: Vec<&str> = md.lines().skip(2).collect();
        assert_eq!(body.len(), rows, "{stem}:\n{md}");
        assert!(md.contains("test bpc (mean ± sd, 2 seeds)"), "{md}");
        assert_eq!(
            body.iter().filter(|l| l.contains("| best |")).count(),
            1,
            "{md}"
        );
        for line in &body {
            assert!(line.matches(" ± ").count() >= 3, "{line}");
        }
        let runs = std::fs::read_to_string(format!("{}/{stem}.json", cfg.out)).unwrap();
        let runs: serde_json::Value = serde_json::from_str(&runs).unwrap();
        assert_eq!(runs.as_array().unwrap().len(), 2 * rows);
    }
    let md = std::fs::read_to_string(format!("{}/placements_1.md", cfg.out)).unwrap();
    for label in [
        "| contextpool kv |",
        "| contextpool after-block |",
        "| contextpool per-head |",
    ] {
        assert!(md.contains(label), "{label} missing:\n{md}");
    }
}

#[test]
fn contextpool_lm_reports_a_missing_corpus() {
    let mut cfg = lm_config(out("lm-missing"));
    cfg.data = data("no-such-corpus.txt");
    let err = contextpool_lm::run(&cfg).unwrap_err().to_string();
    assert!(err.contains("no-such-corpus.txt"), "{err}");
}

/// `--seeds` and several ViT placements: one row per placement, with the spread over seeds.
#[test]
fn image_classify_trains_each_placement_with_seeds() {
    let cfg = image_classify::Config {
        data: data("fashion-mnist"),
        models: vec![image_classify::ModelKind::VitContextpool],
        epochs: 1,
        train_images: 128,
        test_images: 64,
        batch_size: 32,
        lr: 3e-3,
        d_model: 8,
        vit_layers: 1,
        vit_attention: image_classify::VitAttention::Full,
        vit_pool_placement: vec![
            image_classify::Placement::Kv,
            image_classify::Placement::AfterBlock,
            image_classify::Placement::PerHead,
        ],
        seeds: 2,
        seed: 0,
        device: Device::Cpu,
        out: out("images-placements"),
        resume: false,
        stop_at: None,
        quiet: true,
        skip_nonfinite: false,
        distributed: false,
        bucket_mib: 25.0,
        dist_timeout: 600.0,
    };
    let reports = image_classify::run(&cfg).unwrap();
    let labels: Vec<(&str, u64)> = reports.iter().map(|r| (r.label.as_str(), r.seed)).collect();
    assert_eq!(
        labels,
        [
            ("vit-contextpool (kv)", 0),
            ("vit-contextpool (kv)", 1),
            ("vit-contextpool (after-block)", 0),
            ("vit-contextpool (after-block)", 1),
            ("vit-contextpool (per-head)", 0),
            ("vit-contextpool (per-head)", 1),
        ]
    );
    // Two seeds draw different weights.
    assert_ne!(reports[0].first_loss, reports[1].first_loss);
    // Per head, each head's keys and values side by side: 2·(2·2 + 1) predictor weights per
    // head and predictor, 4 heads, against one layer's 2·(8 + 1).
    assert_eq!(reports[4].params - reports[0].params, 4 * 2 * 5 - 2 * 9);
    let md = std::fs::read_to_string(format!("{}/results.md", cfg.out)).unwrap();
    assert!(md.contains("test accuracy (mean ± sd, 2 seeds)"), "{md}");
    assert_eq!(md.lines().count(), 2 + 3, "{md}");
}

#[test]
fn image_classify_trains_all_four_models() {
    let cfg = image_classify::Config {
        data: data("fashion-mnist"),
        models: vec![],
        epochs: 3,
        train_images: 384,
        test_images: 256,
        batch_size: 32,
        lr: 3e-3,
        d_model: 16,
        vit_layers: 1,
        vit_attention: image_classify::VitAttention::Full,
        vit_pool_placement: vec![image_classify::Placement::Input],
        seeds: 1,
        seed: 0,
        device: Device::Cpu,
        out: out("images"),
        resume: false,
        stop_at: None,
        quiet: true,
        skip_nonfinite: false,
        distributed: false,
        bucket_mib: 25.0,
        dist_timeout: 600.0,
    };
    let reports = image_classify::run(&cfg).unwrap();
    assert_eq!(reports.len(), 4);
    for r in &reports {
        assert!(r.finished);
        assert!(
            r.last_loss < r.first_loss,
            "{}: {} -> {}",
            r.kind.name(),
            r.first_loss,
            r.last_loss
        );
        // Ten balanced classes: chance is 10%.
        assert!(
            r.test_accuracy > 0.2,
            "{}: {}",
            r.kind.name(),
            r.test_accuracy
        );
    }
    exists(
        &cfg.out,
        &[
            "results.md",
            "results.csv",
            "results.json",
            "valid_accuracy.svg",
            "cnn-contextpool/pool_sizes_block1.svg",
            "vit-contextpool/pool_sizes_layer1.svg",
        ],
    );

    // The ViTs with random-feature attention, LARA and MRA, through the one option: they
    // learn, the table names their attention, and their FLOPs are counted apart.
    for (attention, name) in [
        (image_classify::VitAttention::Performer, "performer"),
        (image_classify::VitAttention::Lara, "lara"),
        (image_classify::VitAttention::Mra, "mra"),
    ] {
        let cfg = image_classify::Config {
            models: vec![
                image_classify::ModelKind::Vit,
                image_classify::ModelKind::VitContextpool,
            ],
            vit_attention: attention,
            out: out(&format!("images-{name}")),
            ..cfg.clone()
        };
        let runs = image_classify::run(&cfg).unwrap();
        for (r, full) in runs.iter().zip(&reports[2..]) {
            assert!(r.last_loss < r.first_loss, "{name} {}", r.kind.name());
            // Above chance (10%) on this tiny budget, where LARA's samples make it the slowest.
            assert!(
                r.test_accuracy > 0.15,
                "{name} {}: {}",
                r.kind.name(),
                r.test_accuracy
            );
            assert_ne!(r.flops, full.flops, "{name} {}", r.kind.name());
        }
        let table = std::fs::read_to_string(PathBuf::from(&cfg.out).join("results.md")).unwrap();
        assert!(
            table.contains(&format!("vit-contextpool ({name})")),
            "{table}"
        );
    }
}

#[test]
fn attention_pooling_learns_a_width_that_beats_average_pooling() {
    let cfg = attention_pooling::Config {
        n_train: 50,
        epochs: 5,
        lr: 0.5,
        seed: 0,
        device: Device::Cpu,
        out: out("attention-pooling"),
        resume: false,
        stop_at: None,
        quiet: true,
    };
    let r = attention_pooling::run(&cfg).unwrap();
    assert!(r.finished);
    assert!(r.last_loss < r.first_loss);
    assert!(r.mse_nonparametric < r.mse_average && r.mse_parametric < r.mse_average);
    exists(
        &cfg.out,
        &[
            "fits.svg",
            "weights_nonparametric.svg",
            "weights_parametric.svg",
            "metrics.csv",
            "results.json",
        ],
    );
    // Resumed from epoch 2, the learned width is the same.
    let mut cut = attention_pooling::Config {
        out: out("attention-pooling-resume"),
        stop_at: Some(2),
        ..cfg
    };
    attention_pooling::run(&cut).unwrap();
    cut.stop_at = None;
    cut.resume = true;
    assert_eq!(attention_pooling::run(&cut).unwrap().width, r.width);
}

#[test]
fn custom_layer_passes_gradcheck_and_trains() {
    let cfg = custom_layer::Config {
        data: data("digits.csv.gz"),
        epochs: 10,
        hidden: 32,
        batch_size: 32,
        lr: 3e-3,
        seed: 0,
        device: Device::Cpu,
        out: out("custom-layer"),
        resume: false,
        stop_at: None,
        quiet: true,
        skip_nonfinite: false,
    };
    let r = custom_layer::run(&cfg).unwrap();
    assert!(r.finished);
    assert!(r.gradcheck_error < 1e-6, "{}", r.gradcheck_error);
    for (name, first, last, acc) in &r.runs {
        assert!(last < first, "{name}");
        assert!(*acc > 0.9, "{name}: {acc}");
    }
    exists(
        &cfg.out,
        &["results.md", "learning_curves.svg", "learned_beta.svg"],
    );

    // Interrupted after epoch 4 and resumed: the same losses and accuracies (the classifier
    // loop that image_classify shares).
    let mut cut = custom_layer::Config {
        out: out("custom-layer-resume"),
        stop_at: Some(4),
        ..cfg
    };
    assert!(!custom_layer::run(&cut).unwrap().finished);
    cut.stop_at = None;
    cut.resume = true;
    let resumed = custom_layer::run(&cut).unwrap();
    assert_eq!(resumed.runs, r.runs);
}

/// A layer with its own kernels (`CustomOp`): its CPU hooks pass gradcheck, it trains, and an
/// interrupted run resumes exactly. (On a CubeCL device, `tests/device/training.rs`.)
#[test]
fn custom_kernel_passes_gradcheck_trains_and_resumes() {
    let cfg = custom_kernel::Config {
        data: data("digits.csv.gz"),
        epochs: 6,
        hidden: 24,
        batch_size: 32,
        lr: 3e-3,
        seed: 0,
        device: Device::Cpu,
        out: out("custom-kernel"),
        resume: false,
        stop_at: None,
        quiet: true,
        skip_nonfinite: false,
    };
    let r = custom_kernel::run(&cfg).unwrap();
    assert!(r.finished);
    assert!(r.gradcheck_error < 1e-6, "{}", r.gradcheck_error);
    assert!(r.device_error.is_none());
    assert!(
        r.last_loss < r.first_loss,
        "{} -> {}",
        r.first_loss,
        r.last_loss
    );
    assert!(r.test_accuracy > 0.85, "{}", r.test_accuracy);
    exists(&cfg.out, &["results.json", "metrics.csv"]);

    let mut cut = custom_kernel::Config {
        out: out("custom-kernel-resume"),
        stop_at: Some(3),
        ..cfg
    };
    assert!(!custom_kernel::run(&cut).unwrap().finished);
    cut.stop_at = None;
    cut.resume = true;
    let resumed = custom_kernel::run(&cut).unwrap();
    assert_eq!(
        (resumed.last_loss, resumed.test_accuracy),
        (r.last_loss, r.test_accuracy)
    );
}

#[test]
fn translate_trains_both_models_and_scores_bleu() {
    let cfg = translate::Config {
        data: data("en_es_verses.tsv.gz"),
        max_chars: 40,
        max_tokens: 12,
        min_freq: 1,
        model: translate::Which::Both,
        hidden: 32,
        layers: 1,
        heads: 2,
        dropout: 0.0,
        epochs: 3,
        batch_size: 32,
        lr: 5e-3,
        bleu_sentences: 20,
        seed: 0,
        device: Device::Cpu,
        out: out("translate"),
        resume: false,
        stop_at: None,
        quiet: true,
        skip_nonfinite: false,
    };
    let reports = translate::run(&cfg).unwrap();
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert!(r.finished, "{}", r.name);
        assert!(
            r.last_loss < r.first_loss,
            "{}: {} -> {}",
            r.name,
            r.first_loss,
            r.last_loss
        );
        assert!((0.0..=1.0).contains(&r.test_bleu), "{}", r.test_bleu);
    }
    exists(
        &cfg.out,
        &[
            "results.md",
            "gru/alignment.svg",
            "gru/learning_curve.svg",
            "transformer/metrics.csv",
        ],
    );

    // Interrupted after epoch 2 and resumed: the same losses and BLEU.
    let mut cut = translate::Config {
        out: out("translate-resume"),
        stop_at: Some(2),
        ..cfg
    };
    translate::run(&cut).unwrap();
    cut.stop_at = None;
    cut.resume = true;
    let resumed = translate::run(&cut).unwrap();
    for (a, b) in resumed.iter().zip(&reports) {
        assert_eq!(
            (a.first_loss, a.last_loss, a.test_bleu),
            (b.first_loss, b.last_loss, b.test_bleu),
            "{}",
            a.name
        );
    }
}

#[test]
fn corpus_bleu_matches_hand_computed_values() {
    let toks = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    // Clipped precisions 5/6, 3/5, 2/4, 1/3 (the repeated "the" counts once); equal lengths.
    let b = cubegrad::metrics::corpus_bleu(
        &[toks("the cat sat on the mat")],
        &[toks("the cat sat on a mat")],
    );
    assert!((b - (1.0f64 / 12.0).powf(0.25)).abs() < 1e-12, "{b}");
    // Every n-gram matches, but 4 words against 6: brevity penalty exp(1 − 6/4).
    let b = cubegrad::metrics::corpus_bleu(
        &[toks("the cat sat on")],
        &[toks("the cat sat on the mat")],
    );
    assert!((b - (-0.5f64).exp()).abs() < 1e-12, "{b}");
    // No 4-gram in common: zero without smoothing.
    assert_eq!(
        cubegrad::metrics::corpus_bleu(&[toks("a b c")], &[toks("a b c")]),
        0.0
    );
    // Counts are pooled over the corpus, not averaged per sentence.
    let b = cubegrad::metrics::corpus_bleu(
        &[toks("w x y z"), toks("p q r s")],
        &[toks("w x y z"), toks("p q r t")],
    );
    let expected = ((7.0f64 / 8.0) * (5.0 / 6.0) * (3.0 / 4.0) * (1.0 / 2.0)).powf(0.25);
    assert!((b - expected).abs() < 1e-12, "{b} vs {expected}");
}

/// The error `run` returns for `flags` (parsed as the command line would be, the rest at their
/// defaults): the example refuses them before any work.
fn refused<C: clap::Parser, R>(
    run: impl Fn(&C) -> Result<R, Box<dyn std::error::Error>>,
    flags: &[&str],
) -> String {
    let cfg = C::try_parse_from(std::iter::once("example").chain(flags.iter().copied())).unwrap();
    match run(&cfg) {
        Ok(_) => panic!("{flags:?} was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn examples_refuse_bad_flags_in_one_line_before_any_work() {
    let base = lm_config(out("lm-bad-flags"));
    type Change = fn(&mut contextpool_lm::Config);
    let cases: [(Change, &str); 7] = [
        (|c| c.seq_len = 0, "--seq-len 0 must be at least 1"),
        (
            |c| (c.d_model, c.heads) = (130, 4),
            "--d-model 130 must be divisible by --heads 4",
        ),
        (|c| c.batch_size = 0, "--batch-size 0 must be at least 1"),
        (|c| c.heads = 0, "--heads 0 must be at least 1"),
        (
            |c| c.lr = f64::NAN,
            "--lr NaN must be a finite number above 0",
        ),
        (|c| c.steps = 0, "--steps 0 must be at least 1"),
        (
            |c| c.eval_chars = 10,
            "--eval-chars 10 must be at least 33 (one window of --seq-len 32 + 1)",
        ),
    ];
    for (change, want) in cases {
        let mut cfg = base.clone();
        change(&mut cfg);
        let err = contextpool_lm::run(&cfg).unwrap_err();
        assert_eq!(err.to_string(), want);
        assert_eq!(contextpool_lm::common::exit_status(err.as_ref()), 2);
        assert!(
            !PathBuf::from(&cfg.out).exists(),
            "{want}: the output folder was created before the check"
        );
    }
    // A corpus too small for one window in each split names its size and the minimum.
    let tiny = PathBuf::from(out("lm-tiny")).with_extension("txt");
    std::fs::write(&tiny, "abc").unwrap();
    let mut cfg = base.clone();
    cfg.data = tiny.to_string_lossy().into_owned();
    let err = contextpool_lm::run(&cfg).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("3 characters are too few for --seq-len 32")
            && msg.contains("at least 40,033 are needed"),
        "{msg}"
    );
    assert_eq!(contextpool_lm::common::exit_status(err.as_ref()), 2);
    // A missing file is an error of another kind: status 1.
    cfg.data = "no/such/corpus.txt".into();
    let err = contextpool_lm::run(&cfg).unwrap_err();
    assert_eq!(contextpool_lm::common::exit_status(err.as_ref()), 1);

    // The other examples, from their command lines.
    assert_eq!(
        refused(image_classify::run, &["--d-model", "30"]),
        "--d-model 30 must be divisible by the ViT's 4 heads"
    );
    assert_eq!(
        refused(image_classify::run, &["--batch-size", "0"]),
        "--batch-size 0 must be at least 1"
    );
    assert_eq!(
        refused(translate::run, &["--hidden", "130", "--heads", "4"]),
        "--hidden 130 must be divisible by --heads 4"
    );
    assert_eq!(
        refused(translate::run, &["--dropout", "1"]),
        "--dropout 1 must be at least 0 and below 1"
    );
    assert_eq!(
        refused(custom_layer::run, &["--epochs", "0"]),
        "--epochs 0 must be at least 1"
    );
    assert_eq!(
        refused(custom_kernel::run, &["--lr", "inf"]),
        "--lr inf must be a finite number above 0"
    );
    assert_eq!(
        refused(attention_pooling::run, &["--n-train", "1"]),
        "--n-train 1 must be at least 2"
    );
}

#[test]
fn a_diverging_run_stops_and_keeps_the_last_good_checkpoint() {
    // A good start, checkpointed at step 10.
    let mut cfg = lm_config(out("lm-diverge"));
    cfg.sample_chars = 0;
    cfg.stop_at = Some(10);
    contextpool_lm::run(&cfg).unwrap();
    let ck = PathBuf::from(&cfg.out).join("checkpoint.safetensors");
    let good = std::fs::read(&ck).unwrap();

    // The same run resumed with an absurd learning rate: it stops at the first non-finite
    // step, names it and the first parameter whose gradient is not finite, and saves nothing.
    cfg.stop_at = None;
    cfg.resume = true;
    cfg.lr = 1e30;
    let err = contextpool_lm::run(&cfg).unwrap_err().to_string();
    assert!(
        err.starts_with("step 1") && err.contains("(step 10) is kept") && err.contains("--resume"),
        "{err}"
    );
    assert!(err.contains("first in the gradient of"), "{err}");
    assert_eq!(
        std::fs::read(&ck).unwrap(),
        good,
        "the checkpoint of step 10 was overwritten"
    );

    // Resumed with a sane learning rate, it finishes from step 10.
    cfg.lr = 3e-3;
    let report = contextpool_lm::run(&cfg).unwrap();
    assert!(report.finished && report.test_bpc.is_finite());
    assert_eq!(report.skipped, 0);

    // The classifiers' loop (custom_layer, custom_kernel, image_classify) and translate's
    // guard the same way, naming the epoch and the batch.
    let dir = out("custom-layer-diverge");
    let err = refused(
        custom_layer::run,
        &["--lr", "1e30", "--epochs", "2", "--quiet", "--out", &dir],
    );
    assert!(
        err.starts_with("epoch 1, batch ") && err.contains("no checkpoint was written yet"),
        "{err}"
    );

    // With --skip-nonfinite the same absurd rate skips its steps instead, and counts them.
    let mut skip = lm_config(out("lm-skip"));
    skip.sample_chars = 0;
    skip.lr = 1e30;
    skip.skip_nonfinite = true;
    let report = contextpool_lm::run(&skip).unwrap();
    assert!(
        report.skipped > 0 && report.skipped < skip.steps,
        "{}",
        report.skipped
    );
    let metrics = std::fs::read_to_string(PathBuf::from(&skip.out).join("metrics.json")).unwrap();
    assert!(
        metrics.contains(&format!("\"skipped_steps\": {}", report.skipped)),
        "{metrics}"
    );
}

/// What is bit-reproducible: the same seed on the same device with the same number of threads
/// gives the same losses to the last bit. Another thread count cuts the parallel sums
/// differently (f32 additions in another order), so the losses agree only within rounding:
/// after 20 steps about 2e-7 bpc here; the README promises 1e-4.
#[test]
fn training_is_bit_reproducible_and_thread_counts_agree_within_rounding() {
    let run = |name: &str, threads: usize| {
        let mut cfg = lm_config(out(name));
        (cfg.steps, cfg.eval_every, cfg.sample_chars) = (20, 5, 0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        // The whole run on one of the pool's threads, whose parallel loops use the pool.
        pool.install(|| {
            contextpool_lm::run(&cfg)
                .map(|r| r.history.rows)
                .map_err(|e| e.to_string())
        })
        .unwrap()
    };
    let a = run("det-a", 2);
    let b = run("det-b", 2);
    assert_eq!(a.len(), 4);
    for (x, y) in a.iter().zip(&b) {
        // step, train bpc, valid bpc: identical (the seconds column differs).
        assert_eq!(x[..3], y[..3], "same seed, same threads");
    }
    let one = run("det-one", 1);
    for (x, y) in a.iter().zip(&one) {
        for c in 1..3 {
            assert!(
                (x[c] - y[c]).abs() < 1e-4,
                "step {}: {} with 2 threads, {} with 1",
                x[0],
                x[c],
                y[c]
            );
        }
    }
}

/// The Sparse Transformer's patterns as models of the example: they train, count only the
/// keys they attend to in their FLOPs, and sample (without the KV cache, which serves full
/// attention only).
#[test]
fn contextpool_lm_trains_and_samples_the_sparse_transformer_patterns() {
    let run = |kind: contextpool_lm::ModelKind, name: &str| {
        let mut cfg = lm_config(out(name));
        (cfg.model, cfg.steps, cfg.eval_every) = (kind, 20, 10);
        (cfg.stride, cfg.summary) = (8, 2);
        contextpool_lm::run(&cfg).unwrap()
    };
    let full = run(contextpool_lm::ModelKind::Baseline, "lm-full");
    for (kind, name) in [
        (contextpool_lm::ModelKind::Strided, "lm-strided"),
        (contextpool_lm::ModelKind::Fixed, "lm-fixed"),
    ] {
        let r = run(kind, name);
        assert!(r.finished, "{name}");
        assert!(
            r.last_train_bpc < r.first_train_bpc,
            "{name}: {} -> {}",
            r.first_train_bpc,
            r.last_train_bpc
        );
        assert!(
            r.flops_per_token < full.flops_per_token,
            "{name}: {} FLOPs/char, full attention {}",
            r.flops_per_token,
            full.flops_per_token
        );
        let sample = r.sample.as_deref().unwrap();
        assert_eq!(sample.chars().count(), 12 + 40, "{name}");
    }
}

/// The rest of the attention family as models of the example: Performer (random features
/// redrawn every 5 steps), FLASH (gated attention units), Transformer-XL (memory across
/// segments) and Reformer (LSH attention in reversible layers) train, sample without the KV cache, report their peak memory, and resume
/// exactly: an interrupted Performer run redraws the same features as the uninterrupted one,
/// and Transformer-XL's memory comes back from the checkpoint.
#[test]
fn contextpool_lm_trains_the_linear_and_long_context_models_and_resumes_exactly() {
    let config = |kind: contextpool_lm::ModelKind, name: &str| {
        let mut cfg = lm_config(out(name));
        (cfg.model, cfg.steps, cfg.eval_every) = (kind, 20, 10);
        (cfg.redraw_every, cfg.chunk) = (5, 8);
        cfg
    };
    for (kind, name, layers) in [
        (contextpool_lm::ModelKind::Performer, "lm-performer", 1),
        (contextpool_lm::ModelKind::Flash, "lm-flash", 2),
        (contextpool_lm::ModelKind::TransformerXl, "lm-xl", 2),
        (contextpool_lm::ModelKind::Reformer, "lm-reformer", 2),
    ] {
        let mut cfg = config(kind, name);
        cfg.layers = Some(layers);
        let full = contextpool_lm::run(&cfg).unwrap();
        assert!(full.finished, "{name}");
        assert!(
            full.last_train_bpc < full.first_train_bpc,
            "{name}: {} -> {}",
            full.first_train_bpc,
            full.last_train_bpc
        );
        // At least the weights and Adam's two moments.
        assert!(
            full.peak_mib * 1024.0 * 1024.0 > 3.0 * 4.0 * full.params as f64,
            "{name}: peak {} MiB for {} parameters",
            full.peak_mib,
            full.params
        );
        let sample = full.sample.as_deref().unwrap();
        assert_eq!(sample.chars().count(), 12 + 40, "{name}");

        let mut cut = config(kind, &format!("{name}-resume"));
        cut.layers = Some(layers);
        cut.stop_at = Some(10);
        assert!(!contextpool_lm::run(&cut).unwrap().finished);
        (cut.stop_at, cut.resume) = (None, true);
        let resumed = contextpool_lm::run(&cut).unwrap();
        for (a, b) in resumed.history.rows.iter().zip(&full.history.rows) {
            assert_eq!(a[1], b[1], "{name}: train bpc at step {}", a[0]);
        }
        assert!(
            (resumed.test_bpc - full.test_bpc).abs() < 1e-9,
            "{name}: {} vs {}",
            resumed.test_bpc,
            full.test_bpc
        );
    }
}

/// The attention family's flags are checked before any work, each error naming its flags.
#[test]
fn contextpool_lm_refuses_bad_attention_flags_by_name() {
    use contextpool_lm::common::Validate;
    let mut cfg = lm_config(out("lm-bad-flags"));
    (cfg.model, cfg.seq_len, cfg.chunk) = (contextpool_lm::ModelKind::Reformer, 30, 8);
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("--seq-len 30") && err.contains("--chunk 8"),
        "{err}"
    );
    (cfg.seq_len, cfg.buckets) = (32, 5);
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("--buckets 5"), "{err}");
    cfg.buckets = 4;
    cfg.mem_len = 0;
    assert!(cfg.validate().unwrap_err().to_string().contains("mem-len"));
}
