//! What every example shares: its `main` and output folder, the progress bar, the metrics it
//! logs (CSV and JSON, and inside checkpoints so that `--resume` continues them), Markdown
//! tables, SVG figures drawn with plotters, and the classifiers' epoch loop. Examples include it
//! with `mod common;` (from a folder, `#[path = "../common/mod.rs"] mod common;`); each uses a
//! part.
//!
//! - `output.rs`: `main`, the output folder, files, the progress bar, number formatting;
//! - `config.rs`: the rules a configuration is checked against before any work;
//! - `guard.rs`: stopping (or skipping a step) when the loss or the gradients stop being finite;
//! - `history.rs`: the learning curves (`History`);
//! - `resume.rs`: start fresh or resume from the checkpoint, and save it (`TrainState`);
//! - `table.rs`: results tables as Markdown and CSV;
//! - `figures.rs`: line charts, heatmaps and text coloured by a value, as SVG;
//! - `classifier.rs`: the epoch loop that trains the image and digit classifiers;
//! - `distributed.rs`: `--distributed`, the process group a training loop runs in;
//! - `pooling.rs`: the ContextPool flags (placement, features).
#![allow(dead_code)]

mod classifier;
mod config;
mod distributed;
mod figures;
mod guard;
mod history;
mod output;
mod pooling;
mod resume;
mod table;

// Each example uses a part of these; in that example the others would warn as unused.
#[allow(unused_imports)]
pub use self::{
    classifier::{accuracy, train_classifier, ClassifierRun},
    config::{
        at_least, at_least_for, divisible, even, positive, probability, stop_at, Checked,
        ConfigError, Validate,
    },
    distributed::{announce, check_batch, data_parallel, DistFlags},
    figures::{heatmap, line_chart, text_heat, Series, Style, SERIES_COLORS},
    guard::{NonFiniteGuard, Verdict},
    history::History,
    output::{exit_status, main, out_dir, progress, thousands, write_file, write_json, AnyResult},
    pooling::{Features, Placement},
    resume::{TrainState, CHECKPOINT},
    table::Table,
};
