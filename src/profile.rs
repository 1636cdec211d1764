//! Where the time goes: the wall time of every op's forward and backward while a closure runs,
//! as a table like `torch.profiler`'s `key_averages()`.
//!
//! ```
//! use cubegrad::{profile, Tensor};
//!
//! let x = Tensor::randn([64, 32], 0.0, 1.0).with_grad();
//! let w = Tensor::randn([32, 16], 0.0, 1.0).with_grad();
//! let (_, report) = profile::record(|| {
//!     let loss = x.matmul(&w).gelu().sum();
//!     profile::scope("backward", || loss.backward())
//! });
//! assert!(report.rows().iter().any(|r| r.name == "matmul" && r.phase == profile::Phase::Forward));
//! println!("{report}");
//! ```
//!
//! Every op runs through [`apply`](crate::autograd::apply) and the tape, which time it here;
//! [`scope`] times anything else (an optimizer step, data loading). Times are *self* times: an
//! op's time excludes the ops and scopes it ran inside itself, so the rows add up to the total.
//! They are host times: on a device, where kernels are queued, call
//! [`backend::synchronize`](crate::backend::synchronize) inside the scopes you want measured.
//! When nothing is being recorded the cost is one thread-local check per op.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Which pass of an op a row times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Forward,
    Backward,
    /// A [`scope`] of the caller's.
    Scope,
}

/// One line of the table: every call of one op in one phase.
#[derive(Clone, Debug)]
pub struct Row {
    pub name: &'static str,
    pub phase: Phase,
    pub calls: usize,
    /// Time inside the op, minus the ops and scopes it ran.
    pub self_time: Duration,
    /// Time inside the op, everything included.
    pub total_time: Duration,
}

/// The table [`record`] returns, rows sorted by self time, largest first.
#[derive(Clone, Debug)]
pub struct Report {
    rows: Vec<Row>,
    wall: Duration,
}

impl Report {
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }
    /// Wall time of the whole closure.
    pub fn wall(&self) -> Duration {
        self.wall
    }
    /// The table of one of `n` identical iterations that the closure ran (a training step
    /// repeated `n` times): every time and call count divided by `n`.
    pub fn per_iteration(mut self, n: u32) -> Report {
        let n = n.max(1);
        for r in &mut self.rows {
            r.calls /= n as usize;
            r.self_time /= n;
            r.total_time /= n;
        }
        self.wall /= n;
        self
    }
    /// Wall time spent outside every op and scope.
    pub fn untracked(&self) -> Duration {
        let tracked: Duration = self.rows.iter().map(|r| r.self_time).sum();
        self.wall.saturating_sub(tracked)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wall = self.wall.as_secs_f64().max(1e-12);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "| op | pass | calls | self ms | self % | total ms |\n| --- | --- | ---: | ---: | ---: | ---: |"
        )?;
        for r in &self.rows {
            let phase = match r.phase {
                Phase::Forward => "forward",
                Phase::Backward => "backward",
                Phase::Scope => "scope",
            };
            writeln!(
                f,
                "| {} | {phase} | {} | {:.2} | {:.1} | {:.2} |",
                r.name,
                r.calls,
                ms(r.self_time),
                100.0 * r.self_time.as_secs_f64() / wall,
                ms(r.total_time)
            )?;
        }
        let rest = self.untracked();
        writeln!(
            f,
            "| (outside ops) | | | {:.2} | {:.1} | |",
            ms(rest),
            100.0 * rest.as_secs_f64() / wall
        )?;
        write!(f, "| **wall** | | | {:.2} | 100.0 | |", ms(self.wall))
    }
}

struct Frame {
    start: Instant,
    /// Time of the frames that ran inside this one, subtracted from its self time.
    children: Duration,
}

#[derive(Default)]
struct Recorder {
    stack: Vec<Frame>,
    rows: HashMap<(&'static str, Phase), Row>,
}

thread_local! {
    static RECORDER: RefCell<Option<Recorder>> = const { RefCell::new(None) };
}

/// Runs `f` and returns its result with the time of every op and scope it ran on this thread.
/// Calls nest: an inner `record` gets its own table, and the outer one sees its time as
/// untracked.
pub fn record<T>(f: impl FnOnce() -> T) -> (T, Report) {
    let outer = RECORDER.with(|r| r.borrow_mut().replace(Recorder::default()));
    let start = Instant::now();
    let out = f();
    let wall = start.elapsed();
    let rec = RECORDER.with(|r| std::mem::replace(&mut *r.borrow_mut(), outer));
    let mut rows: Vec<Row> = rec
        .map(|r| r.rows.into_values().collect())
        .unwrap_or_default();
    rows.sort_by(|a, b| {
        b.self_time
            .cmp(&a.self_time)
            .then((a.name, a.phase).cmp(&(b.name, b.phase)))
    });
    (out, Report { rows, wall })
}

/// Times `f` as a row of its own (phase [`Phase::Scope`]) when a [`record`] is running.
pub fn scope<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    timed(name, Phase::Scope, f)
}

/// Whether a [`record`] is running on this thread.
pub fn is_recording() -> bool {
    RECORDER.with(|r| r.borrow().is_some())
}

/// Times `f` under `(name, phase)` when recording; the tape and `apply` call it for every op.
pub(crate) fn timed<T>(name: &'static str, phase: Phase, f: impl FnOnce() -> T) -> T {
    if !is_recording() {
        return f();
    }
    let push = |r: &mut Option<Recorder>| {
        if let Some(rec) = r {
            rec.stack.push(Frame {
                start: Instant::now(),
                children: Duration::ZERO,
            });
        }
    };
    RECORDER.with(|r| push(&mut r.borrow_mut()));
    let out = f();
    RECORDER.with(|r| {
        let mut r = r.borrow_mut();
        let Some(rec) = r.as_mut() else { return };
        let Some(frame) = rec.stack.pop() else { return };
        let total = frame.start.elapsed();
        if let Some(parent) = rec.stack.last_mut() {
            parent.children += total;
        }
        let row = rec.rows.entry((name, phase)).or_insert(Row {
            name,
            phase,
            calls: 0,
            self_time: Duration::ZERO,
            total_time: Duration::ZERO,
        });
        row.calls += 1;
        row.self_time += total.saturating_sub(frame.children);
        row.total_time += total;
    });
    out
}
