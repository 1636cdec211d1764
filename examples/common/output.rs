//! The plumbing of a run: `main`, the output folder and its files, the progress bar, and
//! numbers as people read them.

use super::config::{ConfigError, Validate};
use indicatif::{ProgressBar, ProgressStyle};
use std::error::Error;
use std::path::{Path, PathBuf};

pub type AnyResult<T> = std::result::Result<T, Box<dyn Error>>;

/// Every example's `main`: parses the flags into its `Config`, checks them against its rules,
/// calls `run`, and on success prints `summary` of what `run` returned (the example's one-line
/// result). A broken rule (before any work, or found by `run`, such as a corpus too small for
/// one batch) is printed as `error: …` and the process exits with status 2, as for a flag clap
/// cannot parse; any other error exits with status 1.
///
/// The tests call each example's `run` with a `Config` they build, so everything that matters
/// happens in `run`; `main` only adds the command line.
pub fn main<C: clap::Parser + Validate, R>(
    run: impl FnOnce(&C) -> AnyResult<R>,
    summary: impl FnOnce(&C, &R),
) {
    let cfg = C::parse();
    match cfg.validate().map_err(Into::into).and_then(|()| run(&cfg)) {
        Ok(result) => summary(&cfg, &result),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(exit_status(e.as_ref()));
        }
    }
}

/// The process's exit status for an error `run` returned: 2 for a configuration that cannot
/// run (as clap's for a flag it cannot parse), 1 for anything else.
pub fn exit_status(e: &(dyn Error + 'static)) -> i32 {
    if e.is::<ConfigError>() {
        2
    } else {
        1
    }
}

/// Creates `dir` (and its parents) and returns it.
pub fn out_dir(dir: &str) -> AnyResult<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create output folder {dir}: {e}"))?;
    Ok(PathBuf::from(dir))
}

pub fn write_file(path: &Path, contents: &str) -> AnyResult<()> {
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

pub fn write_json(path: &Path, value: &serde_json::Value) -> AnyResult<()> {
    write_file(path, &serde_json::to_string_pretty(value)?)
}

/// A progress bar over `total` steps that shows the caller's message (loss, throughput);
/// hidden with `--quiet` and in tests.
pub fn progress(total: usize, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} {msg} [{elapsed}<{eta}]")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// `n` with thousands separated by commas.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
