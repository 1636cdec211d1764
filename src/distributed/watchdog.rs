//! A collective waits until every rank arrives, and a rank that was killed never does: MPI and
//! NCCL would wait forever. The watchdog is a thread that looks at the collective in progress
//! and, once it has waited longer than the timeout, prints which collective on which rank
//! waited how long and ends the process (`mpirun` then ends the others).
//!
//! It cannot interrupt the library's call, so it ends the whole process, with `_exit`: an
//! ordinary exit would run the MPI library's exit handlers, which may wait on the very
//! collective that is stuck.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The exit status of a process the watchdog ended.
pub const TIMEOUT_STATUS: i32 = 3;

struct Shared {
    /// Milliseconds since `epoch` at which the armed collective times out; 0 when none is armed.
    deadline_ms: AtomicU64,
    timeout_ms: AtomicU64,
    /// The collective armed last (for the message).
    op: Mutex<&'static str>,
    epoch: Instant,
    rank: usize,
    world: usize,
}

pub struct Watchdog {
    shared: Arc<Shared>,
    started: std::sync::Once,
}

/// Disarms the watchdog when the collective returns.
pub struct Armed<'a> {
    shared: &'a Shared,
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        self.shared.deadline_ms.store(0, Ordering::SeqCst);
    }
}

impl Watchdog {
    pub fn new(rank: usize, world: usize, timeout: Duration) -> Self {
        Watchdog {
            shared: Arc::new(Shared {
                deadline_ms: AtomicU64::new(0),
                timeout_ms: AtomicU64::new(timeout.as_millis().max(1) as u64),
                op: Mutex::new(""),
                epoch: Instant::now(),
                rank,
                world,
            }),
            started: std::sync::Once::new(),
        }
    }
    pub fn set_timeout(&self, timeout: Duration) {
        let ms = timeout.as_millis().max(1) as u64;
        self.shared.timeout_ms.store(ms, Ordering::SeqCst);
    }
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.shared.timeout_ms.load(Ordering::SeqCst))
    }
    /// Starts the clock on collective `op`; the returned guard stops it.
    pub fn arm(&self, op: &'static str) -> Armed<'_> {
        self.started.call_once(|| {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name("cubegrad-watchdog".into())
                .spawn(move || watch(&shared))
                .expect("the distributed watchdog thread could not start");
        });
        let s = &self.shared;
        *s.op.lock().unwrap_or_else(|e| e.into_inner()) = op;
        let now = s.epoch.elapsed().as_millis() as u64;
        let deadline = now + s.timeout_ms.load(Ordering::SeqCst);
        s.deadline_ms.store(deadline, Ordering::SeqCst);
        Armed { shared: s }
    }
}

fn watch(s: &Shared) {
    loop {
        // Checks ten times per timeout, at most once per 100 ms: cheap, and late by a tenth.
        let period = (s.timeout_ms.load(Ordering::SeqCst) / 10).clamp(100, 1000);
        std::thread::sleep(Duration::from_millis(period));
        let deadline = s.deadline_ms.load(Ordering::SeqCst);
        let now = s.epoch.elapsed().as_millis() as u64;
        if deadline != 0 && now > deadline {
            let op = *s.op.lock().unwrap_or_else(|e| e.into_inner());
            let waited = s.timeout_ms.load(Ordering::SeqCst) as f64 / 1000.0;
            eprintln!(
                "error: distributed {op} on rank {} of {} waited more than {waited:.0} s for \
                 the other ranks (timeout: CUBEGRAD_DIST_TIMEOUT or --dist-timeout); one of \
                 them has stopped or died; ending this process",
                s.rank, s.world
            );
            end_process();
        }
    }
}

#[cfg(unix)]
fn end_process() -> ! {
    // Safety: `_exit` ends the process at once; nothing of this process is used afterwards.
    unsafe { libc::_exit(TIMEOUT_STATUS) }
}

#[cfg(not(unix))]
fn end_process() -> ! {
    std::process::exit(TIMEOUT_STATUS)
}
