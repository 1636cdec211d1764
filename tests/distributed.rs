//! Data-parallel training under MPI (`cargo test --features mpi --test distributed`; needs
//! `mpirun` from Open MPI).
//!
//! Each test launches this same binary under `mpirun -np 2`: with `CUBEGRAD_DIST_WORKER` set,
//! `main` is a rank of the `contextpool_lm` example with `--distributed` instead of the test
//! harness (libtest-mimic, which prints what cargo's own harness prints). The tests then read
//! the ranks' output and files:
//! - two ranks follow the single-process loss trajectory over 20 steps (1e-5 relative);
//! - a run stopped and resumed from the distributed checkpoint equals the uninterrupted one;
//! - a killed rank ends the run with an error within a minute; a rank that stops answering
//!   (SIGSTOP) makes the others' watchdog end the run with an error naming the collective.

#[path = "../examples/contextpool_lm/main.rs"]
mod contextpool_lm;

use contextpool_lm::{Config, ModelKind};
use cubegrad::Device;
use libtest_mimic::{Arguments, Failed, Trial};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The ranks' configuration: one layer, small sizes, an evaluation (and checkpoint) every step
/// so that the metrics file holds every step's loss.
fn lm_config(out: &str, steps: usize) -> Config {
    Config {
        data: concat!(env!("CARGO_MANIFEST_DIR"), "/data/sotu.txt.gz").into(),
        model: ModelKind::Contextpool,
        layers: Some(1),
        compare: false,
        models: Vec::new(),
        d_model: 32,
        heads: 2,
        seq_len: 32,
        batch_size: 8,
        steps,
        lr: 3e-3,
        eval_every: 1,
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
        sample_chars: 0,
        prompt: "The Congress".into(),
        temperature: 0.8,
        seed: 3,
        device: Device::Cpu,
        out: out.into(),
        resume: false,
        stop_at: None,
        quiet: true,
        skip_nonfinite: false,
        distributed: false,
        // Small buckets, so that the gradients travel in several.
        bucket_mib: 0.02,
        dist_timeout: 600.0,
    }
}

/// A rank: the example's run with the settings the test passed in the environment.
fn worker() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let steps = var("CUBEGRAD_DIST_STEPS").parse().unwrap_or(20);
    let mut cfg = lm_config(&var("CUBEGRAD_DIST_OUT"), steps);
    cfg.distributed = true;
    cfg.resume = var("CUBEGRAD_DIST_RESUME") == "1";
    cfg.stop_at = var("CUBEGRAD_DIST_STOP_AT").parse().ok();
    if let Ok(t) = var("CUBEGRAD_DIST_TIMEOUT").parse() {
        cfg.dist_timeout = t;
    }
    if let Err(e) = contextpool_lm::run(&cfg) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn out(name: &str) -> String {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("distributed-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir.to_string_lossy().into_owned()
}

/// `mpirun -np 2` of this binary as ranks, with `env` passed to them.
fn mpirun(env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("mpirun");
    cmd.args(["--allow-run-as-root", "--oversubscribe", "-np", "2"]);
    // One thread per rank: two ranks on two cores.
    cmd.env("RAYON_NUM_THREADS", "1");
    cmd.env("CUBEGRAD_DIST_WORKER", "1");
    for (k, v) in env {
        cmd.env(k, v);
        cmd.args(["-x", k]);
    }
    for k in ["RAYON_NUM_THREADS", "CUBEGRAD_DIST_WORKER"] {
        cmd.args(["-x", k]);
    }
    cmd.arg(std::env::current_exe().expect("the test binary's path"));
    cmd
}

/// Runs the ranks to the end; an error carries their output.
fn run_ranks(env: &[(&str, String)]) -> Result<(), Failed> {
    let output = mpirun(env)
        .output()
        .map_err(|e| format!("mpirun could not start (is Open MPI installed?): {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "mpirun failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(())
}

/// `metrics.csv`'s rows: step, train bpc, validation bpc, lr, seconds.
fn metrics(dir: &str) -> Result<Vec<Vec<f64>>, Failed> {
    let text = std::fs::read_to_string(format!("{dir}/metrics.csv"))
        .map_err(|e| format!("{dir}/metrics.csv: {e}"))?;
    Ok(text
        .lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .map(|v| v.parse().unwrap_or(f64::NAN))
                .collect()
        })
        .collect())
}

/// The two-rank run of 20 steps, uninterrupted: both the trajectory test and the resume test
/// compare against it, so it runs once.
fn two_ranks_uninterrupted() -> Result<Vec<Vec<f64>>, Failed> {
    static RUN: OnceLock<Result<Vec<Vec<f64>>, String>> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = out("two-ranks");
        run_ranks(&[("CUBEGRAD_DIST_OUT", dir.clone())]).map_err(|e| format!("{e:?}"))?;
        metrics(&dir).map_err(|e| format!("{e:?}"))
    })
    .clone()
    .map_err(Failed::from)
}

fn trajectory_matches_one_process() -> Result<(), Failed> {
    let dir = out("one-process");
    let single = contextpool_lm::run(&lm_config(&dir, 20)).map_err(|e| e.to_string())?;
    let one = metrics(&dir)?;
    let two = two_ranks_uninterrupted()?;
    if one.len() != 20 || two.len() != 20 {
        return Err(format!("expected 20 rows, got {} and {}", one.len(), two.len()).into());
    }
    for (a, b) in one.iter().zip(&two) {
        // Train bpc (the global batch's loss) and validation bpc, step by step.
        for col in [1, 2] {
            let rel = (a[col] - b[col]).abs() / a[col].abs();
            // NaN fails too.
            if rel.is_nan() || rel > 1e-5 {
                return Err(format!(
                    "step {}: one process {} and two ranks {} differ by {rel:e} (column {col})",
                    a[0], a[col], b[col]
                )
                .into());
            }
        }
    }
    // The run learned something, so the comparison compared a trajectory.
    let learned = single.first_train_bpc - single.last_train_bpc;
    if learned.is_nan() || learned < 0.5 {
        return Err(format!("the loss barely moved: {single:?}").into());
    }
    Ok(())
}

fn resume_continues_exactly() -> Result<(), Failed> {
    let dir = out("resumed");
    let base = [("CUBEGRAD_DIST_OUT", dir.clone())];
    let stop = [base[0].clone(), ("CUBEGRAD_DIST_STOP_AT", "9".into())];
    run_ranks(&stop)?;
    let stopped = metrics(&dir)?;
    if stopped.len() != 9 {
        return Err(format!("the first part wrote {} rows, not 9", stopped.len()).into());
    }
    run_ranks(&[base[0].clone(), ("CUBEGRAD_DIST_RESUME", "1".into())])?;
    let resumed = metrics(&dir)?;
    let whole = two_ranks_uninterrupted()?;
    if resumed.len() != whole.len() {
        return Err(format!(
            "{} rows after resuming, {} without",
            resumed.len(),
            whole.len()
        )
        .into());
    }
    for (a, b) in resumed.iter().zip(&whole) {
        // Exactly: the same sums in the same order (seconds aside).
        if a[..4] != b[..4] {
            return Err(format!("resumed {a:?} differs from uninterrupted {b:?}").into());
        }
    }
    Ok(())
}

/// Starts a long run, waits for both ranks' pids, does `act` to rank 1, and returns mpirun's
/// status, its output, and how long it took to end after `act`. Fails if it has not ended
/// within `limit`.
fn disturb(
    name: &str,
    env: &[(&str, String)],
    act: &str,
    limit: Duration,
) -> Result<(bool, String, Duration), Failed> {
    let mut env = env.to_vec();
    env.push(("CUBEGRAD_DIST_OUT", out(name)));
    env.push(("CUBEGRAD_DIST_STEPS", "1000000".into()));
    let mut child: Child = mpirun(&env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("mpirun could not start (is Open MPI installed?): {e}"))?;
    let stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut lines = Vec::new();
    let mut pid1 = None;
    for line in stdout.lines() {
        let line = line.map_err(|e| e.to_string())?;
        // "[rank 1/2] mpi backend, pid 1234, cpu: rows 4..8 of each batch of 8"
        if let Some(rest) = line.strip_prefix("[rank 1/2]") {
            pid1 = rest
                .split("pid ")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .and_then(|s| s.trim().parse::<u32>().ok());
        }
        lines.push(line);
        if pid1.is_some() {
            break;
        }
    }
    let Some(pid1) = pid1 else {
        let _ = child.kill();
        return Err(format!("rank 1 never said its pid:\n{}", lines.join("\n")).into());
    };
    // Let the ranks take some steps together first.
    std::thread::sleep(Duration::from_secs(2));
    let status = Command::new("kill")
        .args([act, &pid1.to_string()])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        let _ = child.kill();
        return Err(format!("kill {act} {pid1} failed").into());
    }
    let acted = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let output = child.wait_with_output().map_err(|e| e.to_string())?;
            let text = format!(
                "{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            return Ok((status.success(), text, acted.elapsed()));
        }
        if acted.elapsed() > limit {
            let _ = Command::new("kill")
                .args(["-9", &pid1.to_string()])
                .status();
            let _ = child.kill();
            return Err(format!("the run was still going {limit:?} after kill {act}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn killed_rank_fails_the_run() -> Result<(), Failed> {
    let (ok, text, took) = disturb("killed", &[], "-KILL", Duration::from_secs(60))?;
    if ok {
        return Err(format!("mpirun succeeded although rank 1 was killed:\n{text}").into());
    }
    // Open MPI's own report names the rank and the signal.
    if !text.contains("signal 9") {
        return Err(format!("no clear error after {took:?}:\n{text}").into());
    }
    Ok(())
}

fn stalled_rank_times_out() -> Result<(), Failed> {
    let env = [("CUBEGRAD_DIST_TIMEOUT", "5".to_string())];
    let (ok, text, took) = disturb("stalled", &env, "-STOP", Duration::from_secs(60))?;
    if ok {
        return Err(format!("mpirun succeeded although rank 1 was stopped:\n{text}").into());
    }
    let expected = "error: distributed all_reduce on rank 0 of 2 waited more than 5 s";
    if !text.contains(expected) {
        return Err(format!("no watchdog error after {took:?}:\n{text}").into());
    }
    if took < Duration::from_secs(4) {
        return Err(format!("the run ended after {took:?}, before the 5 s timeout").into());
    }
    Ok(())
}

fn main() {
    if std::env::var("CUBEGRAD_DIST_WORKER").is_ok() {
        worker();
        return;
    }
    let mut args = Arguments::from_args();
    // The tests launch two processes each on a two-core machine: one test at a time.
    args.test_threads = Some(1);
    let trials = vec![
        Trial::test(
            "two_ranks_follow_the_one_process_trajectory",
            trajectory_matches_one_process,
        ),
        Trial::test(
            "resume_from_a_distributed_checkpoint_continues_exactly",
            resume_continues_exactly,
        ),
        Trial::test("a_killed_rank_fails_the_run", killed_rank_fails_the_run),
        Trial::test(
            "a_stalled_rank_times_out_with_an_error",
            stalled_rank_times_out,
        ),
    ];
    libtest_mimic::run(&args, trials).exit();
}
